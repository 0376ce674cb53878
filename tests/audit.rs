//! The audit log (SPEC §13) against the real server, on SQLite and on the
//! MariaDB pass: every admin action and economy change leaves one record in
//! its own transaction (a refused change none), with actor, client and
//! node; `GET /api/v1/audit` filters and pages; checkpoints are signed and
//! stored; `datamiddleware audit verify` passes a clean database and names
//! rows edited, deleted, inserted and reordered by hand, a forged
//! checkpoint and a re-hashed chain; a 100-client chaos run verifies with
//! no change failed; two nodes' checkpoints never fork a chain, nor do two
//! nodes racing for the same chains; records written after the database
//! lost its last commit link to what is there; a SQLite log begun at schema
//! version 9 (1,024 chains) is re-keyed by version 12, goes on in chain 0
//! and still verifies, and one with a record no key holds stops that start.

mod common;

use common::{
    backend, column_i64, rows, wait_for, Server, ServerConfig, TestBackend, AUDIT_SIGNING_KEY,
};
use datamiddleware::audit::{record_hash, Actor, AuditKey, AuditRecord};
use serde_json::{json, Value};
use std::time::Duration;

fn api(
    server: &Server,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut call = server.call(method, path).token(token).lenient();
    if let Some(b) = body {
        call = call.json(b);
    }
    call.send().parts()
}

/// A game server's credit of one gold to `player` on `node`: status and
/// body.
fn credit_one(node: &Server, gs: &str, player: i64) -> (u16, Value) {
    api(
        node,
        gs,
        "POST",
        &format!("/api/v1/players/{player}/wallet"),
        Some(json!({"currency":"gold","delta":1,"reason":"r"})),
    )
}

/// How many `wallet.change` records the database holds for `players`.
fn wallet_records(server: &Server, players: &[i64]) -> i64 {
    let subjects: Vec<String> = players.iter().map(|p| format!("'player:{p}'")).collect();
    let n = rows(
        server,
        &format!(
            "SELECT COUNT(*) FROM audit_records WHERE action = 'wallet.change' AND subject IN ({})",
            subjects.join(", ")
        ),
    );
    column_i64(&n[0][0]).expect("a count")
}

/// Every record of a subject through the API (all pages).
fn records_of(server: &Server, admin: &str, subject: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let (s, j) = api(
            server,
            admin,
            "GET",
            &format!("/api/v1/audit?subject={subject}&limit=3&after={after}"),
            None,
        );
        assert_eq!(s, 200, "{j}");
        out.extend(
            j["data"]["records"]
                .as_array()
                .expect("records")
                .iter()
                .cloned(),
        );
        match j["data"]["next_cursor"].as_str() {
            Some(c) => after = c.to_string(),
            None => return out,
        }
    }
}

