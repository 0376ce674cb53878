//! The reference clients of docs/protocol.md against the real server: the
//! Rust crate `dm-client` (clients/rust) and the Python script
//! examples/python/dm_client.py, so neither is dead code. Both are held to
//! the original encoder's frames (tests/data/golden-frames.hex) too.

mod common;
// The scripted peer of the client crate's own tests.
#[path = "../clients/rust/tests/peer/mod.rs"]
mod peer;

use common::{Server, SERVER_KEY};
use dm_client::{codes, frame, msg, Auth, Client, Config, Error};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

fn config(server: &Server) -> Config {
    let mut c = Config::new(
        server.tcp.to_string(),
        "game1",
        Auth::ServerKey(SERVER_KEY.into()),
    );
    c.user_id = "gs-ref-1".into();
    c
}

fn client(server: &Server) -> Client {
    Client::connect(config(server)).unwrap_or_else(|e| panic!("connect: {e}"))
}

fn golden_lines() -> Vec<Vec<u8>> {
    include_str!("data/golden-frames.hex")
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).expect("hex"))
                .collect()
        })
        .collect()
}

#[test]
fn rust_client_codec_matches_the_golden_frames_and_the_server_codec() {
    let expect = [
        (msg::HEARTBEAT, 1u32, ""),
        (msg::PING, 2, ""),
        (msg::HANDSHAKE, 3, r#"{"client_version":"1.0.0"}"#),
    ];
    let golden = golden_lines();
    assert_eq!(golden.len(), expect.len());
    for (bytes, (ty, seq, body)) in golden.iter().zip(expect) {
        let (f, len) = frame::decode(bytes, frame::DEFAULT_MAX_BODY)
            .expect("valid")
            .expect("whole");
        assert_eq!(len, bytes.len());
        assert_eq!((f.msg_type, f.sequence, f.flags), (ty, seq, 0x04));
        assert_eq!((f.timestamp, f.game_id.as_str()), (1_700_000_000, "game1"));
        assert_eq!(
            (f.user_id.as_str(), f.body.as_slice()),
            ("u1", body.as_bytes())
        );
        let mut again = Vec::new();
        frame::encode(&f, &mut again).expect("encode");
        assert_eq!(&again, bytes, "frame {seq} re-encoded byte for byte");
    }
    // The client's encoder and the server's decoder agree on other frames
    // too: every flag, long ids, negative and large timestamps, bodies.
    for (i, (game, user, body)) in [
        ("", "", &b""[..]),
        ("game1", "gs-1", br#"{"action":"get","player_id":7}"#),
        (&"g".repeat(64)[..], &"ü".repeat(32)[..], &[0u8; 3000][..]),
    ]
    .into_iter()
    .enumerate()
    {
        let f = frame::Frame {
            version: 1,
            msg_type: 0x1000 + i as u16,
            flags: 0x0f,
            sequence: u32::MAX - i as u32,
            timestamp: if i == 1 { -5 } else { i64::MAX - i as i64 },
            game_id: game.into(),
            user_id: user.into(),
            body: body.to_vec(),
        };
        let mut bytes = Vec::new();
        frame::encode(&f, &mut bytes).expect("encode");
        match datamiddleware::protocol::decode(&bytes, 65536) {
            datamiddleware::protocol::Decoded::Frame { frame: s, len } => {
                assert_eq!(len, bytes.len());
                assert_eq!(
                    (s.msg_type, s.flags, s.sequence),
                    (f.msg_type, 0x0f, f.sequence)
                );
                assert_eq!(s.timestamp, f.timestamp);
                assert_eq!((s.game_id, s.user_id), (game.as_bytes(), user.as_bytes()));
                assert_eq!(s.body, body);
            }
            other => panic!("the server cannot read frame {i}: {other:?}"),
        }
    }
}

#[test]
fn rust_client_handshakes_with_the_server_key_or_a_token() {
    let server = Server::start(1);
    let mut c = client(&server);
    let hs = c.handshake_info().expect("handshake").clone();
    assert_eq!(hs.role, "game_server");
    assert_eq!(hs.game_id, "game1");
    assert_eq!(hs.user_id, "gs-ref-1");
    assert_eq!(hs.heartbeat_interval_s, 30);
    assert!(c.ping().is_ok());
    assert_eq!(c.call(msg::HEARTBEAT, &Value::Null), Ok(Value::Null));

    // Refused handshakes are not retried: the same key would not do better.
    let mut wrong = config(&server);
    wrong.auth = Auth::ServerKey("wrong-key-wrong-key".into());
    match Client::connect(wrong) {
        Err(Error::Handshake(e)) => assert_eq!(e.code, codes::AUTH),
        other => panic!("a wrong key connected: {:?}", other.map(|_| ())),
    }
    let mut unknown = config(&server);
    unknown.game_id = "game9".into();
    match Client::connect(unknown) {
        Err(Error::Handshake(e)) => assert_eq!(e.code, codes::NOT_FOUND),
        other => panic!("an unknown game connected: {:?}", other.map(|_| ())),
    }

    // A player's token binds a connection of its own to that player.
    let player = c.create_player("ref_alice", "password1").expect("create");
    assert_eq!((player.gold, player.diamonds, player.level), (1000, 100, 1));
    let login = c.login("ref_alice", "password1").expect("login");
    assert_eq!(login.player.id, player.id);
    let mut as_player = config(&server);
    as_player.auth = Auth::Token(login.token);
    let mut p = Client::connect(as_player).expect("token handshake");
    let hs = p.handshake_info().expect("handshake");
    assert_eq!(
        (hs.role.as_str(), hs.user_id.clone()),
        ("player", player.id.to_string())
    );
    let own = p
        .call(msg::PLAYER_DATA, &json!({"action": "get"}))
        .expect("own profile");
    assert_eq!(own["player"]["id"], player.id);
    // Business failures come back as they are, the connection stays.
    match p.change_wallet(player.id, "gold", 5, "self-service") {
        Err(Error::Server(e)) => assert_eq!(e.code, codes::FORBIDDEN),
        other => panic!("a player changed its own wallet: {other:?}"),
    }
    match c.get_player(player.id + 1000) {
        Err(Error::Server(e)) => assert_eq!(e.code, 1001),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.reconnects(), 0);
    assert_eq!(p.reconnects(), 0);
}

#[test]
fn rust_client_pipelines_100_gets_answered_in_order() {
    let server = Server::start(2);
    let mut c = client(&server);
    let ids: Vec<i64> = (0..3)
        .map(|i| {
            c.create_player(&format!("ref_pipe_{i}"), "password1")
                .expect("create")
                .id
        })
        .collect();
    let mut requests: Vec<(u16, Value)> = (0..100)
        .map(|i| {
            (
                msg::PLAYER_DATA,
                json!({"action": "get", "player_id": ids[i % 3]}),
            )
        })
        .collect();
    // A failure in the middle keeps its place.
    requests[50] = (
        msg::PLAYER_DATA,
        json!({"action": "get", "player_id": 987654}),
    );
    let results = c.pipeline(&requests);
    assert_eq!(results.len(), 100);
    for (i, r) in results.iter().enumerate() {
        if i == 50 {
            assert!(
                matches!(r, Err(Error::Server(e)) if e.code == 1001),
                "{r:?}"
            );
        } else {
            let data = r.as_ref().unwrap_or_else(|e| panic!("get {i}: {e}"));
            assert_eq!(data["player"]["id"], ids[i % 3], "reply {i} out of order");
        }
    }
    // A body over the gzip threshold goes compressed and is answered too.
    let mut zipped = config(&server);
    zipped.compress_above = Some(16);
    let mut z = Client::connect(zipped).expect("connect");
    let nickname = "n".repeat(32);
    let data = z
        .call(
            msg::PLAYER_DATA,
            &json!({"action": "update", "player_id": ids[0], "nickname": nickname}),
        )
        .expect("compressed update");
    assert_eq!(data["player"]["nickname"], nickname.as_str());
    assert_eq!(c.reconnects(), 0);
}

#[test]
fn rust_client_reconnects_and_handshakes_after_a_restart() {
    let mut server = Server::start(1);
    let mut c = client(&server);
    let id = c
        .create_player("ref_restart", "password1")
        .expect("create")
        .id;
    let before = c.handshake_info().expect("handshake").session_id.clone();

    // Killed and started again on the same ports: the old connection is gone.
    server.restart();
    let p = c.get_player(id).expect("get after the restart");
    assert_eq!(p.id, id);
    assert_eq!(c.reconnects(), 1);
    assert_ne!(c.handshake_info().expect("handshake").session_id, before);
    // The closed connection was noticed before a wallet change went out on
    // it, so even a change that is not safe to repeat is simply carried out.
    server.restart();
    let w = c
        .change_wallet(id, "gold", 25, "after restart")
        .expect("wallet");
    assert_eq!(w.gold, 1025);
    assert_eq!(c.reconnects(), 2);

    // A graceful shutdown says so (0xE006 "server shutting down", sequence
    // 0) before it closes the connection; the client reconnects once the
    // server is back.
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));
    server.restart();
    assert_eq!(c.get_player(id).expect("get after shutdown").gold, 1025);
    assert_eq!(c.reconnects(), 3);
    let notice = c.last_notice().expect("the shutdown notice");
    assert_eq!(notice.code, codes::INTERNAL);
    assert_eq!(notice.message, "server shutting down");
}

