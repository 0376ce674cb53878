//! Failure budgets shared by every node of a cluster (SPEC §2, §3; issue 21).
//!
//! Without Redis a node keeps its login budgets itself ([`crate::rate_limit`]),
//! so three nodes gave an attacker three budgets. With `cluster.redis` set,
//! each budget — failed guesses per address, per account, and the account's
//! overall cap — is a counter in Redis that every node spends from: a login
//! already costs an argon2 hash, so one more round trip is cheap.
//!
//! A budget is a sliding window of one minute approximated by two fixed
//! windows: `<key>:<minute>` counts this minute's units and the previous
//! minute's count is weighted by the part of it still inside the window.
//! A guess *takes* its unit with `INCR` before its password is checked (so
//! guesses in flight at once each see the others' units) and gives it back
//! with `DECR` when it was not a wrong guess. Counters expire after two
//! minutes.
//!
//! The addresses that recently logged into an account are remembered here
//! too (`SET EX`), so that a victim keeps logging in from where they did
//! while an attacker spends the account's budget elsewhere.

use crate::redis::client::RedisError;
use crate::redis::link::Redis;
use crate::redis::resp::Reply;
use std::net::IpAddr;

/// Length of one counting window.
const WINDOW_MS: u64 = 60_000;

/// A unit taken from a shared budget: the counter to give it back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedUnit {
    counter: String,
}

/// What taking a unit of a shared budget gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    /// The unit is the guess's; give it back unless the guess was wrong.
    Granted(SharedUnit),
    /// The budget is spent; room again in this many seconds.
    Refused(u64),
}

/// The Redis counter of budget `name` for the window `window`. The name in
/// braces is the hash tag: both windows of a budget live in one slot of a
/// Redis Cluster.
fn counter(name: &str, window: u64) -> String {
    format!("dm:guess:{{{name}}}:{window}")
}

/// Takes one unit of budget `name` (`per_min` units a minute) at `now_ms`.
pub async fn take(
    redis: &Redis,
    name: &str,
    per_min: u32,
    now_ms: u64,
) -> Result<Take, RedisError> {
    let window = now_ms / WINDOW_MS;
    let elapsed = (now_ms % WINDOW_MS) as f64 / WINDOW_MS as f64;
    let current = counter(name, window);
    let previous = counter(name, window.saturating_sub(1));
    let replies = redis
        .pipeline(&[
            vec![b"INCR".to_vec(), current.clone().into_bytes()],
            vec![
                b"PEXPIRE".to_vec(),
                current.clone().into_bytes(),
                (2 * WINDOW_MS).to_string().into_bytes(),
            ],
            vec![b"GET".to_vec(), previous.into_bytes()],
        ])
        .await?;
    let count = match replies.first() {
        Some(Reply::Int(n)) => *n as f64,
        other => return Err(RedisError(format!("INCR answered {other:?}"))),
    };
    let before = match replies.get(2) {
        Some(Reply::Bulk(Some(v))) => std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0),
        _ => 0.0,
    };
    let limit = per_min.max(1) as f64;
    let weighted_before = before * (1.0 - elapsed);
    if count + weighted_before <= limit {
        return Ok(Take::Granted(SharedUnit { counter: current }));
    }
    // Not ours after all: the unit goes back at once.
    redis
        .command(vec![b"DECR".to_vec(), current.into_bytes()])
        .await?;
    Ok(Take::Refused(retry_after_s(
        count - 1.0,
        before,
        elapsed,
        limit,
    )))
}

/// Seconds until a budget of `limit` with `count` units this window and
/// `before` in the last has room for one more.
fn retry_after_s(count: f64, before: f64, elapsed: f64, limit: f64) -> u64 {
    let to_window_end = (1.0 - elapsed) * (WINDOW_MS / 1000) as f64;
    let seconds = if count + 1.0 > limit {
        // This window alone is full: it has to end, and then, as the
        // previous window, weigh little enough to leave room for one.
        let weight_needed = ((limit - 1.0) / count.max(1.0)).clamp(0.0, 1.0);
        to_window_end + (1.0 - weight_needed) * (WINDOW_MS / 1000) as f64
    } else if before <= 0.0 {
        0.0
    } else {
        // The previous window's weight must fall by enough for one unit.
        let needed_elapsed = 1.0 - (limit - count - 1.0).max(0.0) / before;
        (needed_elapsed - elapsed).max(0.0) * (WINDOW_MS / 1000) as f64
    };
    // A hair below the next whole second is that second (float noise).
    ((seconds - 1e-9).ceil() as u64).max(1)
}

/// Gives a unit back (the guess was right, or never a guess).
pub async fn give_back(redis: &Redis, unit: &SharedUnit) -> Result<(), RedisError> {
    redis
        .command(vec![b"DECR".to_vec(), unit.counter.clone().into_bytes()])
        .await
        .map(|_| ())
}

fn known_key(account: &str, client: IpAddr) -> String {
    format!("dm:known:{{{account}}}:{client}")
}

/// Whether `client` logged into `account` within the remembered time.
pub async fn is_known(redis: &Redis, account: &str, client: IpAddr) -> Result<bool, RedisError> {
    let reply = redis
        .command(vec![
            b"EXISTS".to_vec(),
            known_key(account, client).into_bytes(),
        ])
        .await?;
    Ok(matches!(reply, Reply::Int(n) if n > 0))
}

/// Remembers for `ttl_s` that `client` logged into `account`.
pub async fn remember(
    redis: &Redis,
    account: &str,
    client: IpAddr,
    ttl_s: u64,
) -> Result<(), RedisError> {
    redis
        .command(vec![
            b"SET".to_vec(),
            known_key(account, client).into_bytes(),
            b"1".to_vec(),
            b"EX".to_vec(),
            ttl_s.max(1).to_string().into_bytes(),
        ])
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_window_waits_for_its_end_and_then_until_it_weighs_less() {
        // 10 of 10 half-way through: 30 s to the window's end, then the
        // full window must weigh at most 9/10: 6 s into the next.
        assert_eq!(retry_after_s(10.0, 0.0, 0.5, 10.0), 36);
        assert_eq!(retry_after_s(10.0, 0.0, 0.999, 10.0), 7);
    }

    #[test]
    fn a_full_previous_window_waits_until_it_weighs_less() {
        // 2 this minute, 10 the last, a budget of 10, 10 % into the minute:
        // the last window must weigh at most 7, i.e. 30 % elapsed: 12 s more.
        assert_eq!(retry_after_s(2.0, 10.0, 0.1, 10.0), 12);
    }

    #[test]
    fn both_windows_of_a_budget_share_a_cluster_slot() {
        let a = counter("user:game1:bob", 7);
        let b = counter("user:game1:bob", 8);
        assert_eq!(
            crate::redis::cluster::slot(a.as_bytes()),
            crate::redis::cluster::slot(b.as_bytes())
        );
    }
}