/// `datamiddleware audit verify` on the server's configuration: exit code
/// and output.
fn verify(server: &Server) -> (i32, String) {
    let out = common::server_command()
        .arg("--config")
        .arg(server.dir.join("config.toml"))
        .args(["audit", "verify", "--game", "game1"])
        .output()
        .expect("run audit verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn sql(server: &Server, statement: &str) {
    rows(server, statement);
}

/// A chain's records as stored, in seq order.
fn chain(server: &Server, chain: i64) -> Vec<AuditRecord> {
    rows(
        server,
        &format!(
            "SELECT chain, seq, at, actor_role, actor_id, client, node, action, subject, details, \
             prev_hash, hash FROM audit_records WHERE chain = {chain} ORDER BY seq"
        ),
    )
    .iter()
    .map(|r| {
        let t = |i: usize| r[i].as_str().expect("text").to_string();
        let n = |i: usize| column_i64(&r[i]).expect("int");
        AuditRecord {
            chain: n(0),
            seq: n(1),
            at: n(2),
            actor: Actor {
                role: t(3),
                id: t(4),
                client: t(5),
                node: t(6),
            },
            action: t(7),
            subject: t(8),
            details: t(9),
            prev_hash: t(10),
            hash: t(11),
        }
    })
    .collect()
}

/// Where a record goes in an `INSERT`: its key's columns and values (on
/// SQLite one integer, `chain << 40 | seq`, of which `chain` and `seq` are
/// computed columns).
fn place(chain: i64, seq: i64) -> (&'static str, String) {
    match backend() {
        TestBackend::Sqlite => ("id", format!("({chain} << 40) + {seq}")),
        TestBackend::Mysql { .. } => ("chain, seq", format!("{chain}, {seq}")),
    }
}

fn insert(server: &Server, r: &AuditRecord) {
    insert_at(server, r, place(r.chain, r.seq));
}

/// Inserts `r` by hand, its place given as (columns, values).
fn insert_at(server: &Server, r: &AuditRecord, (columns, values): (&str, String)) {
    let q = |s: &str| s.replace('\'', "''");
    sql(
        server,
        &format!(
            "INSERT INTO audit_records ({columns}, at, actor_role, actor_id, client, node, action, \
             subject, details, prev_hash, hash) VALUES ({values}, {}, '{}', '{}', '{}', '{}', '{}', \
             '{}', '{}', '{}', '{}')",
            r.at,
            q(&r.actor.role),
            q(&r.actor.id),
            q(&r.actor.client),
            q(&r.actor.node),
            q(&r.action),
            q(&r.subject),
            q(&r.details),
            r.prev_hash,
            r.hash
        ),
    );
}

/// Swaps chain `c`'s records `a` and `b` (through a place no record has).
fn swap(server: &Server, c: i64, a: i64, b: i64) {
    renumber(server, c, a, 999_999);
    renumber(server, c, b, a);
    renumber(server, c, 999_999, b);
}

/// Renumbers a chain's records from `from` on by `by` (two steps, so the
/// primary key never collides).
fn shift(server: &Server, c: i64, from: i64, by: i64) {
    for (at_least, step) in [(from, 1_000_000), (1_000_000, by - 1_000_000)] {
        sql(server, &renumbered(c, &format!("seq >= {at_least}"), step));
    }
}

/// Moves chain `c`'s record `from` to the place `to`, as someone with write
/// access to the database would.
fn renumber(server: &Server, c: i64, from: i64, to: i64) {
    sql(server, &renumbered(c, &format!("seq = {from}"), to - from));
}

/// The `UPDATE` that adds `step` to the seq of chain `c`'s records where
/// `which` holds: on SQLite to their key (`seq` is computed from it).
fn renumbered(c: i64, which: &str, step: i64) -> String {
    let column = match backend() {
        TestBackend::Sqlite => "id",
        TestBackend::Mysql { .. } => "seq",
    };
    format!("UPDATE audit_records SET {column} = {column} + ({step}) WHERE chain = {c} AND {which}")
}

#[test]
fn changes_leave_records_the_api_reads_and_verify_names_each_tampering() {
    let mut server = ServerConfig::new()
        .shards(2)
        .set("audit", "checkpoint_s", 1)
        .set("log", "level", "info")
        .start();
    let admin = server.admin_token();
    let gs = server.server_token("game1");
    let (p, ptoken) = server.player("game1", "audited");
    let (q, qtoken) = server.player("game1", "other");
    let subject = format!("player:{p}");
    // Sign-up grants are ledger lines: recorded.
    let signup = records_of(&server, &admin, &subject);
    assert!(
        signup.iter().all(|r| r["action"] == "player.signup"),
        "{signup:?}"
    );
    // A change refused leaves nothing.
    let (_, refused) = api(
        &server,
        &gs,
        "POST",
        &format!("/api/v1/players/{p}/wallet"),
        Some(json!({"currency":"gold","delta":-1_000_000_000_i64,"reason":"fee"})),
    );
    assert_eq!(refused["code"], 3001, "below zero is refused: {refused}");
    let now = records_of(&server, &admin, &subject);
    assert_eq!(now.len(), signup.len(), "{now:#?}");
    // Each change, through every role that may make it.
    let ok = |r: (u16, Value)| {
        assert!(r.0 == 200 || r.0 == 201, "{}", r.1);
        assert!(matches!(r.1["code"].as_i64(), Some(200 | 201)), "{}", r.1);
    };
    ok(api(
        &server,
        &gs,
        "POST",
        &format!("/api/v1/players/{p}/wallet"),
        Some(json!({"currency":"gold","delta":500,"reason":"quest"})),
    ));
    ok(api(
        &server,
        &gs,
        "POST",
        &format!("/api/v1/players/{p}/items/potion/grant"),
        Some(json!({"quantity":5})),
    ));
    ok(api(
        &server,
        &ptoken,
        "POST",
        &format!("/api/v1/players/{p}/items/potion/use"),
        Some(json!({"quantity":1})),
    ));
    ok(api(
        &server,
        &ptoken,
        "POST",
        &format!("/api/v1/players/{p}/items/potion/transfer"),
        Some(json!({"target_player_id":q,"quantity":1})),
    ));
    let (s, order) = api(
        &server,
        &ptoken,
        "POST",
        "/api/v1/orders",
        Some(json!({"item_id":"sword","quantity":1,"currency":"gold"})),
    );
    assert_eq!(s, 201, "{order}");
    let order_id = order["data"]["order"]["order_id"]
        .as_str()
        .expect("order id")
        .to_string();
    ok(api(
        &server,
        &ptoken,
        "POST",
        &format!("/api/v1/orders/{order_id}/pay"),
        None,
    ));
    ok(api(
        &server,
        &admin,
        "PUT",
        &format!("/api/v1/orders/{order_id}/status"),
        Some(json!({"status":"refunded"})),
    ));
    ok(api(
        &server,
        &admin,
        "PUT",
        &format!("/api/v1/players/{p}"),
        Some(json!({"status":"banned"})),
    ));
    ok(api(
        &server,
        &admin,
        "PUT",
        &format!("/api/v1/players/{p}"),
        Some(json!({"status":"active"})),
    ));
    ok(api(
        &server,
        &admin,
        "POST",
        "/api/v1/items",
        Some(json!({"item_id":"axe","name":"Axe","price_gold":7,"max_stack":3})),
    ));
    ok(api(
        &server,
        &admin,
        "PUT",
        "/api/v1/items/axe",
        Some(json!({"price_gold":9})),
    ));
    ok(api(
        &server,
        &admin,
        "POST",
        "/api/v1/cache/invalidate",
        Some(json!({"keys":[format!("game1:p:{p}")]})),
    ));

    let mine: Vec<Value> = records_of(&server, &admin, &subject)
        .into_iter()
        .skip(signup.len())
        .collect();
    let actions: Vec<&str> = mine
        .iter()
        .map(|r| r["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        vec![
            "wallet.change",
            "item.grant",
            "item.use",
            "item.transfer",
            "order.create",
            "order.pay",
            "order.refund",
            "player.status",
            "player.status"
        ],
        "{mine:#?}"
    );
    let first = &mine[0];
    assert_eq!(first["actor"]["role"], "game_server");
    assert_eq!(first["actor"]["id"], "server:game1");
    assert_eq!(first["actor"]["client"], "127.0.0.1");
    assert_eq!(first["actor"]["node"], "test-node");
    assert_eq!(first["details"]["delta"], 500);
    assert_eq!(
        first["details"]["balance"].as_i64(),
        signup
            .first()
            .and_then(|r| r["details"]["gold"].as_i64())
            .map(|g| g + 500)
            .or(Some(500))
    );
    assert_eq!(mine[2]["actor"]["role"], "player");
    assert_eq!(mine[6]["actor"]["id"], "admin:ops");
    assert_eq!(mine[6]["details"]["delta"], 100, "the refund's credit");
    // Filters: by actor, by action; admins only; bad input.
    let (_, by_admin) = api(
        &server,
        &admin,
        "GET",
        "/api/v1/audit?actor=admin:ops&limit=200",
        None,
    );
    let admin_actions: Vec<&str> = by_admin["data"]["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["action"].as_str().expect("a"))
        .collect();
    for a in [
        "admin.sign_in",
        "order.refund",
        "player.status",
        "catalogue.create",
        "catalogue.update",
        "cache.invalidate",
    ] {
        assert!(admin_actions.contains(&a), "{a} in {admin_actions:?}");
    }
    let (_, sign_in) = api(
        &server,
        &admin,
        "GET",
        "/api/v1/audit?action=admin.sign_in",
        None,
    );
    assert!(!sign_in["data"]["records"]
        .as_array()
        .expect("records")
        .is_empty());
    assert_eq!(api(&server, &gs, "GET", "/api/v1/audit", None).0, 403);
    assert_eq!(api(&server, &qtoken, "GET", "/api/v1/audit", None).0, 403);
    assert_eq!(
        api(&server, &admin, "GET", "/api/v1/audit?after=nope", None).0,
        400
    );
    assert_eq!(
        api(&server, &admin, "GET", "/api/v1/audit?limit=0", None).0,
        400
    );
    assert_eq!(
        api(&server, &admin, "GET", "/api/v1/audit?game=nope", None).0,
        404
    );
    let secrets = rows(&server, "SELECT COUNT(*) FROM audit_records WHERE details LIKE '%password%' OR details LIKE '%token%'");
    assert_eq!(
        column_i64(&secrets[0][0]),
        Some(0),
        "nothing secret in records"
    );

    // Checkpoints: stored, every chain verifies, the key is ours.
    // The player's chain (one of 1,024 on MySQL, SQLite's only one),
    // checkpointed up to its head: cutting its newest record off is seen.
    let c = mine[0]["chain"].as_i64().expect("chain");
    wait_for(
        "a checkpoint of the player's chain at its head",
        Duration::from_secs(20),
        || {
            let (_, j) = api(&server, &admin, "GET", "/api/v1/audit/chains", None);
            let chain = &j["data"]["chains"][c as usize];
            chain["head"].as_i64() >= Some(9)
                && chain["last_checkpoint"]["seq"].as_i64() == chain["head"].as_i64()
        },
    );
    let (_, chains) = api(&server, &admin, "GET", "/api/v1/audit/chains", None);
    assert_eq!(chains["data"]["ok"], true, "{chains}");
    let public = AuditKey::parse(AUDIT_SIGNING_KEY)
        .expect("key")
        .public_hex();
    assert_eq!(chains["data"]["public_key"], public.as_str());
    let out = common::server_command()
        .arg("--config")
        .arg(server.dir.join("config.toml"))
        .args(["audit", "public-key"])
        .output()
        .expect("public-key");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), public);
    assert!(
        server.log().contains("audit checkpoint"),
        "checkpoints are logged too"
    );
    let (code, text) = verify(&server);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("game game1: OK"), "{text}");

    // Tampering by hand, each undone after it was named. The server is
    // stopped first: a checkpoint taken while a row is shifted would sign
    // the tampered chain and make the restored one look cut.
    server.signal(libc::SIGTERM);
    assert!(
        server.wait_exit(Duration::from_secs(30)).is_some(),
        "server stops on SIGTERM"
    );
    // Tampering by hand, each undone after it was named.
    let original = chain(&server, c);
    assert!(original.len() >= 9, "{}", original.len());
    let (r2, r3) = (original[1].clone(), original[2].clone());
    let named = |what: &str| {
        let (code, text) = verify(&server);
        assert_eq!(code, 1, "{what}: {text}");
        text
    };
    // Edited.
    sql(&server, &format!("UPDATE audit_records SET details = '{{\"delta\":1000000}}' WHERE chain = {c} AND seq = 2"));
    let text = named("edit");
    assert!(
        text.contains(&format!("chain {c} record 2: edited")),
        "{text}"
    );
    sql(
        &server,
        &format!(
            "UPDATE audit_records SET details = '{}' WHERE chain = {c} AND seq = 2",
            r2.details.replace('\'', "''")
        ),
    );
    assert_eq!(verify(&server).0, 0);
    // Deleted.
    sql(
        &server,
        &format!("DELETE FROM audit_records WHERE chain = {c} AND seq = 2"),
    );
    let text = named("delete");
    assert!(
        text.contains(&format!("chain {c} record 3: deleted")),
        "{text}"
    );
    insert(&server, &r2);
    assert_eq!(verify(&server).0, 0);
    // Reordered: records 2 and 3 swap places.
    swap(&server, c, 2, 3);
    let text = named("reorder");
    assert!(
        text.contains(&format!("chain {c} record 2: reordered")),
        "{text}"
    );
    swap(&server, c, 2, 3);
    assert_eq!(verify(&server).0, 0);
    // Inserted: a well-formed record linked to record 1, put before 2.
    let mut forged = r2.clone();
    forged.details = r#"{"currency":"gold","delta":1000000}"#.into();
    forged.hash = record_hash(&forged);
    shift(&server, c, 2, 1);
    insert(&server, &forged);
    let text = named("insert");
    assert!(
        text.contains(&format!("chain {c} record 2: inserted")),
        "{text}"
    );
    sql(
        &server,
        &format!("DELETE FROM audit_records WHERE chain = {c} AND seq = 2"),
    );
    shift(&server, c, 3, -1);
    assert_eq!(verify(&server).0, 0);
    // A checkpoint signed by another key.
    let cp = rows(
        &server,
        &format!("SELECT seq FROM audit_checkpoints WHERE chain = {c} ORDER BY seq DESC LIMIT 1"),
    );
    let cp_seq = column_i64(&cp[0][0]).expect("checkpoint seq");
    let other = AuditKey::generate();
    sql(
        &server,
        &format!(
            "UPDATE audit_checkpoints SET public_key = '{}' WHERE chain = {c} AND seq = {cp_seq}",
            other.public_hex()
        ),
    );
    let text = named("forged checkpoint");
    assert!(text.contains("checkpoint signature"), "{text}");
    sql(&server, &format!("UPDATE audit_checkpoints SET public_key = '{public}' WHERE chain = {c} AND seq = {cp_seq}"));
    assert_eq!(verify(&server).0, 0);
    // Record 2 changed and the chain re-hashed after it: the links hold,
    // the signed checkpoint does not.
    let mut rehashed = chain(&server, c);
    rehashed[1].details = r#"{"delta":999999}"#.into();
    for i in 1..rehashed.len() {
        rehashed[i].prev_hash = rehashed[i - 1].hash.clone();
        rehashed[i].hash = record_hash(&rehashed[i]);
    }
    sql(
        &server,
        &format!("DELETE FROM audit_records WHERE chain = {c} AND seq >= 2"),
    );
    for r in &rehashed[1..] {
        insert(&server, r);
    }
    let text = named("re-hashed");
    assert!(text.contains("checkpoint mismatch"), "{text}");
    sql(
        &server,
        &format!("DELETE FROM audit_records WHERE chain = {c} AND seq >= 2"),
    );
    for r in &original[1..] {
        insert(&server, r);
    }
    assert_eq!(verify(&server).0, 0, "restored");
    // The newest record cut off: the checkpoint that signed it names it.
    let last = original.last().expect("records").clone();
    sql(
        &server,
        &format!(
            "DELETE FROM audit_records WHERE chain = {c} AND seq = {}",
            last.seq
        ),
    );
    let text = named("truncated");
    assert!(
        text.contains(&format!("chain {c} record {}", last.seq)),
        "{text}"
    );
    insert(&server, &last);
    // Verifying with public keys only (no private key): ours verifies,
    // another's names the checkpoints it did not sign.
    let with_key = |key: &str| {
        common::server_command()
            .arg("--config")
            .arg(server.dir.join("config.toml"))
            .args(["audit", "verify", "--game", "game1", "--public-key", key])
            .output()
            .expect("verify")
    };
    assert_eq!(with_key(&public).status.code(), Some(0));
    let out = with_key(&AuditKey::generate().public_hex());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("checkpoint signature"));
    drop(r3);
}