#[test]
fn rust_client_reports_a_busy_server_and_gets_in_once_a_slot_frees() {
    let server = Server::start_with(1, &[("tcp", "max_connections = 1")]);
    let mut holder = server.tcp();
    assert_eq!(holder.call(msg::PING, 1, "game1", "").msg_type, msg::PONG);
    let mut short = config(&server);
    short.reconnect_for = Duration::from_millis(300);
    match Client::connect(short) {
        Err(Error::Unreachable(why)) => assert!(why.contains("server busy"), "{why}"),
        other => panic!("connected past max_connections: {:?}", other.map(|_| ())),
    }
    drop(holder);
    // The slot frees when the server sees the close; until then the client
    // is told "server busy" again and keeps trying.
    let mut c = client(&server);
    assert!(c.ping().is_ok());
    if let Some(notice) = c.last_notice() {
        assert_eq!(
            (notice.code, notice.message.as_str()),
            (codes::INTERNAL, "server busy")
        );
    }
}

/// The Python reference client: `python3` (scripts/test.sh installs it).
fn python() -> Command {
    let mut c = common::clean_command("python3");
    c.arg(script());
    c
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/python/dm_client.py")
}

fn run(mut command: Command) -> (bool, String, String) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("python3 {}: {e}", script().display()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value after `key=` in `line`.
fn field(line: &str, key: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        .trim_end_matches(',')
        .to_string()
}

#[test]
fn python_client_reencodes_the_golden_frames_byte_for_byte() {
    let mut c = python();
    c.arg("golden")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-frames.hex"));
    let (ok, out, err) = run(c);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("golden: 3 of 3 frames re-encoded byte for byte"),
        "{out}"
    );
    assert!(out.contains(
        "frame 3: Handshake 0x0002 flags=0x04 seq=3 ts=1700000000 game=game1 user=u1 \
         body={\"client_version\":\"1.0.0\"} crc=94e650a9 re-encoded byte for byte"
    ));
}

