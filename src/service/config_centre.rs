//! `GET`/`PUT /api/v1/cluster/config`: the config centre's document, read
//! and replaced by admins (SPEC §7). The document lives in Redis
//! ([`crate::cluster::settings`]); shard 0 of every node applies it.

use super::{ApiError, Caller, Services};
use crate::cluster::settings::{HotSettings, WriteError};
use serde_json::{json, Value};

impl Services {
    fn config_centre(&self) -> Result<&crate::cluster::registry::Registry, ApiError> {
        self.registry().ok_or_else(|| {
            ApiError::unavailable(
                "the config centre needs cluster.redis (a stand-alone node has none)",
            )
        })
    }

    /// The hot settings, their version (for `If-Match`) and the file's
    /// defaults they override (admin).
    pub async fn cluster_config(&self, caller: &Caller) -> Result<Value, ApiError> {
        self.require_admin(caller)?;
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
        self.require_admin(caller)?;
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
            .validate(|g| self.game(g).is_ok())
            .map_err(ApiError::bad_request)?;
        match registry.write_settings(expected, &settings).await {
            Ok(version) => {
                tracing::info!(version, subject = %caller.subject, "cluster settings replaced");
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
