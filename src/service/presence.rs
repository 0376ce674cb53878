//! Presence (SPEC §11): whether a player has a socket open, on which nodes,
//! and when it was last seen — true on any node.
//!
//! Each shard knows its own sockets (`realtime/hub.rs`); the node's other
//! shards are asked over the mesh. With `cluster.redis`, every shard also
//! writes its players into Redis — `dm:presence:{game}:{player}` (a sorted
//! set of `node#shard` members scored by when the entry expires),
//! `dm:online:{game}` (players scored the same way, for broadcasts) and
//! `dm:seen:{game}:{player}` (last seen, Unix ms) — when a socket opens or
//! closes and every [`REFRESH`] for all of them, so a node that dies
//! leaves no one online for longer than [`ENTRY_LIFE_MS`]. When Redis
//! cannot be read, the answer is this node's own.

use super::Services;
use crate::clock;
use crate::redis::resp::Reply;
use std::collections::BTreeSet;
use std::time::Duration;

/// How often a shard rewrites its players' presence entries.
pub const REFRESH: Duration = Duration::from_secs(10);
/// How long an entry counts without being rewritten.
pub const ENTRY_LIFE_MS: i64 = 30_000;
/// How long a last-seen time is kept in Redis.
const SEEN_LIFE_S: u64 = 30 * 24 * 3600;

fn presence_key(game: &str, player_id: i64) -> String {
    format!("dm:presence:{game}:{player_id}")
}

fn online_key(game: &str) -> String {
    format!("dm:online:{game}")
}

fn seen_key(game: &str, player_id: i64) -> String {
    format!("dm:seen:{game}:{player_id}")
}

fn cmd(parts: &[&str]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.as_bytes().to_vec()).collect()
}

impl Services {
    fn presence_member(&self) -> String {
        format!("{}#{}", self.config.node.id, self.shard)
    }

    /// The commands that say "`player_id` is online on this shard".
    fn online_commands(&self, game: &str, player_id: i64, out: &mut Vec<Vec<Vec<u8>>>) {
        let until = (clock::now_ms() + ENTRY_LIFE_MS).to_string();
        let key = presence_key(game, player_id);
        let member = self.presence_member();
        out.push(cmd(&["ZADD", &key, &until, &member]));
        out.push(cmd(&["PEXPIRE", &key, &(2 * ENTRY_LIFE_MS).to_string()]));
        out.push(cmd(&[
            "ZADD",
            &online_key(game),
            &until,
            &player_id.to_string(),
        ]));
    }

    /// A player's socket opened on this shard: says so in Redis at once.
    pub async fn went_online(&self, game: &str, player_id: i64) {
        let Some(registry) = self.registry() else {
            return;
        };
        let mut cmds = Vec::new();
        self.online_commands(game, player_id, &mut cmds);
        if let Err(e) = registry.redis().pipeline(&cmds).await {
            tracing::debug!(error = %e.0, "presence not written; the next refresh will");
        }
    }

    /// A player's socket closed on this shard: removes this shard's entry
    /// once it has none left, and records when the player was last seen.
    pub async fn went_offline(&self, game: &str, player_id: i64) {
        let Some(registry) = self.registry() else {
            return;
        };
        let mut cmds = vec![cmd(&[
            "SET",
            &seen_key(game, player_id),
            &clock::now_ms().to_string(),
            "EX",
            &SEEN_LIFE_S.to_string(),
        ])];
        if !self.sockets().is_online(game, player_id) {
            let member = self.presence_member();
            cmds.push(cmd(&["ZREM", &presence_key(game, player_id), &member]));
        }
        if let Err(e) = registry.redis().pipeline(&cmds).await {
            tracing::debug!(error = %e.0, "presence not written; its entry expires");
        }
    }

