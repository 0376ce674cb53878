//! The audit log's SQL (SPEC §13): [`append`] adds a change's records in
//! the change's own transaction, as its last step — each chain's next
//! places taken in chain order, so two changes on the same chain link one
//! after the other and changes on other chains do not wait; [`AuditStore`] reads
//! records, heads and checkpoints for the API, the checkpoint task and the
//! verifier.

use super::{row_of, SqlStore};
use crate::audit::{chain_of, record_hash, Actor, AuditDraft, AuditRecord, Checkpoint};
use crate::store::sql::{Backend, Dialect, Row, SqlConn, SqlValue};
use crate::store::{AuditFilter, AuditStore, StoreError, StoreFuture};

const RECORD_COLUMNS: &str = "chain, seq, at, actor_role, actor_id, client, node, action, \
                              subject, details, prev_hash, hash";
/// Checkpoints stored per batch (a round trip on MySQL).
const CHECKPOINT_BATCH: usize = 128;
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

/// A record's `INSERT` on MySQL, whose key is `(chain, seq)`.
const MYSQL_INSERT_RECORD: &str = "INSERT INTO audit_records (chain, seq, at, actor_role, \
                                   actor_id, client, node, action, subject, details, prev_hash, \
                                   hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
/// One more record's values after [`MYSQL_INSERT_RECORD`]'s.
const MYSQL_MORE_VALUES: &str = ", (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
/// A record's `INSERT` on SQLite, whose key is one integer ([`key`]).
const SQLITE_INSERT_RECORD: &str = "INSERT INTO audit_records (id, at, actor_role, actor_id, \
                                    client, node, action, subject, details, prev_hash, hash) \
                                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
/// One more record's values after [`SQLITE_INSERT_RECORD`]'s.
const SQLITE_MORE_VALUES: &str = ", (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Bits of a SQLite record's key that hold its `seq`; the bits above hold
/// its chain.
const SEQ_BITS: u32 = 40;
/// The highest `seq` a SQLite chain holds (about 10^12 records).
const MAX_SQLITE_SEQ: i64 = (1 << SEQ_BITS) - 1;

/// A SQLite record's key (its `rowid`): `chain` and `seq` in one integer
/// (migration 12), so that records appended in order go to the table's
/// last leaf and a full leaf is split by starting a new one — a `(chain,
/// seq)` key (a `WITHOUT ROWID` table) rebalanced the last leaves instead,
/// pages more in the log of every sixth commit. Parts out of range (a
/// paging cursor) give the key that still sorts where `(chain, seq)`
/// would: before every record of the chain for a negative `seq`, before
/// every record for a negative chain, after every record for a chain past
/// the last; `id > key(chain, seq)` then selects the records after it.
fn key(chain: i64, seq: i64) -> i64 {
    if chain < 0 {
        return -1;
    }
    (chain.min(crate::audit::CHAINS) << SEQ_BITS) + seq.clamp(-1, MAX_SQLITE_SEQ)
}

/// Times an append may find its chain's head moved before it gives up
/// with "unavailable" (each time another commit took the place it chose).
const MAX_STEPS: usize = 256;

/// Adds `drafts` by `actor` at `now_ms` to their chains, in the caller's
/// transaction. Call it last in the transaction: a record's key is the
/// last row a change locks, in chain order.
pub(super) async fn append(
    c: &mut dyn SqlConn,
    actor: &Actor,
    drafts: Vec<AuditDraft>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let chains = c.dialect().audit_chains();
    let mut by_chain: Vec<(i64, AuditDraft)> = drafts
        .into_iter()
        .map(|d| (chain_of(&d.subject, chains), d))
        .collect();
    by_chain.sort_by_key(|(chain, _)| *chain);
    let mut rest = by_chain.into_iter().peekable();
    while let Some((chain, first)) = rest.next() {
        let mut drafts = vec![first];
        while let Some((_, d)) = rest.next_if(|(next, _)| *next == chain) {
            drafts.push(d);
        }
        append_to_chain(c, chain, actor, drafts, now_ms).await?;
    }
    Ok(())
}

