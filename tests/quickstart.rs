//! The README's quickstart (`examples/quickstart.sh`) run as written against
//! a real server, so a stale example fails the suite: every call it makes
//! must answer 2xx, and its own checks (ids from the answers, an idempotent
//! retry, the potions count, a revoked token) must hold.

mod common;

use common::{Server, SERVER_KEY};

#[test]
fn the_quickstart_runs_top_to_bottom() {
    let server = Server::start(2);
    let out = common::clean_command("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/quickstart.sh"
        ))
        .env("BASE_URL", format!("http://{}", server.http))
        .env("SERVER_KEY", SERVER_KEY)
        .output()
        .expect("run examples/quickstart.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("alice has 4 potions"), "{stdout}");
    assert!(stdout.trim_end().ends_with("quickstart done"), "{stdout}");
}
