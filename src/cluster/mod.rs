//! What the nodes of a cluster share through Redis (SPEC §7): the node
//! registry, pushed revocations and the config centre's hot settings. Each shard that needs it holds its own connection; shard
//! 0 of each node does the node's periodic work (announcing itself).

pub mod guesses;
pub mod registry;
pub mod settings;

use crate::config::Config;
use crate::node::NodeState;
use registry::NodeAnnouncement;
use std::sync::atomic::Ordering::Relaxed;

/// This node as the registry shows it, from its configuration and the
/// figures its shards publish; `beat` counts the announcements sent.
pub fn announcement(config: &Config, node: &NodeState, beat: u64) -> NodeAnnouncement {
    let (http, tcp) = node.gauges.iter().fold((0, 0), |(h, t), g| {
        (
            h + g.http_connections.load(Relaxed),
            t + g.tcp_connections.load(Relaxed),
        )
    });
    NodeAnnouncement {
        node_id: config.node.id.clone(),
        instance: node.instance.clone(),
        http: config.http.listen.clone(),
        tcp: config.tcp.listen.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: crate::clock::rfc3339_ms(node.started_ms),
        shards: node.gauges.len(),
        requests_per_s: f64::from_bits(node.requests_per_s.load(Relaxed)),
        http_connections: http,
        tcp_connections: tcp,
        beat,
        figures: node.figures.lock().map(|f| f.clone()).unwrap_or_default(),
    }
}
