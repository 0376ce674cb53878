//! The audit log's reads (SPEC §13): `GET /api/v1/audit` (admins; filters,
//! paged), each chain's verification for the console, and
//! [`verify_game`], which `datamiddleware audit verify` runs too.

use super::Services;
use crate::audit::verify::{verify_chain, ChainReport};
use crate::audit::{AuditKey, AuditRecord, CHAINS};
use crate::clock;
use crate::error::ApiError;
use crate::service::auth::Caller;
use crate::store::{AuditFilter, StoreError, StoreHandle};
use serde_json::{json, Value};

/// Most records one page answers.
pub const MAX_LIMIT: i64 = 200;
/// Records a page answers unless asked otherwise.
const DEFAULT_LIMIT: i64 = 50;
/// Records read per query while verifying a chain.
const VERIFY_PAGE: i64 = 10_000;

/// `GET /api/v1/audit`'s query.
#[derive(Debug, Default)]
pub struct AuditQuery {
    /// Only records by this actor id (`admin:ops`, `42`, `server:game1`).
    pub actor: Option<String>,
    /// Only records about this subject (`player:42`, `item_def:sword`).
    pub subject: Option<String>,
    /// Only this action (`wallet.change`, ...).
    pub action: Option<String>,
    /// The `next_cursor` of an earlier page.
    pub after: Option<String>,
    /// Records per page (1 to [`MAX_LIMIT`]).
    pub limit: Option<i64>,
}

/// A game's verification: each chain's report.
#[derive(Debug, Clone, Default)]
pub struct GameVerification {
    /// One per chain, in chain order (chain 0 first): the backend's chains
    /// (1,024 on MySQL, 1 on SQLite) or as many as the log has.
    pub chains: Vec<ChainReport>,
}

impl GameVerification {
    /// Records verified.
    pub fn records(&self) -> u64 {
        self.chains.iter().map(|c| c.records).sum()
    }

    /// The first problem of any chain.
    pub fn first_problem(&self) -> Option<&crate::audit::verify::Problem> {
        self.chains.iter().find_map(|c| c.problem.as_ref())
    }

    /// The newest verified checkpoint of any chain: (chain, seq, when).
    pub fn last_checkpoint(&self) -> Option<(i64, i64, i64)> {
        self.chains
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.last_checkpoint.map(|(seq, at)| (i as i64, seq, at)))
            .max_by_key(|(_, _, at)| *at)
    }
}

/// Re-computes every chain of a game's database and its checkpoints,
/// trusting signatures by any of the public keys `trusted` (hex). Records
/// cut from the end of a chain show where a checkpoint signed one of them.
pub async fn verify_game(
    store: &StoreHandle,
    game_id: &str,
    trusted: &[String],
) -> Result<GameVerification, StoreError> {
    let checkpoints = store
        .run(async move |s| s.audit_checkpoints().await)
        .await?;
    let chains = store
        .run(async move |s| s.audit_chain_count().await)
        .await?;
    let mut out = GameVerification::default();
    for chain in 0..chains {
        let mut records: Vec<AuditRecord> = Vec::new();
        loop {
            let after = records.last().map_or(0, |r| r.seq);
            let page = store
                .run(async move |s| s.audit_chain(chain, after, VERIFY_PAGE).await)
                .await?;
            let full = page.len() as i64 == VERIFY_PAGE;
            records.extend(page);
            if !full {
                break;
            }
        }
        let report = verify_chain(game_id, chain, &records, &checkpoints, trusted);
        out.chains.push(report);
    }
    Ok(out)
}

fn record_json(r: &AuditRecord) -> Value {
    let details: Value =
        serde_json::from_str(&r.details).unwrap_or(Value::String(r.details.clone()));
    json!({
        "chain": r.chain,
        "seq": r.seq,
        "at": clock::rfc3339_ms(r.at),
        "actor": {
            "role": r.actor.role,
            "id": r.actor.id,
            "client": r.actor.client,
            "node": r.actor.node,
        },
        "action": r.action,
        "subject": r.subject,
        "details": details,
        "hash": r.hash,
    })
}