    /// Rewrites every presence entry of this shard's players and trims the
    /// expired ones of its games (every [`REFRESH`], by the shard's task).
    pub async fn refresh_presence(&self) {
        let Some(registry) = self.registry() else {
            return;
        };
        let mut cmds = Vec::new();
        for (game, player_id) in self.sockets().online_everywhere() {
            self.online_commands(&game, player_id, &mut cmds);
        }
        let now = clock::now_ms().to_string();
        for game in self.games() {
            cmds.push(cmd(&[
                "ZREMRANGEBYSCORE",
                &online_key(&game.id),
                "-inf",
                &now,
            ]));
        }
        for chunk in cmds.chunks(3_000) {
            if let Err(e) = registry.redis().pipeline(chunk).await {
                tracing::debug!(error = %e.0, "presence not refreshed; will retry");
                return;
            }
        }
    }

    /// The nodes a player has a socket on and when it was last seen (Unix
    /// ms; `None` when never, as far as anyone remembers).
    pub async fn where_online(&self, game: &str, player_id: i64) -> (Vec<String>, Option<i64>) {
        let mut nodes = BTreeSet::new();
        let hub = self.sockets();
        let mut last_seen = hub.last_seen(game, player_id);
        let mut here = hub.is_online(game, player_id);
        let answers = self
            .peers
            .ask_all(|reply| crate::mesh::ShardMessage::Presence {
                game: game.to_string(),
                player_id,
                reply,
            })
            .await;
        for (online, seen) in answers {
            here |= online;
            last_seen = last_seen.max(seen);
        }
        if here {
            nodes.insert(self.config.node.id.clone());
        }
        if let Some(registry) = self.registry() {
            let now = clock::now_ms().to_string();
            let cmds = [
                cmd(&[
                    "ZRANGEBYSCORE",
                    &presence_key(game, player_id),
                    &now,
                    "+inf",
                ]),
                cmd(&["GET", &seen_key(game, player_id)]),
            ];
            match registry.redis().pipeline(&cmds).await {
                Ok(replies) => {
                    if let Some(members) = replies.first().and_then(|r| r.as_array()) {
                        for m in members.iter().filter_map(Reply::as_text) {
                            let node = m.rsplit_once('#').map_or(m.as_str(), |(n, _)| n);
                            nodes.insert(node.to_string());
                        }
                    }
                    let seen = replies.get(1).and_then(|r| r.as_text());
                    last_seen = last_seen.max(seen.and_then(|s| s.parse().ok()));
                }
                Err(e) => tracing::debug!(error = %e.0, "presence read from this node only"),
            }
        }
        if !nodes.is_empty() {
            last_seen = Some(clock::now_ms());
        }
        (nodes.into_iter().collect(), last_seen)
    }

    /// The players of a game with a socket open on this node.
    pub async fn online_players_here(&self, game: &str) -> BTreeSet<i64> {
        let mut players: BTreeSet<i64> = self.sockets().online_players(game).into_iter().collect();
        let answers = self
            .peers
            .ask_all(|reply| crate::mesh::ShardMessage::OnlinePlayers {
                game: game.to_string(),
                reply,
            })
            .await;
        players.extend(answers.into_iter().flatten());
        players
    }

    /// The players of a game with a socket open: on every node with
    /// `cluster.redis` (this node's when Redis cannot be read).
    pub async fn online_players(&self, game: &str) -> Vec<i64> {
        let mut players = self.online_players_here(game).await;
        if let Some(registry) = self.registry() {
            let now = clock::now_ms().to_string();
            match registry
                .redis()
                .command(cmd(&["ZRANGEBYSCORE", &online_key(game), &now, "+inf"]))
                .await
            {
                Ok(reply) => {
                    let ids = reply.as_array().into_iter().flatten();
                    players.extend(ids.filter_map(|m| m.as_text()?.parse::<i64>().ok()));
                }
                Err(e) => tracing::debug!(error = %e.0, "online players of this node only"),
            }
        }
        players.into_iter().collect()
    }
}
