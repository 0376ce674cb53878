//! What an acknowledged write survives: the server is killed (SIGKILL) in
//! the middle of a write load — orders created and paid, items transferred,
//! wallets credited, over HTTP and the binary protocol, from many clients
//! on both shards — and restarted; then every acknowledged order, payment,
//! transfer and wallet change must be in the database, the one request
//! each client had in flight must be there completely or not at all, and
//! every ledger must add up to its balance. Runs on SQLite (with the default
//! `durability = "full"`), and on MariaDB with `DMTEST_BACKEND=mysql`.
//!
//! A kill tests the process crash, not a power loss: that one is the
//! database's part (SQLite `synchronous = FULL`, MariaDB
//! `innodb_flush_log_at_trx_commit = 1` and `sync_binlog = 1`, checked at
//! start-up) and is covered by the start-up check's own tests.

mod common;

use common::{frame, rows, HttpClient, Server, SERVER_KEY};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Clients, each with its own two players and its own connection.
const CLIENTS: usize = 8;
/// Rounds a client may run (each: create an order, pay it, transfer a gem,
/// credit a wallet); the kill comes long before all of them are done.
const ROUNDS: usize = 60;
/// Acknowledged writes after which the server is killed.
const KILL_AFTER: usize = 240;
/// Gems each client's first player starts with (it gives one per round).
const GEMS: i64 = ROUNDS as i64;

/// One write a client sent.
#[derive(Debug, Clone)]
enum Sent {
    /// Create an order of one potion for gold with this idempotency key.
    Create { key: String },
    /// Pay this order.
    Pay { order: String },
    /// Move one gem from the first player to the second.
    Transfer,
    /// Credit the second player's gold.
    Wallet { delta: i64 },
}

/// What a client knows at the end: the writes acknowledged, in order, and
/// the one whose answer never came (if the kill caught one in flight).
#[derive(Debug, Default)]
struct Journal {
    acked: Vec<(Sent, Value)>,
    in_flight: Option<Sent>,
}

/// A client connection speaking one of the two protocols as a game server.
enum Conn {
    Http(HttpClient, String),
    Tcp(common::FrameClient, u32),
}

impl Conn {
    /// Sends `w` for players `a` → `b`; `Some(data)` when acknowledged,
    /// `None` when the connection broke before the answer. Any refusal
    /// fails the test: nothing in this load may be refused.
    fn send(&mut self, w: &Sent, a: i64, b: i64) -> Option<Value> {
        match self {
            Conn::Http(c, token) => {
                let (method, path, body) = match w {
                    Sent::Create { key } => (
                        "POST",
                        "/api/v1/orders".to_string(),
                        json!({"player_id": a, "item_id": "potion", "quantity": 1,
                               "currency": "gold", "idempotency_key": key}),
                    ),
                    Sent::Pay { order } => {
                        ("POST", format!("/api/v1/orders/{order}/pay"), Value::Null)
                    }
                    Sent::Transfer => (
                        "POST",
                        format!("/api/v1/players/{a}/items/gem/transfer"),
                        json!({"target_player_id": b, "quantity": 1}),
                    ),
                    Sent::Wallet { delta } => (
                        "POST",
                        format!("/api/v1/players/{b}/wallet"),
                        json!({"currency": "gold", "delta": delta, "reason": "crash"}),
                    ),
                };
                let auth = format!("Bearer {token}");
                let body = if body.is_null() {
                    String::new()
                } else {
                    body.to_string()
                };
                let r = c
                    .try_request(method, &path, &[("Authorization", &auth)], body.as_bytes())
                    .ok()?;
                assert!(r.status == 200 || r.status == 201, "{w:?}: {}", r.text());
                Some(r.json()["data"].clone())
            }
            Conn::Tcp(t, seq) => {
                let (msg, body) = match w {
                    Sent::Create { key } => (
                        0x1005,
                        json!({"action": "create", "player_id": a, "item_id": "potion",
                               "quantity": 1, "currency": "gold", "idempotency_key": key}),
                    ),
                    Sent::Pay { order } => (0x1005, json!({"action": "pay", "order_id": order})),
                    Sent::Transfer => (
                        0x1004,
                        json!({"action": "transfer", "player_id": a, "item_id": "gem",
                               "target_player_id": b, "quantity": 1}),
                    ),
                    Sent::Wallet { delta } => (
                        0x1003,
                        json!({"action": "wallet", "player_id": b, "currency": "gold",
                               "delta": delta, "reason": "crash"}),
                    ),
                };
                *seq += 1;
                let bytes = frame(msg, 0x04, *seq, "game1", "", body.to_string().as_bytes());
                t.stream.write_all(&bytes).ok()?;
                let reply = t.read()?;
                assert_eq!(
                    reply.msg_type,
                    msg,
                    "{w:?}: {}",
                    String::from_utf8_lossy(&reply.body)
                );
                Some(reply.json()["data"].clone())
            }
        }
    }
}

