//! The node's budgets as the service layer applies them, for both front
//! ends alike: requests per client address, and failed logins and
//! handshakes per address and per account (SPEC §2, §3).
//!
//! The buckets live in [`crate::rate_limit`], each on its owner shard; this
//! file routes a question to the owner over the mesh when the budget is not
//! this shard's. With `cluster.redis` the failure budgets are the cluster's
//! instead ([`crate::cluster::guesses`]), and this node's own are the
//! fallback while Redis is unreachable.
//!
//! What a guesser can and cannot do (docs/security.md, "Login limits"): each address
//! gets `failed_logins_per_ip_per_min` wrong guesses in all; each account
//! `failed_logins_per_user_per_min` from addresses that have not logged into
//! it, and `failed_logins_per_user_cap_per_min` from all addresses together.
//! An address that logged into the account within `known_address_ttl_s` is
//! held only to its own budget and the cap, so an attacker who spends an
//! account's budget does not lock its owner out.

use super::counters::Limit;
use super::{ApiError, Services};
use crate::clock;
use crate::cluster::guesses;
use crate::mesh::ShardMessage;
use crate::rate_limit::{BudgetOp, Decision, LimitKey, RateLimiter};
use crate::redis::link::Redis;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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

    /// Owner side of a failure budget: takes one unit (refused with the
    /// seconds until there is room) or gives one back.
    pub fn failure_budget_here(
        &self,
        key: &LimitKey,
        per_min: u32,
        op: BudgetOp,
    ) -> Result<(), u64> {
        let now = Instant::now();
        match op {
            BudgetOp::Take => self.limiter.grant(key, 1, per_min, now).map(|_| ()),
            BudgetOp::GiveBack => {
                self.limiter.give_back(key, per_min, now);
                Ok(())
            }
        }
    }

    /// Owner side of the known addresses of an account: asks, or with
    /// `remember` notes a successful login for that long.
    pub fn known_address_here(
        &self,
        account: &str,
        client: IpAddr,
        remember: Option<Duration>,
    ) -> bool {
        let now = Instant::now();
        match remember {
            Some(ttl) => {
                self.limiter.remember_known(account, client, now + ttl, now);
                true
            }
            None => self.limiter.is_known(account, client, now),
        }
    }

    /// This node's failure budget `key`, on its owner shard.
    async fn local_budget(&self, key: LimitKey, per_min: u32, op: BudgetOp) -> Result<(), u64> {
        if self.limiter.owns(&key) {
            return self.failure_budget_here(&key, per_min, op);
        }
        let owner = key.owner(self.node.gauges.len());
        self.peers()
            .ask(owner, |reply| ShardMessage::Failure {
                key,
                per_min,
                op,
                reply,
            })
            .await
            // The owner is gone (shutting down): do not refuse for it.
            .unwrap_or(Ok(()))
    }

    /// This node's record of the addresses that logged into `account`.
    async fn local_known(&self, account: &str, client: IpAddr, remember: Option<Duration>) -> bool {
        let key = LimitKey::FailuresOfUser(account.to_string());
        if self.limiter.owns(&key) {
            return self.known_address_here(account, client, remember);
        }
        let owner = key.owner(self.node.gauges.len());
        self.peers()
            .ask(owner, |reply| ShardMessage::KnownAddress {
                account: account.to_string(),
                client,
                remember,
                reply,
            })
            .await
            .unwrap_or(false)
    }

    /// The cluster's Redis, where the failure budgets are shared by every
    /// node (`cluster.redis`); `None` for a stand-alone node.
    fn shared_budgets(&self) -> Option<&Redis> {
        self.registry().map(|r| r.redis())
    }

    /// Whether `client` logged into `account` within `auth.known_address_ttl_s`.
    async fn is_known_address(&self, account: &str, client: IpAddr) -> bool {
        if self.config.auth.known_address_ttl_s == 0 {
            return false;
        }
        if let Some(redis) = self.shared_budgets() {
            match guesses::is_known(redis, account, client).await {
                Ok(known) => return known,
                Err(e) => {
                    tracing::debug!(error = %e, "known addresses unreachable; asking this node")
                }
            }
        }
        self.local_known(account, client, None).await
    }

    /// Notes a successful login of `client` into `account`, on this node and
    /// (with Redis) for the cluster.
    async fn remember_address(&self, account: &str, client: IpAddr) {
        let ttl_s = self.config.auth.known_address_ttl_s;
        if ttl_s == 0 {
            return;
        }
        if let Some(redis) = self.shared_budgets() {
            if let Err(e) = guesses::remember(redis, account, client, ttl_s).await {
                tracing::debug!(error = %e, "known address not shared");
            }
        }
        self.local_known(account, client, Some(Duration::from_secs(ttl_s)))
            .await;
    }

    /// The budgets a guess spends: the client address's (none for a login a
    /// game server relays: its address is every relayed player's), and for
    /// an account its overall cap and — unless `client` logged into it
    /// recently — its own budget, kept below the cap so that guesses from
    /// unknown addresses can never spend the cap a known address lives by.
    async fn failure_keys(
        &self,
        client: Option<IpAddr>,
        account: Option<&str>,
    ) -> Vec<(LimitKey, u32)> {
        let limits = &self.node.limits;
        let mut keys = Vec::with_capacity(3);
        if let Some(ip) = client {
            keys.push((
                LimitKey::FailuresOfIp(budget_address(ip)),
                limits.failures_per_ip.load(Ordering::Relaxed),
            ));
        }
        if let Some(a) = account {
            let cap = self.config.auth.failed_logins_per_user_cap_per_min.max(2);
            keys.push((LimitKey::FailuresOfUserOverall(a.to_string()), cap));
            let known = match client {
                Some(ip) => self.is_known_address(a, budget_address(ip)).await,
                None => false,
            };
            if !known {
                let own = limits
                    .failures_per_user
                    .load(Ordering::Relaxed)
                    .min(cap - 1);
                keys.push((LimitKey::FailuresOfUser(a.to_string()), own));
            }
        }
        keys
    }

    /// Takes one unit of each budget in `keys` — this node's, and the
    /// cluster's too when Redis shares them — or none: a budget that is
    /// spent gives back what was taken and answers with its retry time.
    async fn take_units(&self, keys: Vec<(LimitKey, u32)>) -> Result<Vec<Unit>, u64> {
        let mut taken = Vec::with_capacity(keys.len() * 2);
        for (key, per_min) in keys {
            if let Err(retry) = self.take_unit(key, per_min, &mut taken).await {
                self.give_back_units(taken).await;
                return Err(retry);
            }
        }
        Ok(taken)
    }

    /// This node's unit always — so that a Redis that stops answering falls
    /// back to a budget already spent by the same guesses, not a fresh one —
    /// and the cluster's when Redis shares the budgets.
    async fn take_unit(
        &self,
        key: LimitKey,
        per_min: u32,
        taken: &mut Vec<Unit>,
    ) -> Result<(), u64> {
        self.local_budget(key.clone(), per_min, BudgetOp::Take)
            .await?;
        taken.push(Unit::Local(key.clone(), per_min));
        if let Some(redis) = self.shared_budgets() {
            match guesses::take(redis, &shared_name(&key), per_min, clock::now_ms() as u64).await {
                Ok(guesses::Take::Granted(unit)) => taken.push(Unit::Shared(unit)),
                Ok(guesses::Take::Refused(retry)) => return Err(retry),
                // Redis is down: this node's own budget still holds.
                Err(e) => {
                    tracing::debug!(error = %e, "shared login budget unreachable; using this node's")
                }
            }
        }
        Ok(())
    }

    async fn give_back_units(&self, units: Vec<Unit>) {
        for unit in units {
            match unit {
                Unit::Local(key, per_min) => {
                    let _ = self.local_budget(key, per_min, BudgetOp::GiveBack).await;
                }
                Unit::Shared(unit) => {
                    if let Some(redis) = self.shared_budgets() {
                        if let Err(e) = guesses::give_back(redis, &unit).await {
                            tracing::debug!(error = %e, "shared login budget unit not given back");
                        }
                    }
                }
            }
        }
    }

    /// Runs a password check (`attempt`, an argon2 hash) by `guesser` at
    /// `account`. Every guess takes its unit of each failure budget *before*
    /// the password is hashed, so guesses sent at once cannot all pass a
    /// budget that only counted finished failures (issue 21); 429 when a
    /// budget is spent. A wrong guess keeps its units; anything else (a right
    /// password, a refusal that was not a guess) gives them back, and a
    /// right password from a client makes its address a known address of
    /// the account (never a relay's: it speaks for every player).
    pub async fn guarded<T>(
        &self,
        guesser: Guesser,
        account: Option<&str>,
        attempt: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let client = match guesser {
            Guesser::Client(ip) => Some(ip),
            Guesser::Relay => None,
        };
        let keys = self.failure_keys(client, account).await;
        let units = match self.take_units(keys).await {
            Ok(units) => units,
            Err(retry) => return Err(self.too_many_failures(retry)),
        };
        let result = attempt.await;
        match &result {
            Err(e) if is_failed_guess(e) => {}
            Ok(_) => {
                self.give_back_units(units).await;
                if let (Some(a), Some(ip)) = (account, client) {
                    self.remember_address(a, budget_address(ip)).await;
                }
            }
            Err(_) => self.give_back_units(units).await,
        }
        result
    }

    /// Runs the check of a high-entropy secret (a server key, an access
    /// token) from `client`: checked first — a right one is never refused,
    /// so an attacker spending an address's budget (every TCP client behind
    /// nginx shares one) cannot lock out the game servers — and only a
    /// wrong one spends a unit; past the budget, wrong ones answer 429.
    pub async fn guarded_secret<T>(
        &self,
        client: IpAddr,
        attempt: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let result = attempt.await;
        if let Err(e) = &result {
            if is_failed_guess(e) {
                let keys = self.failure_keys(Some(client), None).await;
                if let Err(retry) = self.take_units(keys).await {
                    return Err(self.too_many_failures(retry));
                }
            }
        }
        result
    }

    fn too_many_failures(&self, retry: u64) -> ApiError {
        self.counters().limited(Limit::Failures);
        ApiError::too_many("too many failed attempts; try again later", retry)
    }
}

