//! Notifications (SPEC §11) as the service layer makes and delivers them:
//! what a committed change notified goes to the sockets that follow its
//! player — on this shard at once, on the node's other shards and on other
//! nodes through the shard's relay (`realtime/relay.rs`) — and the inbox,
//! message, broadcast and presence calls of both front ends.

use super::{require_player, require_role, ApiError, Caller, Role, Services};
use crate::clock;
use crate::realtime::delivery::Delivery;
use crate::store::{Notice, NoticeKind, Notified};
use crate::validate;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Most stored notifications one inbox page returns.
pub const MAX_PAGE: i64 = 200;
/// Longest message subject, in bytes (one line).
pub const MAX_SUBJECT: usize = 200;
/// Longest message body, in characters.
pub const MAX_BODY: usize = 4_000;
/// Players one broadcast transaction notifies; a broadcast to more runs
/// several.
const BROADCAST_CHUNK: usize = 500;

/// A message to a player or to a game (`POST .../notifications`,
/// `.../broadcast`, the binary protocol's Notify).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    /// A short title ("" allowed).
    #[serde(default)]
    pub subject: String,
    /// The text.
    pub body: String,
}

/// The binary protocol's Notify (0x1006): a message to one player.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyRequest {
    /// Whom it is for.
    pub player_id: i64,
    /// A short title ("" allowed).
    #[serde(default)]
    pub subject: String,
    /// The text.
    pub body: String,
    /// Stored in the inbox (the default) or delivered live only.
    #[serde(default = "stored_by_default")]
    pub persistent: bool,
}

fn stored_by_default() -> bool {
    true
}

/// A notification as the inbox and a resuming socket show it.
pub fn notice_json(game_id: &str, n: &Notice) -> Value {
    json!({
        "id": n.id,
        "game": game_id,
        "player_id": n.player_id,
        "kind": n.kind.as_str(),
        "data": n.data,
        "at": clock::rfc3339_ms(n.at),
    })
}

fn message_data(caller: &Caller, subject: &str, body: &str) -> Result<Value, ApiError> {
    validate::text("subject", subject, MAX_SUBJECT)?;
    validate::multiline_text("body", body, MAX_BODY)?;
    if body.trim().is_empty() {
        return Err(ApiError::bad_request("body required"));
    }
    Ok(json!({
        "subject": subject,
        "body": body,
        // `admin:<name>` or `server:<game>`.
        "from": caller.subject,
    }))
}

impl Services {
    /// Delivers what a committed change notified and returns its result:
    /// the one way a change's notifications leave the service layer.
    pub fn delivered<T>(&self, game_id: &str, done: Notified<T>) -> T {
        self.publish(game_id, &done.notices);
        done.value
    }

    /// Sends `notices` of `game_id` to every socket that follows their
    /// players: this shard's at once, the node's other shards' and other
    /// nodes' through this shard's relay. Costs nothing more than a check
    /// while no socket is open on the node and there is no cluster.
    pub fn publish(&self, game_id: &str, notices: &[Notice]) {
        if notices.is_empty() {
            return;
        }
        let hub = self.sockets();
        let to_peers = hub.node_has_sockets() && self.node.gauges.len() > 1;
        let to_nodes = self.registry().is_some();
        if !hub.node_has_sockets() && !to_nodes {
            return;
        }
        for n in notices {
            let d = Delivery::of(game_id, n);
            hub.deliver(&d);
            if to_peers || to_nodes {
                self.relay().push(d, to_peers, to_nodes);
            }
        }
    }

    /// Delivers what a peer shard or another node published, on this shard.
    pub fn deliver_here(&self, deliveries: &[Arc<Delivery>]) {
        for d in deliveries {
            self.sockets().deliver(d);
        }
    }

    /// The stored notifications of a player after `after` (a socket's
    /// resume; no caller check: the socket checked whom it follows).
    pub async fn stored_notices(
        &self,
        game_id: &str,
        player_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Notice>, ApiError> {
        let game = self.game(game_id)?;
        Ok(game
            .store
            .run(async move |s| s.notices(player_id, after, limit, true).await)
            .await?)
    }

    /// The newest notification id made for a player (0: none yet).
    pub async fn last_notice_id(&self, game_id: &str, player_id: i64) -> Result<i64, ApiError> {
        let game = self.game(game_id)?;
        Ok(game
            .store
            .run(async move |s| s.last_notice_id(player_id).await)
            .await?)
    }

    /// A page of a player's stored notifications with ids above `after`,
    /// oldest first, and the newest id made for the player (`last_id`:
    /// ids up to it that are not stored were delivered live only).
    pub async fn notifications(
        &self,
        caller: &Caller,
        game_id: &str,
        player_id: i64,
        after: i64,
        limit: Option<i64>,
    ) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        require_player(caller, game_id, player_id)?;
        let limit = limit.unwrap_or(50);
        validate::in_range("limit", limit, 1..=MAX_PAGE)?;
        validate::in_range("after", after, 0..=i64::MAX)?;
        let all = caller.role == Role::Admin;
        let (found, last) = game
            .store
            .run(async move |s| {
                let found = s.notices(player_id, after, limit, all).await?;
                let last = s.last_notice_id(player_id).await?;
                Ok((found, last))
            })
            .await?;
        let items: Vec<Value> = found.iter().map(|n| notice_json(game_id, n)).collect();
        Ok(json!({ "notifications": items, "last_id": last }))
    }

