//! RESP2, the Redis wire format, over a byte buffer (no I/O): replies are
//! decoded by `redis-protocol` into this client's own [`Reply`] (the type
//! every caller matches on); commands are packed by [`encode`] straight
//! into the pipeline's buffer.

use redis_protocol::resp2::types::OwnedFrame;

/// A Redis reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Status(String),
    /// `-ERR ...`.
    Error(String),
    /// `:42`.
    Int(i64),
    /// `$n` bulk string; `None` for `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*n` array; `None` for `*-1`.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The elements of an array reply (`None` for anything else).
    pub fn as_array(&self) -> Option<&[Reply]> {
        match self {
            Reply::Array(Some(items)) => Some(items),
            _ => None,
        }
    }

    /// A bulk or status reply as UTF-8 text (`None` for anything else).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Reply::Bulk(Some(b)) => String::from_utf8(b.clone()).ok(),
            Reply::Status(s) => Some(s.clone()),
            _ => None,
        }
    }
}

/// Appends one command (an array of bulk strings) to `out`.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Why parsing stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not a RESP2 reply: the connection must be dropped.
    Protocol(String),
}

/// Parses one reply at the start of `buf`: `Ok(None)` when more bytes are
/// needed, else the reply and the bytes it used. The decoding is
/// `redis-protocol`'s; a null bulk string and a null array both become
/// `Bulk(None)` (RESP2 gives them no different meaning for the commands
/// sent here).
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, ParseError> {
    match redis_protocol::resp2::decode::decode(buf) {
        Ok(Some((frame, used))) => Ok(Some((reply_of(frame), used))),
        Ok(None) => Ok(None),
        Err(e) => Err(ParseError::Protocol(format!("not a RESP2 reply: {e}"))),
    }
}

fn reply_of(frame: OwnedFrame) -> Reply {
    match frame {
        OwnedFrame::SimpleString(s) => Reply::Status(String::from_utf8_lossy(&s).into_owned()),
        OwnedFrame::Error(e) => Reply::Error(e),
        OwnedFrame::Integer(i) => Reply::Int(i),
        OwnedFrame::BulkString(b) => Reply::Bulk(Some(b)),
        OwnedFrame::Array(items) => Reply::Array(Some(items.into_iter().map(reply_of).collect())),
        OwnedFrame::Null => Reply::Bulk(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands() {
        let mut out = Vec::new();
        encode(&mut out, &[b"SET", b"k", b"v v"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv v\r\n");
    }

    #[test]
    fn parses_every_type_and_waits_for_more() {
        let cases: Vec<(&[u8], Reply)> = vec![
            (b"+OK\r\n", Reply::Status("OK".into())),
            (b"-ERR no\r\n", Reply::Error("ERR no".into())),
            (b":-7\r\n", Reply::Int(-7)),
            (b"$3\r\nabc\r\n", Reply::Bulk(Some(b"abc".to_vec()))),
            (b"$-1\r\n", Reply::Bulk(None)),
            (
                b"*2\r\n$1\r\na\r\n:1\r\n",
                Reply::Array(Some(vec![Reply::Bulk(Some(b"a".to_vec())), Reply::Int(1)])),
            ),
            (b"*-1\r\n", Reply::Bulk(None)),
        ];
        for (raw, want) in cases {
            assert_eq!(parse(raw).expect("parse"), Some((want, raw.len())));
            for cut in 0..raw.len() {
                assert_eq!(
                    parse(&raw[..cut]).expect("partial"),
                    None,
                    "{:?} cut {cut}",
                    String::from_utf8_lossy(raw)
                );
            }
        }
        let two = b"+A\r\n+B\r\n";
        let (first, used) = parse(two).expect("ok").expect("complete");
        assert_eq!(first, Reply::Status("A".into()));
        assert_eq!(
            parse(&two[used..]).expect("ok").expect("complete").0,
            Reply::Status("B".into())
        );
        assert!(parse(b"?x\r\n").is_err());
        // A bulk string longer than it said is not caught where it ends
        // (redis-protocol does not look at its CRLF) but on the next reply,
        // which starts in the middle of it: the connection is dropped there.
        let (_, used) = parse(b"$3\r\nabcd\r\n").expect("ok").expect("complete");
        assert!(parse(&b"$3\r\nabcd\r\n"[used..]).is_err());
    }
}
