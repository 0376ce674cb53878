//! RESP2, the Redis wire format: command encoding and incremental reply
//! parsing over a byte buffer (no I/O). Small enough to own, and it lets the
//! Redis client run on glommio sockets without another runtime.

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

/// Largest bulk string or array accepted from the server.
const MAX_LEN: i64 = 512 * 1024 * 1024;

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

fn line(buf: &[u8]) -> Option<(&[u8], usize)> {
    let end = memchr::memchr(b'\n', buf)?;
    if end == 0 || buf[end - 1] != b'\r' {
        return Some((&buf[..0], usize::MAX));
    }
    Some((&buf[..end - 1], end + 1))
}

fn number(text: &[u8]) -> Result<i64, ParseError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            ParseError::Protocol(format!("bad number {:?}", String::from_utf8_lossy(text)))
        })
}

/// Parses one reply at the start of `buf`: `Ok(None)` when more bytes are
/// needed, else the reply and the bytes it used.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, ParseError> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let Some((text, used)) = line(&buf[1..]) else {
        return Ok(None);
    };
    if used == usize::MAX {
        return Err(ParseError::Protocol("line without CRLF".into()));
    }
    let head = 1 + used;
    match kind {
        b'+' => Ok(Some((
            Reply::Status(String::from_utf8_lossy(text).into_owned()),
            head,
        ))),
        b'-' => Ok(Some((
            Reply::Error(String::from_utf8_lossy(text).into_owned()),
            head,
        ))),
        b':' => Ok(Some((Reply::Int(number(text)?), head))),
        b'$' => {
            let n = number(text)?;
            if n < 0 {
                return Ok(Some((Reply::Bulk(None), head)));
            }
            if n > MAX_LEN {
                return Err(ParseError::Protocol("bulk string too large".into()));
            }
            let n = n as usize;
            if buf.len() < head + n + 2 {
                return Ok(None);
            }
            if &buf[head + n..head + n + 2] != b"\r\n" {
                return Err(ParseError::Protocol("bulk string without CRLF".into()));
            }
            Ok(Some((
                Reply::Bulk(Some(buf[head..head + n].to_vec())),
                head + n + 2,
            )))
        }
        b'*' => {
            let n = number(text)?;
            if n < 0 {
                return Ok(Some((Reply::Array(None), head)));
            }
            if n > MAX_LEN {
                return Err(ParseError::Protocol("array too large".into()));
            }
            let mut items = Vec::with_capacity((n as usize).min(1024));
            let mut at = head;
            for _ in 0..n {
                match parse(&buf[at..])? {
                    Some((item, used)) => {
                        items.push(item);
                        at += used;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(Some(items)), at)))
        }
        other => Err(ParseError::Protocol(format!(
            "unknown reply type {:?}",
            other as char
        ))),
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
            (b"*-1\r\n", Reply::Array(None)),
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
        assert!(parse(b"$3\r\nabcd\r\n").is_err());
    }
}
