//! Re-computes one audit chain (SPEC §13) and names the first thing wrong:
//! a record edited (its hash), deleted (a link to a record that is not
//! there), inserted (a record between two that were linked), reordered (a
//! link to a later record), or a checkpoint that is not ours or no longer
//! matches its record (a chain re-hashed after a change, or cut short).

use super::chain::{record_hash, AuditRecord, GENESIS};
use super::checkpoint::{signed_by, Checkpoint};
use std::collections::HashMap;
use std::fmt;

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tampering {
    /// A record's fields do not give its hash.
    Edited,
    /// A record is missing before this one.
    Deleted,
    /// This record was put between two linked ones.
    Inserted,
    /// Records are out of their order.
    Reordered,
    /// A checkpoint's signature is not by the trusted key.
    CheckpointSignature,
    /// A signed checkpoint's record has another hash (the chain was
    /// changed and re-hashed), or is gone (the chain was cut short).
    CheckpointMismatch,
}

impl Tampering {
    /// The name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Tampering::Edited => "edited",
            Tampering::Deleted => "deleted",
            Tampering::Inserted => "inserted",
            Tampering::Reordered => "reordered",
            Tampering::CheckpointSignature => "checkpoint signature",
            Tampering::CheckpointMismatch => "checkpoint mismatch",
        }
    }
}

/// The first problem of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The chain.
    pub chain: i64,
    /// The record (or checkpoint) `seq` where it shows.
    pub seq: i64,
    /// What kind.
    pub kind: Tampering,
    /// Said for a person.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chain {} record {}: {} — {}",
            self.chain,
            self.seq,
            self.kind.as_str(),
            self.detail
        )
    }
}

/// A chain's verification.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainReport {
    /// Records read.
    pub records: u64,
    /// The head's seq (0: empty).
    pub head: i64,
    /// The newest checkpoint that verified: (seq, when).
    pub last_checkpoint: Option<(i64, i64)>,
    /// The first problem.
    pub problem: Option<Problem>,
}

