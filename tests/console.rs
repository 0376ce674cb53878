//! The operator console (`/console`) end to end in a real browser: Debian's
//! Chromium, headless, driven through chromedriver's WebDriver API against a
//! real server. Signs in (after a wrong password is refused on the page),
//! watches the node overview show live figures, looks a player up and reads
//! their ledger, refunds a paid order and sees the balance move back,
//! follows the player's live notifications (the refund, a wallet change
//! made through the API, a message sent from the page; a dropped socket
//! catches up with what it missed; a new look-up reads the inbox; a player
//! of another game is followed in its game),
//! withdraws a catalogue item, creates and edits another, adjusts the
//! wallet, bans the player, sees a refused action's message, invalidates the
//! cache and finds no config centre on a stand-alone node. A second browser
//! test works the Leaderboards page: defines boards (refusals shown), reads
//! the top page by page and by period after scores written through the API,
//! reads around a player and deletes a board after confirming. A third
//! works the Audit page: a player's records and an admin's, page by page,
//! then every chain verified, and a record edited by hand named by the next
//! verification. Screenshots go to `target/console-screenshots/` for people
//! to look at.
//!
//! Needs `chromium` and `chromium-driver` (scripts/test.sh installs them and
//! sets `DMTEST_REQUIRE_CHROMIUM=1`; elsewhere the browser test skips).

mod common;

use common::{
    rows, unreserved_loopback_addr, wait_for, Server, ServerConfig, ADMIN_PASSWORD, ADMIN_USER,
};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser on `server`'s console, signed in as the test admin.
fn signed_in_console(server: &Server) -> Browser {
    let browser = Browser::start();
    browser.open(&format!("http://{}/console", server.http));
    browser.type_into("#login-username", ADMIN_USER);
    browser.type_into("#login-password", ADMIN_PASSWORD);
    browser.click("#login-submit");
    browser.wait_text("the signed-in header", "#whoami", |t| {
        t.contains(ADMIN_USER)
    });
    browser
}

/// Whether the browser is here; panics when the suite requires it.
fn browser_available() -> bool {
    let here =
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists();
    if !here && std::env::var("DMTEST_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1") {
        panic!("DMTEST_REQUIRE_CHROMIUM=1 but {CHROMIUM} or {CHROMEDRIVER} is missing");
    }
    if !here {
        eprintln!(
            "skipped: no {CHROMIUM} / {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
        );
    }
    here
}

/// A chromedriver process and one headless Chromium session.
struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    profile: PathBuf,
}

