//! The audit log's SQL (SPEC §13): [`append`] adds a change's records in
//! the change's own transaction, as its last step — each chain's head row
//! locked in chain order, so two changes on the same chain link one after
//! the other and changes on other chains do not wait; [`AuditStore`] reads
//! records, heads and checkpoints for the API, the checkpoint task and the
//! verifier.

use super::{row_of, SqlStore};
use crate::audit::{chain_of, record_hash, Actor, AuditDraft, AuditRecord, Checkpoint};
use crate::store::sql::{Backend, Row, SqlConn, SqlValue};
use crate::store::{AuditFilter, AuditStore, StoreError, StoreFuture};

const RECORD_COLUMNS: &str = "chain, seq, at, actor_role, actor_id, client, node, action, \
                              subject, details, prev_hash, hash";
const CHECKPOINT_COLUMNS: &str = "chain, seq, hash, at, node, public_key, signature";

fn record_from(r: &Row) -> Result<AuditRecord, StoreError> {
    row_of("audit_records", r, |r| {
        Ok(AuditRecord {
            chain: r.int(0)?,
            seq: r.int(1)?,
            at: r.int(2)?,
            actor: Actor {
                role: r.text(3)?,
                id: r.text(4)?,
                client: r.text(5)?,
                node: r.text(6)?,
            },
            action: r.text(7)?,
            subject: r.text(8)?,
            details: r.text(9)?,
            prev_hash: r.text(10)?,
            hash: r.text(11)?,
        })
    })
}

fn checkpoint_from(r: &Row) -> Result<Checkpoint, StoreError> {
    row_of("audit_checkpoints", r, |r| {
        Ok(Checkpoint {
            chain: r.int(0)?,
            seq: r.int(1)?,
            hash: r.text(2)?,
            at: r.int(3)?,
            node: r.text(4)?,
            public_key: r.text(5)?,
            signature: r.text(6)?,
        })
    })
}

