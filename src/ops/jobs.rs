//! The cluster's singleton jobs (SPEC §7), run by shard 0 under a lease
//! and a fencing token.

use super::Operations;
use std::rc::Rc;
use std::time::Duration;

/// Shard 0's singleton jobs (SPEC §7): every `cluster.job_interval_ms`,
/// for each job, takes or renews its lease in Redis (with `cluster.redis`)
/// and, while this node holds it, runs the job on every game's database
/// under the lease's fencing token. The database refuses the write once a
/// newer holder has written with a newer token, so a holder paused past its
/// lease (GC, SIGSTOP) cannot act after its successor: no clock is trusted.
/// A refused holder raises the token counter past the database's and gives
/// up its lease (`Registry::yield_stale_lease`), so jobs resume when Redis
/// lost its counter. A stand-alone node runs the jobs itself without a lease,
/// unless a cluster's holder ran them on the same database within a minute.
pub async fn run_singleton_jobs(ops: Rc<Operations>) {
    use crate::store::{FencedJob, FencedRun};
    let cfg = ops.config().clone();
    let every = Duration::from_millis(cfg.cluster.job_interval_ms);
    let lease = Duration::from_millis(cfg.cluster.job_lease_ms);
    let delay = Duration::from_millis(cfg.cluster.job_write_delay_ms);
    let holder = format!("{}/{}", cfg.node.id, ops.node().instance);
    let pending_ttl_ms = (cfg.orders.pending_ttl_s as i64).saturating_mul(1000);
    let token_life_ms = (cfg.auth.access_ttl_s as i64 + 60).saturating_mul(1000);
    let keep_notices_ms = (cfg.realtime.keep_days as i64).saturating_mul(86_400_000);
    let mut failing = false;
    loop {
        glommio::timer::sleep(every).await;
        if ops.is_draining() || ops.node().is_shutting_down() {
            return;
        }
        let now = crate::clock::now_ms();
        let jobs = [
            FencedJob::ExpireOrders {
                created_before_ms: now.saturating_sub(pending_ttl_ms),
            },
            FencedJob::PurgeSessions {
                expired_before_ms: now,
                revoked_before_ms: now.saturating_sub(token_life_ms),
            },
            FencedJob::PurgeNotifications {
                created_before_ms: now.saturating_sub(keep_notices_ms),
            },
            FencedJob::ResetLeaderboards {
                now_ms: ops.services().board_clock(),
                keep_periods: cfg.leaderboards.keep_periods as i64,
            },
        ];
        for job in jobs {
            let registry = ops.services().registry();
            let token = match registry {
                None => None,
                Some(registry) => match registry.lease(job.name(), &holder, lease).await {
                    Ok(Some(token)) => {
                        failing = false;
                        Some(token)
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        if !failing {
                            tracing::warn!(error = %e, "cannot take singleton job leases; jobs wait for Redis");
                        }
                        failing = true;
                        continue;
                    }
                },
            };
            if !delay.is_zero() {
                glommio::timer::sleep(delay).await;
            }
            for game in ops.services().games() {
                let (who, at) = (holder.clone(), crate::clock::now_ms());
                let ran = game
                    .store
                    .run(async move |s| s.run_fenced(job, token, &who, at).await)
                    .await
                    .map(|done| ops.services().delivered(&game.id, done));
                match ran {
                    Ok(FencedRun::Ran(0)) | Ok(FencedRun::ClusterActive) => {}
                    Ok(FencedRun::Ran(affected)) => {
                        tracing::info!(job = job.name(), game = %game.id, token, affected, "singleton job ran");
                        if let FencedJob::ResetLeaderboards {
                            now_ms,
                            keep_periods,
                        } = job
                        {
                            ops.services()
                                .forget_old_board_views(&game.id, now_ms, keep_periods)
                                .await;
                        }
                    }
                    Ok(FencedRun::Stale { newer }) => {
                        tracing::warn!(
                            job = job.name(),
                            game = %game.id,
                            token,
                            newer,
                            "fencing token stale: a newer holder runs this job; write refused"
                        );
                        if let Some(registry) = registry {
                            if let Err(e) =
                                registry.yield_stale_lease(job.name(), &holder, newer).await
                            {
                                tracing::warn!(job = job.name(), error = %e, "cannot give up a stale job lease");
                            }
                        }
                        // The other games wait for the next lease and token.
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(job = job.name(), game = %game.id, error = %e, "singleton job failed")
                    }
                }
            }
        }
    }
}
