//! Client connections read through the vendored glommio's multishot receive
//! (`node.multishot_recv`, a per-shard ring of `node.recv_ring_buffers`
//! provided buffers): the same traffic — many connections at once, requests
//! split into single bytes, pipelined batches, a body of many ring buffers,
//! both protocols, a peer that shuts its side — is answered the same with
//! the default ring, with a ring of ONE buffer (which runs empty all the
//! time: every receive ends with ENOBUFS and is re-armed), and with the old
//! readiness-poll path (`node.multishot_recv = false`).

mod common;

use common::{frame, FrameClient, HttpClient, Server, ServerConfig};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

const PING: u16 = 0x2002;
const PONG: u16 = 0x2003;

fn server(multishot: bool, ring_buffers: i64) -> Server {
    ServerConfig::new()
        .shards(2)
        .set("node", "multishot_recv", multishot)
        .set("node", "recv_ring_buffers", ring_buffers)
        .start()
}

/// 64 HTTP connections at once, each with requests written whole, split
/// into single bytes, and pipelined.
fn many_connections_and_partial_requests(server: &Server) {
    let addr = server.http;
    let workers: Vec<_> = (0..8)
        .map(|w| {
            std::thread::spawn(move || {
                let mut clients: Vec<HttpClient> = (0..8)
                    .map(|_| HttpClient::connect(addr).expect("connect"))
                    .collect();
                for round in 0..5 {
                    for (i, c) in clients.iter_mut().enumerate() {
                        let req = HttpClient::format("GET", "/health", &[], b"");
                        match (w + i + round) % 3 {
                            0 => c.send_raw(&req),
                            1 => {
                                // One byte per write: the server sees many
                                // partial reads of one request.
                                for b in &req {
                                    c.send_raw(std::slice::from_ref(b));
                                    c.stream.flush().expect("flush");
                                }
                            }
                            _ => {
                                let mut batch = req.clone();
                                batch.extend_from_slice(&HttpClient::format(
                                    "GET",
                                    "/nope",
                                    &[],
                                    b"",
                                ));
                                batch.extend_from_slice(&req);
                                c.send_raw(&batch);
                                assert_eq!(c.read_response().expect("response").status, 200);
                                assert_eq!(c.read_response().expect("response").status, 404);
                            }
                        }
                        let r = c.read_response().expect("response");
                        assert_eq!(r.status, 200, "worker {w} client {i} round {round}");
                        assert_eq!(r.json()["status"], "ok");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
}

/// A body of ~900 KB (hundreds of ring buffers, far past what one
/// connection may hold unread) is read whole: the request after it on the
/// same connection is framed right.
fn big_body_then_next_request(server: &Server) {
    let mut c = server.http();
    let mut body = b"{\"username\":\"".to_vec();
    body.extend(std::iter::repeat_n(b'a', 900_000));
    let mut batch = HttpClient::format("POST", "/api/v1/players", &[], &body);
    batch.extend_from_slice(&HttpClient::format("GET", "/health", &[], b""));
    c.send_raw(&batch);
    let first = c.read_response().expect("answer to the big body");
    assert_eq!(first.status, 400, "{}", first.text());
    let second = c.read_response().expect("answer after the big body");
    assert_eq!(second.status, 200);
    assert_eq!(second.json()["status"], "ok");
}

/// Binary frames, whole and split, on the TCP port.
fn binary_frames(server: &Server) {
    let mut c = FrameClient::connect(server.tcp);
    assert_eq!(c.call(PING, 1, "game1", "").msg_type, PONG);
    let f = frame(PING, 0x04, 2, "game1", "", b"");
    let (a, b) = f.split_at(5);
    c.send(a);
    c.stream.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(20));
    c.send(b);
    let r = c.read().expect("pong");
    assert_eq!((r.msg_type, r.sequence), (PONG, 2));
    let mut batch = Vec::new();
    for s in 3..53 {
        batch.extend_from_slice(&frame(PING, 0x04, s, "game1", "", b""));
    }
    c.send(&batch);
    for s in 3..53 {
        let r = c.read().expect("pong");
        assert_eq!((r.msg_type, r.sequence), (PONG, s));
    }
}

/// A peer that sends a request and shuts its side gets its answer, then
/// the end of the stream; peers that connect and leave without a byte do
/// not keep the server from serving.
fn eof_and_abandoned_connections(server: &Server) {
    let mut s = TcpStream::connect(server.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(&HttpClient::format("GET", "/health", &[], b""))
        .expect("send");
    s.shutdown(Shutdown::Write).expect("shutdown");
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read to the end");
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"status\":\"ok\""), "{text}");
    for _ in 0..3 {
        let idle: Vec<TcpStream> = (0..100)
            .map(|_| TcpStream::connect(server.http).expect("connect"))
            .collect();
        drop(idle);
        assert_eq!(
            server.http().request("GET", "/health", &[], b"").status,
            200
        );
    }
}

fn everything(server: &Server) {
    many_connections_and_partial_requests(server);
    big_body_then_next_request(server);
    binary_frames(server);
    eof_and_abandoned_connections(server);
}

#[test]
fn multishot_receive_with_the_default_ring() {
    everything(&server(true, 64));
}

#[test]
fn a_ring_of_one_buffer_runs_empty_and_recovers() {
    everything(&server(true, 1));
}

#[test]
fn the_readiness_poll_path_still_works_when_turned_off() {
    everything(&server(false, 64));
}

#[test]
fn a_ring_size_that_is_not_a_power_of_two_is_refused() {
    let out = common::server_command()
        .arg("check-config")
        .env("DM_NODE_RECV_RING_BUFFERS", "48")
        .output()
        .expect("run the server");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("node.recv_ring_buffers"), "{text}");
}
