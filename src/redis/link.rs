//! A link to Redis as the configuration names it: one server
//! (`redis://...`) or a Redis Cluster by its seed nodes
//! (`redis+cluster://[[user]:password@]host:port[,host:port...]`). Callers
//! send commands and pipelines the same way to either; what differs —
//! routing by hash slot, redirections, scanning every master — stays in
//! [`ClusterClient`].

use super::client::{self, RedisClient, RedisError, RedisUrl};
use super::cluster::{self, ClusterClient};
use super::resp::Reply;

/// What a Redis URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server.
    Single(RedisUrl),
    /// A Redis Cluster, by seed nodes (database 0, the only one a cluster has).
    Cluster(Vec<RedisUrl>),
}

impl RedisTarget {
    /// Parses `redis://...` or `redis+cluster://...`.
    pub fn parse(url: &str) -> Result<RedisTarget, String> {
        let Some(rest) = url.strip_prefix("redis+cluster://") else {
            return RedisUrl::parse(url).map(RedisTarget::Single);
        };
        let (auth, hosts) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let hosts = hosts.strip_suffix('/').unwrap_or(hosts);
        if hosts.contains('/') {
            return Err("a Redis Cluster has only database 0: leave the /db out".into());
        }
        let mut seeds = Vec::new();
        for host in hosts.split(',') {
            if host.trim().is_empty() {
                return Err("an empty seed node in the list".into());
            }
            let one = match auth {
                Some(a) => format!("redis://{a}@{}", host.trim()),
                None => format!("redis://{}", host.trim()),
            };
            seeds.push(RedisUrl::parse(&one)?);
        }
        if seeds.len() > 64 {
            return Err("at most 64 seed nodes".into());
        }
        Ok(RedisTarget::Cluster(seeds))
    }

    /// The nodes a subscriber may listen on, in the order to try them.
    pub fn subscribe_urls(&self) -> Vec<RedisUrl> {
        match self {
            RedisTarget::Single(u) => vec![u.clone()],
            RedisTarget::Cluster(seeds) => seeds.clone(),
        }
    }
}

/// Subscribes to `channel` on `target` forever, calling `on_message` with
/// each payload and `on_state` with true after every (re)subscription and
/// false after every loss of it; reconnects with backoff. On a Redis
/// Cluster, where a message published on any node reaches subscribers on
/// every node, each attempt goes to the next node: the URL's, and every
/// master and replica the cluster named since — so the subscriber outlives
/// the nodes its URL listed.
pub async fn subscribe_forever(
    target: RedisTarget,
    channel: String,
    on_message: impl Fn(Vec<u8>),
    on_state: impl Fn(bool),
) {
    let seeds = target.subscribe_urls();
    let cluster = matches!(target, RedisTarget::Cluster(_));
    let mut urls = seeds.clone();
    if cluster {
        // Learned while the seeds live, the other nodes are there to fall
        // back on when they die.
        urls = with_cluster_nodes(&seeds, &urls).await;
    }
    let mut backoff = client::MIN_BACKOFF;
    for attempt in 0usize.. {
        let Some(url) = urls.get(attempt % urls.len().max(1)).cloned() else {
            return;
        };
        let subscribed = std::cell::Cell::new(false);
        let track = |up: bool| {
            subscribed.set(subscribed.get() || up);
            on_state(up);
        };
        if let Err(e) = client::subscribe_once(&url, &channel, &on_message, &track).await {
            tracing::debug!(error = %e, node = %format!("{}:{}", url.host, url.port), "redis subscriber disconnected");
        }
        on_state(false);
        if cluster {
            urls = with_cluster_nodes(&seeds, &urls).await;
        }
        if subscribed.get() {
            backoff = client::MIN_BACKOFF; // it worked for a while: try the next node soon
        }
        glommio::timer::sleep(backoff).await;
        backoff = (backoff * 2).min(client::MAX_BACKOFF);
    }
}

/// The seeds plus every node the first of `known` that answers `CLUSTER
/// SLOTS` names (with its credentials); `known` unchanged when none does.
async fn with_cluster_nodes(seeds: &[RedisUrl], known: &[RedisUrl]) -> Vec<RedisUrl> {
    for url in known {
        let client = RedisClient::new(url.clone());
        let Ok(reply) = client
            .command(vec![b"CLUSTER".to_vec(), b"SLOTS".to_vec()])
            .await
        else {
            continue;
        };
        let asked = format!("{}:{}", url.host, url.port);
        let mut out = seeds.to_vec();
        for addr in cluster::nodes_in_slots_reply(&reply, &asked)
            .into_iter()
            .take(256)
        {
            let Some((host, port)) = addr.rsplit_once(':') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            if !out.iter().any(|u| u.host == host && u.port == port) {
                out.push(RedisUrl {
                    host: host.to_string(),
                    port,
                    username: url.username.clone(),
                    password: url.password.clone(),
                    db: 0,
                });
            }
        }
        return out;
    }
    known.to_vec()
}

