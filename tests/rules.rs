//! The data rules of SPEC §5 that concern withdrawn items, deleted players
//! and the ranges of level and experience, over HTTP and the binary protocol,
//! including a withdrawal and a deletion racing the changes they forbid.
//! Runs on SQLite, and on MariaDB with `DMTEST_BACKEND=mysql`.

mod common;

use common::{Server, SERVER_KEY};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Highest level and experience a profile may have (src/validate.rs).
const MAX_LEVEL: i64 = 1_000_000;
const MAX_EXP: i64 = 1_000_000_000_000_000;

/// What the clients of a race and the change they race share: whether the
/// change has been answered, and how many of their requests have been.
#[derive(Default)]
struct Race {
    changed: AtomicBool,
    answered: AtomicUsize,
}

impl Race {
    /// Waits until `n` requests have been answered, so the change lands
    /// while the others still run (polled, not timed; fails after a minute).
    fn wait_for_answers(&self, n: usize) {
        let give_up = Instant::now() + Duration::from_secs(60);
        while self.answered.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < give_up,
                "the clients never got {n} answers"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The business code of a failure (or 200).
fn code(answer: &(u16, Value)) -> (u16, u64) {
    (answer.0, answer.1["code"].as_u64().unwrap_or(0))
}

fn add_item(server: &Server, admin: &str, id: &str, price: i64) {
    let item = json!({"item_id": id, "name": id, "price_gold": price, "max_stack": 1000});
    let (s, j) = server
        .call("POST", "/api/v1/items")
        .token(admin)
        .json(item)
        .send()
        .parts();
    assert_eq!(s, 201, "{j}");
}

fn create_order(server: &Server, gs: &str, player: i64, item: &str) -> String {
    let body = json!({"player_id": player, "item_id": item, "quantity": 1, "currency": "gold"});
    let (s, j) = server
        .call("POST", "/api/v1/orders")
        .token(gs)
        .json(body)
        .send()
        .parts();
    assert_eq!(s, 201, "{j}");
    j["data"]["order"]["order_id"]
        .as_str()
        .expect("order id")
        .to_string()
}

fn order_status(server: &Server, gs: &str, order: &str) -> String {
    let (s, j) = server
        .call("GET", &format!("/api/v1/orders/{order}"))
        .token(gs)
        .send()
        .parts();
    assert_eq!(s, 200, "{j}");
    j["data"]["order"]["status"]
        .as_str()
        .expect("status")
        .to_string()
}

fn player(server: &Server, token: &str, id: i64) -> Value {
    let (s, j) = server
        .call("GET", &format!("/api/v1/players/{id}"))
        .token(token)
        .send()
        .parts();
    assert_eq!(s, 200, "{j}");
    j["data"]["player"].clone()
}

fn held(server: &Server, token: &str, id: i64, item: &str) -> i64 {
    let (s, j) = server
        .call("GET", &format!("/api/v1/players/{id}/items"))
        .token(token)
        .send()
        .parts();
    assert_eq!(s, 200, "{j}");
    j["data"]["items"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["item_id"] == item))
        .and_then(|e| e["quantity"].as_i64())
        .unwrap_or(0)
}

/// Every ledger row of a player (as an admin sees it).
fn ledger(server: &Server, admin: &str, id: i64) -> Vec<Value> {
    let mut rows = Vec::new();
    for page in 1.. {
        let path = format!("/api/v1/players/{id}/ledger?page={page}&page_size=100");
        let (s, j) = server.call("GET", &path).token(admin).send().parts();
        assert_eq!(s, 200, "{j}");
        let items = j["data"]["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            return rows;
        }
        rows.extend(items);
    }
    rows
}

#[test]
fn a_withdrawn_item_is_neither_sold_nor_granted_and_its_pending_order_can_be_cancelled() {
    let server = Server::start(2);
    let admin = server.admin_token();
    let gs = server.server_token("game1");
    let (p, _) = server.player("game1", "withdrawn_buyer");
    add_item(&server, &admin, "bow", 50);
    let grant = |q: i64| {
        server
            .call("POST", &format!("/api/v1/players/{p}/items/bow/grant"))
            .token(&gs)
            .json(json!({"quantity": q}))
            .send()
            .parts()
    };
    assert_eq!(grant(2).0, 200);
    let pending = create_order(&server, &gs, p, "bow");
    let other = create_order(&server, &gs, p, "bow");
    let (s, _) = server
        .call("DELETE", "/api/v1/items/bow")
        .token(&admin)
        .send()
        .parts();
    assert_eq!(s, 200);

    // Paying is refused with 2002, charges nothing, and the order stays pending.
    let pay = server
        .call("POST", &format!("/api/v1/orders/{pending}/pay"))
        .token(&gs)
        .send()
        .parts();
    assert_eq!(code(&pay), (404, 2002), "{}", pay.1);
    assert_eq!(order_status(&server, &gs, &pending), "pending");
    assert_eq!(player(&server, &gs, p)["gold"], 1000);
    assert_eq!(held(&server, &gs, p, "bow"), 2);
    assert!(ledger(&server, &admin, p)
        .iter()
        .all(|r| r["reason"] != "order_pay"));
    // The admin status route never pays (POST .../pay is the one way).
    let forced = server
        .call("PUT", &format!("/api/v1/orders/{other}/status"))
        .token(&admin)
        .json(json!({"status": "paid"}))
        .send()
        .parts();
    assert_eq!(forced.0, 400, "{}", forced.1);
    assert_eq!(order_status(&server, &gs, &other), "pending");

    // Neither granted nor sold any more; what players hold they still use.
    assert_eq!(code(&grant(1)), (404, 2002));
    let body = json!({"player_id": p, "item_id": "bow", "quantity": 1, "currency": "gold"});
    assert_eq!(
        code(
            &server
                .call("POST", "/api/v1/orders")
                .token(&gs)
                .json(body)
                .send()
                .parts()
        ),
        (404, 2002)
    );
    let used = server
        .call("POST", &format!("/api/v1/players/{p}/items/bow/use"))
        .token(&gs)
        .json(json!({"quantity": 1}))
        .send()
        .parts();
    assert_eq!(used.0, 200, "{}", used.1);

    // The pending order can still be cancelled.
    let (s, j) = server
        .call("DELETE", &format!("/api/v1/orders/{pending}"))
        .token(&gs)
        .send()
        .parts();
    assert_eq!(
        (s, j["data"]["order"]["status"].as_str()),
        (200, Some("cancelled"))
    );
}

/// Orders paid while their item is withdrawn.
const ORDERS: usize = 120;

/// Payments racing a withdrawal: each is either paid completely (charged,
/// delivered, ledger row) or refused with 2002 and left pending, and none
/// sent after the withdrawal was answered succeeds.
#[test]
fn a_withdrawal_racing_payments_sells_nothing_after_it_is_answered() {
    let server = Arc::new(Server::start(2));
    let admin = server.admin_token();
    let gs = server.server_token("game1");
    let (p, _) = server.player("game1", "racing_buyer");
    add_item(&server, &admin, "arrow", 5);
    let orders: Vec<String> = (0..ORDERS)
        .map(|_| create_order(&server, &gs, p, "arrow"))
        .collect();
    let orders = Arc::new(orders);
    let race = Arc::new(Race::default());
    let payers: Vec<_> = (0..6)
        .map(|t| {
            let (server, gs, orders, race) =
                (server.clone(), gs.clone(), orders.clone(), race.clone());
            std::thread::spawn(move || {
                let mut c = server.http();
                let mut results = Vec::new();
                for order in orders.iter().skip(t).step_by(6) {
                    let after_withdrawal = race.changed.load(Ordering::SeqCst);
                    let path = format!("/api/v1/orders/{order}/pay");
                    let answer = c.call("POST", &path).token(&gs).send().parts();
                    race.answered.fetch_add(1, Ordering::SeqCst);
                    results.push((order.clone(), after_withdrawal, code(&answer)));
                }
                results
            })
        })
        .collect();
    // Withdrawn while the payments run: some done, others yet to come.
    race.wait_for_answers(ORDERS / 10);
    let (s, _) = server
        .call("DELETE", "/api/v1/items/arrow")
        .token(&admin)
        .send()
        .parts();
    assert_eq!(s, 200);
    race.changed.store(true, Ordering::SeqCst);
    let results: Vec<_> = payers
        .into_iter()
        .flat_map(|h| h.join().expect("payer"))
        .collect();
    assert_eq!(results.len(), ORDERS);
    let mut paid = 0;
    for (order, after, answer) in &results {
        let status = order_status(&server, &gs, order);
        match answer {
            (200, _) => {
                assert!(!after, "{order} was paid after the withdrawal was answered");
                assert_eq!(status, "paid");
                paid += 1;
            }
            (404, 2002) => assert_eq!(status, "pending", "{order}"),
            other => panic!("{order}: {other:?}"),
        }
    }
    let pays: Vec<Value> = ledger(&server, &admin, p)
        .into_iter()
        .filter(|r| r["reason"] == "order_pay")
        .collect();
    assert_eq!(pays.len(), paid, "one ledger row per paid order");
    assert_eq!(player(&server, &gs, p)["gold"], 1000 - 5 * paid as i64);
    assert_eq!(held(&server, &gs, p, "arrow"), paid as i64);
}

#[test]
fn a_deleted_player_is_not_found_for_every_action_but_admin_reads() {
    let server = Server::start(2);
    let admin = server.admin_token();
    let gs = server.server_token("game1");
    let (gone, _) = server.player("game1", "to_be_deleted");
    let (live, _) = server.player("game1", "stays_alive");
    let grant = |p: i64, q: i64| {
        server
            .call("POST", &format!("/api/v1/players/{p}/items/potion/grant"))
            .token(&gs)
            .json(json!({"quantity": q}))
            .send()
            .parts()
    };
    assert_eq!(grant(gone, 10).0, 200);
    assert_eq!(grant(live, 10).0, 200);
    let pending = create_order(&server, &gs, gone, "potion");
    let (s, j) = server
        .call("PUT", &format!("/api/v1/players/{gone}"))
        .token(&gs)
        .json(json!({"status": "deleted"}))
        .send()
        .parts();
    assert_eq!(s, 200, "{j}");

    let not_found = (404, 1001);
    let p = format!("/api/v1/players/{gone}");
    // Reads: not found, except for admins.
    for path in [
        p.clone(),
        format!("{p}/items"),
        format!("{p}/ledger"),
        format!("/api/v1/orders?player_id={gone}"),
    ] {
        assert_eq!(
            code(&server.call("GET", &path).token(&gs).send().parts()),
            not_found,
            "{path}"
        );
        let (s, j) = server.call("GET", &path).token(&admin).send().parts();
        assert_eq!(s, 200, "{path}: {j}");
    }
    assert_eq!(player(&server, &admin, gone)["status"], "deleted");
    assert_eq!(held(&server, &admin, gone, "potion"), 10);
    // Changes, to it and from it, whoever asks.
    let wallet = json!({"currency": "gold", "delta": 5, "reason": "gift"});
    for token in [&gs, &admin] {
        let refused = [
            server.call("POST", &format!("{p}/wallet")).token(token).json(wallet.clone()).send().parts(),
            server.call("POST", &format!("{p}/items/potion/grant")).token(token).json(json!({"quantity": 1})).send().parts(),
            server.call("POST", &format!("{p}/items/potion/use")).token(token).json(json!({"quantity": 1})).send().parts(),
            server.call("POST", &format!("{p}/items/potion/transfer")).token(token).json(json!({"target_player_id": live, "quantity": 1})).send().parts(),
            server.call("POST", &format!("/api/v1/players/{live}/items/potion/transfer")).token(token).json(json!({"target_player_id": gone, "quantity": 1})).send().parts(),
            server.call("PUT", &p).token(token).json(json!({"nickname": "ghost"})).send().parts(),
            server.call("PUT", &p).token(token).json(json!({"status": "active"})).send().parts(),
            server.call("POST", "/api/v1/orders").token(token).json(json!({"player_id": gone, "item_id": "potion", "quantity": 1, "currency": "gold"})).send().parts(),
            server.call("POST", &format!("/api/v1/orders/{pending}/pay")).token(token).send().parts(),
            server.call("POST", "/api/v1/games/game1/add_exp").token(token).json(json!({"player_id": gone, "amount": 10})).send().parts(),
        ];
        for (i, answer) in refused.iter().enumerate() {
            assert_eq!(code(answer), not_found, "change {i}: {}", answer.1);
        }
    }
    // Nothing moved: not the deleted player's items, nor the live one's,
    // nor any money; the pending order stays pending and can be cancelled.
    assert_eq!(held(&server, &admin, gone, "potion"), 10);
    assert_eq!(held(&server, &gs, live, "potion"), 10);
    assert_eq!(player(&server, &admin, gone)["gold"], 1000);
    assert_eq!(
        ledger(&server, &admin, gone).len(),
        2,
        "the signup grants only"
    );
    assert_eq!(order_status(&server, &gs, &pending), "pending");
    let (s, _) = server
        .call("DELETE", &format!("/api/v1/orders/{pending}"))
        .token(&gs)
        .send()
        .parts();
    assert_eq!(s, 200);
    // And it cannot log in.
    let login = json!({"username": "to_be_deleted", "password": "password1"});
    let r = server.http().request(
        "POST",
        "/api/v1/auth/login",
        &[],
        login.to_string().as_bytes(),
    );
    assert_eq!((r.status, r.json()["code"].as_u64()), (401, Some(1003)));
}

/// Wallet credits and grants racing a deletion: each one answered 200 is
/// in the ledger or the inventory, and none sent after the deletion was
/// answered succeeds.
#[test]
fn a_deletion_racing_wallet_changes_and_grants_lets_none_through_after_it_is_answered() {
    let server = Arc::new(Server::start(2));
    let admin = server.admin_token();
    let gs = server.server_token("game1");
    let (p, _) = server.player("game1", "deleted_while_paid");
    let race = Arc::new(Race::default());
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (server, gs, race) = (server.clone(), gs.clone(), race.clone());
            std::thread::spawn(move || {
                let mut c = server.http();
                let mut results = Vec::new();
                let (path, body) = if w % 2 == 0 {
                    (
                        format!("/api/v1/players/{p}/wallet"),
                        json!({"currency": "gold", "delta": 1, "reason": "race"}),
                    )
                } else {
                    (
                        format!("/api/v1/players/{p}/items/potion/grant"),
                        json!({"quantity": 1}),
                    )
                };
                for _ in 0..20 {
                    let after = race.changed.load(Ordering::SeqCst);
                    let answer = c
                        .call("POST", &path)
                        .token(&gs)
                        .json(body.clone())
                        .send()
                        .parts();
                    race.answered.fetch_add(1, Ordering::SeqCst);
                    results.push((w % 2 == 0, after, code(&answer)));
                }
                results
            })
        })
        .collect();
    race.wait_for_answers(12);
    let (s, _) = server
        .call("PUT", &format!("/api/v1/players/{p}"))
        .token(&gs)
        .json(json!({"status": "deleted"}))
        .send()
        .parts();
    assert_eq!(s, 200);
    race.changed.store(true, Ordering::SeqCst);
    let results: Vec<_> = workers
        .into_iter()
        .flat_map(|h| h.join().expect("worker"))
        .collect();
    let (mut credited, mut granted) = (0, 0);
    for (wallet, after, answer) in &results {
        match answer {
            (200, _) => {
                assert!(
                    !after,
                    "a change was applied after the deletion was answered"
                );
                if *wallet {
                    credited += 1;
                } else {
                    granted += 1;
                }
            }
            (404, 1001) => {}
            other => panic!("{other:?}"),
        }
    }
    let rows = ledger(&server, &admin, p);
    assert_eq!(
        rows.iter().filter(|r| r["reason"] == "wallet:race").count(),
        credited
    );
    assert_eq!(player(&server, &admin, p)["gold"], 1000 + credited as i64);
    assert_eq!(held(&server, &admin, p, "potion"), granted);
}

