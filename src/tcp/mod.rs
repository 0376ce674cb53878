//! The binary TCP front end for game servers (SPEC §2). Each shard runs its
//! own listener on the shared port; a connection's frames are decoded in place
//! from its read buffer, dispatched in order to the service layer, and the
//! replies of one batch are flushed with one write.

pub mod connection;
pub mod dispatch;
pub mod reply;
