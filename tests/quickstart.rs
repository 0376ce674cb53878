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

#[test]
fn the_leaderboard_example_runs_top_to_bottom() {
    let server = Server::start(2);
    let out = common::clean_command("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/leaderboards.sh"
        ))
        .env("BASE_URL", format!("http://{}", server.http))
        .env("SERVER_KEY", SERVER_KEY)
        .env("ADMIN_USER", common::ADMIN_USER)
        .env("ADMIN_PASSWORD", common::ADMIN_PASSWORD)
        .output()
        .expect("run examples/leaderboards.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // cid (1500) first, ann kept her 1200 over the worse write, ben last.
    assert!(stdout.contains("ann is ranked 2"), "{stdout}");
    let top: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("== the top"))
        .skip(1)
        .take(3)
        .collect();
    assert_eq!(top.len(), 3, "{stdout}");
    assert!(
        top[0].starts_with("1 cid_") && top[0].ends_with(" 1500"),
        "{top:?}"
    );
    assert!(
        top[1].starts_with("2 ann_") && top[1].ends_with(" 1200"),
        "{top:?}"
    );
    assert!(
        top[2].starts_with("3 ben_") && top[2].ends_with(" 900"),
        "{top:?}"
    );
    assert!(stdout.trim_end().ends_with("leaderboards done"), "{stdout}");
}