/// Links `drafts` after `chain`'s head and inserts them in one statement.
///
/// The records' key — `(chain, seq)`, on SQLite the one integer [`key`]
/// made of them — is what orders a chain's appends: the
/// `INSERT` takes the places after the head this process knows (SQLite's
/// exact head, or on MySQL the head this shard last saw committed), and
/// holds them until the transaction ends; another change that chose the
/// same place waits for that end, then is refused (the place is taken) and
/// steps on to the head as it now is. A head is only ever one committed
/// (or this transaction's own), and MySQL's guesses are forgotten when a
/// database may have lost commits (see `store::mysql`), so records link to
/// records that exist. Nothing but the records is written: no head row to
/// update on every change.
async fn append_to_chain(
    c: &mut dyn SqlConn,
    chain: i64,
    actor: &Actor,
    drafts: Vec<AuditDraft>,
    now_ms: i64,
) -> Result<(), StoreError> {
    if drafts.is_empty() {
        return Ok(());
    }
    let known = c.audit_heads().and_then(|heads| heads.head(chain));
    let mut head = match known {
        Some(head) => head,
        None => newest_record(c, chain).await?,
    };
    let dialect = c.dialect();
    let (first, more) = match dialect {
        Dialect::Mysql => (MYSQL_INSERT_RECORD, MYSQL_MORE_VALUES),
        Dialect::Sqlite => (SQLITE_INSERT_RECORD, SQLITE_MORE_VALUES),
    };
    let mut insert = first.to_string();
    for _ in 1..drafts.len() {
        insert.push_str(more);
    }
    for _ in 0..MAX_STEPS {
        let (seq, prev) = head;
        let last_seq = seq + drafts.len() as i64;
        if dialect == Dialect::Sqlite && last_seq > MAX_SQLITE_SEQ {
            return Err(StoreError::Internal(format!(
                "audit chain {chain} is full ({MAX_SQLITE_SEQ} records)"
            )));
        }
        // Cloned: a refused attempt links them again after another head.
        let records = link(chain, seq, prev, actor, drafts.iter().cloned(), now_ms);
        let last_hash = records.last().map(|r| r.hash.clone()).unwrap_or_default();
        let mut values = Vec::with_capacity(records.len() * 12);
        for r in records {
            put_record_values(r, dialect, &mut values);
        }
        match c.exec(&insert, &values).await {
            Ok(_) => {
                if let Some(heads) = c.audit_heads() {
                    heads.set_head(chain, last_seq, last_hash);
                }
                return Ok(());
            }
            Err(StoreError::Conflict(_)) => head = moved_head(c, chain, seq).await?,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Unavailable(format!(
        "audit chain {chain}: its head moved {MAX_STEPS} times in a row; try again"
    )))
}

/// `chain`'s head after an `INSERT` found the place after `seq` taken: its
/// newest record as this transaction reads it, when that is further on;
/// else (MySQL's repeatable read shows the transaction's snapshot, which
/// may predate the record that took the place) the record in that place,
/// read locked so that the newest committed version is what is read (a
/// share lock on one existing key: no gap is locked, no other append
/// waits).
async fn moved_head(
    c: &mut dyn SqlConn,
    chain: i64,
    seq: i64,
) -> Result<(i64, String), StoreError> {
    let newest = newest_record(c, chain).await?;
    if newest.0 > seq {
        return Ok(newest);
    }
    let taken = match c.dialect() {
        Dialect::Mysql => {
            c.query_one(
                "SELECT seq, hash FROM audit_records WHERE chain = ? AND seq = ? \
                 LOCK IN SHARE MODE",
                args![chain, seq + 1],
            )
            .await?
        }
        Dialect::Sqlite => {
            c.query_one(
                "SELECT seq, hash FROM audit_records WHERE id = ?",
                args![key(chain, seq + 1)],
            )
            .await?
        }
    };
    match taken {
        Some(r) => row_of("audit_records", &r, |r| Ok((r.int(0)?, r.text(1)?))),
        None => Err(StoreError::Internal(format!(
            "audit chain {chain}: record {} was refused as taken but is not there",
            seq + 1
        ))),
    }
}

/// `drafts` as records of `chain` after (`seq`, `prev`), each linked to the
/// one before (their strings moved into the records).
fn link(
    chain: i64,
    mut seq: i64,
    mut prev: String,
    actor: &Actor,
    drafts: impl IntoIterator<Item = AuditDraft>,
    now_ms: i64,
) -> Vec<AuditRecord> {
    drafts
        .into_iter()
        .map(|d| {
            seq += 1;
            let mut record = AuditRecord {
                chain,
                seq,
                at: now_ms,
                actor: actor.clone(),
                action: d.action,
                subject: d.subject,
                details: d.details,
                prev_hash: std::mem::take(&mut prev),
                hash: String::new(),
            };
            record.hash = record_hash(&record);
            prev = record.hash.clone();
            record
        })
        .collect()
}

/// Adds a record's values for `dialect`'s `INSERT` ([`MYSQL_INSERT_RECORD`],
/// [`SQLITE_INSERT_RECORD`]) to `out`, its strings moved, not copied.
fn put_record_values(r: AuditRecord, dialect: Dialect, out: &mut Vec<SqlValue>) {
    match dialect {
        Dialect::Mysql => out.extend([SqlValue::Int(r.chain), SqlValue::Int(r.seq)]),
        Dialect::Sqlite => out.push(SqlValue::Int(key(r.chain, r.seq))),
    }
    out.extend([
        SqlValue::Int(r.at),
        SqlValue::Text(r.actor.role),
        SqlValue::Text(r.actor.id),
        SqlValue::Text(r.actor.client),
        SqlValue::Text(r.actor.node),
        SqlValue::Text(r.action),
        SqlValue::Text(r.subject),
        SqlValue::Text(r.details),
        SqlValue::Text(r.prev_hash),
        SqlValue::Text(r.hash),
    ]);
}

/// Where `chain`'s records after `after_seq` are, on each dialect's key —
/// a `WHERE` condition, its two values, and the column that orders them:
/// MySQL's `(chain, seq)`, SQLite's one integer ([`key`]).
fn after_in_chain(
    dialect: Dialect,
    chain: i64,
    after_seq: i64,
) -> (&'static str, [SqlValue; 2], &'static str) {
    match dialect {
        Dialect::Mysql => (
            "chain = ? AND seq > ?",
            [SqlValue::Int(chain), SqlValue::Int(after_seq)],
            "seq",
        ),
        Dialect::Sqlite => (
            "id > ? AND id < ?",
            [
                SqlValue::Int(key(chain, after_seq)),
                SqlValue::Int(key(chain + 1, 0)),
            ],
            "id",
        ),
    }
}

/// `chain`'s newest record (seq, hash) as this transaction reads it, or
/// the genesis when it has none.
async fn newest_record(c: &mut dyn SqlConn, chain: i64) -> Result<(i64, String), StoreError> {
    match newest_in_chain(c, chain).await? {
        Some((_, seq, hash)) => Ok((seq, hash)),
        None => Ok((0, crate::audit::GENESIS.to_string())),
    }
}

/// `chain`'s newest record (chain, seq, hash) as this transaction reads
/// it, if it has any: one descent of the records' key.
async fn newest_in_chain(
    c: &mut dyn SqlConn,
    chain: i64,
) -> Result<Option<(i64, i64, String)>, StoreError> {
    let (within, values, order) = after_in_chain(c.dialect(), chain, -1);
    let sql = format!(
        "SELECT chain, seq, hash FROM audit_records WHERE {within} ORDER BY {order} DESC LIMIT 1"
    );
    c.query_one(&sql, &values)
        .await?
        .map(|r| {
            row_of("audit_records", &r, |r| {
                Ok((r.int(0)?, r.int(1)?, r.text(2)?))
            })
        })
        .transpose()
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
                let chains = c.dialect().audit_chains();
                if chains > 1 {
                    // A subject's records are all in its chain: a key range.
                    sql.push_str(" AND chain = ?");
                    args.push(SqlValue::Int(chain_of(subject, chains)));
                }
                // SQLite's one chain (or the 1,024 of a log begun before
                // migration 10): the records in order, filtered.
                sql.push_str(" AND subject = ?");
                args.push(SqlValue::Text(subject.clone()));
            }
            if let Some(action) = &filter.action {
                sql.push_str(" AND action = ?");
                args.push(SqlValue::Text(action.clone()));
            }
            let by_time = c.dialect() == Dialect::Mysql;
            match filter.after {
                // MySQL: by time, on its time index.
                Some((at, chain, seq)) if by_time => {
                    sql.push_str(
                        " AND (at > ? OR (at = ? AND (chain > ? OR (chain = ? AND seq > ?))))",
                    );
                    args.extend([at, at, chain, chain, seq].map(SqlValue::Int));
                }
                // SQLite: in the order written, on the records' own key
                // (no time index to keep up on every commit).
                Some((_, chain, seq)) => {
                    sql.push_str(" AND id > ?");
                    args.push(SqlValue::Int(key(chain, seq)));
                }
                None => {}
            }
            sql.push_str(if by_time {
                " ORDER BY at, chain, seq LIMIT ?"
            } else {
                " ORDER BY id LIMIT ?"
            });
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
            let (within, [a, b], order) = after_in_chain(c.dialect(), chain, after_seq);
            let sql = format!(
                "SELECT {RECORD_COLUMNS} FROM audit_records WHERE {within} ORDER BY {order} LIMIT ?"
            );
            c.query(&sql, &[a, b, SqlValue::Int(limit)])
                .await?
                .iter()
                .map(record_from)
                .collect()
        }))
    }

    fn audit_chain_count(&self) -> StoreFuture<'_, i64> {
        Box::pin(self.read_one(async move |c| {
            let mut count = c.dialect().audit_chains();
            count = count.max(top_chain(c).await? + 1);
            // The primary key's first column: one B-tree descent.
            let top = c
                .query_one(
                    "SELECT COALESCE(MAX(chain), -1) FROM audit_checkpoints",
                    &[],
                )
                .await?;
            if let Some(r) = top {
                count = count.max(row_of("audit_checkpoints", &r, |r| r.int(0))? + 1);
            }
            Ok(count.min(crate::audit::CHAINS))
        }))
    }

    fn audit_heads(&self) -> StoreFuture<'_, Vec<(i64, i64, String)>> {
        Box::pin(self.read_one(async move |c| {
            let head = |r: &Row| {
                row_of("audit_records", r, |r| {
                    Ok((r.int(0)?, r.int(1)?, r.text(2)?))
                })
            };
            if c.dialect() == crate::store::sql::Dialect::Mysql {
                // Each chain's newest record: the greatest seq per chain is
                // one descent of the key per chain ("index for group-by"),
                // then each row by its key.
                return c
                    .query(
                        "SELECT r.chain, r.seq, r.hash FROM audit_records r JOIN \
                         (SELECT chain, MAX(seq) AS seq FROM audit_records GROUP BY chain) m \
                         ON m.chain = r.chain AND m.seq = r.seq ORDER BY r.chain",
                        &[],
                    )
                    .await?
                    .iter()
                    .map(head)
                    .collect();
            }
            // SQLite: each chain's newest record, one descent of the key
            // each (one chain, unless the log began over more).
            let mut out = Vec::new();
            for chain in 0..=top_chain(c).await?.min(crate::audit::CHAINS - 1) {
                out.extend(newest_in_chain(c, chain).await?);
            }
            Ok(out)
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
            // One batch (pipelined on MySQL): a head another node signed
            // first is refused by the key, and one is enough.
            let sql = format!(
                "INSERT INTO audit_checkpoints ({CHECKPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
            );
            let batch: Vec<(&str, Vec<SqlValue>)> = checkpoints
                .iter()
                .map(|cp| {
                    let values = args![
                        cp.chain,
                        cp.seq,
                        &cp.hash,
                        cp.at,
                        &cp.node,
                        &cp.public_key,
                        &cp.signature
                    ];
                    (sql.as_str(), values.to_vec())
                })
                .collect();
            let mut added = 0;
            for part in batch.chunks(CHECKPOINT_BATCH) {
                for put in c.exec_batch(part).await? {
                    match put {
                        Ok(n) => added += n,
                        Err(StoreError::Conflict(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(added)
        }))
    }
}

/// The highest chain that holds a record, or -1 when none does: one descent
/// of the records' key.
async fn top_chain(c: &mut dyn SqlConn) -> Result<i64, StoreError> {
    let sql = match c.dialect() {
        Dialect::Mysql => "SELECT COALESCE(MAX(chain), -1) FROM audit_records",
        Dialect::Sqlite => "SELECT COALESCE(MAX(id) >> 40, -1) FROM audit_records",
    };
    match c.query_one(sql, &[]).await? {
        Some(r) => row_of("audit_records", &r, |r| r.int(0)),
        None => Ok(-1),
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
