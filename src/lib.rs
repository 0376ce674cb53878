//! DataMiddleware: a thread-per-core data-access server for game backends.
//!
//! Module map (data flows listener → connection → parse → service → store):
//! - [`config`]: TOML configuration, `DM_*` overrides, validation.
//! - [`runtime`]: one pinned glommio executor per shard; signals; shutdown.
//! - [`shard`]: the per-core state a shard owns, and its inbox from the others.
//! - [`node`]: the little the shards of a node share (gauges, flags, limits).
//! - [`protocol`]: the binary frame codec and message types (no I/O).
//! - [`tcp`]: the binary protocol listener, connection loop and dispatch.
//! - [`http`]: the HTTP/1.1 listener, parser, router and handlers.
//! - [`pipeline`]: the phases every request goes through (admit, authenticate, scope, count).
//! - [`service`]: business rules shared by every front end; auth.
//! - [`ops`]: readiness, health, figures, the config centre, and the background tasks table.
//! - [`validate`]: input limits and rule sets shared by requests and config.
//! - [`error`]: the failure answer every layer above the store returns.
//! - [`envelope`]: the JSON envelope of every answer and request body, for every front end.
//! - [`store`]: the `Store` trait, the SQLite backend and migrations.
//! - [`buffer`]: the reusable read buffer of connection loops.
//! - [`cache`]: per-shard L1, Redis L2, invalidation.
//! - [`redis`]: the Redis client on glommio sockets (single server and Cluster, pub/sub).
//! - [`mysql`]: the MySQL/MariaDB client on glommio sockets (auth, text and binary protocol) and its per-shard pool.
//! - [`game`]: per-game logic modules behind one trait.
//! - [`mesh`]: messages between the shards of a node.
//! - [`rate_limit`]: per-node budgets (requests, failed logins) without shared locks.
//! - [`metrics`]: per-shard counters and Prometheus rendering.
//! - [`client_ip`]: who a request comes from (trusted proxies, `X-Forwarded-For`).
//! - [`cluster`]: what the nodes of a cluster share through Redis (node registry).
//! - [`clock`]: Unix time and RFC 3339 rendering.
//! - [`decimal`]: integers as decimal text without allocating.
//! - [`expiring`]: capped maps of expiring entries (tokens, revocations, writers).
//! - [`logging`]: log output and run-time level changes.
//! - [`notify`]: systemd's notify protocol (READY, STOPPING, WATCHDOG, STATUS).

#![warn(missing_docs)]

pub mod audit;
pub mod buffer;
pub mod cache;
pub mod client_ip;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod decimal;
pub mod envelope;
pub mod error;
pub mod expiring;
pub mod figures;
pub mod game;
pub mod host;
pub mod http;
pub mod leaderboard;
pub mod logging;
pub mod mesh;
pub mod metrics;
pub mod mysql;
pub mod node;
pub mod notify;
pub mod ops;
pub mod pipeline;
pub mod probe;
pub mod protocol;
pub mod rate_limit;
pub mod realtime;
pub mod recv_ring;
pub mod redis;
pub mod runtime;
pub mod service;
pub mod shard;
pub mod store;
pub mod tcp;
pub mod validate;
