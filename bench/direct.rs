//! `--scenario sql-direct`: the database's own limit on this machine. The
//! same transactions as `mixed` (per 10: 7 player reads, 1 item use, 1
//! order create, then its payment), with the server's own SQL and
//! transactions (`datamiddleware::store::sql_store`) but an independent
//! client — the blocking `mysql` crate, see `direct_backend.rs` — straight
//! against the database from the same number of connections, one blocking
//! thread and connection each: no HTTP, no cache, no executor. `mixed`
//! through the server divided by this line says what the server costs on
//! top of the database.

use crate::direct_backend::DirectBackend;
use crate::report::Tally;
use datamiddleware::config::{redact, Durability};
use datamiddleware::store::sql_store::SqlStore;
use datamiddleware::store::{Currency, NewOrder, Store, StoreError};
use futures_lite::future::block_on;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What the threads share.
pub struct DirectPlan {
    /// The game database's URL (`mysql://...`).
    pub url: String,
    /// Connections (one thread each).
    pub connections: usize,
    /// Seeded players: their ids.
    pub players: Vec<i64>,
    /// Recording starts at this instant.
    pub measure_from: Instant,
    /// Sending stops at this instant.
    pub until: Instant,
    /// Set by SIGINT/SIGTERM.
    pub stop: Arc<AtomicBool>,
    /// Who the audit log records (the bench acts as a game server).
    pub actor: datamiddleware::audit::Actor,
}

/// Runs the load; the merged tally of every connection.
pub fn run(plan: DirectPlan) -> Result<Tally, String> {
    let plan = Arc::new(plan);
    let threads: Vec<_> = (0..plan.connections)
        .map(|index| {
            let plan = plan.clone();
            std::thread::Builder::new()
                .name(format!("sql-{index}"))
                .spawn(move || {
                    let backend = DirectBackend::connect(&plan.url, Durability::Full)
                        .map_err(|e| format!("cannot connect to {}: {e}", redact(&plan.url)))?;
                    Ok::<_, String>(connection(&SqlStore::new(backend), &plan, index))
                })
                .map_err(|e| format!("cannot start a load thread: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let mut total = Tally::new();
    for t in threads {
        let tally = t
            .join()
            .map_err(|_| "a load thread panicked".to_string())??;
        total.merge(&tally);
    }
    Ok(total)
}

/// One connection's closed loop, `mixed`'s pattern.
fn connection(db: &dyn Store, plan: &DirectPlan, index: usize) -> Tally {
    let mut tally = Tally::new();
    let mut counter: usize = 0;
    let mut pending: Option<String> = None;
    while Instant::now() < plan.until && !plan.stop.load(Ordering::Relaxed) {
        counter += 1;
        let player = plan.players[(index + counter * 7) % plan.players.len().max(1)];
        let now_ms = datamiddleware::clock::now_ms();
        let actor = &plan.actor;
        let t0 = Instant::now();
        let outcome: Result<(), StoreError> = match (counter % 10, pending.take()) {
            (_, Some(order)) => block_on(db.pay_order(&order, actor, now_ms)).map(|_| ()),
            (7, None) => block_on(db.use_item(player, "potion", 1, actor, now_ms)).map(|_| ()),
            (8, None) => block_on(db.create_order(
                &NewOrder {
                    order_id: datamiddleware::service::orders::new_order_id(now_ms),
                    player_id: player,
                    item_id: "potion".into(),
                    quantity: 1,
                    currency: Currency::Gold,
                    idempotency_key: None,
                    now_ms,
                },
                actor,
            ))
            .map(|done| pending = Some(done.value.0.order_id)),
            _ => block_on(db.player(player)).map(|_| ()),
        };
        if t0 >= plan.measure_from {
            let kind = outcome.err().map(|e| match e {
                StoreError::Unavailable(_) => "sql_unavailable".to_string(),
                StoreError::Conflict(_) => "sql_conflict".to_string(),
                StoreError::Rule(r) => format!("sql_rule_{r:?}"),
                StoreError::Internal(_) => "sql_internal".to_string(),
            });
            tally.record(t0.elapsed(), kind);
        }
    }
    tally
}