/// A shard's link to Redis: one connection, or one per master of a cluster.
pub enum Redis {
    /// One server.
    Single(RedisClient),
    /// A Redis Cluster.
    Cluster(ClusterClient),
}

impl Redis {
    /// A link to `target`; connects on first use.
    pub fn new(target: RedisTarget) -> Redis {
        match target {
            RedisTarget::Single(u) => Redis::Single(RedisClient::new(u)),
            RedisTarget::Cluster(seeds) => Redis::Cluster(ClusterClient::new(seeds)),
        }
    }

    /// Whether the last exchange succeeded.
    pub fn is_up(&self) -> bool {
        match self {
            Redis::Single(c) => c.is_up(),
            Redis::Cluster(c) => c.is_up(),
        }
    }

    /// Sends `cmds` as one pipeline (per master, on a cluster) and returns
    /// their replies in order.
    pub async fn pipeline(&self, cmds: &[Vec<Vec<u8>>]) -> Result<Vec<Reply>, RedisError> {
        match self {
            Redis::Single(c) => c.pipeline(cmds).await,
            Redis::Cluster(c) => c.pipeline(cmds).await,
        }
    }

    /// One command.
    pub async fn command(&self, args: Vec<Vec<u8>>) -> Result<Reply, RedisError> {
        self.pipeline(&[args])
            .await?
            .pop()
            .ok_or_else(|| RedisError("no reply".into()))
    }

    /// Every key matching `pattern` (`SCAN ... MATCH`), on every master of a
    /// cluster; at most `limit` keys.
    pub async fn scan(&self, pattern: &str, limit: usize) -> Result<Vec<Vec<u8>>, RedisError> {
        let mut found = Vec::new();
        match self {
            Redis::Single(c) => scan_node(c, pattern, limit, &mut found).await?,
            Redis::Cluster(c) => {
                for master in c.masters().await? {
                    if let Err(e) = scan_node(&master, pattern, limit, &mut found).await {
                        c.mark_stale();
                        return Err(e);
                    }
                }
            }
        }
        Ok(found)
    }
}

/// `SCAN` of one node until its cursor comes back to 0 or `limit` keys.
async fn scan_node(
    client: &RedisClient,
    pattern: &str,
    limit: usize,
    found: &mut Vec<Vec<u8>>,
) -> Result<(), RedisError> {
    let mut cursor = b"0".to_vec();
    // Bounded: 1,000 rounds of up to 1,000 keys.
    for _ in 0..1000 {
        let reply = client
            .command(vec![
                b"SCAN".to_vec(),
                cursor,
                b"MATCH".to_vec(),
                pattern.as_bytes().to_vec(),
                b"COUNT".to_vec(),
                b"1000".to_vec(),
            ])
            .await?;
        let Reply::Array(Some(mut parts)) = reply else {
            return Err(RedisError("unexpected SCAN reply".into()));
        };
        let (Some(Reply::Array(Some(keys))), Some(Reply::Bulk(Some(next)))) =
            (parts.pop(), parts.pop())
        else {
            return Err(RedisError("unexpected SCAN reply".into()));
        };
        found.extend(keys.into_iter().filter_map(|k| match k {
            Reply::Bulk(Some(b)) => Some(b),
            _ => None,
        }));
        if next == b"0" || found.len() >= limit {
            return Ok(());
        }
        cursor = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_seed_nodes_and_share_credentials() {
        let t =
            RedisTarget::parse("redis+cluster://app:pw@10.0.0.1:7000,10.0.0.2:7001").expect("ok");
        let RedisTarget::Cluster(seeds) = t else {
            panic!("a cluster");
        };
        assert_eq!(seeds.len(), 2);
        assert_eq!((seeds[1].host.as_str(), seeds[1].port), ("10.0.0.2", 7001));
        assert!(seeds.iter().all(|s| s.username.as_deref() == Some("app")
            && s.password.as_deref() == Some("pw")
            && s.db == 0));
        assert!(matches!(
            RedisTarget::parse("redis://127.0.0.1:6379/2"),
            Ok(RedisTarget::Single(_))
        ));
        assert!(RedisTarget::parse("redis+cluster://h:1/3").is_err());
        assert!(RedisTarget::parse("redis+cluster://h:1,,h:2").is_err());
        assert!(RedisTarget::parse("redis+cluster://h:x").is_err());
        assert!(RedisTarget::parse("rediss://h").is_err());
    }
}
