//! The MySQL audit tail (SPEC §13): a transaction's audit records written
//! with its `COMMIT`, in one round trip.
//!
//! An append links its records after this shard's guess of each chain's
//! head (the head it last saw committed) and leaves them here. The commit
//! is one `COM_QUERY` of three statements: the records' `INSERT`, the head
//! rows' upsert and `COMMIT`. The server runs them in order and stops at
//! the first that fails, so the `COMMIT` runs only if every record found
//! its place free — the `(chain, seq)` key is the check of the guess: a
//! record after a stale head takes a place another commit already holds
//! (or waits for the commit holding it, then finds it taken). Then nothing
//! of the tail was written (one statement is all or nothing), the
//! transaction is still open, and the head rows are read `FOR UPDATE`, the
//! records relinked after them and the three statements sent again.
//!
//! Values go into the text as numbers and hex string literals
//! (`_utf8mb4 X'…'`): nothing a client sent is ever spliced in as SQL.

use super::sql::AuditTail;
use crate::audit::{relink, AuditRecord, GENESIS};
use crate::mysql::{MysqlError, PooledConn, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write;

/// Audit chain heads (seq, hash) by chain, as this shard last saw them
/// committed in one database: the guesses an append links its records
/// after. Each shard keeps its own (no lock shared across cores): a head
/// another shard or node moved since is a wrong guess, which costs the
/// commit one more round trip, never a wrong record.
pub(super) type Guesses = RefCell<HashMap<i64, (i64, String)>>;

/// A transaction's audit records, waiting for its commit.
pub(super) struct Tail<'a> {
    guesses: &'a Guesses,
    records: Vec<AuditRecord>,
}

impl<'a> Tail<'a> {
    /// An empty tail linking on `guesses`.
    pub(super) fn new(guesses: &'a Guesses) -> Tail<'a> {
        Tail {
            guesses,
            records: Vec::new(),
        }
    }

    /// The records left so far, the tail emptied.
    pub(super) fn take(&mut self) -> Vec<AuditRecord> {
        std::mem::take(&mut self.records)
    }
}

impl AuditTail for Tail<'_> {
    fn head(&self, chain: i64) -> Option<(i64, String)> {
        match self.records.iter().rev().find(|r| r.chain == chain) {
            Some(last) => Some((last.seq, last.hash.clone())),
            None => self.guesses.borrow().get(&chain).cloned(),
        }
    }

    fn push(&mut self, records: Vec<AuditRecord>) {
        self.records.extend(records);
    }
}

/// Writes `records` and commits, in one round trip when their guesses
/// hold; relinks them after the locked heads and tries once more when one
/// did not. `records` end as committed (their guesses-to-be); an error
/// leaves the transaction to be rolled back.
pub(super) async fn commit(
    conn: &mut PooledConn,
    records: &mut [AuditRecord],
) -> Result<(), MysqlError> {
    // Chain order, then place: the order every tail takes its locks in.
    records.sort_by_key(|r| (r.chain, r.seq));
    match run(conn, &script(records)).await {
        Err(e) if e.is_duplicate_key() => {}
        other => return other,
    }
    let heads = locked_heads(conn, records).await?;
    for chain_records in records.chunk_by_mut(|a, b| a.chain == b.chain) {
        let chain = chain_records[0].chain;
        let (seq, hash) = heads
            .get(&chain)
            .cloned()
            .unwrap_or_else(|| (0, GENESIS.to_string()));
        relink(chain_records, seq, hash);
    }
    match run(conn, &script(records)).await {
        Err(e) if e.is_duplicate_key() => Err(MysqlError::Usage(format!(
            "an audit record's place is taken past its chain's locked head row \
             (audit_heads): the chain's records and head disagree ({e})"
        ))),
        other => other,
    }
}

/// Runs `statements` in order, stopping at the first that fails: one
/// `COM_QUERY` where the session allows several statements in one, else
/// one at a time.
async fn run(conn: &mut PooledConn, statements: &[String]) -> Result<(), MysqlError> {
    if conn.multi_statements() {
        return conn.query(&statements.join(";")).await.map(drop);
    }
    for statement in statements {
        conn.query(statement).await?;
    }
    Ok(())
}

