//! The audit log's checkpoints (SPEC §13): every `audit.checkpoint_s`,
//! shard 0 of each node signs the head of every chain that grew since the
//! last checkpoint, stores the checkpoints in the game's database and
//! writes them to the log — a copy outside the database. In a cluster
//! several nodes may sign the same head: the first stored stays, and heads
//! only ever extend one chain (each place in it is one key of the records'
//! table, taken once), so checkpoints of different nodes never fork it.

use super::Operations;
use crate::audit::Checkpoint;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// Signs chain heads for as long as the node runs.
pub async fn checkpoint_forever(ops: Rc<Operations>) {
    let cfg = ops.config().clone();
    let every = Duration::from_secs(cfg.audit.checkpoint_s);
    let key = match ops.services().audit_key() {
        Ok(k) => k,
        Err(_) => return,
    };
    tracing::info!(public_key = %key.public_hex(), "audit checkpoints signed with this key");
    // Per game and chain, the seq of the newest checkpoint stored.
    let mut signed: HashMap<(String, i64), i64> = HashMap::new();
    let mut known: HashMap<String, bool> = HashMap::new();
    loop {
        glommio::timer::sleep(every).await;
        if ops.is_draining() || ops.node().is_shutting_down() {
            return;
        }
        for game in ops.services().games() {
            if !known.get(&game.id).copied().unwrap_or(false) {
                match game
                    .store
                    .run(async move |s| s.last_audit_checkpoints().await)
                    .await
                {
                    Ok(last) => {
                        for (chain, seq) in last {
                            signed.insert((game.id.clone(), chain), seq);
                        }
                        known.insert(game.id.clone(), true);
                    }
                    Err(e) => {
                        tracing::warn!(game = %game.id, error = %e, "audit checkpoints wait for the database");
                        continue;
                    }
                }
            }
            let heads = match game.store.run(async move |s| s.audit_heads().await).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(game = %game.id, error = %e, "audit checkpoints wait for the database");
                    continue;
                }
            };
            let now = crate::clock::now_ms();
            let fresh: Vec<Checkpoint> = heads
                .into_iter()
                .filter(|(chain, seq, _)| {
                    *seq > signed.get(&(game.id.clone(), *chain)).copied().unwrap_or(0)
                })
                .map(|(chain, seq, hash)| {
                    key.sign(
                        &game.id,
                        Checkpoint {
                            chain,
                            seq,
                            hash,
                            at: now,
                            node: cfg.node.id.clone(),
                            public_key: String::new(),
                            signature: String::new(),
                        },
                    )
                })
                .collect();
            if fresh.is_empty() {
                continue;
            }
            let stored = fresh.clone();
            match game
                .store
                .run(async move |s| s.add_audit_checkpoints(&stored).await)
                .await
            {
                Ok(_) => {
                    for c in &fresh {
                        signed.insert((game.id.clone(), c.chain), c.seq);
                        tracing::info!(game = %game.id, chain = c.chain, seq = c.seq, hash = %c.hash, at = c.at, signature = %c.signature, "audit checkpoint");
                    }
                }
                Err(e) => {
                    tracing::warn!(game = %game.id, error = %e, "audit checkpoints not stored; signed again next time")
                }
            }
        }
    }
}

/// `datamiddleware audit verify`: re-computes every chain of each game's
/// database (or of `only`) on an executor of its own; each game's
/// verification, or why it could not run.
pub fn verify_databases(
    config: &crate::config::Config,
    only: Option<&str>,
    public_keys: &[String],
) -> Result<Vec<(String, crate::service::audit::GameVerification)>, String> {
    // Public keys given: no private key needed. Else the configuration's
    // key and the keys it trusts.
    let trusted: Vec<String> = if public_keys.is_empty() {
        let key = signing_key_of(config)?;
        let mut keys = vec![key.public_hex()];
        keys.extend(config.audit.trusted_keys.iter().cloned());
        keys
    } else {
        public_keys.to_vec()
    };
    let games: Vec<(String, crate::config::GameConfig)> = match only {
        Some(g) => vec![(
            g.to_string(),
            config
                .games
                .get(g)
                .cloned()
                .ok_or_else(|| format!("game `{g}` is not in the configuration"))?,
        )],
        None => config.games.clone().into_iter().collect(),
    };
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("audit-verify")
        .spawn(move || async move {
            let mut out = Vec::new();
            for (id, game) in games {
                let url = crate::config::redact(&game.url);
                let db = crate::store::open(&game.url, 1, game.durability, false)
                    .map_err(|e| format!("game {id}: cannot open {url}: {e}"))?;
                let handle = crate::store::StoreHandle::new(db, Vec::new(), 0, 0);
                let report = crate::service::audit::verify_game(&handle, &id, &trusted)
                    .await
                    .map_err(|e| format!("game {id} ({url}): {e}"))?;
                out.push((id, report));
            }
            Ok(out)
        })
        .and_then(|executor| executor.join())
        .map_err(|e| format!("cannot run the verifier: {e}"))?
}

/// The signing key a configuration names: `audit.signing_key`, or the key
/// dev mode made (never made here).
pub fn signing_key_of(config: &crate::config::Config) -> Result<crate::audit::AuditKey, String> {
    crate::audit::keys::load(&config.audit.signing_key, &key_file_of(config), false)
}

/// Where dev mode keeps its generated key: `audit.key_file`, or beside the
/// default game's SQLite file.
pub fn key_file_of(config: &crate::config::Config) -> std::path::PathBuf {
    match config.audit.key_file.as_str() {
        "" => crate::audit::keys::default_key_file(
            config
                .games
                .get(&config.default_game)
                .map_or("", |g| g.url.as_str()),
        ),
        path => std::path::PathBuf::from(path),
    }
}
