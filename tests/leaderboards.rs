//! Leaderboards (SPEC §12) against the real server: boards defined by
//! admins, each operator, ties, exact ranks, paging, around a player, the
//! roles (player_writable refused and allowed), banned players hidden,
//! periods named by their first day; ranks served from the views (rebuilt
//! at start), `leaderboard` notifications for the top 10, resets at the UTC
//! boundary (a simulated clock: `leaderboards.clock_offset_ms`) archived
//! once, also with two nodes whose lease holder is killed mid-reset.

mod common;

use common::{
    column_i64, node, redis, redis_cli, rows, wait_for, Server, ServerConfig, SERVER_KEY,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// A clock offset that puts the boards' clock `lead` before the next UTC
/// midnight.
fn offset_to_midnight(lead: Duration) -> i64 {
    let now = now_ms();
    let midnight = (now.div_euclid(DAY_MS) + 1) * DAY_MS;
    midnight - lead.as_millis() as i64 - now
}

/// The sum of a metric family's samples on `/metrics`.
fn metric(server: &Server, family: &str) -> f64 {
    let r = server.http().request("GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    r.text()
        .lines()
        .filter(|l| l.starts_with(family) && l[family.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// The `leaderboard` notifications stored for a player (`realtime.persist`).
fn board_notices(server: &Server, admin: &str, player: i64) -> Vec<Value> {
    let (s, j) = get(
        server,
        admin,
        &format!("/api/v1/players/{player}/notifications?after=0&limit=100"),
    );
    assert_eq!(s, 200, "{j}");
    j["data"]["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .filter(|n| n["kind"] == "leaderboard")
        .cloned()
        .collect()
}

fn create(server: &Server, admin: &str, body: Value) -> (u16, Value) {
    server
        .call("POST", "/api/v1/leaderboards")
        .token(admin)
        .json(body)
        .lenient()
        .send()
        .parts()
}

fn score(server: &Server, token: &str, board: &str, body: Value) -> (u16, Value) {
    server
        .call("POST", &format!("/api/v1/leaderboards/{board}/scores"))
        .token(token)
        .json(body)
        .lenient()
        .send()
        .parts()
}

fn get(server: &Server, token: &str, path: &str) -> (u16, Value) {
    server
        .call("GET", path)
        .token(token)
        .lenient()
        .send()
        .parts()
}

/// (rank, player_id, `field(record)`) of each record of a list answer, in
/// order.
fn records_with<T>(j: &Value, field: impl Fn(&Value) -> T) -> Vec<(i64, i64, T)> {
    j["data"]["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r["rank"].as_i64().expect("rank"),
                r["player_id"].as_i64().expect("player"),
                field(r),
            )
        })
        .collect()
}

/// (rank, player_id, score) of each record of a list answer, in order.
fn ranked(j: &Value) -> Vec<(i64, i64, i64)> {
    records_with(j, |r| r["score"].as_i64().expect("score"))
}

#[test]
fn each_operator_ranks_exactly_with_ties_paging_and_roles() {
    let server = ServerConfig::new().shards(2).start();
    let admin = server.admin_token();
    let gs = server.server_token("game1");
    let players: Vec<(i64, String)> = (0..5)
        .map(|i| server.player("game1", &format!("lb_{i}")))
        .collect();
    for (id, op) in [("best_desc", "best"), ("totals", "incr"), ("latest", "set")] {
        let (s, j) = create(&server, &admin, json!({"id": id, "operator": op}));
        assert_eq!(s, 201, "{j}");
        assert_eq!(j["data"]["board"]["sort"], "desc");
    }
    let (s, j) = create(
        &server,
        &admin,
        json!({"id": "fastest", "sort": "asc", "player_writable": true}),
    );
    assert_eq!(s, 201, "{j}");
    // Refusals: an id taken, bad fields, a player or game server defining.
    assert_eq!(create(&server, &admin, json!({"id": "totals"})).0, 409);
    assert_eq!(
        create(&server, &admin, json!({"id": "x", "operator": "max"})).0,
        400
    );
    assert_eq!(create(&server, &admin, json!({"id": "bad id!"})).0, 400);
    assert_eq!(
        create(&server, &admin, json!({"id": "x", "extra": 1})).0,
        400
    );
    assert_eq!(create(&server, &players[0].1, json!({"id": "mine"})).0, 403);
    assert_eq!(create(&server, &gs, json!({"id": "mine"})).0, 403);
    let (s, j) = get(&server, &players[0].1, "/api/v1/leaderboards");
    assert_eq!(s, 200, "{j}");
    assert_eq!(j["data"]["boards"].as_array().map(Vec::len), Some(4));

    // best: a worse score changes nothing; ties break on subscore, then
    // on the earlier write.
    let p = |i: usize| players[i].0;
    for (i, sc, sub) in [(0, 50, 0), (1, 70, 1), (2, 70, 1), (3, 70, 2), (4, 10, 0)] {
        let (s, j) = score(
            &server,
            &gs,
            "best_desc",
            json!({"player_id": p(i), "score": sc, "subscore": sub}),
        );
        assert_eq!(s, 200, "{j}");
    }
    let (_, j) = score(
        &server,
        &gs,
        "best_desc",
        json!({"player_id": p(0), "score": 20}),
    );
    assert_eq!(
        j["data"]["record"]["score"], 50,
        "best keeps the better score: {j}"
    );
    assert_eq!(j["data"]["record"]["rank"], 4);
    let (s, j) = get(&server, &players[4].1, "/api/v1/leaderboards/best_desc");
    assert_eq!(s, 200, "{j}");
    assert_eq!(
        ranked(&j),
        vec![
            (1, p(3), 70),
            (2, p(1), 70),
            (3, p(2), 70),
            (4, p(0), 50),
            (5, p(4), 10)
        ]
    );
    assert_eq!(j["data"]["period"], "all");
    assert_eq!(j["data"]["records"][0]["username"], "lb_3");
    // Paging with the cursor.
    let (_, first) = get(&server, &admin, "/api/v1/leaderboards/best_desc?limit=2");
    assert_eq!(ranked(&first).len(), 2);
    let cursor = first["data"]["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let (_, second) = get(
        &server,
        &admin,
        &format!("/api/v1/leaderboards/best_desc?limit=2&cursor={cursor}"),
    );
    assert_eq!(ranked(&second), vec![(3, p(2), 70), (4, p(0), 50)]);
    let (_, last) = get(
        &server,
        &admin,
        "/api/v1/leaderboards/best_desc?limit=2&cursor=4",
    );
    assert!(last["data"]["next_cursor"].is_null(), "{last}");
    // Around a player and one player's rank.
    let (s, j) = get(
        &server,
        &admin,
        &format!("/api/v1/leaderboards/best_desc/around/{}?limit=3", p(2)),
    );
    assert_eq!(s, 200, "{j}");
    assert_eq!(
        ranked(&j),
        vec![(2, p(1), 70), (3, p(2), 70), (4, p(0), 50)]
    );
    let (s, j) = get(
        &server,
        &admin,
        &format!("/api/v1/leaderboards/best_desc/players/{}", p(0)),
    );
    assert_eq!(s, 200, "{j}");
    assert_eq!(j["data"]["rank"], 4);
    // A better write moves the player up.
    let (_, j) = score(
        &server,
        &gs,
        "best_desc",
        json!({"player_id": p(0), "score": 71}),
    );
    assert_eq!(j["data"]["record"]["rank"], 1, "{j}");

    // incr adds; the same write_id again (a retry) adds nothing more.
    for (w, sc) in [("w1", 5), ("w1", 5), ("w2", 7)] {
        let (s, j) = score(
            &server,
            &gs,
            "totals",
            json!({"player_id": p(1), "score": sc, "write_id": w}),
        );
        assert_eq!(s, 200, "{j}");
    }
    let (_, j) = get(
        &server,
        &admin,
        &format!("/api/v1/leaderboards/totals/players/{}", p(1)),
    );
    assert_eq!(j["data"]["score"], 12);
    // set replaces, also with a worse score.
    score(
        &server,
        &gs,
        "latest",
        json!({"player_id": p(2), "score": 90}),
    );
    let (_, j) = score(
        &server,
        &gs,
        "latest",
        json!({"player_id": p(2), "score": 30}),
    );
    assert_eq!(j["data"]["record"]["score"], 30);

    // Players write only where the board allows it, and only their own.
    let (s, _) = score(
        &server,
        &players[0].1,
        "best_desc",
        json!({"player_id": p(0), "score": 99}),
    );
    assert_eq!(s, 403);
    let (s, j) = score(
        &server,
        &players[0].1,
        "fastest",
        json!({"player_id": p(0), "score": 12}),
    );
    assert_eq!(s, 200, "{j}");
    let (s, _) = score(
        &server,
        &players[0].1,
        "fastest",
        json!({"player_id": p(1), "score": 1}),
    );
    assert_eq!(s, 403);
    score(
        &server,
        &players[1].1,
        "fastest",
        json!({"player_id": p(1), "score": 9}),
    );
    let (_, j) = get(&server, &admin, "/api/v1/leaderboards/fastest");
    assert_eq!(
        ranked(&j),
        vec![(1, p(1), 9), (2, p(0), 12)],
        "asc: lowest first"
    );

    // Bad input.
    assert_eq!(
        score(&server, &gs, "best_desc", json!({"player_id": p(0)})).0,
        400
    );
    assert_eq!(
        score(
            &server,
            &gs,
            "best_desc",
            json!({"player_id": p(0), "score": 1_i64 << 60})
        )
        .0,
        400
    );
    assert_eq!(
        score(
            &server,
            &gs,
            "best_desc",
            json!({"player_id": 999_999, "score": 1})
        )
        .0,
        404
    );
    assert_eq!(
        score(&server, &gs, "nope", json!({"player_id": p(0), "score": 1})).0,
        404
    );
    assert_eq!(
        get(&server, &admin, "/api/v1/leaderboards/best_desc?limit=0").0,
        400
    );
    assert_eq!(
        get(&server, &admin, "/api/v1/leaderboards/best_desc?cursor=x").0,
        400
    );
    assert_eq!(
        get(
            &server,
            &admin,
            "/api/v1/leaderboards/best_desc?period=2026-12-07"
        )
        .0,
        400
    );
    assert_eq!(
        get(
            &server,
            &admin,
            &format!("/api/v1/leaderboards/totals/players/{}", p(4))
        )
        .0,
        404
    );

    // A banned player drops out of every read; the others move up.
    let ban = server
        .call("PUT", &format!("/api/v1/players/{}", p(0)))
        .token(&admin)
        .json(json!({"status": "banned"}))
        .send();
    assert_eq!(ban.status, 200, "{}", ban.text());
    let (_, j) = get(&server, &admin, "/api/v1/leaderboards/best_desc");
    assert_eq!(ranked(&j)[0], (1, p(3), 70));
    assert!(ranked(&j).iter().all(|(_, id, _)| *id != p(0)));
    assert_eq!(
        get(
            &server,
            &admin,
            &format!("/api/v1/leaderboards/best_desc/players/{}", p(0))
        )
        .0,
        404
    );

    // Deleting withdraws the board and its records.
    let del = server
        .call("DELETE", "/api/v1/leaderboards/latest")
        .token(&admin)
        .send();
    assert_eq!(del.status, 200, "{}", del.text());
    assert_eq!(get(&server, &admin, "/api/v1/leaderboards/latest").0, 404);
    let del = server
        .call("DELETE", "/api/v1/leaderboards/latest")
        .token(&admin)
        .lenient()
        .send();
    assert_eq!(del.status, 404);
}

#[test]
fn a_board_that_resets_names_its_period_by_its_first_day() {
    let server = ServerConfig::new().start();
    let admin = server.admin_token();
    let gs = server.server_token("game1");
    let (p, _) = server.player("game1", "lb_daily");
    for reset in ["daily", "weekly", "monthly"] {
        let (s, j) = create(&server, &admin, json!({"id": reset, "reset": reset}));
        assert_eq!(s, 201, "{j}");
        let (s, j) = score(&server, &gs, reset, json!({"player_id": p, "score": 3}));
        assert_eq!(s, 200, "{j}");
        let period = j["data"]["period"].as_str().expect("period").to_string();
        assert_eq!(period.len(), 10, "{period}");
        // The current period, named, reads the same record; a period that
        // does not start there is refused; an earlier one is empty.
        let (s, named) = get(
            &server,
            &admin,
            &format!("/api/v1/leaderboards/{reset}?period={period}"),
        );
        assert_eq!(s, 200, "{named}");
        assert_eq!(ranked(&named), vec![(1, p, 3)]);
        let (s, _) = get(
            &server,
            &admin,
            &format!("/api/v1/leaderboards/{reset}?period=1999-02-30"),
        );
        assert_eq!(s, 400);
        let (s, old) = get(
            &server,
            &admin,
            &format!("/api/v1/leaderboards/{reset}?period=1970-01-01"),
        );
        if reset == "weekly" {
            assert_eq!(s, 400, "1970-01-01 was a Thursday");
        } else {
            assert_eq!(s, 200, "{old}");
            assert!(ranked(&old).is_empty());
        }
    }
}

#[test]
fn the_binary_protocol_submits_and_reads_ranks() {
    let server = ServerConfig::new().start();
    let admin = server.admin_token();
    let (s, j) = create(&server, &admin, json!({"id": "arena"}));
    assert_eq!(s, 201, "{j}");
    let ids: Vec<i64> = (0..3)
        .map(|i| server.player("game1", &format!("lb_tcp_{i}")).0)
        .collect();
    let mut tcp = server.tcp();
    assert_eq!(tcp.handshake_server("game1", SERVER_KEY).msg_type, 0x0002);
    for (seq, (p, sc)) in ids.iter().zip([30, 10, 20]).enumerate() {
        let body = json!({"action": "submit", "player_id": p, "board": "arena", "score": sc});
        let r = tcp.call(0x1007, seq as u32 + 1, "game1", &body.to_string());
        assert_eq!(r.msg_type, 0x1007, "{:?}", String::from_utf8_lossy(&r.body));
    }
    let r = tcp.call(
        0x1007,
        10,
        "game1",
        &json!({"action": "top", "board": "arena", "limit": 2}).to_string(),
    );
    assert_eq!(ranked(&r.json()), vec![(1, ids[0], 30), (2, ids[2], 20)]);
    assert_eq!(r.json()["data"]["next_cursor"], "2");
    let r = tcp.call(
        0x1007,
        11,
        "game1",
        &json!({"action": "rank", "board": "arena", "player_id": ids[1]}).to_string(),
    );
    assert_eq!(r.json()["data"]["rank"], 3);
    let r = tcp.call(
        0x1007,
        12,
        "game1",
        &json!({"action": "around", "board": "arena", "player_id": ids[2], "limit": 3}).to_string(),
    );
    assert_eq!(ranked(&r.json()).len(), 3);
    let r = tcp.call(
        0x1007,
        13,
        "game1",
        &json!({"action": "submit", "player_id": ids[0], "board": "arena"}).to_string(),
    );
    assert_eq!(r.error_code(), 0xE002, "a submit without a score");
    let r = tcp.call(
        0x1007,
        14,
        "game1",
        &json!({"action": "drop", "board": "arena"}).to_string(),
    );
    assert_eq!(r.error_code(), 0xE002, "an unknown action");
    let r = tcp.call(
        0x1007,
        15,
        "game1",
        &json!({"action": "top", "board": "nope"}).to_string(),
    );
    assert_eq!(r.error_code(), 0xE005, "an unknown board");
}

#[test]
fn ranks_come_from_views_rebuilt_at_start_and_top_ten_moves_are_notified() {
    let mut server = ServerConfig::new()
        .shards(2)
        .set("realtime", "persist", true)
        .start();
    let admin = server.admin_token();
    let gs = server.server_token("game1");
    // Four boards: their views are spread over both shards.
    let boards = ["v1", "v2", "v3", "v4"];
    for b in boards {
        assert_eq!(create(&server, &admin, json!({"id": b})).0, 201);
    }
    let players: Vec<i64> = (0..30)
        .map(|i| server.player("game1", &format!("lbv{i}")).0)
        .collect();
    for b in boards {
        for (i, p) in players.iter().enumerate() {
            let (s, j) = score(&server, &gs, b, json!({"player_id": p, "score": i * 10}));
            assert_eq!(s, 200, "{j}");
        }
    }
    let expect: Vec<(i64, i64, i64)> = (0..30)
        .map(|r| (r as i64 + 1, players[29 - r], (29 - r as i64) * 10))
        .collect();
    for b in boards {
        let (s, top) = get(
            &server,
            &admin,
            &format!("/api/v1/leaderboards/{b}?limit=100"),
        );
        assert_eq!(s, 200, "{top}");
        assert_eq!(ranked(&top), expect, "{b}");
    }
    assert_eq!(metric(&server, "dm_leaderboard_view_records"), 120.0);
    assert_eq!(metric(&server, "dm_leaderboard_sql_answers_total"), 0.0);

    // Top-10 moves are told, other writes not: the last player (rank 30)
    // jumps to 1, then writes a worse score (no change on `best`).
    let last = players[0];
    let notices_before = board_notices(&server, &admin, last).len();
    let (s, j) = score(
        &server,
        &gs,
        "v1",
        json!({"player_id": last, "score": 1000}),
    );
    assert_eq!(
        (s, j["data"]["record"]["rank"].as_i64()),
        (200, Some(1)),
        "{j}"
    );
    let (s, _) = score(&server, &gs, "v1", json!({"player_id": last, "score": 1}));
    assert_eq!(s, 200);
    let notices = board_notices(&server, &admin, last);
    assert_eq!(notices.len(), notices_before + 1, "{notices:?}");
    let n = &notices[notices.len() - 1]["data"];
    assert_eq!(
        (
            n["board"].as_str(),
            n["rank"].as_i64(),
            n["score"].as_i64(),
            n["period"].as_str()
        ),
        (Some("v1"), Some(1), Some(1000), Some("all"))
    );
    // Rank 25 → 21: not the top 10, nobody told.
    let p = players[5];
    let before = board_notices(&server, &admin, p).len();
    let (s, j) = score(&server, &gs, "v2", json!({"player_id": p, "score": 95}));
    assert_eq!(
        (s, j["data"]["record"]["rank"].as_i64()),
        (200, Some(21)),
        "{j}"
    );
    assert_eq!(board_notices(&server, &admin, p).len(), before);

    // A restart rebuilds every view from SQL before anyone reads.
    server.restart();
    wait_for("the views to be rebuilt", Duration::from_secs(20), || {
        metric(&server, "dm_leaderboard_view_records") == 120.0
    });
    let (_, top) = get(&server, &admin, "/api/v1/leaderboards/v1?limit=2");
    assert_eq!(ranked(&top), vec![(1, last, 1000), (2, players[29], 290)]);
    let (_, mine) = get(
        &server,
        &admin,
        &format!("/api/v1/leaderboards/v2/players/{p}"),
    );
    assert_eq!(
        (
            mine["data"]["rank"].as_i64(),
            mine["data"]["score"].as_i64()
        ),
        (Some(21), Some(95))
    );
    let (_, around) = get(
        &server,
        &admin,
        &format!("/api/v1/leaderboards/v3/around/{}?limit=3", players[15]),
    );
    assert_eq!(
        ranked(&around),
        vec![
            (14, players[16], 160),
            (15, players[15], 150),
            (16, players[14], 140)
        ]
    );
    // A ban takes the player out of every view; lifting it puts it back.
    let status = |s: &str| {
        let r = server
            .call("PUT", &format!("/api/v1/players/{last}"))
            .token(&admin)
            .json(json!({"status": s}))
            .send();
        assert_eq!(r.status, 200, "{}", r.text());
    };
    status("banned");
    let (_, top) = get(&server, &admin, "/api/v1/leaderboards/v1?limit=1");
    assert_eq!(ranked(&top), vec![(1, players[29], 290)]);
    let (s, _) = get(
        &server,
        &admin,
        &format!("/api/v1/leaderboards/v4/players/{last}"),
    );
    assert_eq!(s, 404, "a banned player has no rank");
    status("active");
    let (_, top) = get(&server, &admin, "/api/v1/leaderboards/v1?limit=1");
    assert_eq!(ranked(&top), vec![(1, last, 1000)]);
    assert_eq!(metric(&server, "dm_leaderboard_sql_answers_total"), 0.0);
    // A deleted board's views go with it; one defined again starts empty.
    let (s, _) = server
        .call("DELETE", "/api/v1/leaderboards/v4")
        .token(&admin)
        .lenient()
        .send()
        .parts();
    assert_eq!(s, 200);
    assert_eq!(metric(&server, "dm_leaderboard_view_records"), 90.0);
    assert_eq!(create(&server, &admin, json!({"id": "v4"})).0, 201);
    let (_, top) = get(&server, &admin, "/api/v1/leaderboards/v4");
    assert!(ranked(&top).is_empty(), "{top}");
}

/// Writes a score for each of `players` (score = 10 × its place) on a daily
/// board, waits for the boards' clock to pass midnight, and answers the
/// name of the period that ended.
fn fill_then_cross_midnight(server: &Server, admin: &str, board: &str, players: &[i64]) -> String {
    let gs = server.server_token("game1");
    let mut ended = String::new();
    for (i, p) in players.iter().enumerate() {
        let (s, j) = score(
            server,
            &gs,
            board,
            json!({"player_id": p, "score": (i + 1) * 10}),
        );
        assert_eq!(s, 200, "{j}");
        let period = j["data"]["period"].as_str().expect("period").to_string();
        assert!(
            ended.is_empty() || ended == period,
            "the writes crossed midnight"
        );
        ended = period;
    }
    wait_for(
        "the boards' clock to pass midnight",
        Duration::from_secs(30),
        || {
            let (_, top) = get(server, admin, &format!("/api/v1/leaderboards/{board}"));
            top["data"]["period"].as_str() != Some(ended.as_str())
        },
    );
    ended
}

#[test]
fn a_daily_board_resets_at_utc_midnight_once_and_keeps_its_past_periods() {
    for keep in [1, 0] {
        // A start slow enough to reach the simulated midnight before the
        // scores are in (a loaded machine) tries again with a new clock.
        let (server, admin, players) = (0..4)
            .find_map(|_| {
                let lead = Duration::from_secs(8);
                let midnight = Instant::now() + lead;
                let server = ServerConfig::new()
                    .set("leaderboards", "clock_offset_ms", offset_to_midnight(lead))
                    .set("leaderboards", "keep_periods", keep)
                    .set("cluster", "job_interval_ms", 100)
                    .start();
                let admin = server.admin_token();
                assert_eq!(
                    create(&server, &admin, json!({"id": "day", "reset": "daily"})).0,
                    201
                );
                let players: Vec<i64> = (0..3)
                    .map(|i| server.player("game1", &format!("day{i}")).0)
                    .collect();
                (Instant::now() + Duration::from_secs(2) < midnight)
                    .then_some((server, admin, players))
            })
            .expect("a server ready before its simulated midnight");
        let ended = fill_then_cross_midnight(&server, &admin, "day", &players);
        // The new period starts empty.
        let (_, top) = get(&server, &admin, "/api/v1/leaderboards/day");
        assert!(ranked(&top).is_empty(), "{top}");
        // The job archives the ended period once, with its records.
        wait_for("the period to be archived", Duration::from_secs(15), || {
            !rows(
                &server,
                "SELECT records FROM leaderboard_archives WHERE board_id = 'day'",
            )
            .is_empty()
        });
        std::thread::sleep(Duration::from_millis(500)); // several more job runs
        let archived = rows(
            &server,
            "SELECT records FROM leaderboard_archives WHERE board_id = 'day'",
        );
        assert_eq!(archived.len(), 1, "archived once: {archived:?}");
        assert_eq!(column_i64(&archived[0][0]), Some(3));
        let (s, past) = get(
            &server,
            &admin,
            &format!("/api/v1/leaderboards/day?period={ended}"),
        );
        assert_eq!(s, 200, "{past}");
        if keep == 1 {
            // Kept: the past period reads as it ended.
            assert_eq!(
                ranked(&past),
                vec![
                    (1, players[2], 30),
                    (2, players[1], 20),
                    (3, players[0], 10)
                ]
            );
        } else {
            // Not kept: its records are gone, its archive row stays.
            assert!(ranked(&past).is_empty(), "{past}");
            let left = rows(
                &server,
                "SELECT COUNT(*) FROM leaderboard_records WHERE board_id = 'day'",
            );
            assert_eq!(column_i64(&left[0][0]), Some(0));
        }
    }
}

#[test]
#[ignore = "needs MariaDB and Redis (DMTEST_BACKEND=mysql)"]
fn two_nodes_see_each_others_writes_and_reset_once_when_the_holder_is_killed() {
    // A setup slow enough to reach the simulated midnight (a loaded
    // machine) tries again with new nodes and a new clock.
    let (a, b, p, board, ended, midnight, admin) = (0..3)
        .find_map(|_| {
            let p = format!("lb{}-", rand::random::<u32>());
            let lead = Duration::from_secs(12);
            let offset = offset_to_midnight(lead);
            let midnight = Instant::now() + lead;
            let timings = |c: ServerConfig| {
                c.set("leaderboards", "clock_offset_ms", offset)
                    .set("cluster", "job_lease_ms", 1000)
                    .set("cluster", "job_interval_ms", 100)
                    .set("cluster", "job_write_delay_ms", 600)
            };
            let a = timings(node(&format!("{p}a"), &redis())).start();
            let b = a.start_peer(&format!("{p}b"));
            let admin = a.admin_token();
            let gs = a.server_token("game1");
            let board = format!("{p}daily").replace('-', "_");
            assert_eq!(
                create(&a, &admin, json!({"id": board, "reset": "daily"})).0,
                201
            );
            let players: Vec<i64> = (0..5)
                .map(|i| a.player("game1", &format!("{p}u{i}")).0)
                .collect();
            // A write answered on one node is in the ranks of the other at once.
            for (i, player) in players.iter().enumerate() {
                let (writer, reader) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
                let (s, j) = score(
                    writer,
                    &gs,
                    &board,
                    json!({"player_id": player, "score": i * 10 + 10}),
                );
                assert_eq!(s, 200, "{j}");
                let (_, mine) = get(
                    reader,
                    &admin,
                    &format!("/api/v1/leaderboards/{board}/players/{player}"),
                );
                assert_eq!(mine["data"]["rank"].as_i64(), Some(1), "{mine}");
            }
            // Redis losing a view: the next read rebuilds it from SQL.
            let generation = column_i64(
                &rows(
                    &a,
                    &format!("SELECT created_at FROM leaderboards WHERE id = '{board}'"),
                )[0][0],
            )
            .expect("created_at");
            let (_, top) = get(&a, &admin, &format!("/api/v1/leaderboards/{board}"));
            let ended = top["data"]["period"].as_str().expect("period").to_string();
            let period_ms = now_ms() + offset;
            let period_ms = period_ms - period_ms.rem_euclid(DAY_MS);
            let tag = format!("dm:lb:{{game1/{board}/{generation}/{period_ms}}}");
            let deleted = redis_cli(
                &redis(),
                &["DEL", &format!("{tag}:ready"), &format!("{tag}:z")],
            );
            assert_eq!(deleted, "2", "the view was in Redis under {tag}");
            let (_, top) = get(&b, &admin, &format!("/api/v1/leaderboards/{board}"));
            assert_eq!(ranked(&top).len(), 5, "rebuilt: {top}");
            assert_eq!(ranked(&top)[0].1, players[4]);
            (Instant::now() + Duration::from_secs(1) < midnight)
                .then_some((a, b, p, board, ended, midnight, admin))
        })
        .expect("two nodes set up before their simulated midnight");

    // Kill whichever node holds the reset job just before midnight, while
    // it runs (each run waits 600 ms between its lease and its write).
    wait_for("a holder of the reset job", Duration::from_secs(10), || {
        !rows(
            &a,
            "SELECT holder FROM job_fences WHERE job = 'reset-leaderboards'",
        )
        .is_empty()
    });
    std::thread::sleep(
        midnight.saturating_duration_since(Instant::now()) + Duration::from_millis(100),
    );
    let holder = rows(
        &a,
        "SELECT holder FROM job_fences WHERE job = 'reset-leaderboards'",
    )[0][0]
        .as_str()
        .expect("holder")
        .to_string();
    let (killed, survivor) = if holder.starts_with(&format!("{p}a/")) {
        (&a, &b)
    } else {
        (&b, &a)
    };
    killed.signal(libc::SIGKILL);
    let archived = || {
        rows(
            survivor,
            &format!("SELECT records, holder FROM leaderboard_archives WHERE board_id = '{board}'"),
        )
    };
    wait_for(
        "the survivor to archive the period",
        Duration::from_secs(20),
        || !archived().is_empty(),
    );
    std::thread::sleep(Duration::from_millis(1500)); // more runs of the job
    let rows_now = archived();
    assert_eq!(rows_now.len(), 1, "archived exactly once: {rows_now:?}");
    assert_eq!(column_i64(&rows_now[0][0]), Some(5));
    println!("holder {holder} killed; archived by {}", rows_now[0][1]);
    let (_, top) = get(survivor, &admin, &format!("/api/v1/leaderboards/{board}"));
    assert!(ranked(&top).is_empty(), "a new period: {top}");
    let (_, past) = get(
        survivor,
        &admin,
        &format!("/api/v1/leaderboards/{board}?period={ended}"),
    );
    assert_eq!(ranked(&past).len(), 5, "{past}");
}

/// (rank, player_id, username) of each record of a list answer, in order.
fn named(j: &Value) -> Vec<(i64, i64, String)> {
    records_with(j, |r| r["username"].as_str().expect("username").to_string())
}

/// `n` new players named `{prefix}{i}`, each given score `100 - i` on
/// `board` by the game server: the players in rank order, with names. Each
/// write answers the record with its rank and the player's username.
fn ranked_players(
    server: &Server,
    gs: &str,
    board: &str,
    prefix: &str,
    n: usize,
) -> Vec<(i64, String)> {
    let players: Vec<(i64, String)> = (0..n)
        .map(|i| {
            let name = format!("{prefix}{i}");
            (server.player("game1", &name).0, name)
        })
        .collect();
    for (i, (player, name)) in players.iter().enumerate() {
        let (s, j) = score(
            server,
            gs,
            board,
            json!({"player_id": player, "score": 100 - i}),
        );
        assert_eq!(s, 200, "{j}");
        assert_eq!(j["data"]["record"]["rank"].as_i64(), Some(1 + i as i64));
        assert_eq!(
            j["data"]["record"]["username"].as_str(),
            Some(name.as_str())
        );
    }
    players
}

/// Top, around and one rank of `board` with their usernames, as `expect`
/// (best first: player id and username) says they are.
fn reads_named_as(server: &Server, token: &str, board: &str, expect: &[(i64, String)]) {
    let want: Vec<(i64, i64, String)> = expect
        .iter()
        .enumerate()
        .map(|(i, (p, n))| (i as i64 + 1, *p, n.clone()))
        .collect();
    let (s, top) = get(
        server,
        token,
        &format!("/api/v1/leaderboards/{board}?limit=100"),
    );
    assert_eq!(s, 200, "{top}");
    assert_eq!(named(&top), want, "top");
    let mid = expect.len() / 2;
    let (s, around) = get(
        server,
        token,
        &format!(
            "/api/v1/leaderboards/{board}/around/{}?limit=5",
            expect[mid].0
        ),
    );
    assert_eq!(s, 200, "{around}");
    assert_eq!(named(&around), want[mid - 2..mid + 3].to_vec(), "around");
    let (s, mine) = get(
        server,
        token,
        &format!("/api/v1/leaderboards/{board}/players/{}", expect[1].0),
    );
    assert_eq!(s, 200, "{mine}");
    assert_eq!(
        (
            mine["data"]["rank"].as_i64(),
            mine["data"]["username"].as_str()
        ),
        (Some(2), Some(expect[1].1.as_str())),
        "{mine}"
    );
}

#[test]
fn reads_are_answered_from_the_views_with_usernames_and_no_sql() {
    // Without Redis each board's view keeps its records' usernames: a read
    // (top, around, one rank) asks SQL nothing — no rank counted in SQL, no
    // username looked up — on either shard, before and after a restart
    // (the view's load reads the names with the records), and a ban or
    // its lifting shows in reads with the player's own name.
    let mut server = ServerConfig::new().shards(2).start();
    let admin = server.admin_token();
    let gs = server.server_token("game1");
    let board = "named";
    assert_eq!(create(&server, &admin, json!({"id": board})).0, 201);
    let mut expect = ranked_players(&server, &gs, board, "lbname", 9);
    let no_sql = |server: &Server| {
        let text = server.http().request("GET", "/metrics", &[], b"").text();
        assert!(
            text.lines()
                .any(|l| l.starts_with("dm_leaderboard_name_lookups_total")),
            "the lookups are counted"
        );
        assert_eq!(metric(server, "dm_leaderboard_sql_answers_total"), 0.0);
        assert_eq!(metric(server, "dm_leaderboard_name_lookups_total"), 0.0);
    };
    // Several reads: over keep-alive connections they land on both shards.
    for _ in 0..4 {
        reads_named_as(&server, &admin, board, &expect);
    }
    no_sql(&server);

    let status = |server: &Server, player: i64, s: &str| {
        let r = server
            .call("PUT", &format!("/api/v1/players/{player}"))
            .token(&admin)
            .json(json!({"status": s}))
            .send();
        assert_eq!(r.status, 200, "{}", r.text());
    };
    let banned = expect.remove(1);
    status(&server, banned.0, "banned");
    reads_named_as(&server, &admin, board, &expect);
    status(&server, banned.0, "active");
    expect.insert(1, banned.clone());
    reads_named_as(&server, &admin, board, &expect);
    no_sql(&server);

    server.restart();
    wait_for("the view to be rebuilt", Duration::from_secs(20), || {
        metric(&server, "dm_leaderboard_view_records") == 9.0
    });
    for _ in 0..4 {
        reads_named_as(&server, &admin, board, &expect);
    }
    no_sql(&server);
}

#[test]
#[ignore = "needs MariaDB and Redis (DMTEST_BACKEND=mysql)"]
fn redis_views_name_records_from_the_shards_cache_and_sql_answers_without_redis() {
    // A Redis view's members hold no names: a shard looks them up once
    // (one SQL read for a page) and keeps them; a score write teaches it
    // the writer's name. One shard, so that every request meets the same
    // cache.
    let p = format!("lbr{}", rand::random::<u32>());
    let mut server = node(&format!("{p}-a"), &redis()).shards(1).start();
    let admin = server.admin_token();
    let gs = server.server_token("game1");
    let board = format!("{p}_names");
    assert_eq!(create(&server, &admin, json!({"id": board})).0, 201);
    let mut expect = ranked_players(&server, &gs, &board, &format!("{p}n"), 9);
    reads_named_as(&server, &admin, &board, &expect);
    assert_eq!(
        metric(&server, "dm_leaderboard_name_lookups_total"),
        0.0,
        "the writes taught the shard every name"
    );
    let banned = expect.remove(1);
    let status = |server: &Server, player: i64, s: &str| {
        let r = server
            .call("PUT", &format!("/api/v1/players/{player}"))
            .token(&admin)
            .json(json!({"status": s}))
            .send();
        assert_eq!(r.status, 200, "{}", r.text());
    };
    status(&server, banned.0, "banned");
    reads_named_as(&server, &admin, &board, &expect);
    status(&server, banned.0, "active");
    expect.insert(1, banned);
    reads_named_as(&server, &admin, &board, &expect);
    // A restart forgets the names: the first reads look them up, the next
    // ones find them in the cache.
    server.restart();
    reads_named_as(&server, &admin, &board, &expect);
    let looked_up = metric(&server, "dm_leaderboard_name_lookups_total");
    assert!(looked_up >= 1.0, "{looked_up}");
    reads_named_as(&server, &admin, &board, &expect);
    assert_eq!(
        metric(&server, "dm_leaderboard_name_lookups_total"),
        looked_up
    );
    assert_eq!(metric(&server, "dm_leaderboard_sql_answers_total"), 0.0);

    // Redis unreachable: every read is answered from SQL, names included.
    let dead = common::loopback_addr();
    let server = node(&format!("{p}-b"), &format!("redis://{dead}")).start();
    let admin = server.admin_token();
    let gs = server.server_token("game1");
    assert_eq!(create(&server, &admin, json!({"id": board})).0, 201);
    // A database of its own: players of its own.
    let expect = ranked_players(&server, &gs, &board, &format!("{p}d"), 5);
    reads_named_as(&server, &admin, &board, &expect);
    assert!(metric(&server, "dm_leaderboard_sql_answers_total") >= 3.0);
}
