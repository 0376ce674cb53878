//! A scripted peer for client tests: accepts connections on loopback and
//! answers exactly what a test says, so a connection can be closed at the
//! point a reconnection rule is about. Shared with the repository's
//! tests/reference_clients.rs, which drives the Python client against it.

use dm_client::frame::{self, Frame};
use dm_client::msg;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

/// One accepted connection of the peer.
pub struct Peer {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Peer {
    pub fn accept(listener: &TcpListener) -> Peer {
        let (stream, _) = listener.accept().expect("accept");
        Peer {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn read(&mut self) -> Frame {
        loop {
            if let Some((f, len)) = frame::decode(&self.buf, 1 << 20).expect("a valid frame") {
                self.buf.drain(..len);
                return f;
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).expect("read");
            assert!(n > 0, "the client closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn send(&mut self, msg_type: u16, sequence: u32, body: &Value) {
        let f = Frame {
            version: 1,
            msg_type,
            flags: 0,
            sequence,
            timestamp: 1_700_000_000,
            game_id: "game1".into(),
            user_id: "gs".into(),
            body: body.to_string().into_bytes(),
        };
        let mut out = Vec::new();
        frame::encode(&f, &mut out).expect("encode");
        self.stream.write_all(&out).expect("write");
    }

    /// Answers the handshake the client opens every connection with.
    pub fn handshake(listener: &TcpListener) -> Peer {
        let mut p = Peer::accept(listener);
        let hello = p.read();
        assert_eq!(hello.msg_type, msg::HANDSHAKE);
        let body: Value = serde_json::from_slice(&hello.body).expect("JSON handshake");
        assert_eq!(body, json!({"server_key": "k"}));
        let data = json!({"game_id": "game1", "user_id": "gs", "role": "game_server",
                          "session_id": "s", "heartbeat_interval_s": 30});
        p.send(
            msg::HANDSHAKE,
            hello.sequence,
            &json!({"code": 200, "message": "ok", "data": data}),
        );
        p
    }

    /// Reads `n` requests; returns them as (sequence, body as JSON).
    pub fn requests(&mut self, n: usize) -> Vec<(u32, Value)> {
        (0..n)
            .map(|_| {
                let f = self.read();
                let body = serde_json::from_slice(&f.body).expect("JSON body");
                (f.sequence, body)
            })
            .collect()
    }

    /// Answers a request with its own body as data.
    pub fn echo(&mut self, request: &(u32, Value)) {
        let envelope = json!({"code": 200, "message": "ok", "data": request.1});
        self.send(msg::PLAYER_DATA, request.0, &envelope);
    }
}