#[test]
fn level_and_experience_stay_in_the_range_a_profile_update_allows() {
    let server = Server::start(1);
    let gs = server.server_token("game1");
    let (p, _) = server.player("game1", "veteran");
    let path = format!("/api/v1/players/{p}");
    let exp_range = format!("exp must be from 0 to {MAX_EXP}");
    for bad in [MAX_EXP + 1, -1, i64::MAX] {
        let (s, j) = server
            .call("PUT", &path)
            .token(&gs)
            .json(json!({"exp": bad}))
            .send()
            .parts();
        assert_eq!(
            (s, j["message"].as_str()),
            (400, Some(exp_range.as_str())),
            "{bad}"
        );
    }
    let (s, j) = server
        .call("PUT", &path)
        .token(&gs)
        .json(json!({"level": MAX_LEVEL + 1}))
        .send()
        .parts();
    assert_eq!(
        (s, j["message"].as_str()),
        (
            400,
            Some(format!("level must be from 1 to {MAX_LEVEL}").as_str())
        )
    );

    // add_exp never takes the level past the highest level PUT allows.
    let (s, _) = server
        .call("PUT", &path)
        .token(&gs)
        .json(json!({"exp": 99_999_000, "level": 999_991}))
        .send()
        .parts();
    assert_eq!(s, 200);
    let add = |amount: i64| {
        server
            .call("POST", "/api/v1/games/game1/add_exp")
            .token(&gs)
            .json(json!({"player_id": p, "amount": amount}))
            .send()
            .parts()
    };
    let (s, j) = add(1_000_000_000);
    assert_eq!(s, 200, "{j}");
    assert_eq!(j["data"]["player"]["level"], MAX_LEVEL);
    assert_eq!(j["data"]["player"]["exp"], 1_099_999_000i64);
    let (s, j) = server
        .call("POST", "/api/v1/games/game1/level_up")
        .token(&gs)
        .json(json!({"player_id": p}))
        .send()
        .parts();
    assert_eq!(
        (s, j["message"].as_str()),
        (
            409,
            Some(format!("the player is at the highest level ({MAX_LEVEL})").as_str())
        )
    );
    assert_eq!(player(&server, &gs, p)["level"], MAX_LEVEL);

    // Nor experience past the highest a profile may have.
    let (s, _) = server
        .call("PUT", &path)
        .token(&gs)
        .json(json!({"exp": MAX_EXP - 5}))
        .send()
        .parts();
    assert_eq!(s, 200);
    let (s, j) = add(6);
    assert_eq!(
        (s, j["message"].as_str()),
        (
            409,
            Some(format!("exp would pass its maximum of {MAX_EXP}").as_str())
        )
    );
    assert_eq!(player(&server, &gs, p)["exp"], MAX_EXP - 5);
    let (s, j) = add(5);
    assert_eq!(
        (s, j["data"]["player"]["exp"].as_i64()),
        (200, Some(MAX_EXP))
    );
    // What the game logic reached, a profile update can write back.
    let (s, j) = server
        .call("PUT", &path)
        .token(&gs)
        .json(json!({"exp": MAX_EXP, "level": MAX_LEVEL}))
        .send()
        .parts();
    assert_eq!(s, 200, "{j}");
}

