//! Each shard's provided buffer ring for multishot receive (the vendored
//! glommio's `TcpStream::use_multishot_recv`): sized by
//! `node.recv_ring_buffers`, paid for out of the shard's share of
//! `node.max_buffered_bytes` for as long as the shard runs, and turned off
//! by `node.multishot_recv = false` or when the budget has no room for it —
//! connections then read through a readiness poll and `recv`, as they do on
//! a kernel without multishot receive.

use crate::buffer::{BufferBudget, Reservation};
use crate::config::NodeConfig;
use std::rc::Rc;

/// Bytes the ring of `buffers` buffers takes.
pub fn ring_bytes(buffers: usize) -> usize {
    buffers * glommio::net::MULTISHOT_RING_BUFFER_SIZE
}

/// Configures the calling shard's executor for multishot receive and
/// returns the reservation that pays for its ring (none when it is off).
/// Call on the shard's executor thread, before its first connection.
pub fn configure(node: &NodeConfig, budget: &Rc<BufferBudget>) -> Option<Reservation> {
    let buffers = u16::try_from(node.recv_ring_buffers).unwrap_or(u16::MAX);
    let mut reservation = budget.reservation();
    let on = node.multishot_recv && reservation.resize(ring_bytes(node.recv_ring_buffers));
    if node.multishot_recv && !on {
        tracing::warn!(
            bytes = ring_bytes(node.recv_ring_buffers),
            "multishot receive off: the receive ring does not fit in node.max_buffered_bytes"
        );
    }
    glommio::net::configure_multishot_recv(on, buffers);
    on.then_some(reservation)
}