#[test]
fn python_demo_registers_credits_and_reads_back_a_player() {
    let server = Server::start(1);
    let mut c = python();
    c.args(["--host", "127.0.0.1", "--port"])
        .arg(server.tcp.port().to_string())
        .args(["--server-key", SERVER_KEY, "--username", "py_demo"]);
    let (ok, out, err) = run(c);
    assert!(ok, "demo failed:\n{out}{err}");
    let line = |prefix: &str| {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{out}"))
            .to_string()
    };
    assert!(line("handshake:").contains("role=game_server game=game1"));
    let created = line("created:");
    let id: i64 = field(&created, "id").parse().expect("id");
    assert_eq!(field(&created, "username"), "py_demo");
    assert_eq!(field(&created, "gold"), "1000");
    assert_eq!(field(&line("wallet:"), "gold"), "1250");
    let back = line("read back:");
    assert_eq!(
        (field(&back, "id"), field(&back, "gold")),
        (id.to_string(), "1250".into())
    );
    assert_eq!(
        line("pipelined:"),
        "pipelined: 10 gets and a ping, 11 answered, in order"
    );
    assert!(line("refused:").starts_with("refused: code=3001 "));
    // What the script did is what the server holds.
    let p = client(&server).get_player(id).expect("get");
    assert_eq!((p.username.as_str(), p.gold), ("py_demo", 1250));

    // A wrong key fails the script with the handshake's code.
    let mut c = python();
    c.args(["--host", "127.0.0.1", "--port"])
        .arg(server.tcp.port().to_string())
        .args(["--server-key", "wrong-key-wrong-key"]);
    let (ok, out, err) = run(c);
    assert!(!ok, "{out}");
    assert!(err.contains("HandshakeRefused: 57347 (0xE003)"), "{err}");
}

/// The Python client in its line mode: one JSON request in, one JSON result
/// out.
struct Repl {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Repl {
    fn start(server: &Server) -> Repl {
        Repl::start_at(server.tcp, SERVER_KEY)
    }