fn parse_cursor(c: &str) -> Option<(i64, i64, i64)> {
    let mut parts = c.split('.').map(|p| p.parse::<i64>().ok());
    match (parts.next()??, parts.next()??, parts.next()??, parts.next()) {
        (at, chain, seq, None) if at >= 0 && (0..CHAINS).contains(&chain) && seq >= 0 => {
            Some((at, chain, seq))
        }
        _ => None,
    }
}

impl Services {
    /// The checkpoint signing key (`audit.signing_key`; in dev mode the
    /// one start-up made).
    pub fn audit_key(&self) -> Result<AuditKey, ApiError> {
        AuditKey::parse(&self.config.audit.signing_key).map_err(|e| {
            tracing::error!(error = %e, "audit signing key unusable");
            ApiError::internal()
        })
    }

    /// The public keys checkpoints may be signed with: the current key's
    /// and `audit.trusted_keys` (keys rotated out).
    pub fn trusted_audit_keys(&self, key: &AuditKey) -> Vec<String> {
        let mut keys = vec![key.public_hex()];
        keys.extend(self.config.audit.trusted_keys.iter().cloned());
        keys
    }

    /// `GET /api/v1/audit` (admin): records of `game_id` oldest first,
    /// filtered, paged by `next_cursor`.
    pub async fn audit_log(
        &self,
        caller: &Caller,
        game_id: &str,
        q: AuditQuery,
    ) -> Result<Value, ApiError> {
        self.require_admin(caller)?;
        let game = self.game(game_id)?;
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
        crate::validate::in_range("limit", limit, 1..=MAX_LIMIT)?;
        let after = match q.after.as_deref() {
            None | Some("") => None,
            Some(c) => Some(parse_cursor(c).ok_or_else(|| {
                ApiError::bad_request("after is the next_cursor of an earlier page")
            })?),
        };
        for (name, v) in [
            ("actor", &q.actor),
            ("subject", &q.subject),
            ("action", &q.action),
        ] {
            if v.as_ref().is_some_and(|v| v.is_empty() || v.len() > 128) {
                return Err(ApiError::bad_request(format!(
                    "{name} must be 1 to 128 bytes"
                )));
            }
        }
        let filter = AuditFilter {
            actor: q.actor,
            subject: q.subject,
            action: q.action,
            after,
            limit: limit + 1,
        };
        let records = game
            .store
            .run(async move |s| s.audit_records(&filter).await)
            .await?;
        let more = records.len() as i64 > limit;
        let shown = &records[..records.len().min(limit as usize)];
        let next = more
            .then(|| shown.last())
            .flatten()
            .map(|r| format!("{}.{}.{}", r.at, r.chain, r.seq));
        Ok(json!({
            "game": game_id,
            "records": shown.iter().map(record_json).collect::<Vec<_>>(),
            "next_cursor": next,
        }))
    }

    /// `GET /api/v1/audit/chains` (admin): every chain of `game_id`
    /// verified — records, head, newest checkpoint, first problem.
    pub async fn audit_chains(&self, caller: &Caller, game_id: &str) -> Result<Value, ApiError> {
        self.require_admin(caller)?;
        let game = self.game(game_id)?;
        let key = self.audit_key()?;
        let report = verify_game(&game.store, game_id, &self.trusted_audit_keys(&key)).await?;
        let chains: Vec<Value> = report
            .chains
            .iter()
            .enumerate()
            .map(|(chain, c)| {
                json!({
                    "chain": chain,
                    "records": c.records,
                    "head": c.head,
                    "last_checkpoint": c.last_checkpoint.map(|(seq, at)| json!({"seq": seq, "at": clock::rfc3339_ms(at)})),
                    "ok": c.problem.is_none(),
                    "problem": c.problem.as_ref().map(|p| json!({"seq": p.seq, "kind": p.kind.as_str(), "detail": p.detail})),
                })
            })
            .collect();
        Ok(json!({
            "game": game_id,
            "public_key": key.public_hex(),
            "records": report.records(),
            "ok": report.first_problem().is_none(),
            "chains": chains,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_three_numbers() {
        assert_eq!(parse_cursor("1700.3.9"), Some((1700, 3, 9)));
        assert_eq!(parse_cursor("1700.3"), None);
        assert_eq!(parse_cursor("1700.5000.9"), None);
        assert_eq!(parse_cursor("1700.3.9.1"), None);
        assert_eq!(parse_cursor("a.b.c"), None);
    }
}