impl Browser {
    fn start() -> Browser {
        let addr = unreserved_loopback_addr();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={}", addr.port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        wait_for("chromedriver to listen", Duration::from_secs(20), || {
            TcpStream::connect(addr).is_ok()
        });
        let profile = std::env::temp_dir().join(format!(
            "dm-chromium-{}-{}",
            std::process::id(),
            addr.port()
        ));
        let mut b = Browser {
            driver,
            addr,
            session: String::new(),
            profile,
        };
        // The flags keep Chromium off the network it cannot reach here
        // (background updates, sync) and out of the sandbox root cannot use.
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                         format!("--user-data-dir={}", b.profile.display())]
            }
        }}});
        let created = b.call("POST", "/session", Some(caps));
        b.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        b
    }

    /// One WebDriver command; returns its `value`, panics on an error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(self.addr).expect("connect chromedriver");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("send");
        // chromedriver keeps the connection open: read by Content-Length.
        let mut raw = Vec::new();
        let mut chunk = [0u8; 65536];
        let payload = loop {
            let n = stream.read(&mut chunk).expect("read chromedriver");
            assert!(n > 0, "{method} {path}: chromedriver closed the connection");
            raw.extend_from_slice(&chunk[..n]);
            let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + len {
                break raw[end + 4..end + 4 + len].to_vec();
            }
        };
        let v: Value = serde_json::from_slice(&payload)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}: {}", String::from_utf8_lossy(&raw)));
        if v["value"]["error"].is_string() {
            panic!("{method} {path}: {}", v["value"]);
        }
        v["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn open(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    /// The element `css` selects (the first).
    fn find(&self, css: &str) -> String {
        let v = self.session_call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.session_call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// The element `css` selects, once it is shown and enabled: a page the
    /// last click opened may still be hidden for a moment on a busy machine
    /// (WebDriver then refuses to type: "element not interactable").
    fn find_interactable(&self, css: &str) -> String {
        let mut id = self.find(css);
        let ready = (0..300).any(|_| {
            let shown = self.session_call("GET", &format!("/element/{id}/displayed"), None);
            let enabled = self.session_call("GET", &format!("/element/{id}/enabled"), None);
            if shown == json!(true) && enabled == json!(true) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
            // The page may have replaced the element meanwhile.
            id = self.find(css);
            false
        });
        assert!(ready, "{css} never became shown and enabled");
        id
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find_interactable(css);
        self.session_call("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.session_call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Runs `script` in the page (WebDriver's own channel, not a page script)
    /// and returns its result.
    fn eval(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// The visible text of `css`, or `None` when nothing matches.
    fn text(&self, css: &str) -> Option<String> {
        let v = self.eval(&format!(
            "const e = document.querySelector({}); return e ? e.innerText : null;",
            Value::from(css)
        ));
        v.as_str().map(str::to_string)
    }

    /// Waits until `css`'s text satisfies `ok`; returns it.
    fn wait_text(&self, what: &str, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let mut last = None;
        let done = (0..300).any(|_| {
            last = self.text(css);
            if last.as_deref().is_some_and(&ok) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
            false
        });
        assert!(done, "{what}: {css} says {last:?}");
        last.unwrap_or_default()
    }

    /// The text of the open `alert` / `confirm` dialog.
    fn dialog_text(&self) -> String {
        let v = self.session_call("GET", "/alert/text", None);
        v.as_str().unwrap_or_default().to_string()
    }

    /// Answers the open dialog: OK (`true`) or Cancel.
    fn answer_dialog(&self, ok: bool) {
        let how = if ok { "accept" } else { "dismiss" };
        self.session_call("POST", &format!("/alert/{how}"), Some(json!({})));
    }

    /// The cells' text of each row of `css` (a `tbody`), row by row.
    fn table(&self, css: &str) -> Vec<Vec<String>> {
        let v = self.eval(&format!(
            "const b = document.querySelector({}); \
             return b ? [...b.rows].map((r) => [...r.cells].map((c) => c.textContent)) : [];",
            Value::from(css)
        ));
        serde_json::from_value(v).expect("rows of cells")
    }

    /// Saves a screenshot as `target/console-screenshots/<name>.png`.
    fn screenshot(&self, name: &str) {
        let v = self.session_call("GET", "/screenshot", None);
        let png = base64_decode(v.as_str().unwrap_or_default());
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.call("DELETE", &format!("/session/{}", self.session), None)
            }));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Standard base64 (WebDriver's screenshots).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u32> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | d << (18 - 6 * i as u32));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}

/// The status a `GET /ws` upgrade with `Origin: origin` is answered.
fn upgrade_status(addr: SocketAddr, origin: &str) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    s.write_all(request.as_bytes()).expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {line:?}"))
}

#[test]
fn console_files_carry_a_strict_content_security_policy() {
    let server = Server::start(1);
    let mut c = server.http();
    for (path, kind) in [
        ("/console", "text/html"),
        // With a trailing slash too (a newcomer's first try was a 404).
        ("/console/", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let r = c.request("GET", path, &[], b"");
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("Content-Type")
                .is_some_and(|t| t.starts_with(kind)),
            "{path}"
        );
        let csp = r.header("Content-Security-Policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(r.header("X-Frame-Options"), Some("DENY"));
    }
    assert_eq!(
        c.request("GET", "/console/nothing.js", &[], b"").status,
        404
    );
    assert_eq!(c.request("POST", "/console", &[], b"").status, 405);
    // The page itself grants nothing: its data needs an admin token.
    assert_eq!(
        c.request("GET", "/api/v1/cluster/nodes", &[], b"").status,
        401
    );
}

#[test]
fn console_works_end_to_end_in_headless_chromium() {
    if !browser_available() {
        return;
    }
    let server = Server::start(2);
    // A player with some history: a wallet credit, a paid order.
    let (player_id, _) = server.player("game1", "shopper");
    let gs = format!("Bearer {}", server.server_token("game1"));
    let mut c = server.http();
    let mut call = |method: &str, path: &str, body: &str| -> Value {
        let r = c.request(method, path, &[("Authorization", &gs)], body.as_bytes());
        assert!(r.status < 300, "{method} {path}: {}", r.text());
        r.json()["data"].clone()
    };
    call(
        "POST",
        &format!("/api/v1/players/{player_id}/wallet"),
        r#"{"currency":"gold","delta":250,"reason":"quest"}"#,
    );
    let order = call(
        "POST",
        "/api/v1/orders",
        &format!(
            r#"{{"player_id":{player_id},"item_id":"potion","quantity":3,"currency":"gold"}}"#
        ),
    );
    let order_id = order["order"]["order_id"]
        .as_str()
        .expect("order id")
        .to_string();
    let price = order["order"]["total_price"].as_i64().expect("price");
    let paid = call("POST", &format!("/api/v1/orders/{order_id}/pay"), "");
    assert_eq!(paid["order"]["status"], "paid");

    // Traffic while the overview is watched, so its figures are not zero.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (stop, addr, gs) = (stop.clone(), server.http, gs.clone());
        let read = format!("/api/v1/players/{player_id}");
        std::thread::spawn(move || {
            let mut c = common::HttpClient::connect(addr).expect("connect");
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) && sent < 200_000 {
                // Cached reads, for the hit ratio.
                c.request("GET", &read, &[("Authorization", &gs)], b"");
                sent += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    // The page's socket comes from the page's own origin (a browser always
    // sends Origin on an upgrade): out of the box, with no
    // http.cors_origins, the server must switch it.
    let same_origin = upgrade_status(server.http, &format!("http://{}", server.http));
    assert_eq!(
        same_origin, 101,
        "GET /ws with Origin: http://{} (the console's own origin, no http.cors_origins) \
         must upgrade: the console's live feed cannot open otherwise",
        server.http
    );

    let browser = Browser::start();
    let console = format!("http://{}/console", server.http);
    browser.open(&console);
    // A wrong password is refused on the page.
    browser.type_into("#login-username", ADMIN_USER);
    browser.type_into("#login-password", "not-the-password");
    browser.click("#login-submit");
    browser.wait_text("the wrong password's error", "#login-error", |t| {
        t.contains("Wrong username or password")
    });
    browser.screenshot("01-wrong-password");

    // Signed in: the overview lists this node with live figures.
    browser.type_into("#login-password", ADMIN_PASSWORD);
    browser.click("#login-submit");
    browser.wait_text("the signed-in header", "#whoami", |t| {
        t.contains(ADMIN_USER)
    });
    let rps = browser.wait_text(
        "requests per second above zero",
        "#nodes tbody tr[data-node] .rps",
        |t| t.parse::<f64>().is_ok_and(|v| v > 0.0),
    );
    let row = browser.wait_text(
        "latency and cache figures",
        "#nodes tbody tr[data-node]",
        |t| t.contains("test-node") && t.contains("database:game1 up") && !t.contains("\t—\t"),
    );
    assert!(row.contains("test-node"), "{row} ({rps} req/s)");
    // The live chart grows a line as the page refreshes (every 2 s).
    let points = "const l = document.querySelector('#chart-rps polyline'); \
                  return l ? l.getAttribute('points').split(' ').length : 0";
    wait_for("three points on the chart", Duration::from_secs(30), || {
        browser.eval(points).as_u64().is_some_and(|n| n >= 3)
    });
    browser.screenshot("02-overview");
    stop.store(true, Ordering::Relaxed);
    let _ = traffic.join();

    // The page's sockets, for the test to find and to cut: while
    // `__offline` is set a new socket asks for a path that does not upgrade
    // (same origin, so the page's policy allows it) and fails.
    browser.eval(
        "const Real = window.WebSocket; window.__sockets = []; window.__offline = false; \
         window.WebSocket = class extends Real { constructor(url, p) { \
           super(window.__offline ? url + '-offline' : url, p); window.__sockets.push(this); } }; \
         return true;",
    );

    // Players: by username; the ledger shows the wallet credit.
    browser.click("a[data-page=players]");
    browser.type_into("#player-query", "shopper");
    browser.click("#player-find button");
    browser.wait_text("the ledger", "#player-ledger tbody", |t| {
        t.contains("wallet:quest")
    });
    let gold_before: i64 = browser
        .wait_text(
            "the gold balance",
            "#player-profile dd[data-field=gold]",
            |t| t.parse::<i64>().is_ok(),
        )
        .parse()
        .unwrap_or_default();
    browser.screenshot("03-player");

    // Refund the paid order from the player's orders: the balance moves back.
    browser.click(&format!("button[data-refund=\"{order_id}\"]"));
    browser.wait_text("the refund's notice", "#notice", |t| t.contains("refunded"));
    browser.wait_text(
        "the refunded balance",
        "#player-profile dd[data-field=gold]",
        |t| t == (gold_before + price).to_string(),
    );
    browser.wait_text(
        "the order's new status",
        &format!("tr[data-order=\"{order_id}\"] .status"),
        |t| t == "refunded",
    );
    browser.screenshot("04-refunded");

    // Live notifications: the look-up opened the player's feed (the stored
    // inbox, then a socket subscribed to the player), and the refund came in
    // on it as it happened.
    browser.wait_text("the feed going live", "#feed-state", |t| {
        t.starts_with("live")
    });
    browser.wait_text("the refund in the feed", "#feed-list tbody", |t| {
        t.contains(&format!("order {order_id} → refunded")) && t.contains("order_refund")
    });
    // A wallet change made through the API (not the page) shows up at the
    // top of the feed.
    // (A connection per call: one left idle meanwhile has timed out.)
    let call = |method: &str, path: &str, body: &str| -> Value {
        let r = server
            .http()
            .request(method, path, &[("Authorization", &gs)], body.as_bytes());
        assert!(r.status < 300, "{method} {path}: {}", r.text());
        r.json()["data"].clone()
    };
    let bonus = 11;
    let credited = call(
        "POST",
        &format!("/api/v1/players/{player_id}/wallet"),
        &format!(r#"{{"currency":"gold","delta":{bonus},"reason":"feed-check"}}"#),
    );
    let newest = "#feed-list tbody tr:first-child";
    let row = browser.wait_text("the wallet notification", newest, |t| {
        t.contains("feed-check")
    });
    assert!(
        row.contains("wallet") && row.contains(&format!("+{bonus} gold")) && row.contains("live"),
        "{row} ({credited})"
    );
    // The notification's balance shows in the profile at once.
    browser.wait_text(
        "the balance from the notification",
        "#player-profile dd[data-field=gold]",
        |t| t == (gold_before + price + bonus).to_string(),
    );
    // A message from the page's form reaches the player, and the feed,
    // as text (markup in it stays text).
    browser.type_into("#message-subject", "Refund");
    browser.type_into("#message-body", "Your <b>refund</b>\nis through");
    browser.click("#message-form button");
    browser.wait_text("the message's notice", "#notice", |t| {
        t.contains("Message sent")
    });
    let row = browser.wait_text("the message in the feed", newest, |t| {
        t.contains("Your <b>refund</b> is through")
    });
    assert!(
        row.contains("message") && row.contains("from admin:") && row.contains("live"),
        "{row}"
    );
    assert_eq!(
        browser.eval("return document.querySelectorAll('#feed-list b, #feed-notes b').length"),
        json!(0),
        "server text is never parsed as markup"
    );
    browser.screenshot("04a-live-notifications");

    // A dropped socket is opened again (after failed attempts, with a
    // growing delay) and resumes after the last id it saw: the stored
    // message sent meanwhile is replayed, the wallet change (not stored
    // without realtime.persist) is reported missed.
    browser.eval("window.__offline = true; window.__sockets[window.__sockets.length - 1].close(); return true;");
    browser.wait_text("the feed retrying", "#feed-state", |t| {
        t.starts_with("closed") && t.contains("reconnecting in")
    });
    call(
        "POST",
        &format!("/api/v1/players/{player_id}/wallet"),
        r#"{"currency":"gold","delta":-1,"reason":"while-away"}"#,
    );
    call(
        "POST",
        &format!("/api/v1/players/{player_id}/notifications"),
        r#"{"subject":"Away","body":"sent while the console was away"}"#,
    );
    browser.wait_text("a failed attempt", "#feed-notes", |t| {
        t.contains("did not open")
    });
    browser.eval("window.__offline = false; return true;");
    let row = browser.wait_text("the replayed message", newest, |t| {
        t.contains("sent while the console was away")
    });
    assert!(row.contains("replay"), "{row}");
    browser.wait_text("the feed live again", "#feed-state", |t| {
        t.starts_with("live")
    });
    browser.wait_text("the missed wallet change", "#feed-notes", |t| {
        t.contains("not stored")
    });
    // The page reads the player again: the balance includes the missed change.
    browser.wait_text(
        "the balance after the missed change",
        "#player-profile dd[data-field=gold]",
        |t| t == (gold_before + price + bonus - 1).to_string(),
    );
    assert!(
        !browser
            .text("#feed-list tbody")
            .unwrap_or_default()
            .contains("while-away"),
        "a notification that is not stored is not made up"
    );
    browser.screenshot("04b-feed-resumed");

    // A new look-up closes the old socket and starts from the stored inbox:
    // both messages, nothing twice.
    browser.type_into("#player-query", "shopper");
    browser.click("#player-find button");
    let inbox = browser.wait_text("the inbox", "#feed-list tbody", |t| {
        t.lines().count() == 2 && t.lines().all(|l| l.ends_with("inbox"))
    });
    assert!(
        inbox.contains("sent while the console was away") && inbox.contains("is through"),
        "the two stored messages: {inbox}"
    );
    browser.wait_text("the feed live for the new look-up", "#feed-state", |t| {
        t.starts_with("live")
    });
    assert_eq!(
        browser
            .eval("return window.__sockets.filter((s) => s.readyState === WebSocket.OPEN).length"),
        json!(1),
        "one socket open"
    );
    let gold_before = gold_before + bonus - 1;

    // Catalogue: withdraw an item.
    browser.click("a[data-page=catalogue]");
    browser.wait_text("the catalogue", "#items tbody", |t| t.contains("potion"));
    browser.click("button[data-withdraw=\"potion\"]");
    browser.wait_text(
        "the withdrawn item",
        "tr[data-item=\"potion\"] .status",
        |t| t == "deleted",
    );
    browser.screenshot("05-withdrawn");

    // A new catalogue entry, then an edit of its price.
    browser.type_into("#item-id", "lantern");
    browser.type_into("#item-name", "Lantern");
    browser.type_into("#item-price-gold", "40");
    browser.click("#item-save");
    browser.wait_text("the new item", "tr[data-item=\"lantern\"]", |t| {
        t.contains("Lantern") && t.contains("40")
    });
    browser.click("tr[data-item=\"lantern\"] button");
    browser.type_into("#item-price-gold", "45");
    browser.click("#item-save");
    browser.wait_text("the edited price", "tr[data-item=\"lantern\"]", |t| {
        t.contains("45")
    });

    // Back to the player: a wallet adjustment with a reason, then a ban.
    browser.click("a[data-page=players]");
    browser.type_into("#wallet-delta", "-7");
    browser.type_into("#wallet-reason", "support");
    browser.click("#wallet-form button");
    browser.wait_text(
        "the adjusted balance",
        "#player-profile dd[data-field=gold]",
        |t| t == (gold_before + price - 7).to_string(),
    );
    browser.wait_text("the ledger row", "#player-ledger tbody", |t| {
        t.contains("wallet:support")
    });
    browser.click("#player-ban");
    browser.wait_text("the ban", "#player-profile dd[data-field=status]", |t| {
        t == "banned"
    });
    // An action the server refuses shows its message: overdraw the wallet.
    browser.type_into("#wallet-delta", "-1000000");
    browser.click("#wallet-form button");
    browser.wait_text("the refusal", "#error", |t| {
        t.contains("3001") || t.contains("not enough")
    });

    // Cache: per-shard figures and an invalidation by prefix.
    browser.click("a[data-page=cache]");
    browser.wait_text("the cache table", "#cache-stats tbody", |t| {
        t.lines().count() == 2
    });
    browser.type_into("#cache-prefix", "game1:");
    browser.click("#cache-prefix-form button");
    browser.wait_text("the invalidation", "#notice", |t| t.contains("invalidated"));

    // Cluster config: a stand-alone node says it has no config centre.
    browser.click("a[data-page=config]");
    browser.wait_text("the config page", "#config-state", |t| {
        t.contains("stand-alone")
    });

    // A player of another game: the inbox and messages go over HTTP with
    // that game's X-Game-Id, and the admin socket follows the player in
    // that game (it names the game: ids are per game, and game1 has a
    // player with the same id).
    let (stranger, _) = server.player("game2", "stranger");
    browser.click("#game-select option[value=game2]");
    browser.click("a[data-page=players]");
    browser.type_into("#player-query", "stranger");
    browser.click("#player-find button");
    browser.wait_text("the other game's player", "#player-title", |t| {
        t.contains(&format!("stranger (#{stranger})"))
    });
    browser.wait_text("the feed live in game2", "#feed-state", |t| {
        t.contains("live") && t.contains("game2")
    });
    browser.type_into("#message-subject", "Hello");
    browser.type_into("#message-body", "a message to game2");
    browser.click("#message-form button");
    let row = browser.wait_text("the sent message", "#feed-list tbody tr:first-child", |t| {
        t.contains("a message to game2")
    });
    assert!(row.contains("live") || row.contains("sent"), "{row}");
    assert_eq!(
        browser
            .text("#feed-list tbody")
            .unwrap_or_default()
            .lines()
            .count(),
        1,
        "nothing of game1's player #{stranger}"
    );
    browser.screenshot("06-other-game");

    // What the page showed is what the server holds.
    let admin = format!("Bearer {}", server.admin_token());
    let mut c = server.http();
    let r = c.request(
        "GET",
        "/api/v1/items/potion",
        &[("Authorization", &admin)],
        b"",
    );
    assert_eq!(
        r.json()["data"]["item"]["status"],
        "deleted",
        "{}",
        r.text()
    );
    let r = c.request(
        "GET",
        &format!("/api/v1/orders/{order_id}"),
        &[("Authorization", &admin)],
        b"",
    );
    assert_eq!(r.json()["data"]["order"]["status"], "refunded");
    let r = c.request(
        "GET",
        &format!("/api/v1/players/{player_id}"),
        &[("Authorization", &admin)],
        b"",
    );
    let player = &r.json()["data"]["player"];
    assert_eq!(player["gold"], gold_before + price - 7);
    assert_eq!(player["status"], "banned");
    let r = c.request(
        "GET",
        "/api/v1/items/lantern",
        &[("Authorization", &admin)],
        b"",
    );
    assert_eq!(r.json()["data"]["item"]["price_gold"], 45, "{}", r.text());
    // No token was left where a script could find it later.
    let stored = browser.eval(
        "return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie",
    );
    assert_eq!(stored, "{}{}", "nothing kept in storage");
    // Signing out revokes the session and starts the page afresh.
    browser.click("#logout");
    wait_for("the sign-in form again", Duration::from_secs(10), || {
        browser.eval("const a = document.getElementById('app-view'); return !!a && a.hidden && !document.getElementById('login-view').hidden") == Value::Bool(true)
    });
}

/// The Leaderboards page: boards defined on the page (a refused one shows
/// the server's message), scores written by a game server through the API,
/// the top read page by page and for a named period, the records around a
/// player, and a board deleted after a confirmation (a cancelled one keeps
/// it). A username with markup in it shows as text.
#[test]
fn console_leaderboards_page_defines_reads_and_deletes_boards() {
    if !browser_available() {
        return;
    }
    let server = Server::start(2);
    let gs = server.server_token("game1");
    let admin = server.admin_token();
    let names = ["lb_alice", "lb_bob", "lb_marked", "lb_dave", "lb_erin"];
    let ids: Vec<i64> = names.iter().map(|n| server.player("game1", n).0).collect();
    let id = |name: &str| ids[names.iter().position(|n| *n == name).expect("a name")];
    // Registration takes letters, digits and `_ . -` only: a name with
    // markup is put in the database behind the server's back, as data the
    // page must never read as HTML.
    let marked = "<b>x</b>";
    rows(
        &server,
        &format!(
            "UPDATE players SET username = '{marked}' WHERE id = {}",
            id("lb_marked")
        ),
    );
    let api = |method: &str, path: &str, token: &str, body: Option<Value>| -> (u16, Value) {
        let call = server.call(method, path).token(token);
        let call = match body {
            Some(b) => call.json(b),
            None => call,
        };
        call.send().parts()
    };

    let browser = signed_in_console(&server);
    browser.click("a[data-page=leaderboards]");
    browser.wait_text("the empty list", "#boards tbody", |t| {
        t.contains("No leaderboards")
    });

    // A definition the server refuses shows its message.
    browser.type_into("#board-id", "bad id!");
    browser.click("#board-save");
    browser.wait_text("the bad id's refusal", "#error", |t| {
        t.contains("400") && t.contains("id must be")
    });
    // Two boards: the defaults, and every field changed.
    browser.type_into("#board-id", "high_scores");
    browser.click("#board-save");
    browser.wait_text("the first board's notice", "#notice", |t| {
        t.contains("high_scores created")
    });
    browser.wait_text("the new board opened", "#board-showing", |t| {
        t.contains("Top of high_scores") && t.contains("no records")
    });
    browser.type_into("#board-id", "speedrun");
    browser.click("#board-sort option[value=asc]");
    browser.click("#board-operator option[value=incr]");
    browser.click("#board-reset option[value=daily]");
    browser.click("#board-writable");
    browser.click("#board-save");
    browser.wait_text("the second board", "tr[data-board=speedrun]", |t| {
        t.contains("asc") && t.contains("incr") && t.contains("daily") && t.contains("yes")
    });
    // An id that is taken: 409, with the server's words.
    browser.type_into("#board-id", "high_scores");
    browser.click("#board-save");
    browser.wait_text("the taken id's refusal", "#error", |t| {
        t.contains("409") && t.contains("exists")
    });
    let (s, j) = api("GET", "/api/v1/leaderboards", &admin, None);
    assert_eq!(s, 200, "{j}");
    let boards: Vec<Value> = j["data"]["boards"]
        .as_array()
        .expect("boards")
        .iter()
        .map(|b| {
            json!([
                b["id"],
                b["sort"],
                b["operator"],
                b["reset"],
                b["player_writable"]
            ])
        })
        .collect();
    assert_eq!(
        boards,
        vec![
            json!(["high_scores", "desc", "best", "never", false]),
            json!(["speedrun", "asc", "incr", "daily", true]),
        ]
    );

    // Scores from a game server, through the API.
    for (name, score, subscore) in [
        ("lb_alice", 300, 7),
        ("lb_bob", 500, 0),
        ("lb_marked", 400, 0),
        ("lb_dave", 100, 0),
        ("lb_erin", 200, 0),
    ] {
        let (s, j) = api(
            "POST",
            "/api/v1/leaderboards/high_scores/scores",
            &gs,
            Some(json!({"player_id": id(name), "score": score, "subscore": subscore})),
        );
        assert_eq!(s, 200, "{j}");
    }
    let row = |rank: i64, name: &str, username: &str, score: i64, subscore: i64| {
        [
            rank.to_string(),
            id(name).to_string(),
            username.to_string(),
            score.to_string(),
            subscore.to_string(),
        ]
        .to_vec()
    };
    let next_disabled = "return document.getElementById('board-next').disabled";

    // The top, two records a page: the best first, the marked-up name as text.
    browser.click("button[data-view=high_scores]");
    browser.type_into("#board-limit", "2");
    browser.click("#board-top-form button");
    browser.wait_text("the first page", "#board-showing", |t| {
        t.contains("period all, ranks 1–2")
    });
    assert_eq!(
        browser.table("#board-records tbody"),
        vec![
            row(1, "lb_bob", "lb_bob", 500, 0),
            row(2, "lb_marked", marked, 400, 0)
        ]
    );
    assert_eq!(
        browser.eval("return document.querySelectorAll('#board-records b, #boards b').length"),
        json!(0),
        "a username is never parsed as markup"
    );
    browser.screenshot("07-leaderboard-top");
    browser.click("#board-next");
    browser.wait_text("the second page", "#board-showing", |t| {
        t.contains("ranks 3–4")
    });
    assert_eq!(
        browser.table("#board-records tbody"),
        vec![
            row(3, "lb_alice", "lb_alice", 300, 7),
            row(4, "lb_erin", "lb_erin", 200, 0)
        ]
    );
    browser.click("#board-next");
    browser.wait_text("the last page", "#board-showing", |t| {
        t.contains("ranks 5–5")
    });
    assert_eq!(
        browser.table("#board-records tbody"),
        vec![row(5, "lb_dave", "lb_dave", 100, 0)]
    );
    assert_eq!(
        browser.eval(next_disabled),
        json!(true),
        "no page after the last"
    );
    browser.click("#board-prev");
    browser.wait_text("back to the second page", "#board-showing", |t| {
        t.contains("ranks 3–4")
    });

    // A period by name: `all` is this board's one; a day is refused.
    browser.type_into("#board-period", "all");
    browser.click("#board-top-form button");
    browser.wait_text("the named period", "#board-showing", |t| {
        t.contains("period all, ranks 1–2")
    });
    browser.type_into("#board-period", "2026-12-07");
    browser.click("#board-top-form button");
    browser.wait_text("the refused period", "#error", |t| {
        t.contains("400") && t.contains("period")
    });
    browser.type_into("#board-period", "all");

    // Around a player: the player's record in the middle, marked.
    browser.type_into("#board-player", &id("lb_erin").to_string());
    browser.type_into("#board-around-limit", "3");
    browser.click("#board-around-form button");
    browser.wait_text("the records around", "#board-showing", |t| {
        t.contains("Around player") && t.contains("ranks 3–5")
    });
    assert_eq!(
        browser.table("#board-records tbody"),
        vec![
            row(3, "lb_alice", "lb_alice", 300, 7),
            row(4, "lb_erin", "lb_erin", 200, 0),
            row(5, "lb_dave", "lb_dave", 100, 0)
        ]
    );
    assert_eq!(
        browser.eval("return document.querySelector('#board-records tr.focus').dataset.player"),
        json!(id("lb_erin").to_string())
    );
    browser.screenshot("08-leaderboard-around");

    // A daily board reads its current period, named by its day, and the
    // same name typed in the period field reads it again.
    let (s, j) = api(
        "POST",
        "/api/v1/leaderboards/speedrun/scores",
        &gs,
        Some(json!({"player_id": id("lb_bob"), "score": 42})),
    );
    assert_eq!(s, 200, "{j}");
    let today = j["data"]["period"].as_str().expect("period").to_string();
    browser.type_into("#board-period", "");
    browser.click("button[data-view=speedrun]");
    browser.wait_text("the daily board", "#board-showing", |t| {
        t.contains("Top of speedrun") && t.contains(&format!("period {today}, ranks 1–1"))
    });
    browser.type_into("#board-period", &today);
    browser.click("#board-top-form button");
    browser.wait_text("the day by name", "#board-showing", |t| {
        t.contains(&format!("period {today}, ranks 1–1"))
    });
    assert_eq!(
        browser.table("#board-records tbody"),
        vec![row(1, "lb_bob", "lb_bob", 42, 0)]
    );

    // Delete asks first: cancelled, the board stays; confirmed, it is gone.
    browser.click("button[data-delete=high_scores]");
    let asked = browser.dialog_text();
    assert!(asked.contains("high_scores"), "{asked}");
    browser.answer_dialog(false);
    assert_eq!(
        api("GET", "/api/v1/leaderboards/high_scores", &admin, None).0,
        200,
        "a cancelled delete deletes nothing"
    );
    browser.click("button[data-delete=high_scores]");
    browser.answer_dialog(true);
    browser.wait_text("the delete's notice", "#notice", |t| {
        t.contains("high_scores deleted")
    });
    browser.wait_text("the list without it", "#boards tbody", |t| {
        t.contains("speedrun") && !t.contains("high_scores")
    });
    let (s, j) = api("GET", "/api/v1/leaderboards/high_scores", &admin, None);
    assert_eq!(s, 404, "{j}");
    let (_, j) = api("GET", "/api/v1/leaderboards", &admin, None);
    let left: Vec<&str> = j["data"]["boards"]
        .as_array()
        .expect("boards")
        .iter()
        .filter_map(|b| b["id"].as_str())
        .collect();
    assert_eq!(left, ["speedrun"]);
}

/// The Audit page: changes made through the API (a game server's wallet
/// credit and debit, an admin's ban) read back on the page filtered by the
/// player, oldest first and page by page (forward and back), with who made
/// each; the admin's own records (its sign-in) filtered by its name; every
/// chain verified with its newest checkpoint; then a record edited behind
/// the server's back is named by the next verification (chain, seq, kind)
/// and marked in the list. A reason with markup in it shows as text.
#[test]
fn console_audit_page_filters_records_and_verifies_chains() {
    if !browser_available() {
        return;
    }
    let server = ServerConfig::new()
        .shards(2)
        .set("audit", "checkpoint_s", 1)
        .start();
    let gs = server.server_token("game1");
    let admin = server.admin_token();
    let (player, _) = server.player("game1", "au_player");
    let subject = format!("player:{player}");
    let api = |method: &str, path: &str, token: &str, body: Option<Value>| -> (u16, Value) {
        let call = server.call(method, path).token(token);
        let call = match body {
            Some(b) => call.json(b),
            None => call,
        };
        call.send().parts()
    };
    let marked = "<b>quest</b>";
    for (token, method, path, body) in [
        (
            &gs,
            "POST",
            format!("/api/v1/players/{player}/wallet"),
            json!({"currency": "gold", "delta": 250, "reason": marked}),
        ),
        (
            &gs,
            "POST",
            format!("/api/v1/players/{player}/wallet"),
            json!({"currency": "gold", "delta": -50, "reason": "fee"}),
        ),
        (
            &admin,
            "PUT",
            format!("/api/v1/players/{player}"),
            json!({"status": "banned"}),
        ),
    ] {
        let (s, j) = api(method, &path, token, Some(body));
        assert_eq!(s, 200, "{method} {path}: {j}");
    }
    // The player's records as the API gives them (sign-up grants first,
    // when the game has any).
    let (s, j) = api(
        "GET",
        &format!("/api/v1/audit?subject={subject}&limit=200"),
        &admin,
        None,
    );
    assert_eq!(s, 200, "{j}");
    let records = j["data"]["records"].as_array().expect("records").clone();
    let actions: Vec<String> = records
        .iter()
        .map(|r| r["action"].as_str().expect("action").to_string())
        .collect();
    assert!(
        actions.ends_with(&[
            "wallet.change".to_string(),
            "wallet.change".to_string(),
            "player.status".to_string()
        ]),
        "{actions:?}"
    );
    let first_wallet = records
        .iter()
        .find(|r| r["action"] == "wallet.change")
        .expect("a wallet.change");
    let chain = first_wallet["chain"].as_i64().expect("chain");
    let edited_seq = first_wallet["seq"].as_i64().expect("seq");
    let ban_seq = records.last().expect("the ban")["seq"]
        .as_i64()
        .expect("seq");

    let browser = signed_in_console(&server);
    browser.click("a[data-page=audit]");
    browser.wait_text("every record", "#audit-showing", |t| {
        t.contains("All records in game1 — page 1")
    });

    // A player filter without an id is refused on the page.
    browser.click("#audit-by option[value=player]");
    browser.type_into("#audit-who", "");
    browser.click("#audit-filter button");
    browser.wait_text("the missing id", "#error", |t| {
        t.contains("Name the player")
    });
    // The player's records, two a page: walked forward to the newest.
    browser.type_into("#audit-who", &player.to_string());
    browser.type_into("#audit-limit", "2");
    browser.click("#audit-filter button");
    let mut shown: Vec<Vec<String>> = Vec::new();
    let pages = actions.len().div_ceil(2);
    for page in 1..=pages {
        browser.wait_text("a page of the player's records", "#audit-showing", |t| {
            t.contains(&format!(
                "Records about player {player} in game1 — page {page},"
            ))
        });
        shown.extend(browser.table("#audit-records tbody"));
        if page == 1 {
            browser.screenshot("09-audit-records");
        }
        if page < pages {
            browser.click("#audit-next");
        }
    }
    assert_eq!(
        browser.eval("return document.getElementById('audit-next').disabled"),
        json!(true),
        "no page after the newest"
    );
    let column = |i: usize| -> Vec<String> { shown.iter().map(|r| r[i].clone()).collect() };
    assert_eq!(column(1), actions, "the actions, oldest first");
    assert!(column(2).iter().all(|s| *s == subject), "{shown:?}");
    let n = shown.len();
    // Who: the game server for the wallet, the admin for the ban.
    for row in &shown[n - 3..n - 1] {
        assert_eq!(
            row[3..7],
            ["game_server", "server:game1", "127.0.0.1", "test-node"],
            "{row:?}"
        );
    }
    assert_eq!(
        shown[n - 1][3..5],
        ["admin", "admin:ops"],
        "{:?}",
        shown[n - 1]
    );
    assert_eq!(shown[n - 3][7], format!("{chain} · {edited_seq}"));
    // Details as compact JSON text; the markup in the reason is text too.
    let details = &shown[n - 3][8];
    assert!(
        details.starts_with('{')
            && details.contains(r#""delta":250"#)
            && details.contains(&format!(r#""reason":"wallet:{marked}""#)),
        "{details}"
    );
    assert_eq!(
        browser.eval("return document.querySelectorAll('#audit-records b').length"),
        json!(0),
        "details are never parsed as markup"
    );
    // And back a page.
    if pages > 1 {
        browser.click("#audit-prev");
        browser.wait_text("the page before", "#audit-showing", |t| {
            t.contains(&format!("page {},", pages - 1))
        });
        assert_eq!(
            browser.table("#audit-records tbody"),
            shown[(pages - 2) * 2..(pages - 1) * 2].to_vec()
        );
    }

    // By the admin: its sign-ins (the test's and the page's) and the ban.
    browser.click("#audit-by option[value=admin]");
    browser.type_into("#audit-who", ADMIN_USER);
    browser.type_into("#audit-limit", "50");
    browser.click("#audit-filter button");
    browser.wait_text("the admin's records", "#audit-showing", |t| {
        t.contains(&format!("Records by admin {ADMIN_USER} in game1 — page 1"))
    });
    let by_admin = browser.table("#audit-records tbody");
    assert!(by_admin.iter().all(|r| r[4] == "admin:ops"), "{by_admin:?}");
    let admin_actions: Vec<&str> = by_admin.iter().map(|r| r[1].as_str()).collect();
    assert!(
        admin_actions.contains(&"admin.sign_in") && admin_actions.contains(&"player.status"),
        "{admin_actions:?}"
    );

    // Verified: every chain, the player's with a checkpoint at the ban.
    wait_for("a checkpoint of the ban", Duration::from_secs(20), || {
        let (_, j) = api("GET", "/api/v1/audit/chains", &admin, None);
        j["data"]["chains"][chain as usize]["last_checkpoint"]["seq"].as_i64() >= Some(ban_seq)
    });
    let (s, j) = api("GET", "/api/v1/audit/chains", &admin, None);
    assert_eq!(s, 200, "{j}");
    let chains = j["data"]["chains"].as_array().expect("chains").len();
    let public_key = j["data"]["public_key"].as_str().expect("key").to_string();
    browser.click("#audit-verify");
    let summary = browser.wait_text("all verified", "#audit-summary", |t| {
        t.contains(&format!("All {chains} chains verified"))
    });
    assert!(summary.contains(&public_key), "{summary}");
    let row = browser.wait_text(
        "the player's chain",
        &format!("#audit-chains tr[data-chain='{chain}']"),
        |t| t.contains("OK"),
    );
    assert!(row.contains("seq "), "its newest checkpoint: {row}");
    assert_eq!(
        browser.eval("return document.querySelectorAll('#audit-chains tr.problem').length"),
        json!(0)
    );

    // A record edited by hand: the next verification names it.
    rows(
        &server,
        &format!(
            "UPDATE audit_records SET details = '{{\"delta\":1}}' WHERE chain = {chain} \
             AND seq = {edited_seq} AND subject = '{subject}' AND action = 'wallet.change'"
        ),
    );
    browser.click("#audit-verify");
    let summary = browser.wait_text("the edit named", "#audit-summary", |t| {
        t.contains("fail verification")
    });
    assert!(
        summary.contains(&format!("chain {chain} record {edited_seq} edited")),
        "{summary}"
    );
    let problem = browser.text(&format!("#audit-chains tr.problem[data-chain='{chain}']"));
    assert!(
        problem
            .as_deref()
            .is_some_and(|t| t.contains(&format!("edited at seq {edited_seq}"))),
        "{problem:?}"
    );
    assert_eq!(
        browser.eval("return document.querySelectorAll('#audit-chains tr.problem').length"),
        json!(1),
        "only that chain"
    );
    // The player's records again: the edited one is marked.
    browser.click("#audit-by option[value=player]");
    browser.type_into("#audit-who", &player.to_string());
    browser.click("#audit-filter button");
    browser.wait_text("the player's records", "#audit-showing", |t| {
        t.contains(&format!("Records about player {player}"))
    });
    assert_eq!(
        browser.eval(
            "return [...document.querySelectorAll('#audit-records tr.tampered')]\
             .map((r) => r.dataset.chain + '.' + r.dataset.seq)"
        ),
        json!([format!("{chain}.{edited_seq}")])
    );
    browser.screenshot("10-audit-tampered");
}