/// Runs rounds until the budget is spent or the connection breaks.
fn client(mut conn: Conn, id: usize, a: i64, b: i64, acks: Arc<AtomicUsize>) -> Journal {
    let mut journal = Journal::default();
    let mut send = |w: Sent, journal: &mut Journal| -> Option<Value> {
        match conn.send(&w, a, b) {
            Some(data) => {
                journal.acked.push((w, data.clone()));
                acks.fetch_add(1, Ordering::SeqCst);
                Some(data)
            }
            None => {
                journal.in_flight = Some(w);
                None
            }
        }
    };
    for round in 0..ROUNDS {
        let key = format!("crash-{id}-{round}");
        let Some(data) = send(Sent::Create { key }, &mut journal) else {
            break;
        };
        let order = data["order"]["order_id"]
            .as_str()
            .expect("order id")
            .to_string();
        if send(Sent::Pay { order }, &mut journal).is_none()
            || send(Sent::Transfer, &mut journal).is_none()
            || send(
                Sent::Wallet {
                    delta: 1 + round as i64,
                },
                &mut journal,
            )
            .is_none()
        {
            break;
        }
    }
    journal
}

/// An order as the database holds it.
struct OrderRow {
    player: i64,
    status: String,
    total: i64,
    key: Option<String>,
}

/// A ledger row as the database holds it.
#[derive(Clone)]
struct LedgerRow {
    delta: i64,
    after: i64,
    reason: String,
    reference: String,
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not text: {v}"))
        .to_string()
}