    fn start_at(addr: std::net::SocketAddr, key: &str) -> Repl {
        let mut child = python()
            .args(["--host", "127.0.0.1", "--port"])
            .arg(addr.port().to_string())
            .args(["--server-key", key, "repl"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start python3");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Repl {
            child,
            stdin,
            stdout,
        }
    }

    fn ask(&mut self, request: Value) -> Value {
        writeln!(self.stdin, "{request}").expect("write to python");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from python");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }
}

impl Drop for Repl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn python_client_pipelines_and_reconnects_after_restarts() {
    let mut server = Server::start(1);
    let mut py = Repl::start(&server);
    let r = py.ask(json!({"call": [msg::PLAYER_DATA,
        {"action": "create", "username": "py_pipe", "password": "password1"}]}));
    let id = r["ok"]["player"]["id"].as_i64().expect("created");
    let other = client(&server)
        .create_player("py_pipe_2", "password1")
        .expect("create")
        .id;

    // 100 pipelined gets of two players and a failure: each in its place.
    let mut batch: Vec<Value> = (0..100)
        .map(|i| json!([msg::PLAYER_DATA, {"action": "get", "player_id": if i % 2 == 0 { id } else { other }}]))
        .collect();
    batch[7] = json!([msg::PLAYER_DATA, {"action": "get", "player_id": 424242}]);
    let r = py.ask(json!({ "pipeline": batch }));
    let results = r["results"].as_array().expect("results");
    assert_eq!(results.len(), 100);
    for (i, res) in results.iter().enumerate() {
        if i == 7 {
            assert_eq!(res["error"]["code"], 1001);
        } else {
            let want = if i % 2 == 0 { id } else { other };
            assert_eq!(res["ok"]["player"]["id"], want, "reply {i}: {res}");
        }
    }
    assert_eq!(r["reconnects"], 0);

    // Killed and restarted: the next call reconnects and handshakes again.
    server.restart();
    let r = py.ask(json!({"call": [msg::PLAYER_DATA,
        {"action": "wallet", "player_id": id, "currency": "gold", "delta": 7, "reason": "py"}]}));
    assert_eq!(r["ok"]["gold"], 1007, "{r}");
    assert_eq!(r["reconnects"], 1);

    // A graceful shutdown's notice, then back.
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));
    server.restart();
    let r = py.ask(json!({"call": [msg::PING, null]}));
    assert_eq!(r["ok"], Value::Null, "{r}");
    assert_eq!(r["reconnects"], 2);
    assert_eq!(r["last_notice"]["code"], codes::INTERNAL);
    assert_eq!(r["last_notice"]["message"], "server shutting down");
}

/// The rules a real server's timing cannot pin down, against the scripted
/// peer: a notice with sequence 0 in the middle of a batch means the rest
/// was not carried out (all sent again); a close without one means it may
/// have been (only requests safe to repeat are sent again).
#[test]
fn python_client_resends_after_a_notice_and_only_safe_requests_after_a_close() {
    use peer::Peer;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let script = std::thread::spawn(move || {
        let mut p = Peer::handshake(&listener);
        let first = p.requests(3);
        p.echo(&first[0]);
        let notice = json!({"code": 0xE006, "message": "server shutting down"});
        p.send(msg::ERROR, 0, &notice);
        drop(p);
        let mut p = Peer::handshake(&listener);
        let resent = p.requests(2);
        for r in &resent {
            p.echo(r);
        }
        let second = p.requests(3);
        p.echo(&second[0]);
        drop(p);
        let mut p = Peer::handshake(&listener);
        let last = p.requests(1);
        p.echo(&last[0]);
        let bodies = |rs: &[(u32, Value)]| rs.iter().map(|r| r.1.clone()).collect::<Vec<_>>();
        (bodies(&resent), bodies(&last))
    });
    let get = |n: i64| json!({"action": "get", "player_id": n});
    let wallet = |n: i64| json!({"action": "wallet", "player_id": n, "currency": "gold", "delta": 1, "reason": "t"});
    let mut py = Repl::start_at(addr, "k");
    let batch = [get(1), wallet(2), get(3)];
    let r = py.ask(
        json!({"pipeline": batch.iter().map(|b| json!([msg::PLAYER_DATA, b])).collect::<Vec<_>>()}),
    );
    for (res, body) in r["results"].as_array().expect("results").iter().zip(&batch) {
        assert_eq!(&res["ok"], body, "{r}");
    }
    assert_eq!(r["reconnects"], 1);
    assert_eq!(r["last_notice"]["message"], "server shutting down");
    let batch = [get(4), wallet(5), get(6)];
    let r = py.ask(
        json!({"pipeline": batch.iter().map(|b| json!([msg::PLAYER_DATA, b])).collect::<Vec<_>>()}),
    );
    let results = r["results"].as_array().expect("results");
    assert_eq!(results[0]["ok"], batch[0], "{r}");
    assert_eq!(results[1]["failure"], "OutcomeUnknown", "{r}");
    assert_eq!(results[2]["ok"], batch[2], "{r}");
    assert_eq!(r["reconnects"], 2);
    let (resent, last) = script.join().expect("peer");
    assert_eq!(resent, vec![wallet(2), get(3)]);
    assert_eq!(last, vec![get(6)]);
}

/// docs/protocol.md stands on its own: no link leaves the repository (nor
/// names a file users do not have), every relative link and anchor
/// resolves, and its annotated hex dump is the golden Handshake, byte for
/// byte at every offset it annotates.
#[test]
fn protocol_doc_links_resolve_and_its_hex_dump_is_the_golden_handshake() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/protocol.md")).expect("docs/protocol.md");
    for outside in ["http://", "https://", "SPEC.md", "shared/"] {
        assert!(!doc.contains(outside), "docs/protocol.md names {outside}");
    }
    let slug = |heading: &str| -> String {
        heading
            .trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect()
    };
    let anchors: Vec<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("## ").or_else(|| l.strip_prefix("### ")))
        .map(slug)
        .collect();
    let mut links = 0;
    for part in doc.split("](").skip(1) {
        let target = part.split(')').next().expect("link target");
        links += 1;
        if let Some(anchor) = target.strip_prefix('#') {
            assert!(anchors.iter().any(|a| a == anchor), "no heading #{anchor}");
        } else {
            assert!(
                root.join("docs").join(target).exists(),
                "docs/protocol.md links to {target}, which does not exist"
            );
        }
    }
    assert!(links > 20, "only {links} links found");

    let golden = &golden_lines()[2];
    let hex: String = golden.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        doc.contains(&hex),
        "the golden Handshake's hex is not in the doc"
    );
    let table = doc
        .split("| offset | bytes | field | value |")
        .nth(1)
        .expect("the annotated dump");
    let mut rows = 0;
    for row in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let offset: usize = cells[1].parse().expect("offset");
        let shown = cells[2].trim_matches('`');
        let mut bytes: Vec<&str> = shown.split_whitespace().collect();
        if let Some(cut) = bytes.iter().position(|b| *b == "…") {
            // `7b 22 63 6c … 22 7d`: the first and last bytes of the body.
            let tail = bytes.split_off(cut + 1);
            bytes.truncate(cut);
            let end = golden.len();
            for (i, b) in tail.iter().enumerate() {
                let at = end - tail.len() + i;
                assert_eq!(format!("{:02x}", golden[at]), *b, "byte {at}");
            }
        }
        for (i, b) in bytes.iter().enumerate() {
            assert_eq!(
                format!("{:02x}", golden[offset + i]),
                *b,
                "byte {}",
                offset + i
            );
        }
        rows += 1;
    }
    assert_eq!(rows, 12, "every field of the header, both ids and the body");
    // The CRC it names is the frame's own.
    assert_eq!(frame::checksum(golden), 0x94E6_50A9);
    assert!(doc.contains("0x94E650A9"));
}