/// Who makes a password guess, for the budgets it spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guesser {
    /// A client at this address (HTTP, or a player's own TCP connection).
    Client(IpAddr),
    /// A game server logging a player in on the player's behalf (TCP
    /// PlayerLogin on a game-server connection): the account's budgets only,
    /// with no known-address exemption — the relay's address is every
    /// relayed player's, so it is neither budgeted nor remembered.
    Relay,
}

/// The address a failure budget counts: IPv4-mapped IPv6 as the IPv4
/// address it is, and IPv6 by its /64 (one host usually holds a whole /64).
fn budget_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
        v4 => v4,
    }
}

/// A unit a guess took from one budget.
enum Unit {
    /// From this node's budget `key` of `per_min`.
    Local(LimitKey, u32),
    /// From the cluster's shared budget.
    Shared(guesses::SharedUnit),
}

/// The name of a budget in the cluster's Redis.
fn shared_name(key: &LimitKey) -> String {
    match key {
        LimitKey::Requests(ip) => format!("req:{ip}"),
        LimitKey::FailuresOfIp(ip) => format!("ip:{ip}"),
        LimitKey::FailuresOfUser(account) => format!("user:{account}"),
        LimitKey::FailuresOfUserOverall(account) => format!("all:{account}"),
    }
}

#[cfg(test)]
mod tests {
    use super::budget_address;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn mapped_ipv4_is_the_ipv4_address_and_ipv6_counts_by_its_64() {
        assert_eq!(budget_address(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(budget_address(ip("10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(
            budget_address(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            budget_address(ip("2001:db8:1:2::1"))
        );
        assert_ne!(
            budget_address(ip("2001:db8:1:2::1")),
            budget_address(ip("2001:db8:1:3::1"))
        );
    }
}
