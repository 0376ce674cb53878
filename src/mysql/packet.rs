//! MySQL packets over one glommio `TcpStream`: framing (3-byte length,
//! sequence id, payloads over 16 MiB split and joined) is mysql_common's
//! `PacketCodec`, which also refuses a packet whose sequence id is out of
//! step; the socket reads and writes, and the buffers they reuse from one
//! packet to the next, are here.
//!
//! Bytes are read into a fixed chunk and appended to the codec's input, so
//! a read costs one copy and no zeroing; the payload of the packet being
//! read lives in one buffer reused for every packet (callers parse it before
//! reading the next). Buffers grown by a large result are given back after
//! the statement ([`PacketStream::shrink`]).

use super::error::MysqlError;
use bytes::{Buf, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use mysql_common::proto::codec::PacketCodec;
use mysql_common::proto::MySerialize;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;
/// Buffers larger than this are released after a statement.
const KEEP: usize = 1024 * 1024;

/// A framed MySQL packet stream on one TCP connection.
pub struct PacketStream {
    stream: TcpStream,
    codec: PacketCodec,
    /// Received bytes not yet framed.
    raw: BytesMut,
    /// The read target, allocated once.
    chunk: Vec<u8>,
    /// The payload of the packet last read.
    payload: Vec<u8>,
    /// Framed bytes being written.
    out: BytesMut,
    /// A serialised command before framing.
    scratch: Vec<u8>,
}

impl PacketStream {
    /// Frames packets on `stream`; packets over `max_allowed_packet` bytes
    /// are refused either way.
    pub fn new(stream: TcpStream, max_allowed_packet: usize) -> PacketStream {
        let mut codec = PacketCodec::default();
        codec.max_allowed_packet = max_allowed_packet;
        PacketStream {
            stream,
            codec,
            raw: BytesMut::with_capacity(READ_CHUNK),
            chunk: vec![0; READ_CHUNK],
            payload: Vec::with_capacity(4096),
            out: BytesMut::with_capacity(4096),
            scratch: Vec::with_capacity(4096),
        }
    }

    /// Starts a new command: the next packet written has sequence id 0.
    pub fn reset_seq(&mut self) {
        self.codec.reset_seq_id();
    }

    /// Writes one packet with `payload`.
    pub async fn write(&mut self, payload: &[u8]) -> Result<(), MysqlError> {
        self.write_buf(payload).await
    }

    /// Writes one packet: the command byte `cmd` followed by `body`.
    pub async fn write_command(&mut self, cmd: u8, body: &[u8]) -> Result<(), MysqlError> {
        let head = [cmd];
        self.write_buf(Buf::chain(&head[..], body)).await
    }

    /// Writes one packet holding `packet` serialised.
    pub async fn write_struct<T: MySerialize>(&mut self, packet: &T) -> Result<(), MysqlError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        packet.serialize(&mut scratch);
        let sent = self.write_buf(&scratch[..]).await;
        self.scratch = scratch;
        sent
    }

    /// Readies the codec for the answer to one of several pipelined
    /// commands: each answer's packets are numbered from 1, as after a
    /// command just written.
    pub fn expect_answer(&mut self) -> Result<(), MysqlError> {
        self.codec.reset_seq_id();
        let mut sink = BytesMut::new();
        self.codec.encode(&mut &[][..], &mut sink)?;
        Ok(())
    }

    /// Frames one packet holding `packet` serialised and keeps it for
    /// [`PacketStream::flush`]: several commands then leave in one write
    /// (pipelined; the server answers them in order). Nothing else may be
    /// written before the flush.
    pub fn queue_struct<T: MySerialize>(&mut self, packet: &T) -> Result<(), MysqlError> {
        self.codec.reset_seq_id();
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        packet.serialize(&mut scratch);
        let framed = self.codec.encode(&mut &scratch[..], &mut self.out);
        self.scratch = scratch;
        framed?;
        Ok(())
    }

    /// Writes the packets [`PacketStream::queue_struct`] framed.
    pub async fn flush(&mut self) -> Result<(), MysqlError> {
        let sent = self.stream.write_all(&self.out).await;
        self.out.clear();
        sent?;
        Ok(())
    }

    async fn write_buf(&mut self, mut src: impl Buf) -> Result<(), MysqlError> {
        self.out.clear();
        self.codec.encode(&mut src, &mut self.out)?;
        let sent = self.stream.write_all(&self.out).await;
        // Empty again: packets queued next must not follow this one.
        self.out.clear();
        sent?;
        Ok(())
    }

    /// Reads the next packet and returns its payload (valid until the next
    /// read). A packet out of sequence is a protocol error; the server
    /// closing the connection is an I/O error.
    pub async fn read(&mut self) -> Result<&[u8], MysqlError> {
        self.payload.clear();
        loop {
            if self.codec.decode(&mut self.raw, &mut self.payload)? {
                return Ok(&self.payload);
            }
            let n = self.stream.read(&mut self.chunk).await?;
            if n == 0 {
                return Err(MysqlError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
            self.raw.extend_from_slice(&self.chunk[..n]);
        }
    }

    /// Gives back buffers a large packet or result grew.
    pub fn shrink(&mut self) {
        if self.payload.capacity() > KEEP {
            self.payload = Vec::with_capacity(4096);
        }
        if self.raw.is_empty() && self.raw.capacity() > KEEP {
            self.raw = BytesMut::with_capacity(READ_CHUNK);
        }
        if self.out.capacity() > KEEP {
            self.out = BytesMut::with_capacity(4096);
        }
        if self.scratch.capacity() > KEEP {
            self.scratch = Vec::with_capacity(4096);
        }
    }

    /// Bytes received and not yet framed (a server that sends unasked
    /// packets, such as a kill notice, leaves some).
    pub fn pending(&self) -> usize {
        self.raw.len()
    }
}
