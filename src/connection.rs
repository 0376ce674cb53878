//! The one connection loop every front end runs (HTTP, the binary TCP
//! protocol): read into one reusable buffer, answer every complete request
//! of the batch in order into one write buffer, write once, and wait for
//! more — within the read deadline and the shard's memory budget.
//!
//! Modelled on mini-redis's `connection.rs`: the loop owns the socket and
//! the buffers; a front end is only a [`Codec`] that turns the bytes of a
//! batch into answers, says when the peer must have sent more, and writes
//! the refusal a connection ends with (a timeout, a full buffer budget, a
//! draining shard) in its own wire format.
//!
//! Deadlines cost no timer per read: the shard's reaper ends a read that
//! outlives the deadline (the read then returns end-of-stream and the
//! connection's guard says it expired). Past its deadline a connection gets
//! one more read, which takes what had already arrived (a shard that was
//! busy must not drop a request sent in time); still past the same deadline
//! after it, the peer is too slow, however it trickles.

use crate::shard::Shard;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Instant;

/// Bytes asked of one read while the peer sends fast (the last read filled
/// what was offered), and the part of a buffer the shard's budget does not
/// count.
pub const READ_CHUNK: usize = 16 * 1024;

/// What one call of [`Codec::answer`] did with the buffered bytes.
pub struct Batch {
    /// Bytes of the buffer that were answered (or refused) and can go.
    pub used: usize,
    /// The connection ends once the batch's answers are written.
    pub close: bool,
}

/// Why a connection ends without the peer closing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The peer did not send in time (the front end's [`Codec::deadline`]).
    Timeout,
    /// The node's request buffers are full of other connections' requests.
    Busy,
    /// The shard is draining and shut the connection's read side.
    Draining,
}

/// How a front end's connections use memory.
#[derive(Debug, Clone, Copy)]
pub struct Buffers {
    /// The read buffer a connection starts with, and shrinks back to after
    /// a large request.
    pub first: usize,
    /// Bytes asked of a read while the peer is not sending fast: small
    /// reads keep idle connections small.
    pub idle_read: usize,
}

/// A front end's wire format, as the connection loop needs it.
#[allow(async_fn_in_trait)] // shard-local futures: they never cross threads
pub trait Codec {
    /// Answers every complete request at the start of `input`, in order,
    /// appending the answers to `out`; stops at an incomplete one.
    async fn answer(&mut self, input: &[u8], out: &mut Vec<u8>) -> Batch;
    /// When the peer must have sent more.
    fn deadline(&self) -> Instant;
    /// Told after every read that brought bytes.
    fn on_read(&mut self);
    /// Appends the answer a connection ending for `why` gets, if any;
    /// `pending` says whether part of a request is buffered.
    fn refuse(&self, why: Refusal, pending: bool, out: &mut Vec<u8>);
    /// Whether a batch that closed the connection handed it over to
    /// another protocol instead (HTTP's upgrade to WebSocket): the loop
    /// then gives the socket back rather than closing it.
    fn hands_over(&self) -> bool {
        false
    }
}

/// A connection the loop gave back to its front end for another protocol:
/// the codec that asked, the socket, and the bytes the peer sent after the
/// request that switched (the new protocol's first bytes).
pub struct Handover<C> {
    /// The codec, holding what the new protocol starts from.
    pub codec: C,
    /// The socket, open.
    pub stream: TcpStream,
    /// Bytes read past the switching request.
    pub rest: Vec<u8>,
}

/// Runs one connection until the peer closes it, a request asks to close
/// it, it times out, it cannot get buffer memory, or the shard drains — or
/// until the codec hands it over ([`Codec::hands_over`]), when the socket is
/// given back.
/// `open` makes the front end's codec for the stream: made here rather than
/// passed in, because an `async fn`'s by-value arguments take room twice in
/// its state (measured: 360 bytes more in every idle connection's task).
pub async fn run<C: Codec>(
    shard: Rc<Shard>,
    mut stream: TcpStream,
    open: impl FnOnce(&TcpStream) -> C,
    mem: Buffers,
) -> Option<Handover<C>> {
    let mut codec = open(&stream);
    let _ = stream.set_nodelay(true);
    // One receive kept armed for the connection's life: no readiness poll
    // and `recv` per request (falls back by itself where it cannot).
    stream.use_multishot_recv();
    let guard = shard.track(stream.as_raw_fd());
    let mut buf = crate::buffer::ReadBuffer::with_capacity(mem.first);
    // What the buffer holds beyond a read chunk, out of the shard's budget.
    let mut reserved = shard.buffers.reservation();
    let mut out: Vec<u8> = Vec::with_capacity(256);
    let mut fast = false;
    let mut overdue: Option<Instant> = None;
    loop {
        let batch = codec.answer(buf.filled(), &mut out).await;
        buf.consume(batch.used);
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
        if batch.close {
            if codec.hands_over() {
                drop(guard);
                return Some(Handover {
                    codec,
                    stream,
                    rest: buf.filled().to_vec(),
                });
            }
            break;
        }
        let deadline = codec.deadline();
        if Instant::now() >= deadline {
            if overdue == Some(deadline) {
                codec.refuse(Refusal::Timeout, !buf.is_empty(), &mut out);
                if !out.is_empty() {
                    let _ = stream.write_all(&out).await;
                }
                break;
            }
            overdue = Some(deadline);
        }
        guard.set_deadline(deadline);
        let spare = buf.spare(if fast { READ_CHUNK } else { mem.idle_read });
        let offered = spare.len();
        match stream.read(spare).await {
            Ok(0) => {
                if guard.expired() {
                    codec.refuse(Refusal::Timeout, !buf.is_empty(), &mut out);
                } else if shard.is_draining() {
                    codec.refuse(Refusal::Draining, !buf.is_empty(), &mut out);
                }
                if !out.is_empty() {
                    let _ = stream.write_all(&out).await;
                }
                break;
            }
            Ok(n) => {
                buf.advance(n);
                fast = n == offered;
                codec.on_read();
            }
            Err(_) => break,
        }
        if buf.capacity() > 4 * READ_CHUNK {
            buf.shrink_to(mem.first);
        }
        if !reserved.resize(buf.allocated().saturating_sub(READ_CHUNK)) {
            // The node's buffers are full of other requests: this one does
            // not fit. Refuse it and free its memory; everyone else goes on.
            codec.refuse(Refusal::Busy, true, &mut out);
            let _ = stream.write_all(&out).await;
            break;
        }
    }
    let _ = stream.close().await;
    None
}
