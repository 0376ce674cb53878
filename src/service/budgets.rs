//! The node's budgets as the service layer applies them, for both front
//! ends alike: requests per client address, and failed logins and
//! handshakes per address and per account (SPEC §2, §3).
//!
//! The buckets live in [`crate::rate_limit`], each on its owner shard; this
//! file routes a question to the owner over the mesh when the budget is not
//! this shard's.

use super::counters::Limit;
use super::{ApiError, Services};
use crate::mesh::ShardMessage;
use crate::rate_limit::{Decision, LimitKey, RateLimiter};
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Whether an error means "wrong credentials" (a guess that failed).
fn is_failed_guess(e: &ApiError) -> bool {
    e.code == 401 || e.code == super::business::BAD_CREDENTIALS
}

impl Services {
    /// This shard's part of the node's budgets.
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// Takes one request of `client`'s per-node budget
    /// (`auth.rate_limit_per_ip_per_min`, hot-reloaded); 429 past it.
    pub async fn admit(&self, client: IpAddr) -> Result<(), ApiError> {
        let per_min = self.node.limits.requests_per_ip.load(Ordering::Relaxed);
        let key = LimitKey::Requests(client);
        let decision = match self.limiter.take(&key, per_min, Instant::now()) {
            Decision::AskOwner { owner, want } => {
                let grant = self
                    .peers()
                    .ask(owner, |reply| ShardMessage::Lease {
                        key: key.clone(),
                        want,
                        per_min,
                        reply,
                    })
                    .await;
                match grant {
                    Some(grant) => self.limiter.leased(&key, grant, Instant::now()),
                    // The owner is gone (shutting down): do not refuse for it.
                    None => Decision::Allow,
                }
            }
            other => other,
        };
        match decision {
            Decision::Allow | Decision::AskOwner { .. } => Ok(()),
            Decision::Refuse(retry) => {
                self.counters().limited(Limit::Requests);
                Err(ApiError::too_many("too many requests", retry))
            }
        }
    }

    /// Owner side of a failure budget: looks, and with `record` spends one.
    pub fn failure_budget_here(
        &self,
        key: &LimitKey,
        per_min: u32,
        record: bool,
    ) -> Result<(), u64> {
        let now = Instant::now();
        if record {
            self.limiter.grant(key, 1, per_min, now).map(|_| ())
        } else {
            self.limiter.check_room(key, per_min, now)
        }
    }

    async fn failure_budget(&self, key: LimitKey, per_min: u32, record: bool) -> Result<(), u64> {
        if self.limiter.owns(&key) {
            return self.failure_budget_here(&key, per_min, record);
        }
        let owner = key.owner(self.node.gauges.len());
        self.peers()
            .ask(owner, |reply| ShardMessage::Failure {
                key,
                per_min,
                record,
                reply,
            })
            .await
            .unwrap_or(Ok(()))
    }

    fn failure_keys(&self, client: IpAddr, account: Option<&str>) -> Vec<(LimitKey, u32)> {
        let limits = &self.node.limits;
        let mut keys = vec![(
            LimitKey::FailuresOfIp(client),
            limits.failures_per_ip.load(Ordering::Relaxed),
        )];
        if let Some(a) = account {
            keys.push((
                LimitKey::FailuresOfUser(a.to_string()),
                limits.failures_per_user.load(Ordering::Relaxed),
            ));
        }
        keys
    }

    /// Runs a credential check (`attempt`) for `client` and, when it names
    /// one, `account`: refused with 429 before any work while either has
    /// spent its failure budget, and counted against both when it fails.
    pub async fn guarded<T>(
        &self,
        client: IpAddr,
        account: Option<&str>,
        attempt: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        for (key, per_min) in self.failure_keys(client, account) {
            if let Err(retry) = self.failure_budget(key, per_min, false).await {
                self.counters().limited(Limit::Failures);
                return Err(ApiError::too_many(
                    "too many failed attempts; try again later",
                    retry,
                ));
            }
        }
        let result = attempt.await;
        if let Err(e) = &result {
            if is_failed_guess(e) {
                for (key, per_min) in self.failure_keys(client, account) {
                    let _ = self.failure_budget(key, per_min, true).await;
                }
            }
        }
        result
    }
}