    /// Sends a `message` to one player (game servers, admins): stored in
    /// its inbox unless `stored` is false, delivered to its sockets.
    pub async fn send_message(
        &self,
        caller: &Caller,
        game_id: &str,
        player_id: i64,
        req: MessageRequest,
        stored: bool,
    ) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        require_role(caller, &[Role::GameServer, Role::Admin])?;
        require_player(caller, game_id, player_id)?;
        let data = message_data(caller, &req.subject, &req.body)?;
        let now = clock::now_ms();
        let players = [player_id];
        let made = game
            .store
            .run(async move |s| {
                s.send_notices(&players, NoticeKind::Message, &data, stored, true, now)
                    .await
            })
            .await?;
        self.publish(game_id, &made);
        business_event!(self, game = game_id, player_id, by = %caller.subject, "message sent");
        if caller.role == Role::Admin {
            let details = json!({ "subject": req.subject });
            self.audit_alone(
                Some(game_id),
                self.actor(caller),
                "message.send",
                format!("player:{player_id}"),
                details,
            )
            .await;
        }
        let n = made.first().ok_or_else(ApiError::internal)?;
        Ok(json!({ "notification": notice_json(game_id, n) }))
    }

    /// Sends a `message` (admins) to every player of a game connected now,
    /// on any node: each gets it in its inbox, with its own next id.
    pub async fn broadcast(
        &self,
        caller: &Caller,
        game_id: &str,
        req: MessageRequest,
    ) -> Result<Value, ApiError> {
        self.game(game_id)?;
        require_role(caller, &[Role::Admin])?;
        let data = message_data(caller, &req.subject, &req.body)?;
        let players = self.online_players(game_id).await;
        let delivered = self
            .notify_players(game_id, &players, NoticeKind::Message, &data, true)
            .await?;
        business_event!(self, game = game_id, players = delivered, by = %caller.subject, "broadcast sent");
        let details = json!({ "players": delivered, "subject": req.subject });
        self.audit_alone(
            Some(game_id),
            self.actor(caller),
            "broadcast",
            format!("game:{game_id}"),
            details,
        )
        .await;
        Ok(json!({ "delivered": delivered }))
    }

    /// Sends a `maintenance` notification to every player of a game
    /// connected to this node (each node tells its own, as each applies the
    /// config centre's settings), stored with `realtime.persist`. `active`:
    /// maintenance begins (with its message) or ends. Errors are logged:
    /// maintenance goes on whether or not it could be told.
    pub async fn announce_maintenance(&self, game_id: &str, message: &str, active: bool) {
        let players: Vec<i64> = self
            .online_players_here(game_id)
            .await
            .into_iter()
            .collect();
        let data = json!({ "message": message, "active": active });
        let stored = self.config.realtime.persist;
        let kind = NoticeKind::Maintenance;
        if let Err(e) = self
            .notify_players(game_id, &players, kind, &data, stored)
            .await
        {
            tracing::warn!(game = game_id, error = %e.message, "maintenance not notified");
        }
    }

    /// Makes one notification of `kind` for each of `players` (those
    /// without a live row skipped), [`BROADCAST_CHUNK`] players a
    /// transaction, and delivers each chunk's once committed; how many.
    async fn notify_players(
        &self,
        game_id: &str,
        players: &[i64],
        kind: NoticeKind,
        data: &Value,
        stored: bool,
    ) -> Result<usize, ApiError> {
        let game = self.game(game_id)?;
        let mut made_total = 0;
        for chunk in players.chunks(BROADCAST_CHUNK) {
            let (chunk, data, now) = (chunk.to_vec(), data.clone(), clock::now_ms());
            let made = game
                .store
                .run(async move |s| {
                    s.send_notices(&chunk, kind, &data, stored, false, now)
                        .await
                })
                .await?;
            made_total += made.len();
            self.publish(game_id, &made);
        }
        Ok(made_total)
    }

    /// Whether a player has a socket open on any node, on which, and when
    /// it was last seen.
    pub async fn presence(
        &self,
        caller: &Caller,
        game_id: &str,
        player_id: i64,
    ) -> Result<Value, ApiError> {
        self.game(game_id)?;
        require_player(caller, game_id, player_id)?;
        // An unknown player is 1001 (the id has no sequence to read).
        self.last_notice_id(game_id, player_id).await?;
        let (nodes, last_seen) = self.where_online(game_id, player_id).await;
        Ok(json!({
            "player_id": player_id,
            "online": !nodes.is_empty(),
            "nodes": nodes,
            "last_seen": last_seen.map(clock::rfc3339_ms),
        }))
    }
}
