//! A Redis Cluster client: routes each command to the master that owns its
//! key's hash slot, pipelines the commands of one batch per master (the
//! batches to different masters run at the same time), follows `MOVED` and
//! `ASK` redirections, and re-reads the slot map (`CLUSTER SLOTS`) when a
//! redirection says it changed or a master stops answering — which is how
//! a replica promoted after its master failed is found.
//!
//! Each master gets its own [`RedisClient`] (one connection per shard, with
//! that client's timeouts and reconnect backoff). Keys that one script
//! touches together share a slot through a hash tag (`{...}`), as Redis
//! Cluster requires.

use super::client::{RedisClient, RedisError, RedisUrl};
use super::resp::Reply;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;
/// Redirections followed for one command before giving up.
const MAX_REDIRECTS: usize = 5;
/// Least time between two reads of the slot map.
const MIN_REFRESH_GAP: Duration = Duration::from_millis(100);

/// The slot of `key`: the CRC16 of its hash tag (the first `{...}` with
/// something inside) or of the whole key, modulo 16384.
pub fn slot(key: &[u8]) -> u16 {
    redis_protocol::redis_keyslot(key)
}

/// The slot a command must go to, or `None` when any node will do
/// (`PUBLISH` is broadcast across the cluster; `PING`).
pub fn command_slot(args: &[Vec<u8>]) -> Option<u16> {
    let name = args.first()?.to_ascii_uppercase();
    match name.as_slice() {
        b"PUBLISH" | b"PING" | b"SCAN" | b"ASKING" | b"CLUSTER" => None,
        b"EVAL" | b"EVALSHA" => {
            let keys: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
            (keys > 0).then(|| args.get(3).map(|k| slot(k))).flatten()
        }
        _ => args.get(1).map(|k| slot(k)),
    }
}

/// Every node (`host:port`, masters and replicas) a `CLUSTER SLOTS` reply
/// names; `asked` stands in for an empty host.
pub fn nodes_in_slots_reply(reply: &Reply, asked: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Reply::Array(Some(entries)) = reply else {
        return out;
    };
    let asked_host = asked.rsplit_once(':').map_or("", |(h, _)| h);
    for e in entries {
        let Reply::Array(Some(parts)) = e else {
            continue;
        };
        for node in parts.iter().skip(2) {
            let Reply::Array(Some(fields)) = node else {
                continue;
            };
            let host = match fields.first() {
                Some(Reply::Bulk(Some(h))) if !h.is_empty() && h != b"?" => {
                    String::from_utf8_lossy(h).into_owned()
                }
                _ => asked_host.to_string(),
            };
            if let Some(Reply::Int(port)) = fields.get(1) {
                let addr = format!("{host}:{port}");
                if !out.contains(&addr) {
                    out.push(addr);
                }
            }
        }
    }
    out
}

/// Which master owns which slots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SlotMap {
    /// `(first, last, "host:port")`, sorted by `first`.
    ranges: Vec<(u16, u16, String)>,
}

impl SlotMap {
    fn master(&self, slot: u16) -> Option<&str> {
        let i = self.ranges.partition_point(|(first, _, _)| *first <= slot);
        let (first, last, addr) = self.ranges.get(i.checked_sub(1)?)?;
        (*first <= slot && slot <= *last).then_some(addr.as_str())
    }

    fn masters(&self) -> Vec<String> {
        let mut out: Vec<String> = self.ranges.iter().map(|r| r.2.clone()).collect();
        out.sort();
        out.dedup();
        out
    }

    /// Parses a `CLUSTER SLOTS` reply; `asked` names the node that answered
    /// (for entries that leave the host empty).
    fn parse(reply: &Reply, asked: &str) -> Result<SlotMap, RedisError> {
        let bad = |what: &str| RedisError(format!("unexpected CLUSTER SLOTS reply: {what}"));
        let Reply::Array(Some(entries)) = reply else {
            return Err(bad("not an array"));
        };
        let mut ranges = Vec::new();
        for e in entries {
            let Reply::Array(Some(parts)) = e else {
                return Err(bad("an entry is not an array"));
            };
            let (Some(Reply::Int(first)), Some(Reply::Int(last)), Some(Reply::Array(Some(master)))) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                return Err(bad("an entry lacks its slots or master"));
            };
            let host = match master.first() {
                Some(Reply::Bulk(Some(h))) if !h.is_empty() && h != b"?" => {
                    String::from_utf8_lossy(h).into_owned()
                }
                _ => asked.rsplit_once(':').map_or("", |(h, _)| h).to_string(),
            };
            let Some(Reply::Int(port)) = master.get(1) else {
                return Err(bad("a master without a port"));
            };
            let slots = 0..i64::from(SLOTS);
            if !slots.contains(first) || !slots.contains(last) || first > last {
                return Err(bad("slots out of range"));
            }
            ranges.push((*first as u16, *last as u16, format!("{host}:{port}")));
        }
        if ranges.is_empty() {
            return Err(bad("no slot is served"));
        }
        ranges.sort();
        Ok(SlotMap { ranges })
    }
}