/// The same rules over the binary protocol, with the same business codes.
#[test]
fn tcp_refuses_withdrawn_items_and_deleted_players_with_the_same_codes() {
    let server = Server::start(2);
    let admin = server.admin_token();
    let gs = server.server_token("game1");
    let (p, _) = server.player("game1", "tcp_rules_buyer");
    let (gone, _) = server.player("game1", "tcp_rules_gone");
    add_item(&server, &admin, "dart", 5);
    let order = create_order(&server, &gs, p, "dart");
    let (s, _) = server
        .call("DELETE", "/api/v1/items/dart")
        .token(&admin)
        .send()
        .parts();
    assert_eq!(s, 200);
    let (s, _) = server
        .call("PUT", &format!("/api/v1/players/{gone}"))
        .token(&gs)
        .json(json!({"status": "deleted"}))
        .send()
        .parts();
    assert_eq!(s, 200);

    let mut t = server.tcp();
    assert_eq!(t.handshake_server("game1", SERVER_KEY).msg_type, 0x0002);
    let mut seq = 10;
    let mut send = |msg: u16, body: Value| {
        seq += 1;
        t.call(msg, seq, "game1", &body.to_string())
    };
    let pay = send(0x1005, json!({"action": "pay", "order_id": order}));
    assert_eq!(pay.error_code(), 2002);
    let got = send(0x1005, json!({"action": "get", "order_id": order}));
    assert_eq!(got.json()["data"]["order"]["status"], "pending");
    let grant = json!({"action": "grant", "player_id": p, "item_id": "dart", "quantity": 1});
    assert_eq!(send(0x1004, grant).error_code(), 2002);
    let grant = json!({"action": "grant", "player_id": gone, "item_id": "potion", "quantity": 1});
    assert_eq!(send(0x1004, grant).error_code(), 1001);
    let transfer = json!({"action": "transfer", "player_id": p, "item_id": "potion",
        "target_player_id": gone, "quantity": 1});
    assert_eq!(send(0x1004, transfer).error_code(), 1001);
    let wallet = json!({"action": "wallet", "player_id": gone, "currency": "gold", "delta": 1, "reason": "x"});
    assert_eq!(send(0x1003, wallet).error_code(), 1001);
    let get = json!({"action": "get", "player_id": gone});
    assert_eq!(send(0x1003, get).error_code(), 1001);
    let exp = json!({"action": "update", "player_id": p, "exp": MAX_EXP + 1});
    let refused = send(0x1003, exp);
    assert_eq!(refused.error_code(), 0xE002);
    assert_eq!(
        refused.json()["message"],
        format!("exp must be from 0 to {MAX_EXP}")
    );
    let cancel = send(0x1005, json!({"action": "cancel", "order_id": order}));
    assert_eq!(cancel.json()["data"]["order"]["status"], "cancelled");
}