/// Verifies one chain of `game`: its records in `seq` order and its
/// checkpoints, trusting signatures by any of the public keys `trusted`
/// (hex: the current signing key's and those it replaced).
pub fn verify_chain(
    game: &str,
    chain: i64,
    records: &[AuditRecord],
    checkpoints: &[Checkpoint],
    trusted: &[String],
) -> ChainReport {
    let mut report = ChainReport {
        records: records.len() as u64,
        head: records.last().map_or(0, |r| r.seq),
        ..ChainReport::default()
    };
    let problem = |seq, kind, detail: String| Problem {
        chain,
        seq,
        kind,
        detail,
    };
    // Where each stored hash sits, to tell a moved record from a lost one.
    let place: HashMap<&str, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.hash.as_str(), i))
        .collect();
    let mut prev_hash = GENESIS;
    let mut before_prev = None::<&str>;
    for (i, r) in records.iter().enumerate() {
        if record_hash(r) != r.hash {
            report.problem = Some(problem(
                r.seq,
                Tampering::Edited,
                "its fields do not give its hash".into(),
            ));
            return report;
        }
        if r.prev_hash != prev_hash {
            let (seq, kind, detail) = match place.get(r.prev_hash.as_str()) {
                Some(&j) if j > i => (
                    r.seq,
                    Tampering::Reordered,
                    format!(
                        "it follows record {}, which is stored after it",
                        records[j].seq
                    ),
                ),
                _ if before_prev == Some(r.prev_hash.as_str()) => (
                    records[i - 1].seq,
                    Tampering::Inserted,
                    format!("record {} links past it to the record before it", r.seq),
                ),
                _ => (
                    r.seq,
                    Tampering::Deleted,
                    "the record it follows is not in the chain".into(),
                ),
            };
            report.problem = Some(problem(seq, kind, detail));
            return report;
        }
        before_prev = Some(prev_hash);
        prev_hash = &r.hash;
    }
    let by_seq: HashMap<i64, &AuditRecord> = records.iter().map(|r| (r.seq, r)).collect();
    let mut sorted: Vec<&Checkpoint> = checkpoints.iter().filter(|c| c.chain == chain).collect();
    sorted.sort_by_key(|c| c.seq);
    for c in sorted {
        if !trusted.iter().any(|k| signed_by(game, c, k)) {
            report.problem = Some(problem(
                c.seq,
                Tampering::CheckpointSignature,
                format!(
                    "the checkpoint signed at {} by {} is not signed by the trusted key",
                    c.at, c.node
                ),
            ));
            return report;
        }
        match by_seq.get(&c.seq) {
            Some(r) if r.hash == c.hash => report.last_checkpoint = Some((c.seq, c.at)),
            Some(_) => {
                report.problem = Some(problem(
                    c.seq,
                    Tampering::CheckpointMismatch,
                    "the record has another hash than the signed checkpoint: records up to it were changed and the chain re-hashed".into(),
                ));
                return report;
            }
            None => {
                report.problem = Some(problem(
                    c.seq,
                    Tampering::CheckpointMismatch,
                    format!(
                        "a signed checkpoint names this record, but the chain ends at {}",
                        report.head
                    ),
                ));
                return report;
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::super::chain::Actor;
    use super::super::checkpoint::AuditKey;
    use super::*;

    fn chain_of(n: i64) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for seq in 1..=n {
            let mut r = AuditRecord {
                chain: 0,
                seq,
                at: 1000 + seq,
                actor: Actor::system("test", "n1"),
                action: "wallet.change".into(),
                subject: format!("player:{seq}"),
                details: format!(r#"{{"delta":{seq}}}"#),
                prev_hash: out.last().map_or(GENESIS.to_string(), |p| p.hash.clone()),
                hash: String::new(),
            };
            r.hash = record_hash(&r);
            out.push(r);
        }
        out
    }

    fn kind(records: &[AuditRecord], cps: &[Checkpoint], key: &str) -> Option<(i64, Tampering)> {
        verify_chain("g", 0, records, cps, &[key.to_string()])
            .problem
            .map(|p| (p.seq, p.kind))
    }

    #[test]
    fn each_kind_of_tampering_is_named_at_its_record() {
        let key = AuditKey::generate();
        let public = key.public_hex();
        let clean = chain_of(8);
        let report = verify_chain("g", 0, &clean, &[], std::slice::from_ref(&public));
        assert_eq!((report.records, report.head, report.problem), (8, 8, None));

        let mut edited = clean.clone();
        edited[4].details = r#"{"delta":500}"#.into();
        assert_eq!(kind(&edited, &[], &public), Some((5, Tampering::Edited)));

        let mut deleted = clean.clone();
        deleted.remove(4);
        assert_eq!(kind(&deleted, &[], &public), Some((6, Tampering::Deleted)));

        // An inserted record with a valid hash, linked to record 4.
        let mut inserted = clean.clone();
        let mut extra = clean[4].clone();
        extra.details = r#"{"delta":1000000}"#.into();
        extra.prev_hash = clean[3].hash.clone();
        extra.hash = record_hash(&extra);
        inserted.insert(4, extra);
        for (i, r) in inserted.iter_mut().enumerate() {
            r.seq = i as i64 + 1;
        }
        assert_eq!(
            kind(&inserted, &[], &public),
            Some((5, Tampering::Inserted))
        );

        let mut reordered = clean.clone();
        reordered.swap(4, 5);
        reordered[4].seq = 5;
        reordered[5].seq = 6;
        assert_eq!(
            kind(&reordered, &[], &public),
            Some((5, Tampering::Reordered))
        );
    }

    #[test]
    fn checkpoints_catch_a_rehashed_chain_a_cut_one_and_a_forged_signature() {
        let key = AuditKey::generate();
        let public = key.public_hex();
        let clean = chain_of(6);
        let cp = |seq: i64, hash: &str, by: &AuditKey| {
            by.sign(
                "g",
                Checkpoint {
                    chain: 0,
                    seq,
                    hash: hash.into(),
                    at: 77,
                    node: "n1".into(),
                    public_key: String::new(),
                    signature: String::new(),
                },
            )
        };
        let good = cp(4, &clean[3].hash, &key);
        let report = verify_chain(
            "g",
            0,
            &clean,
            std::slice::from_ref(&good),
            std::slice::from_ref(&public),
        );
        assert_eq!(
            (report.problem, report.last_checkpoint),
            (None, Some((4, 77)))
        );

        // Record 2 changed and every hash after it recomputed: links hold,
        // the signed head does not.
        let mut rehashed = clean.clone();
        rehashed[1].details = r#"{"delta":999}"#.into();
        for i in 1..rehashed.len() {
            rehashed[i].prev_hash = rehashed[i - 1].hash.clone();
            rehashed[i].hash = record_hash(&rehashed[i]);
        }
        assert_eq!(
            kind(&rehashed, std::slice::from_ref(&good), &public),
            Some((4, Tampering::CheckpointMismatch))
        );
        assert_eq!(
            kind(&clean[..3], std::slice::from_ref(&good), &public),
            Some((4, Tampering::CheckpointMismatch)),
            "cut short"
        );
        let rotated = AuditKey::generate();
        let forged = cp(4, &clean[3].hash, &rotated);
        assert_eq!(
            kind(&clean, std::slice::from_ref(&forged), &public),
            Some((4, Tampering::CheckpointSignature))
        );
        // A key that was rotated out stays trusted when listed.
        let both = [public.clone(), rotated.public_hex()];
        assert_eq!(
            verify_chain("g", 0, &clean, &[forged, good.clone()], &both).problem,
            None
        );
        let mut moved = good.clone();
        moved.seq = 5;
        moved.hash = clean[4].hash.clone();
        assert_eq!(
            kind(&clean, &[moved], &public),
            Some((5, Tampering::CheckpointSignature))
        );
    }
}