#[test]
fn every_acknowledged_write_survives_a_kill_and_nothing_is_half_applied() {
    let mut server = Server::start(2);
    let gs = server.server_token("game1");
    let mut setup = server.http();
    let auth = format!("Bearer {gs}");
    let mut players = Vec::new();
    for i in 0..CLIENTS {
        let mut pair = Vec::new();
        for side in ["a", "b"] {
            let body = json!({"username": format!("crash_{i}_{side}"), "password": "password1"});
            let r = setup.request("POST", "/api/v1/players", &[], body.to_string().as_bytes());
            assert_eq!(r.status, 201, "{}", r.text());
            pair.push(r.json()["data"]["player"]["id"].as_i64().expect("id"));
        }
        let path = format!("/api/v1/players/{}/items/gem/grant", pair[0]);
        let body = json!({"quantity": GEMS}).to_string();
        let r = setup.request("POST", &path, &[("Authorization", &auth)], body.as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        players.push((pair[0], pair[1]));
    }

    // The load: half the clients over HTTP, half over the binary protocol.
    let acks = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = players
        .iter()
        .enumerate()
        .map(|(i, &(a, b))| {
            let conn = if i % 2 == 0 {
                Conn::Http(server.http(), gs.clone())
            } else {
                let mut t = server.tcp();
                assert_eq!(t.handshake_server("game1", SERVER_KEY).msg_type, 0x0002);
                Conn::Tcp(t, 1)
            };
            let acks = acks.clone();
            std::thread::spawn(move || client(conn, i, a, b, acks))
        })
        .collect();
    let give_up = Instant::now() + Duration::from_secs(120);
    while acks.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(
            Instant::now() < give_up,
            "the load never reached {KILL_AFTER} writes"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    server.signal(libc::SIGKILL);
    server.wait_exit(Duration::from_secs(10));
    assert!(server.child.is_none(), "the server did not die");
    let journals: Vec<Journal> = clients
        .into_iter()
        .map(|h| h.join().expect("client"))
        .collect();
    let acked: usize = journals.iter().map(|j| j.acked.len()).sum();
    assert!(
        acked < CLIENTS * ROUNDS * 4,
        "the kill came after the load had ended"
    );
    server.restart();

    // What the database holds now.
    let orders: BTreeMap<String, OrderRow> = rows(
        &server,
        "SELECT order_id, player_id, status, total_price, idempotency_key FROM orders",
    )
    .into_iter()
    .map(|r| {
        let order = OrderRow {
            player: int(&r[1]),
            status: text(&r[2]),
            total: int(&r[3]),
            key: r[4].as_str().map(String::from),
        };
        (text(&r[0]), order)
    })
    .collect();
    // (player, currency) → its ledger rows in id order.
    let mut ledger: BTreeMap<(i64, String), Vec<LedgerRow>> = BTreeMap::new();
    for r in rows(
        &server,
        "SELECT player_id, currency, delta, balance_after, reason, reference FROM ledger ORDER BY id",
    ) {
        ledger
            .entry((int(&r[0]), text(&r[1])))
            .or_default()
            .push(LedgerRow {
                delta: int(&r[2]),
                after: int(&r[3]),
                reason: text(&r[4]),
                reference: text(&r[5]),
            });
    }
    let balances: BTreeMap<i64, (i64, i64)> =
        rows(&server, "SELECT id, gold, diamonds FROM players")
            .into_iter()
            .map(|r| (int(&r[0]), (int(&r[1]), int(&r[2]))))
            .collect();
    let held: BTreeMap<(i64, String), i64> = rows(
        &server,
        "SELECT player_id, item_id, quantity FROM player_items",
    )
    .into_iter()
    .map(|r| ((int(&r[0]), text(&r[1])), int(&r[2])))
    .collect();
    let holding = |p: i64, item: &str| held.get(&(p, item.to_string())).copied().unwrap_or(0);

    // Nothing half-applied anywhere: every ledger adds up to its balance,
    // and each row's balance_after follows from the one before.
    for (&p, &(gold, diamonds)) in &balances {
        for (currency, balance) in [("gold", gold), ("diamonds", diamonds)] {
            let rows = ledger
                .get(&(p, currency.to_string()))
                .cloned()
                .unwrap_or_default();
            let mut running = 0;
            for row in &rows {
                running += row.delta;
                let reason = &row.reason;
                assert_eq!(running, row.after, "player {p} {currency}: {reason} row");
            }
            assert_eq!(running, balance, "player {p}: {currency} ledger sum");
        }
    }
    // Every order paid in the database was charged exactly once and its
    // potion delivered; no unpaid order was charged.
    let mut charges: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for ((_, currency), rows) in &ledger {
        for row in rows {
            if row.reason == "order_pay" {
                assert_eq!(currency, "gold");
                charges
                    .entry(row.reference.clone())
                    .or_default()
                    .push(row.delta);
            }
        }
    }
    for (id, order) in &orders {
        match order.status.as_str() {
            "paid" => assert_eq!(charges.get(id), Some(&vec![-order.total]), "order {id}"),
            "pending" => assert_eq!(charges.get(id), None, "order {id} charged but pending"),
            other => panic!("order {id} is {other}"),
        }
    }

    let mut in_flight = 0;
    let mut http = server.http();
    for (i, (journal, &(a, b))) in journals.iter().zip(&players).enumerate() {
        let (mut created, mut paid, mut moved, mut credits) =
            (BTreeSet::new(), BTreeSet::new(), 0, Vec::new());
        for (w, data) in &journal.acked {
            match w {
                Sent::Create { .. } => {
                    created.insert(text(&data["order"]["order_id"]));
                }
                Sent::Pay { order } => {
                    assert_eq!(data["order"]["status"], "paid");
                    paid.insert(order.clone());
                }
                Sent::Transfer => moved += 1,
                Sent::Wallet { delta } => credits.push(*delta),
            }
        }
        in_flight += usize::from(journal.in_flight.is_some());
        // Orders: every acknowledged one is there, paid if its payment was
        // acknowledged; the only others are the one in flight.
        let mine: BTreeMap<&String, &OrderRow> =
            orders.iter().filter(|(_, o)| o.player == a).collect();
        for id in &created {
            let status = &mine
                .get(id)
                .unwrap_or_else(|| panic!("client {i}: acknowledged order {id} is lost"))
                .status;
            let expected = if paid.contains(id) { "paid" } else { "pending" };
            let unsure = matches!(&journal.in_flight, Some(Sent::Pay { order }) if order == id);
            assert!(
                status == expected || (unsure && status == "paid"),
                "client {i}: order {id} is {status}, acknowledged {expected}"
            );
            // Found through the service too, after the restart.
            let auth = format!("Bearer {gs}");
            let r = http.request(
                "GET",
                &format!("/api/v1/orders/{id}"),
                &[("Authorization", &auth)],
                b"",
            );
            assert_eq!(
                r.json()["data"]["order"]["status"],
                status.as_str(),
                "client {i}: {id}"
            );
        }
        let extra: Vec<_> = mine.keys().filter(|id| !created.contains(**id)).collect();
        match &journal.in_flight {
            Some(Sent::Create { key }) => {
                assert!(extra.len() <= 1, "client {i}: {extra:?}");
                for id in &extra {
                    assert_eq!(mine[**id].key.as_deref(), Some(key.as_str()), "client {i}");
                    assert_eq!(mine[**id].status, "pending");
                }
            }
            _ => assert!(
                extra.is_empty(),
                "client {i}: orders nobody acknowledged: {extra:?}"
            ),
        }
        let paid_now = mine.values().filter(|o| o.status == "paid").count() as i64;
        assert_eq!(
            holding(a, "potion"),
            paid_now,
            "client {i}: potions delivered once per paid order"
        );
        // Transfers: every acknowledged one, the one in flight whole or not
        // at all, and no gem lost or made.
        assert_eq!(
            holding(a, "gem") + holding(b, "gem"),
            GEMS,
            "client {i}: gems"
        );
        let unsure = matches!(journal.in_flight, Some(Sent::Transfer));
        let got = holding(b, "gem");
        assert!(
            got == moved || (unsure && got == moved + 1),
            "client {i}: {got} gems moved, {moved} acknowledged"
        );
        // Wallet credits: every acknowledged one in the ledger, in order.
        let rows: Vec<i64> = ledger
            .get(&(b, "gold".to_string()))
            .map(|r| {
                r.iter()
                    .filter(|x| x.reason == "wallet:crash")
                    .map(|x| x.delta)
                    .collect()
            })
            .unwrap_or_default();
        let pending_credit = match &journal.in_flight {
            Some(Sent::Wallet { delta }) => Some(*delta),
            _ => None,
        };
        let with_it: Vec<i64> = credits.iter().copied().chain(pending_credit).collect();
        assert!(
            rows == credits || rows == with_it,
            "client {i}: credits {rows:?}, acknowledged {credits:?}"
        );
    }
    eprintln!(
        "{acked} writes acknowledged before the kill, {in_flight} in flight, {} orders",
        orders.len()
    );
}