/// Adds `drafts` by `actor` at `now_ms` to their chains, in the caller's
/// transaction. Call it last in the transaction: the chain heads are the
/// last rows a change locks.
pub(super) async fn append(
    c: &mut dyn SqlConn,
    actor: &Actor,
    drafts: Vec<AuditDraft>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut by_chain: Vec<(i64, AuditDraft)> = drafts
        .into_iter()
        .map(|d| (chain_of(&d.subject), d))
        .collect();
    by_chain.sort_by_key(|(chain, _)| *chain);
    let mut i = 0;
    while i < by_chain.len() {
        let chain = by_chain[i].0;
        let (mut seq, mut prev) = head_of(c, chain).await?;
        while i < by_chain.len() && by_chain[i].0 == chain {
            let draft = &by_chain[i].1;
            seq += 1;
            let mut record = AuditRecord {
                chain,
                seq,
                at: now_ms,
                actor: actor.clone(),
                action: draft.action.clone(),
                subject: draft.subject.clone(),
                details: draft.details.clone(),
                prev_hash: prev,
                hash: String::new(),
            };
            record.hash = record_hash(&record);
            c.exec(
                &format!(
                    "INSERT INTO audit_records ({RECORD_COLUMNS}) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                args![
                    chain,
                    seq,
                    now_ms,
                    &record.actor.role,
                    &record.actor.id,
                    &record.actor.client,
                    &record.actor.node,
                    &record.action,
                    &record.subject,
                    &record.details,
                    &record.prev_hash,
                    &record.hash
                ],
            )
            .await?;
            prev = record.hash;
            i += 1;
        }
        match c.audit_heads() {
            Some(heads) => heads.set_head(chain, seq, prev),
            None => {
                c.exec(
                    "UPDATE audit_heads SET seq = ?, hash = ? WHERE chain = ?",
                    args![seq, &prev, chain],
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// A chain's head (seq, hash), locked for the transaction: from the
/// backend's memory (SQLite, its file's only writer), else the chain's row
/// of `audit_heads` held `FOR UPDATE` — the lock that orders appends.
async fn head_of(c: &mut dyn SqlConn, chain: i64) -> Result<(i64, String), StoreError> {
    let known = c.audit_heads().map(|heads| heads.head(chain));
    match known {
        Some(Some(head)) => return Ok(head),
        Some(None) => {
            // First append of this chain in this process: its newest record.
            let newest = c
                .query_one(
                    "SELECT seq, hash FROM audit_records WHERE chain = ? ORDER BY seq DESC LIMIT 1",
                    args![chain],
                )
                .await?;
            return match newest {
                Some(r) => row_of("audit_records", &r, |r| Ok((r.int(0)?, r.text(1)?))),
                None => Ok((0, crate::audit::GENESIS.to_string())),
            };
        }
        None => {}
    }
    let lock = c.dialect().for_update();
    let select = format!("SELECT seq, hash FROM audit_heads WHERE chain = ?{lock}");
    if let Some(head) = c.query_one(&select, args![chain]).await? {
        return row_of("audit_heads", &head, |r| Ok((r.int(0)?, r.text(1)?)));
    }
    // The chain's first record: its head row is made now (a change racing
    // to make the same one waits, then finds it).
    let made = c
        .exec(
            "INSERT INTO audit_heads (chain, seq, hash) VALUES (?, 0, ?)",
            args![chain, crate::audit::GENESIS],
        )
        .await;
    match made {
        Ok(_) | Err(StoreError::Conflict(_)) => {}
        Err(e) => return Err(e),
    }
    let head = c
        .query_one(&select, args![chain])
        .await?
        .ok_or_else(|| StoreError::Internal(format!("audit chain {chain} has no head")))?;
    row_of("audit_heads", &head, |r| Ok((r.int(0)?, r.text(1)?)))
}

impl<B: Backend> AuditStore for SqlStore<B> {
    fn record_audit<'a>(
        &'a self,
        actor: &'a Actor,
        drafts: &'a [AuditDraft],
        now_ms: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.write(async move |c| append(c, actor, drafts.to_vec(), now_ms).await))
    }

    fn audit_records<'a>(&'a self, filter: &'a AuditFilter) -> StoreFuture<'a, Vec<AuditRecord>> {
        Box::pin(self.read_one(async move |c| {
            let mut sql = format!("SELECT {RECORD_COLUMNS} FROM audit_records WHERE 1 = 1");
            let mut args: Vec<SqlValue> = Vec::new();
            if let Some(actor) = &filter.actor {
                sql.push_str(" AND actor_id = ?");
                args.push(SqlValue::Text(actor.clone()));
            }
            if let Some(subject) = &filter.subject {
                // A subject's records are all in its chain: a key range.
                sql.push_str(" AND chain = ? AND subject = ?");
                args.push(SqlValue::Int(chain_of(subject)));
                args.push(SqlValue::Text(subject.clone()));
            }
            if let Some(action) = &filter.action {
                sql.push_str(" AND action = ?");
                args.push(SqlValue::Text(action.clone()));
            }
            if let Some((at, chain, seq)) = filter.after {
                sql.push_str(
                    " AND (at > ? OR (at = ? AND (chain > ? OR (chain = ? AND seq > ?))))",
                );
                args.extend([at, at, chain, chain, seq].map(SqlValue::Int));
            }
            sql.push_str(" ORDER BY at, chain, seq LIMIT ?");
            args.push(SqlValue::Int(filter.limit));
            c.query(&sql, &args)
                .await?
                .iter()
                .map(record_from)
                .collect()
        }))
    }

    fn audit_chain(
        &self,
        chain: i64,
        after_seq: i64,
        limit: i64,
    ) -> StoreFuture<'_, Vec<AuditRecord>> {
        Box::pin(self.read_one(async move |c| {
            c.query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM audit_records WHERE chain = ? AND seq > ? \
                     ORDER BY seq LIMIT ?"
                ),
                args![chain, after_seq, limit],
            )
            .await?
            .iter()
            .map(record_from)
            .collect()
        }))
    }

    fn audit_heads(&self) -> StoreFuture<'_, Vec<(i64, i64, String)>> {
        Box::pin(self.read_one(async move |c| {
            // From the records: SQLite keeps its heads in memory, not in
            // `audit_heads`.
            c.query(
                "SELECT chain, seq, hash FROM audit_records WHERE (chain, seq) IN \
                 (SELECT chain, MAX(seq) FROM audit_records GROUP BY chain) ORDER BY chain",
                &[],
            )
            .await?
            .iter()
            .map(|r| row_of("audit_heads", r, |r| Ok((r.int(0)?, r.int(1)?, r.text(2)?))))
            .collect()
        }))
    }

    fn audit_head_rows(&self) -> StoreFuture<'_, Vec<(i64, i64, String)>> {
        Box::pin(self.read_one(async move |c| {
            c.query(
                "SELECT chain, seq, hash FROM audit_heads ORDER BY chain",
                &[],
            )
            .await?
            .iter()
            .map(|r| row_of("audit_heads", r, |r| Ok((r.int(0)?, r.int(1)?, r.text(2)?))))
            .collect()
        }))
    }

    fn audit_checkpoints(&self) -> StoreFuture<'_, Vec<Checkpoint>> {
        Box::pin(self.read_one(async move |c| {
            c.query(
                &format!("SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY chain, seq"),
                &[],
            )
            .await?
            .iter()
            .map(checkpoint_from)
            .collect()
        }))
    }

    fn last_audit_checkpoints(&self) -> StoreFuture<'_, Vec<(i64, i64)>> {
        Box::pin(self.read_one(async move |c| {
            c.query(
                "SELECT chain, MAX(seq) FROM audit_checkpoints GROUP BY chain ORDER BY chain",
                &[],
            )
            .await?
            .iter()
            .map(|r| row_of("audit_checkpoints", r, |r| Ok((r.int(0)?, r.int(1)?))))
            .collect()
        }))
    }

    fn add_audit_checkpoints<'a>(&'a self, checkpoints: &'a [Checkpoint]) -> StoreFuture<'a, u64> {
        Box::pin(self.write(async move |c| {
            let mut added = 0;
            for cp in checkpoints {
                // Another node signed the same head first: one is enough.
                let seen = c
                    .query_one(
                        "SELECT 1 FROM audit_checkpoints WHERE chain = ? AND seq = ?",
                        args![cp.chain, cp.seq],
                    )
                    .await?
                    .is_some();
                if seen {
                    continue;
                }
                let put = c
                    .exec(
                        &format!(
                            "INSERT INTO audit_checkpoints ({CHECKPOINT_COLUMNS}) \
                             VALUES (?, ?, ?, ?, ?, ?, ?)"
                        ),
                        args![
                            cp.chain,
                            cp.seq,
                            &cp.hash,
                            cp.at,
                            &cp.node,
                            &cp.public_key,
                            &cp.signature
                        ],
                    )
                    .await;
                match put {
                    Ok(n) => added += n,
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(added)
        }))
    }
}

/// A draft of `action` on `subject` with `details`.
pub(super) fn draft(action: &str, subject: String, details: serde_json::Value) -> AuditDraft {
    AuditDraft {
        action: action.to_string(),
        subject,
        details: details.to_string(),
    }
}

/// The subject of a change to a player.
pub(super) fn player(id: i64) -> String {
    format!("player:{id}")
}
