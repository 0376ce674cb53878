//! Mutated input against the real server: valid HTTP requests and binary
//! frames with bytes flipped, cut, inserted and repeated. Whatever arrives,
//! every connection must end promptly once the client stops sending, anything
//! the server answers must be well-formed (an HTTP status line, or frames our
//! decoder accepts), and afterwards both shards must still serve normally.
//! The mutations come from a fixed seed, so a failure names a reproducible case.

mod common;

use common::{frame, HttpClient, Server, SERVER_KEY};
use datamiddleware::protocol::{decode, Decoded};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Cases per protocol and the seed's offset: `DMTEST_FUZZ_CASES` and
/// `DMTEST_FUZZ_SEED` run a deeper or different search by hand.
fn cases_and_seed() -> (u64, u64) {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    (var("DMTEST_FUZZ_CASES", 1000), var("DMTEST_FUZZ_SEED", 0))
}
/// Longest a connection may stay open after the client has finished sending.
const END_WITHIN: Duration = Duration::from_secs(10);

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four random edits of `input`.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(5) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 if at < out.len() => out[at] = rng.next() as u8,
            2 => out.truncate(at),
            3 => {
                let junk: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                out.splice(at..at, junk);
            }
            _ => {
                let end = (at + 1 + rng.below(32)).min(out.len());
                let piece = out[at.min(end)..end].to_vec();
                out.splice(at..at, piece);
            }
        }
    }
    out
}

/// Sends `input`, half-closes, and returns everything the server sent before
/// it closed; fails the test if the connection stays open past [`END_WITHIN`].
fn exchange(addr: SocketAddr, input: &[u8], case: u64) -> Vec<u8> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    // The server may close before taking everything (e.g. after 0xE008).
    let _ = stream.write_all(input);
    let _ = stream.shutdown(Shutdown::Write);
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return answer,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return answer,
            Err(_) => {}
        }
        assert!(
            started.elapsed() < END_WITHIN,
            "case {case}: connection still open {END_WITHIN:?} after the input ended: {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// True when `input` ends before its first request does: no blank line
/// after the head, or fewer body bytes than its Content-Length.
fn incomplete_request(input: &[u8]) -> bool {
    let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") else {
        return true;
    };
    let head = String::from_utf8_lossy(&input[..end]);
    let declared = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    declared.is_some_and(|len| input.len() - (end + 4) < len)
}

/// Confirms both shards answer `/health` and a real request still works.
fn assert_serving(server: &mut Server) {
    let mut shards = std::collections::HashSet::new();
    for _ in 0..64 {
        let mut c = HttpClient::connect(server.http).expect("connect after fuzzing");
        let r = c.request("GET", "/health", &[], b"");
        assert_eq!(r.status, 200);
        shards.insert(r.json()["shard"].as_u64().expect("shard"));
        if shards.len() == 2 {
            break;
        }
    }
    assert_eq!(shards.len(), 2, "both shards answer after fuzzing");
    let mut tcp = server.tcp();
    let reply = tcp.handshake_server("game1", SERVER_KEY);
    assert_eq!(reply.msg_type, 0x0002);
    assert_eq!(reply.json()["data"]["role"], "game_server");
    let child = server.child.as_mut().expect("child");
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "server exited"
    );
    assert!(!server.log().contains("panicked"), "a shard panicked");
}

#[test]
fn mutated_http_requests_get_a_status_line_or_a_close_never_a_hang() {
    let mut server = Server::start(2);
    let token = server.server_token("game1");
    let auth = format!("Bearer {token}");
    let (player, _) = server.player("game1", "fuzzhttp");
    let seeds: Vec<Vec<u8>> = vec![
        HttpClient::format("GET", "/health", &[], b""),
        HttpClient::format(
            "POST",
            "/api/v1/auth/login",
            &[("X-Game-Id", "game1"), ("Content-Type", "application/json")],
            br#"{"username":"fuzzhttp","password":"password1"}"#,
        ),
        HttpClient::format(
            "GET",
            &format!("/api/v1/players/{player}"),
            &[("Authorization", &auth), ("X-Game-Id", "game1")],
            b"",
        ),
        HttpClient::format(
            "PUT",
            &format!("/api/v1/players/{player}"),
            &[("Authorization", &auth), ("X-Game-Id", "game1")],
            br#"{"nickname":"fuzz","level":3}"#,
        ),
        [
            HttpClient::format("GET", "/health", &[], b""),
            HttpClient::format("GET", "/ready", &[], b""),
        ]
        .concat(),
    ];
    let (cases, seed) = cases_and_seed();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
    let mut statuses = std::collections::BTreeMap::<u8, u32>::new();
    for case in 0..cases {
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed);
        let answer = exchange(server.http, &input, case);
        if !answer.is_empty() {
            assert!(
                answer.starts_with(b"HTTP/1.1 ") && answer.len() > 12,
                "case {case}: not a status line: {:?}",
                String::from_utf8_lossy(&answer[..answer.len().min(80)])
            );
            *statuses.entry(answer[9]).or_default() += 1;
        } else {
            // Closing without an answer is right only for a request cut short.
            assert!(
                incomplete_request(&input),
                "case {case}: a complete request got no answer: {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
    eprintln!("first status digit -> cases: {statuses:?}");
    // The mutations must reach both the parser's refusals and the handlers.
    assert!(statuses.contains_key(&b'2') && statuses.contains_key(&b'4'));
    assert_serving(&mut server);
}

#[test]
fn mutated_frames_get_valid_frames_or_a_close_never_a_hang() {
    let mut server = Server::start(2);
    let handshake = frame(
        0x0002,
        0x04,
        1,
        "game1",
        "gs-1",
        format!(r#"{{"server_key":"{SERVER_KEY}"}}"#).as_bytes(),
    );
    let ping = frame(0x2002, 0x04, 2, "game1", "", b"");
    let get = frame(
        0x1003,
        0x04,
        3,
        "game1",
        "",
        br#"{"action":"get","player_id":1}"#,
    );
    let seeds: Vec<Vec<u8>> = vec![
        handshake.clone(),
        ping.clone(),
        [handshake.clone(), get.clone()].concat(),
        [handshake, ping.clone(), get, ping].concat(),
    ];
    let (cases, seed) = cases_and_seed();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ seed);
    let (mut errors, mut answers) = (0, 0);
    for case in 0..cases {
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed);
        let answer = exchange(server.tcp, &input, case);
        let mut rest = &answer[..];
        while !rest.is_empty() {
            match decode(rest, 1 << 24) {
                Decoded::Frame { frame, len } => {
                    if frame.msg_type == 0x2001 {
                        errors += 1;
                    } else {
                        answers += 1;
                    }
                    rest = &rest[len..];
                }
                other => panic!("case {case}: the server sent a bad frame: {other:?}"),
            }
        }
    }
    eprintln!("error frames {errors}, other frames {answers}");
    // The mutations must reach both the refusals and the handlers.
    assert!(errors > 0 && answers > 0);
    assert_serving(&mut server);
}
