//! The config centre (SPEC §7): `GET`/`PUT /api/v1/cluster/config`, its
//! document read and replaced by admins, and shard 0's task that applies it
//! on every shard of the node. The document lives in Redis
//! ([`crate::cluster::settings`]).

use super::Operations;
use crate::cluster::settings::{HotSettings, WriteError};
use crate::logging::LogReload;
use crate::mesh;
use crate::node::FileSettings;
use crate::service::{ApiError, Caller};
use serde_json::{json, Value};
use std::rc::Rc;

impl Operations {
    fn config_centre(&self) -> Result<&crate::cluster::registry::Registry, ApiError> {
        self.services.registry().ok_or_else(|| {
            ApiError::unavailable(
                "the config centre needs cluster.redis (a stand-alone node has none)",
            )
        })
    }

    /// The hot settings, their version (for `If-Match`) and the file's
    /// defaults they override (admin).
    pub async fn cluster_config(&self, caller: &Caller) -> Result<Value, ApiError> {
        self.services.require_admin(caller)?;
        let doc = self.config_centre()?.read_settings().await.map_err(|e| {
            tracing::warn!(error = %e, "config centre unreadable");
            ApiError::unavailable("config centre (Redis) unavailable")
        })?;
        let auth = &self.config.auth;
        Ok(json!({
            "version": doc.version,
            "settings": doc.settings,
            "defaults": {
                "rate_limit_per_ip_per_min": auth.rate_limit_per_ip_per_min,
                "failed_logins_per_ip_per_min": auth.failed_logins_per_ip_per_min,
                "failed_logins_per_user_per_min": auth.failed_logins_per_user_per_min,
                "log_level": self.config.log.level,
            },
        }))
    }

    /// Replaces the hot settings (admin) if `If-Match` names the current
    /// version: 428 without it, 412 when someone changed them first, 400
    /// naming the key of an invalid value.
    pub async fn put_cluster_config(
        &self,
        caller: &Caller,
        if_match: Option<&str>,
        body: &[u8],
    ) -> Result<Value, ApiError> {
        self.services.require_admin(caller)?;
        let registry = self.config_centre()?;
        let expected: u64 = match if_match {
            None => {
                return Err(ApiError::new(
                    428,
                    "PUT needs If-Match: <version> (GET /api/v1/cluster/config shows it)",
                ))
            }
            Some(v) => v.trim().trim_matches('"').parse().map_err(|_| {
                ApiError::bad_request("If-Match must be the settings' version number")
            })?,
        };
        let settings: HotSettings = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid settings: {e}")))?;
        settings
            .validate(|g| self.services.game(g).is_ok())
            .map_err(ApiError::bad_request)?;
        match registry.write_settings(expected, &settings).await {
            Ok(version) => {
                tracing::info!(version, subject = %caller.subject, "cluster settings replaced");
                let details = json!({ "version": version, "settings": settings });
                self.services
                    .audit_alone(
                        None,
                        self.services.actor(caller),
                        "config.change",
                        "cluster:settings".into(),
                        details,
                    )
                    .await;
                Ok(json!({ "version": version, "settings": settings }))
            }
            Err(WriteError::Stale(current)) => Err(ApiError::new(
                412,
                format!("the settings changed meanwhile: their version is now {current}"),
            )),
            Err(WriteError::Unreachable(e)) => {
                tracing::warn!(error = %e, "config centre write failed");
                Err(ApiError::unavailable("config centre (Redis) unavailable"))
            }
        }
    }
}

/// Shard 0's reading of the config centre (with `cluster.redis`): every
/// half second, the hot settings in force become the centre's value where
/// it sets one and the file's otherwise, on every shard, until the node
/// drains.
pub async fn follow_config_centre(ops: Rc<Operations>, log: LogReload) {
    use crate::cluster::settings::POLL;
    let Some(registry) = ops.services().registry() else {
        return;
    };
    let node = ops.node();
    let mut maintenance = None;
    let mut failing = false;
    while !ops.is_draining() && !node.is_shutting_down() {
        match registry.read_settings().await {
            Ok(doc) => {
                failing = false;
                let s = doc.settings;
                let file = match node.file.lock() {
                    Ok(f) => f.clone(),
                    Err(_) => return,
                };
                let effective = FileSettings {
                    requests_per_ip: s.rate_limit_per_ip_per_min.unwrap_or(file.requests_per_ip),
                    failures_per_ip: s
                        .failed_logins_per_ip_per_min
                        .unwrap_or(file.failures_per_ip),
                    failures_per_user: s
                        .failed_logins_per_user_per_min
                        .unwrap_or(file.failures_per_user),
                    log_level: s.log_level.clone().unwrap_or(file.log_level),
                };
                node.limits.set(&effective);
                // Every time: SIGHUP may have put the file's level back.
                log.set_level(&effective.log_level);
                if maintenance.as_ref() != Some(&s.maintenance) {
                    if let Some(before) = &maintenance {
                        announce_maintenance(&ops, before, &s.maintenance).await;
                    }
                    ops.services().set_maintenance(s.maintenance.clone());
                    let games = s.maintenance.clone();
                    ops.services()
                        .peers()
                        .broadcast(false, |_| mesh::ShardMessage::Maintenance(games.clone()))
                        .await;
                    tracing::info!(version = doc.version, games = ?s.maintenance.keys().collect::<Vec<_>>(), "cluster settings applied");
                    maintenance = Some(s.maintenance);
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "config centre unreadable; keeping the settings in force");
            }
            Err(_) => {}
        }
        glommio::timer::sleep(POLL).await;
    }
}

/// Tells the players connected to this node of each game whose maintenance
/// began, changed its message, or ended between `before` and `now`.
async fn announce_maintenance(
    ops: &Operations,
    before: &std::collections::BTreeMap<String, String>,
    now: &std::collections::BTreeMap<String, String>,
) {
    let services = ops.services();
    for (game, message) in now {
        if before.get(game) != Some(message) {
            services.announce_maintenance(game, message, true).await;
        }
    }
    for game in before.keys().filter(|g| !now.contains_key(*g)) {
        services.announce_maintenance(game, "", false).await;
    }
}
