//! `datamiddleware probe URL`: a health check that needs no shell tools.
//!
//! The container image is a slim Debian without curl; its `HEALTHCHECK` and
//! any exec probe run the binary itself, which sends one `GET` over plain
//! HTTP/1.1 and exits 0 for a 2xx answer, 1 otherwise (with one line saying
//! why), within a bounded time.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Most bytes read of an answer: the status line is all that matters.
const MAX_READ: usize = 64 * 1024;

/// Splits `http://host:port/path` into the address and the path.
fn parse(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("probe URL must start with http:// (got {url:?})"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("probe URL has no host: {url:?}"));
    }
    let address = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((address, path.to_string()))
}

/// GETs `url` within `timeout` (connect, send and read each); the status.
pub fn get(url: &str, timeout: Duration) -> Result<u16, String> {
    let (address, path) = parse(url)?;
    let addr = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("no address for {address}"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let host = address.clone();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: datamiddleware-probe\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("cannot send to {addr}: {e}"))?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.windows(2).any(|w| w == b"\r\n") && answer.len() < MAX_READ {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("no answer from {addr}: {e}")),
        }
    }
    let line = answer.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut fields = line.split_whitespace();
    match (
        fields.next(),
        fields.next().and_then(|s| s.parse::<u16>().ok()),
    ) {
        (Some(v), Some(status)) if v.starts_with("HTTP/1.") => Ok(status),
        _ => Err(format!(
            "not an HTTP answer from {addr}: {:?}",
            line.trim_end()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_and_path() {
        assert_eq!(
            parse("http://127.0.0.1:8080/ready").expect("ok"),
            ("127.0.0.1:8080".to_string(), "/ready".to_string())
        );
        assert_eq!(
            parse("http://localhost").expect("ok"),
            ("localhost:80".to_string(), "/".to_string())
        );
        assert!(parse("https://x/").is_err());
        assert!(parse("http:///ready").is_err());
    }
}
