//! The shard's Redis client, on glommio sockets: the RESP2 codec
//! ([`resp`]), one connection per server ([`client`]), a Redis Cluster's
//! slot-routed connections ([`cluster`]) and the link that hides which of the
//! two a URL names ([`link`]), with its pub/sub subscription.
//!
//! It is its own module because the cache is only one of its users: the
//! cluster registry, the config centre, the singleton jobs' leases and the
//! shared login budgets talk to Redis through the same link.
//!
//! What is hand-written and why: the `redis` crate's connections need a
//! tokio or async-std runtime, so the connection, pipelining, reconnection
//! and cluster redirection code is ours, built on glommio's sockets. Reply
//! decoding and cluster key hashing are `redis-protocol`'s (a sans-I/O
//! codec); a command is packed by [`resp::encode`] straight into the
//! pipeline's buffer (building the crate's frame first would copy every
//! argument once more).

pub mod client;
pub mod cluster;
pub mod link;
pub mod resp;

pub use client::{RedisClient, RedisError, RedisUrl};
pub use link::{Redis, RedisTarget};
pub use resp::Reply;