#[test]
fn a_hundred_clients_at_once_leave_one_record_per_change_and_a_log_that_verifies() {
    let server = ServerConfig::new()
        .shards(2)
        .set("audit", "checkpoint_s", 1)
        .start();
    let admin = server.admin_token();
    let gs = server.server_token("game1");
    let players: Vec<i64> = (0..20)
        .map(|i| server.player("game1", &format!("chaos{i}")).0)
        .collect();
    for p in &players {
        let (s, j) = api(
            &server,
            &gs,
            "POST",
            &format!("/api/v1/players/{p}/items/potion/grant"),
            Some(json!({"quantity":50})),
        );
        assert_eq!(s, 200, "{j}");
    }
    let before =
        column_i64(&rows(&server, "SELECT COUNT(*) FROM audit_records")[0][0]).expect("count");
    let changed = std::sync::atomic::AtomicI64::new(0);
    let failed = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for client in 0..100usize {
            let (server, gs, players, changed, failed) =
                (&server, &gs, &players, &changed, &failed);
            scope.spawn(move || {
                for step in 0..10usize {
                    let p = players[(client + step) % players.len()];
                    let to = players[(client * 7 + step + 1) % players.len()];
                    let transfer = (client + step) % 4 == 2 && p != to;
                    let (s, answer) = match (client + step) % 4 {
                        0 => api(
                            server,
                            gs,
                            "POST",
                            &format!("/api/v1/players/{p}/wallet"),
                            Some(json!({"currency":"gold","delta":3,"reason":"chaos"})),
                        ),
                        // Debits may be refused (below zero): no record then.
                        1 => api(
                            server,
                            gs,
                            "POST",
                            &format!("/api/v1/players/{p}/wallet"),
                            Some(json!({"currency":"gold","delta":-2,"reason":"chaos"})),
                        ),
                        2 if p != to => api(
                            server,
                            gs,
                            "POST",
                            &format!("/api/v1/players/{p}/items/potion/transfer"),
                            Some(json!({"target_player_id":to,"quantity":1})),
                        ),
                        _ => api(
                            server,
                            gs,
                            "POST",
                            &format!("/api/v1/players/{p}/items/potion/use"),
                            Some(json!({"quantity":1})),
                        ),
                    };
                    if s >= 500 {
                        failed
                            .lock()
                            .expect("failures")
                            .push(format!("{s} {answer}"));
                    }
                    if s == 200 && answer["code"] == 200 {
                        // A transfer is recorded under each of its players.
                        let records = if transfer { 2 } else { 1 };
                        changed.fetch_add(records, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let after =
        column_i64(&rows(&server, "SELECT COUNT(*) FROM audit_records")[0][0]).expect("count");
    let changed = changed.into_inner();
    let failed = failed.into_inner().expect("failures");
    assert!(failed.is_empty(), "no change failed: {failed:?}");
    assert!(changed > 500, "most changes went through: {changed}");
    assert_eq!(
        after - before,
        changed,
        "one record per change that committed"
    );
    let (code, text) = verify(&server);
    assert_eq!(code, 0, "{text}");
    drop(admin);
}

#[test]
#[ignore = "needs MariaDB and Redis (DMTEST_BACKEND=mysql)"]
fn two_nodes_checkpoint_the_same_chains_without_forking_them() {
    let p = format!("au{}-", rand::random::<u32>());
    let a = common::node(&format!("{p}a"), &common::redis())
        .set("audit", "checkpoint_s", 1)
        .start();
    let gs = a.server_token("game1");
    let players: Vec<i64> = (0..8)
        .map(|i| a.player("game1", &format!("{p}u{i}")).0)
        .collect();
    let credit = |node: &Server| {
        for pl in &players {
            let (s, j) = credit_one(node, &gs, *pl);
            assert_eq!(j["code"], 200, "{s} {j}");
        }
    };
    let signed_by = |node: &str| {
        let n = rows(
            &a,
            &format!("SELECT COUNT(*) FROM audit_checkpoints WHERE node = '{node}'"),
        );
        column_i64(&n[0][0]).unwrap_or(0)
    };
    // Node a writes and signs; then b joins, both write and sign the same
    // chains; then a is gone and b goes on from a's checkpoints.
    credit(&a);
    wait_for("a's checkpoints", Duration::from_secs(20), || {
        signed_by(&format!("{p}a")) > 0
    });
    let b = a.start_peer(&format!("{p}b"));
    for _ in 0..3 {
        credit(&a);
        credit(&b);
        std::thread::sleep(Duration::from_millis(700)); // a checkpoint round
    }
    a.signal(libc::SIGKILL);
    credit(&b);
    wait_for("b's checkpoints", Duration::from_secs(20), || {
        signed_by(&format!("{p}b")) > 0
    });
    let (code, text) = verify(&b);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("OK"), "{text}");
    // Each node's guesses of these chains' heads went stale at every turn
    // (the other node had moved them): one record per credit all the same.
    assert_eq!(wallet_records(&b, &players), 8 * 8);
}

/// Two nodes, eight clients each, crediting the same two players at once:
/// every append on those two chains races for the same places, so appends
/// are refused and step on (their guesses stale, the taken record read
/// share-locked under a snapshot that predates it), and transactions whose
/// place's holder they waited for run again. No change fails, each leaves
/// one record, and the chains verify.
#[test]
#[ignore = "needs MariaDB and Redis (DMTEST_BACKEND=mysql)"]
fn two_nodes_racing_for_the_same_chains_lose_no_change_and_fork_nothing() {
    let p = format!("ar{}-", rand::random::<u32>());
    let a = common::node(&format!("{p}a"), &common::redis())
        .shards(2)
        .start();
    let b = a.start_peer(&format!("{p}b"));
    let gs = a.server_token("game1");
    let players: Vec<i64> = (0..2)
        .map(|i| a.player("game1", &format!("{p}u{i}")).0)
        .collect();
    let failed = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for client in 0..16usize {
            let node = if client % 2 == 0 { &a } else { &b };
            let (gs, players, failed) = (&gs, &players, &failed);
            scope.spawn(move || {
                for step in 0..20usize {
                    let pl = players[(client + step) % players.len()];
                    let (s, j) = credit_one(node, gs, pl);
                    if j["code"] != 200 {
                        failed.lock().expect("failures").push(format!("{s} {j}"));
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().expect("failures");
    assert!(failed.is_empty(), "every credit went through: {failed:?}");
    assert_eq!(
        wallet_records(&a, &players),
        16 * 20,
        "one record per credit"
    );
    let (code, text) = verify(&a);
    assert_eq!(code, 0, "{text}");
}

/// A database that lost its last commit (a crash with `durability =
/// "normal"`, a lagging replica promoted) broke every connection to it
/// first: the shards forget their guesses of the chains' heads when their
/// pool reconnects, so the next record links to the newest record that is
/// there, not to the lost one.
#[test]
#[ignore = "needs MariaDB and Redis (DMTEST_BACKEND=mysql)"]
fn after_the_database_lost_its_last_commit_records_link_to_what_is_there() {
    if !matches!(common::backend(), common::TestBackend::Mysql { .. }) {
        return; // MySQL's guesses: SQLite knows its heads exactly.
    }
    let server = ServerConfig::new()
        .shards(2)
        .set("audit", "checkpoint_s", 3600)
        .start();
    let gs = server.server_token("game1");
    let (pl, _) = server.player("game1", "lost1");
    let credit = || {
        let (s, j) = credit_one(&server, &gs, pl);
        assert_eq!(j["code"], 200, "{s} {j}");
    };
    // Both shards append to the player's chain, so both guess its head.
    for _ in 0..8 {
        credit();
    }
    let subject = format!("player:{pl}");
    let c = datamiddleware::audit::chain_of(&subject, datamiddleware::audit::CHAINS);
    let before = chain(&server, c);
    let last = before.last().expect("records").clone();
    // The commit lost: the newest record gone, every connection broken.
    sql(
        &server,
        &format!(
            "DELETE FROM audit_records WHERE chain = {c} AND seq = {}",
            last.seq
        ),
    );
    let db = &server.databases[0];
    let ids = rows(
        &server,
        &format!(
            "SELECT id FROM information_schema.processlist WHERE db = '{db}' AND id <> CONNECTION_ID()"
        ),
    );
    assert!(!ids.is_empty(), "the node holds connections");
    for id in ids {
        let id = column_i64(&id[0]).expect("id");
        common::mysql_admin(&format!("KILL CONNECTION {id}"));
    }
    for _ in 0..8 {
        credit();
    }
    let after = chain(&server, c);
    assert_eq!(after.len(), before.len() - 1 + 8, "{after:?}");
    assert_eq!(
        after[before.len() - 1].prev_hash,
        before[before.len() - 2].hash
    );
    let (code, text) = verify(&server);
    assert_eq!(code, 0, "{text}");
}

/// Schema version 10 on a SQLite log begun at version 9 (records over
/// 1,024 chains, the time and actor indexes): the step drops the indexes
/// and keeps every record; the old chains verify as they did, new records
/// go on at the end of chain 0 (linked to its last old record), and the API
/// lists old and new.
#[test]
fn a_sqlite_log_of_version_9_keeps_its_chains_and_goes_on_in_chain_0() {
    if !matches!(common::backend(), common::TestBackend::Sqlite) {
        return; // On MySQL version 10 changes nothing.
    }
    // Records in three of version 9's chains.
    let mut server = stopped_at_version_9();
    let mut old = Vec::new();
    for c in [0, 5, 700] {
        let mut prev = datamiddleware::audit::GENESIS.to_string();
        for seq in 1..=3 {
            let r = old_record(c, seq, prev);
            prev = r.hash.clone();
            insert_at(&server, &r, ("chain, seq", format!("{c}, {seq}")));
            old.push(r);
        }
    }
    let indexes = |server: &Server| {
        rows(
            server,
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_records' AND name LIKE 'audit_records_by_%'",
        )
    };
    assert_eq!(column_i64(&indexes(&server)[0][0]), Some(2), "version 9");

    server.restart();
    assert_eq!(column_i64(&indexes(&server)[0][0]), Some(0), "dropped");
    let again = rows(
        &server,
        "SELECT COUNT(*) FROM schema_migrations WHERE version = 10",
    );
    assert_eq!(column_i64(&again[0][0]), Some(1), "version 10 ran again");
    let keyed = rows(
        &server,
        "SELECT COUNT(*) FROM pragma_table_info('audit_records') WHERE name = 'id' AND pk = 1",
    );
    assert_eq!(
        column_i64(&keyed[0][0]),
        Some(1),
        "version 12 keyed the records"
    );
    let admin = server.admin_token();
    let (p, _) = server.player("game1", "after10");
    let subject = format!("player:{p}");
    let mine = records_of(&server, &admin, &subject);
    assert!(!mine.is_empty(), "the sign-up is recorded");
    assert!(mine.iter().all(|r| r["chain"] == 0), "{mine:?}");
    let zero = chain(&server, 0);
    assert_eq!(zero[..3], old[..3], "chain 0's old records stay");
    assert_eq!(zero[3].prev_hash, old[2].hash, "the new ones link to them");
    assert_eq!(chain(&server, 700), old[6..], "other chains stay");
    // Every record through the API, old and new, in the order written.
    let (s, all) = api(&server, &admin, "GET", "/api/v1/audit?limit=200", None);
    assert_eq!(s, 200, "{all}");
    let listed: Vec<(i64, i64)> = all["data"]["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r["chain"].as_i64().expect("c"),
                r["seq"].as_i64().expect("s"),
            )
        })
        .collect();
    assert_eq!(listed.len(), zero.len() + 6, "{listed:?}");
    let (_, chains) = api(&server, &admin, "GET", "/api/v1/audit/chains", None);
    assert_eq!(chains["data"]["ok"], true, "{chains}");
    assert_eq!(
        chains["data"]["chains"].as_array().map(Vec::len),
        Some(701),
        "chains up to the highest used"
    );
    let (code, text) = verify(&server);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("in 701 chains"), "{text}");
}

/// A SQLite record renumbered by hand to a place no key holds (a negative
/// seq) stops the start that would re-key the log (version 12), naming the
/// check, instead of landing in another chain's place; nothing is moved.
#[test]
fn a_record_version_12_cannot_key_stops_the_start_and_says_why() {
    if !matches!(common::backend(), common::TestBackend::Sqlite) {
        return; // MySQL keeps its (chain, seq) key.
    }
    let mut server = stopped_at_version_9();
    let r = old_record(1, -1, datamiddleware::audit::GENESIS.to_string());
    insert_at(&server, &r, ("chain, seq", "1, -1".into()));

    let start = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.restart()));
    let why = start.expect_err("the start stops");
    let text = why.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        text.contains("audit_record_chain_and_seq_in_range"),
        "{text}"
    );
    let left = rows(&server, "SELECT chain, seq FROM audit_records");
    assert_eq!(left, vec![vec![json!(1), json!(-1)]], "nothing moved");
}

/// A stopped server whose SQLite database is back at schema version 9: the
/// records table and indexes that version made (empty), no checkpoint, and
/// the later versions to run again at the next start.
fn stopped_at_version_9() -> Server {
    let mut server = ServerConfig::new().start();
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(30)).is_some(), "stops");
    let v9 = datamiddleware::store::migrations::SQLITE
        .iter()
        .find(|m| m.version == 9)
        .expect("version 9");
    sql(&server, "DROP TABLE audit_records");
    for statement in &v9.statements[..3] {
        assert!(statement.contains("audit_records"), "{statement}");
        sql(&server, statement);
    }
    sql(&server, "DELETE FROM audit_checkpoints");
    sql(&server, "DELETE FROM schema_migrations WHERE version >= 10");
    server
}

/// A record an older node wrote: the system's `wallet.change` of a player
/// of `chain` at `seq`, linked to `prev_hash`.
fn old_record(chain: i64, seq: i64, prev_hash: String) -> AuditRecord {
    let mut r = AuditRecord {
        chain,
        seq,
        at: 1_700_000_000_000 + seq,
        actor: Actor::system("old", "node-0"),
        action: "wallet.change".into(),
        subject: format!("player:{}", 1000 + chain),
        details: format!(r#"{{"delta":{seq}}}"#),
        prev_hash,
        hash: String::new(),
    };
    r.hash = record_hash(&r);
    r
}