/// The records' `INSERT`, their chains' head rows moved to their last
/// records, and `COMMIT`.
fn script(records: &[AuditRecord]) -> Vec<String> {
    let mut insert = String::from(
        "INSERT INTO audit_records (chain, seq, at, actor_role, actor_id, client, node, \
         action, subject, details, prev_hash, hash) VALUES ",
    );
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            insert.push(',');
        }
        let _ = write!(insert, "({}, {}, {}", r.chain, r.seq, r.at);
        for text in [
            &r.actor.role,
            &r.actor.id,
            &r.actor.client,
            &r.actor.node,
            &r.action,
            &r.subject,
            &r.details,
            &r.prev_hash,
            &r.hash,
        ] {
            insert.push_str(", ");
            push_text(&mut insert, text);
        }
        insert.push(')');
    }
    let mut heads = String::from("INSERT INTO audit_heads (chain, seq, hash) VALUES ");
    let lasts = records
        .iter()
        .enumerate()
        .filter(|(i, r)| records.get(i + 1).is_none_or(|next| next.chain != r.chain));
    for (n, (_, r)) in lasts.enumerate() {
        if n > 0 {
            heads.push(',');
        }
        let _ = write!(heads, "({}, {}, ", r.chain, r.seq);
        push_text(&mut heads, &r.hash);
        heads.push(')');
    }
    heads.push_str(" ON DUPLICATE KEY UPDATE seq = VALUES(seq), hash = VALUES(hash)");
    vec![insert, heads, "COMMIT".to_string()]
}

/// `text` as a hex string literal in the column's character set.
fn push_text(out: &mut String, text: &str) {
    out.push_str("_utf8mb4 X'");
    out.push_str(&hex::encode(text));
    out.push('\'');
}

/// The head rows of `records`' chains, read and locked for the rest of the
/// transaction (a chain without one has none yet).
async fn locked_heads(
    conn: &mut PooledConn,
    records: &[AuditRecord],
) -> Result<HashMap<i64, (i64, String)>, MysqlError> {
    let mut chains: Vec<String> = records.iter().map(|r| r.chain.to_string()).collect();
    chains.dedup();
    let sql = format!(
        "SELECT chain, seq, hash FROM audit_heads WHERE chain IN ({}) ORDER BY chain FOR UPDATE",
        chains.join(", ")
    );
    let result = conn.query(&sql).await?;
    let mut heads = HashMap::new();
    for row in result.rows {
        let values = row.into_values();
        match (values.first(), values.get(1), values.get(2)) {
            (Some(chain), Some(seq), Some(Value::Bytes(hash))) => {
                let hash = String::from_utf8(hash.clone())
                    .map_err(|_| MysqlError::protocol("an audit head's hash is not text"))?;
                heads.insert(int(chain)?, (int(seq)?, hash));
            }
            _ => return Err(MysqlError::protocol("an audit head row is short")),
        }
    }
    Ok(heads)
}

/// An integer from the text protocol (digits as bytes).
fn int(v: &Value) -> Result<i64, MysqlError> {
    match v {
        Value::Bytes(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| MysqlError::protocol("an audit head's number is not an integer")),
        Value::Int(i) => Ok(*i),
        _ => Err(MysqlError::protocol(
            "an audit head's number is not an integer",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{link, Actor, AuditDraft};

    #[test]
    fn the_script_inserts_every_record_moves_each_head_to_its_last_and_commits() {
        let draft = |subject: &str, details: &str| AuditDraft {
            action: "wallet.change".into(),
            subject: subject.into(),
            details: details.into(),
        };
        let actor = Actor::system("it's", "n1");
        let (a, b) = (draft("player:1", "{\"x\":1}"), draft("player:1", "'; DROP"));
        let mut records = link(3, 7, "h7".into(), &actor, &[&a, &b], 5);
        records.extend(link(9, 0, GENESIS.into(), &actor, &[&a], 5));
        let s = script(&records);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].matches("),(").count(), 2);
        // No quote of a value reaches the SQL unencoded.
        assert!(!s[0].contains("DROP") && !s[0].contains("it's"));
        assert!(s[0].contains(&hex::encode("'; DROP")));
        assert!(s[1].starts_with("INSERT INTO audit_heads"));
        assert!(s[1].contains(&format!(
            "(3, 9, _utf8mb4 X'{}')",
            hex::encode(&records[1].hash)
        )));
        assert!(s[1].contains(&format!(
            "(9, 1, _utf8mb4 X'{}')",
            hex::encode(&records[2].hash)
        )));
        assert!(!s[1].contains(&hex::encode(&records[0].hash)));
        assert_eq!(s[2], "COMMIT");
    }
}
