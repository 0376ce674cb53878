//! A link to Redis as the configuration names it: one server
//! (`redis://...`) or a Redis Cluster by its seed nodes
//! (`redis+cluster://[[user]:password@]host:port[,host:port...]`). Callers
//! send commands and pipelines the same way to either; what differs —
//! routing by hash slot, redirections, scanning every master — stays in
//! [`ClusterClient`].

use super::redis::{RedisClient, RedisError, RedisUrl};
use super::redis_cluster::ClusterClient;
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
