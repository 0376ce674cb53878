//! Leaderboards (SPEC §12) against the real server: boards defined by
//! admins, each operator, ties, exact ranks, paging, around a player, the
//! roles (player_writable refused and allowed), banned players hidden, and
//! periods named by their first day.

mod common;

use common::{Server, ServerConfig, SERVER_KEY};
use serde_json::{json, Value};

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

/// (player_id, score) of each record of a list answer, in order.
fn ranked(j: &Value) -> Vec<(i64, i64, i64)> {
    j["data"]["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r["rank"].as_i64().expect("rank"),
                r["player_id"].as_i64().expect("player"),
                r["score"].as_i64().expect("score"),
            )
        })
        .collect()
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
