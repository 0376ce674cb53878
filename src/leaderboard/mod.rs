//! Leaderboards' in-memory side (SPEC §12): the rank index a board's
//! owning shard will serve reads from. The SQL records stay the source of
//! truth (`store/sql_store/boards.rs`).

pub mod rank_index;
