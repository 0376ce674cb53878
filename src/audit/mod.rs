//! The tamper-evident audit log (SPEC §13): records of every admin action
//! and economy change, written in the change's own transaction
//! (`store/sql_store/audit.rs`), hash-chained per subject ([`chain`]),
//! signed at checkpoints ([`checkpoint`]) and re-computed by the verifier
//! ([`verify`], also `datamiddleware audit verify`).

pub mod chain;
pub mod checkpoint;
pub mod keys;
pub mod verify;

pub use chain::{chain_of, record_hash, Actor, AuditDraft, AuditRecord, CHAINS, GENESIS};
pub use checkpoint::{AuditKey, Checkpoint};