/// A shard's client of a Redis Cluster.
pub struct ClusterClient {
    /// The seed nodes the URL named; credentials apply to every node.
    seeds: Vec<RedisUrl>,
    map: RefCell<SlotMap>,
    /// A connection per node, by `host:port`.
    nodes: RefCell<HashMap<String, Rc<RedisClient>>>,
    /// Set when the map must be read again before the next command.
    stale: Cell<bool>,
    last_refresh: Cell<Option<Instant>>,
    /// Reads of the map so far (where the next one starts asking).
    refreshes: Cell<usize>,
    up: Cell<bool>,
}

impl ClusterClient {
    /// A client for the cluster the `seeds` belong to; reads the slot map on
    /// first use.
    pub fn new(seeds: Vec<RedisUrl>) -> ClusterClient {
        ClusterClient {
            seeds,
            map: RefCell::new(SlotMap::default()),
            nodes: RefCell::new(HashMap::new()),
            stale: Cell::new(true),
            last_refresh: Cell::new(None),
            refreshes: Cell::new(0),
            up: Cell::new(false),
        }
    }

    /// Whether the last batch was answered.
    pub fn is_up(&self) -> bool {
        self.up.get()
    }

    /// The client of node `addr` (`host:port`), made on first use.
    fn node(&self, addr: &str) -> Rc<RedisClient> {
        if let Some(c) = self.nodes.borrow().get(addr) {
            return c.clone();
        }
        let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "6379"));
        let seed = self.seeds.first();
        let url = RedisUrl {
            host: host.to_string(),
            port: port.parse().unwrap_or(6379),
            username: seed.and_then(|s| s.username.clone()),
            password: seed.and_then(|s| s.password.clone()),
            db: 0,
        };
        let client = Rc::new(RedisClient::new(url));
        self.nodes
            .borrow_mut()
            .insert(addr.to_string(), client.clone());
        client
    }

    /// Marks the slot map as needing a new read (a master failed a command
    /// sent outside [`ClusterClient::pipeline`], such as a `SCAN`).
    pub fn mark_stale(&self) {
        self.stale.set(true);
    }

    /// Every master's client (reading the slot map first if needed), for
    /// commands that must visit each, such as `SCAN`.
    pub async fn masters(&self) -> Result<Vec<Rc<RedisClient>>, RedisError> {
        self.refresh_if_stale().await?;
        let masters = self.map.borrow().masters();
        Ok(masters.iter().map(|m| self.node(m)).collect())
    }

    /// Reads the slot map from a known master or a seed when it is stale
    /// (at most every [`MIN_REFRESH_GAP`]); an error only when there is no
    /// map at all.
    async fn refresh_if_stale(&self) -> Result<(), RedisError> {
        let recent = self
            .last_refresh
            .get()
            .is_some_and(|t| t.elapsed() < MIN_REFRESH_GAP);
        if !self.stale.get() || (recent && !self.map.borrow().ranges.is_empty()) {
            return Ok(());
        }
        self.last_refresh.set(Some(Instant::now()));
        let mut candidates = self.map.borrow().masters();
        for s in &self.seeds {
            let addr = format!("{}:{}", s.host, s.port);
            if !candidates.contains(&addr) {
                candidates.push(addr);
            }
        }
        // Nodes seen before (replicas promoted since are among them once
        // the map named them), then the seeds.
        let known: Vec<String> = self.nodes.borrow().keys().cloned().collect();
        for k in known {
            if !candidates.contains(&k) {
                candidates.push(k);
            }
        }
        // Start each read at the next candidate: a node that answers with an
        // outdated map (a master cut off from the others) is not asked first
        // every time.
        let turn = self.refreshes.get();
        self.refreshes.set(turn.wrapping_add(1));
        if !candidates.is_empty() {
            let len = candidates.len();
            candidates.rotate_left(turn % len);
        }
        let mut last_error = RedisError("no seed node".into());
        for addr in candidates {
            let reply = self
                .node(&addr)
                .command(vec![b"CLUSTER".to_vec(), b"SLOTS".to_vec()])
                .await;
            match reply.and_then(|r| SlotMap::parse(&r, &addr)) {
                Ok(map) => {
                    if *self.map.borrow() != map {
                        tracing::info!(masters = ?map.masters(), "redis cluster slot map read");
                    }
                    *self.map.borrow_mut() = map;
                    self.stale.set(false);
                    return Ok(());
                }
                Err(e) => last_error = e,
            }
        }
        if self.map.borrow().ranges.is_empty() {
            Err(last_error)
        } else {
            Ok(())
        }
    }

    /// The master of a keyed command now.
    fn route(&self, args: &[Vec<u8>]) -> Result<String, RedisError> {
        let slot = command_slot(args).unwrap_or(0);
        self.map
            .borrow()
            .master(slot)
            .map(str::to_string)
            .ok_or_else(|| RedisError("no master serves this slot".into()))
    }

    /// Sends `cmds` and returns their replies in order. Commands with a key
    /// go first, one pipeline per master, all masters at once, redirections
    /// followed; a master that fails makes the client re-read the slot map
    /// and send that master's commands once more (to its promoted replica,
    /// once there is one). Commands without a key (`PUBLISH`) go last, to
    /// the first master that answers: an invalidation's message must not
    /// overtake its tombstones.
    pub async fn pipeline(&self, cmds: &[Vec<Vec<u8>>]) -> Result<Vec<Reply>, RedisError> {
        let result = self.pipeline_in_order(cmds).await;
        self.up.set(result.is_ok());
        if result.is_err() {
            self.stale.set(true);
        }
        result
    }

    async fn pipeline_in_order(&self, cmds: &[Vec<Vec<u8>>]) -> Result<Vec<Reply>, RedisError> {
        self.refresh_if_stale().await?;
        let (keyed, keyless): (Vec<usize>, Vec<usize>) =
            (0..cmds.len()).partition(|i| command_slot(&cmds[*i]).is_some());
        let mut replies: Vec<Option<Reply>> = vec![None; cmds.len()];
        let failed = self.send_keyed(cmds, &keyed, &mut replies).await?;
        if !failed.is_empty() {
            // Only what got no reply goes again (a command that was answered
            // is never sent twice), after the map is read again.
            self.stale.set(true);
            self.refresh_if_stale().await?;
            if !self
                .send_keyed(cmds, &failed, &mut replies)
                .await?
                .is_empty()
            {
                return Err(RedisError("a master did not answer".into()));
            }
        }
        for i in keyless {
            replies[i] = Some(self.send_anywhere(&cmds[i]).await?);
        }
        replies
            .into_iter()
            .map(|r| r.ok_or_else(|| RedisError("a reply is missing".into())))
            .collect()
    }

    /// Sends the commands `which` of `cmds`, one pipeline per master at
    /// once, fills their replies (redirections followed) and returns those
    /// whose master failed.
    async fn send_keyed(
        &self,
        cmds: &[Vec<Vec<u8>>],
        which: &[usize],
        replies: &mut [Option<Reply>],
    ) -> Result<Vec<usize>, RedisError> {
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for i in which {
            let addr = self.route(&cmds[*i])?;
            match groups.iter_mut().find(|(a, _)| *a == addr) {
                Some((_, idx)) => idx.push(*i),
                None => groups.push((addr, vec![*i])),
            }
        }
        let tasks: Vec<_> = groups
            .iter()
            .map(|(addr, idx)| {
                let client = self.node(addr);
                let batch: Vec<Vec<Vec<u8>>> = idx.iter().map(|i| cmds[*i].clone()).collect();
                glommio::spawn_local(async move { client.pipeline(&batch).await })
            })
            .collect();
        let mut failed = Vec::new();
        for ((addr, idx), task) in groups.iter().zip(tasks) {
            match task.await {
                Ok(answered) => {
                    for (i, r) in idx.iter().zip(answered) {
                        replies[*i] = Some(self.follow_redirects(addr, &cmds[*i], r).await?);
                    }
                }
                Err(e) => {
                    tracing::debug!(master = %addr, error = %e, "redis cluster master failed");
                    failed.extend(idx);
                }
            }
        }
        Ok(failed)
    }

    /// A command without a key, on the first master that answers (a
    /// `PUBLISH` reaches every node's subscribers from any of them).
    async fn send_anywhere(&self, cmd: &[Vec<u8>]) -> Result<Reply, RedisError> {
        let masters = self.map.borrow().masters();
        let mut last = RedisError("no master".into());
        for m in masters {
            match self.node(&m).command(cmd.to_vec()).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    self.stale.set(true);
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Follows `MOVED` (the slot has a new owner: re-read the map) and `ASK`
    /// (one command to the importing node, after `ASKING`), and waits out
    /// `TRYAGAIN` / `CLUSTERDOWN` briefly.
    async fn follow_redirects(
        &self,
        from: &str,
        cmd: &[Vec<u8>],
        mut reply: Reply,
    ) -> Result<Reply, RedisError> {
        for _ in 0..MAX_REDIRECTS {
            let Reply::Error(e) = &reply else {
                return Ok(reply);
            };
            let mut words = e.split(' ');
            let kind = words.next().unwrap_or("");
            // `MOVED 3999 :6381` leaves the host out: the sender's own.
            let target = words.nth(1).map(|t| match t.strip_prefix(':') {
                Some(port) => format!("{}:{port}", from.rsplit_once(':').map_or(from, |(h, _)| h)),
                None => t.to_string(),
            });
            reply = match (kind, target) {
                ("MOVED", Some(addr)) => {
                    self.stale.set(true);
                    self.node(&addr).command(cmd.to_vec()).await?
                }
                ("ASK", Some(addr)) => {
                    let asked = self
                        .node(&addr)
                        .pipeline(&[vec![b"ASKING".to_vec()], cmd.to_vec()])
                        .await?;
                    asked
                        .into_iter()
                        .nth(1)
                        .ok_or_else(|| RedisError("no reply after ASKING".into()))?
                }
                ("TRYAGAIN", _) | ("CLUSTERDOWN", _) => {
                    glommio::timer::sleep(Duration::from_millis(50)).await;
                    self.stale.set(true);
                    self.refresh_if_stale().await?;
                    let addr = self.route(cmd)?;
                    self.node(&addr).command(cmd.to_vec()).await?
                }
                _ => return Ok(reply),
            };
        }
        Err(RedisError(format!(
            "more than {MAX_REDIRECTS} redirections for one command"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis_cluster_including_hash_tags() {
        // Values from the Redis Cluster specification and CLUSTER KEYSLOT
        // (the hashing is redis-protocol's; this pins what we rely on).
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        // An empty tag hashes the whole key; only the first tag counts.
        assert_eq!(slot(b"foo{}{bar}"), 8363);
        assert_eq!(slot(b"foo{{bar}}zap"), 4015);
        assert_eq!(slot(b"dm:lock:{expire}"), slot(b"dm:fence:{expire}"));
    }

    #[test]
    fn commands_route_by_their_key() {
        let cmd = |parts: &[&str]| {
            parts
                .iter()
                .map(|p| p.as_bytes().to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(command_slot(&cmd(&["GET", "foo"])), Some(12182));
        assert_eq!(command_slot(&cmd(&["set", "bar", "1"])), Some(5061));
        assert_eq!(
            command_slot(&cmd(&["EVAL", "return 1", "2", "foo", "x"])),
            Some(12182)
        );
        assert_eq!(command_slot(&cmd(&["EVAL", "return 1", "0"])), None);
        assert_eq!(command_slot(&cmd(&["PUBLISH", "dm:invalidate", "m"])), None);
    }

    #[test]
    fn the_slot_map_comes_from_cluster_slots() {
        let node = |host: &str, port: i64| {
            Reply::Array(Some(vec![
                Reply::Bulk(Some(host.as_bytes().to_vec())),
                Reply::Int(port),
            ]))
        };
        let reply = Reply::Array(Some(vec![
            Reply::Array(Some(vec![
                Reply::Int(5461),
                Reply::Int(10922),
                node("127.0.0.1", 17002),
                node("127.0.0.1", 17005),
            ])),
            Reply::Array(Some(vec![Reply::Int(0), Reply::Int(5460), node("", 17001)])),
            Reply::Array(Some(vec![
                Reply::Int(10923),
                Reply::Int(16383),
                node("127.0.0.1", 17003),
            ])),
        ]));
        let map = SlotMap::parse(&reply, "127.0.0.1:17001").expect("parses");
        assert_eq!(
            nodes_in_slots_reply(&reply, "127.0.0.1:17001"),
            [
                "127.0.0.1:17002",
                "127.0.0.1:17005",
                "127.0.0.1:17001",
                "127.0.0.1:17003"
            ]
        );
        assert_eq!(map.master(0), Some("127.0.0.1:17001"));
        assert_eq!(map.master(5461), Some("127.0.0.1:17002"));
        assert_eq!(map.master(16383), Some("127.0.0.1:17003"));
        assert_eq!(map.masters().len(), 3);
        assert!(SlotMap::parse(&Reply::Array(Some(vec![])), "x:1").is_err());
        assert!(SlotMap::parse(&Reply::Int(1), "x:1").is_err());
    }
}
