//! Business counters of one shard, per game: what operators graph beside the
//! technical metrics — registrations, logins and failed logins, orders paid,
//! currency credited and debited — and the refusals of the rate limits
//! (per address, so per node rather than per game).

use crate::metrics::Sample;
use crate::store::Currency;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Something that happened in a game.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    /// A player registered.
    Registration,
    /// A player logged in.
    Login,
    /// A login was refused: wrong password, unknown or banned player.
    FailedLogin,
    /// An order moved to `paid`.
    OrderPaid,
}

/// Which budget refused a request with 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Limit {
    /// The per-address request budget (`auth.rate_limit_per_ip_per_min`).
    Requests,
    /// A failure budget of logins, handshakes or server-key checks.
    Failures,
}

/// One shard's counts (plain cells: only its own executor touches them).
#[derive(Default)]
pub struct BusinessCounters {
    events: RefCell<BTreeMap<(String, Event), u64>>,
    /// (game, currency, credited) → amount.
    currency: RefCell<BTreeMap<(String, Currency, bool), u64>>,
    limited: RefCell<BTreeMap<Limit, u64>>,
}

impl BusinessCounters {
    /// Counts one `event` of `game`.
    pub fn event(&self, game: &str, event: Event) {
        *self
            .events
            .borrow_mut()
            .entry((game.to_string(), event))
            .or_insert(0) += 1;
    }

    /// Counts a balance change of `delta` (credited when positive).
    pub fn currency(&self, game: &str, currency: Currency, delta: i64) {
        if delta == 0 {
            return;
        }
        let mut map = self.currency.borrow_mut();
        let n = map
            .entry((game.to_string(), currency, delta > 0))
            .or_insert(0);
        *n = n.saturating_add(delta.unsigned_abs());
    }

    /// Counts a request refused by `limit`.
    pub fn limited(&self, limit: Limit) {
        *self.limited.borrow_mut().entry(limit).or_insert(0) += 1;
    }

    /// This shard's samples.
    pub fn samples(&self, shard: usize) -> Vec<Sample> {
        let mut out = Vec::new();
        for ((game, event), n) in self.events.borrow().iter() {
            let (name, extra) = match event {
                Event::Registration => ("dm_registrations_total", ""),
                Event::Login => ("dm_logins_total", ",result=\"ok\""),
                Event::FailedLogin => ("dm_logins_total", ",result=\"failed\""),
                Event::OrderPaid => ("dm_orders_paid_total", ""),
            };
            out.push(Sample {
                name,
                labels: format!("shard=\"{shard}\",game=\"{game}\"{extra}"),
                value: *n as f64,
            });
        }
        for ((game, currency, credited), n) in self.currency.borrow().iter() {
            out.push(Sample {
                name: if *credited {
                    "dm_currency_credited_total"
                } else {
                    "dm_currency_debited_total"
                },
                labels: format!(
                    "shard=\"{shard}\",game=\"{game}\",currency=\"{}\"",
                    currency.as_str()
                ),
                value: *n as f64,
            });
        }
        for (limit, n) in self.limited.borrow().iter() {
            let limit = match limit {
                Limit::Requests => "requests",
                Limit::Failures => "failures",
            };
            out.push(Sample {
                name: "dm_rate_limited_total",
                labels: format!("shard=\"{shard}\",limit=\"{limit}\""),
                value: *n as f64,
            });
        }
        out
    }
}
