//! The client's reconnection rules against a scripted peer on loopback,
//! which can close a connection at exactly the point a rule is about (the
//! real server's restarts and shutdowns are tested in the repository's
//! tests/reference_clients.rs):
//! - a notice with sequence 0 in the middle of a batch: the requests it left
//!   unanswered were not carried out and are all sent again;
//! - a close without a notice in the middle of a batch: only the requests
//!   safe to repeat are sent again, the others end in OutcomeUnknown.

mod peer;

use dm_client::{msg, Auth, Client, Config, Error};
use peer::Peer;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::thread;

fn get(n: i64) -> (u16, Value) {
    (msg::PLAYER_DATA, json!({"action": "get", "player_id": n}))
}

fn wallet(n: i64) -> (u16, Value) {
    (
        msg::PLAYER_DATA,
        json!({"action": "wallet", "player_id": n, "currency": "gold", "delta": 1, "reason": "t"}),
    )
}

#[test]
fn unanswered_requests_are_resent_after_a_notice_and_only_safe_ones_after_a_close() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = thread::spawn(move || {
        // 1: answers the first of three, then "server shutting down".
        let mut p = Peer::handshake(&listener);
        let first = p.requests(3);
        p.echo(&first[0]);
        let notice = json!({"code": 0xE006, "message": "server shutting down"});
        p.send(msg::ERROR, 0, &notice);
        drop(p);
        // 2: gets the other two again; then answers one of the next three
        // and closes without a word.
        let mut p = Peer::handshake(&listener);
        let resent = p.requests(2);
        for r in &resent {
            p.echo(r);
        }
        let second = p.requests(3);
        p.echo(&second[0]);
        drop(p);
        // 3: only the get of the unanswered two comes again.
        let mut p = Peer::handshake(&listener);
        let last = p.requests(1);
        p.echo(&last[0]);
        let bodies = |rs: &[(u32, Value)]| rs.iter().map(|r| r.1.clone()).collect::<Vec<_>>();
        (
            bodies(&first),
            bodies(&resent),
            bodies(&second),
            bodies(&last),
        )
    });

    let mut c = Client::connect(Config::new(
        addr.to_string(),
        "game1",
        Auth::ServerKey("k".into()),
    ))
    .expect("connect");
    let batch = [get(1), wallet(2), get(3)];
    let results = c.pipeline(&batch);
    for (r, (_, body)) in results.iter().zip(&batch) {
        assert_eq!(r.as_ref(), Ok(body));
    }
    assert_eq!(c.reconnects(), 1);
    let notice = c.last_notice().expect("notice");
    assert_eq!(
        (notice.code, notice.message.as_str()),
        (0xE006, "server shutting down")
    );

    let batch = [get(4), wallet(5), get(6)];
    let results = c.pipeline(&batch);
    assert_eq!(results[0].as_ref(), Ok(&batch[0].1));
    assert_eq!(results[1], Err(Error::OutcomeUnknown));
    assert_eq!(results[2].as_ref(), Ok(&batch[2].1));
    assert_eq!(c.reconnects(), 2);

    let (first, resent, second, last) = peer.join().expect("peer");
    assert_eq!(first, vec![get(1).1, wallet(2).1, get(3).1]);
    assert_eq!(resent, vec![wallet(2).1, get(3).1]);
    assert_eq!(second, vec![get(4).1, wallet(5).1, get(6).1]);
    assert_eq!(last, vec![get(6).1]);
}

#[test]
fn a_reply_out_of_order_is_a_protocol_error_and_the_next_call_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = thread::spawn(move || {
        let mut p = Peer::handshake(&listener);
        let rs = p.requests(2);
        // The second request's reply first.
        p.echo(&rs[1]);
        let mut q = Peer::handshake(&listener);
        let again = q.requests(1);
        q.echo(&again[0]);
        drop(p);
    });
    let mut c = Client::connect(Config::new(
        addr.to_string(),
        "game1",
        Auth::ServerKey("k".into()),
    ))
    .expect("connect");
    let results = c.pipeline(&[get(1), get(2)]);
    for r in &results {
        assert!(matches!(r, Err(Error::Protocol(_))), "{r:?}");
    }
    assert_eq!(c.call(get(3).0, &get(3).1), Ok(get(3).1));
    assert_eq!(c.reconnects(), 1);
    peer.join().expect("peer");
}