/// Other traffic does not keep a connection alive: both clients send a
/// Heartbeat in front of a call once the handshake's interval has passed,
/// so a connection busy with business calls alone is never closed for
/// missing heartbeats (without it the server would close it after 3 s here
/// and the clients would have to reconnect). The timeout leaves a loaded
/// machine 1.7 s of slack past the interval and the pause between calls.
#[test]
fn both_clients_keep_a_busy_connection_alive_with_heartbeats() {
    let server = Server::start_with(
        1,
        &[("tcp", "heartbeat_interval_s = 1\nheartbeat_timeout_s = 3")],
    );
    let mut c = client(&server);
    assert_eq!(
        c.handshake_info().expect("handshake").heartbeat_interval_s,
        1
    );
    let id = c
        .create_player("ref_alive", "password1")
        .expect("create")
        .id;
    let mut py = Repl::start(&server);
    let get = json!({"call": [msg::PLAYER_DATA, {"action": "get", "player_id": id}]});
    let started = std::time::Instant::now();
    // Past the heartbeat timeout more than once, with business calls only.
    while started.elapsed() < Duration::from_millis(6500) {
        assert_eq!(c.get_player(id).expect("get").id, id);
        let r = py.ask(get.clone());
        assert_eq!(r["ok"]["player"]["id"], id, "{r}");
        assert_eq!(r["reconnects"], 0, "{r}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(c.reconnects(), 0);
    assert_eq!(c.last_notice(), None);
}
