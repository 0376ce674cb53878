//! Which address a request comes from, for rate limits, failure budgets and
//! logs: the peer's, unless the peer is a proxy the operator trusts
//! (`http.trusted_proxies`), in which case `X-Forwarded-For` says.
//!
//! A proxy such as nginx *appends* the address it saw to whatever
//! `X-Forwarded-For` the client sent, so only the right end of the list is
//! trustworthy: walking it from the right, each trusted proxy vouches for the
//! address before it, and the first address that is not a trusted proxy is
//! the client. A client that forges the header only adds entries to the left
//! of what the proxies wrote, which are never reached.

use std::net::IpAddr;

/// One address or network (`10.0.0.0/8`, `::1`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Parses `addr` or `addr/prefix`.
    pub fn parse(text: &str) -> Result<IpRange, String> {
        let bad = || format!("`{text}` is not an IP address or network like 10.0.0.0/8");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(bad)?,
        };
        Ok(IpRange { network, prefix })
    }

    /// Whether `ip` is inside this range (an IPv4-mapped IPv6 address counts
    /// as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                same_prefix(u32::from(n) as u128, u32::from(a) as u128, 32, self.prefix)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                same_prefix(u128::from(n), u128::from(a), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, bits: u8, prefix: u8) -> bool {
    let host_bits = u32::from(bits - prefix);
    (a ^ b).checked_shr(host_bits).unwrap_or(0) == 0
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpRange>);

impl TrustedProxies {
    /// Parses `http.trusted_proxies`; the message names the bad entry.
    pub fn parse(list: &[String]) -> Result<TrustedProxies, String> {
        list.iter()
            .map(|s| IpRange::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|r| r.contains(ip))
    }

    /// The client behind a request from `peer` carrying `forwarded_for`.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let Some(list) = forwarded_for.filter(|_| self.trusts(peer)) else {
            return peer;
        };
        let mut client = peer;
        for entry in list.rsplit(',') {
            let Ok(ip) = entry.trim().parse::<IpAddr>() else {
                // Garbage where a proxy would have written an address: the
                // last address vouched for is as far as we can trust.
                return client;
            };
            client = ip;
            if !self.trusts(ip) {
                return ip;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn ranges() {
        let r = IpRange::parse("10.1.0.0/16").expect("parses");
        assert!(r.contains(ip("10.1.200.3")));
        assert!(!r.contains(ip("10.2.0.1")));
        assert!(r.contains(ip("::ffff:10.1.0.9")));
        assert!(IpRange::parse("0.0.0.0/0")
            .expect("all")
            .contains(ip("8.8.8.8")));
        assert!(IpRange::parse("::1").expect("one").contains(ip("::1")));
        assert!(!IpRange::parse("::1")
            .expect("one")
            .contains(ip("127.0.0.1")));
        for bad in ["", "10.0.0.0/33", "nope", "1.2.3.4/x", "::/129"] {
            assert!(IpRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("127.0.0.1"), Some("1.2.3.4")),
            ip("127.0.0.1")
        );
        let nginx = TrustedProxies::parse(&["127.0.0.1".into()]).expect("parses");
        assert_eq!(
            nginx.client(ip("127.0.0.1"), Some("1.2.3.4")),
            ip("1.2.3.4")
        );
        // A forged entry on the left is never reached: nginx appended the
        // address it saw on the right.
        assert_eq!(
            nginx.client(ip("127.0.0.1"), Some("9.9.9.9, 1.2.3.4")),
            ip("1.2.3.4")
        );
        // Reached directly, the header is ignored.
        assert_eq!(nginx.client(ip("5.6.7.8"), Some("9.9.9.9")), ip("5.6.7.8"));
        // Chains of trusted proxies are walked; garbage stops the walk.
        let two = TrustedProxies::parse(&["127.0.0.1".into(), "10.0.0.0/8".into()]).expect("ok");
        assert_eq!(
            two.client(ip("127.0.0.1"), Some("1.2.3.4, 10.0.0.7")),
            ip("1.2.3.4")
        );
        assert_eq!(
            two.client(ip("127.0.0.1"), Some("junk, 10.0.0.7")),
            ip("10.0.0.7")
        );
        assert_eq!(nginx.client(ip("127.0.0.1"), None), ip("127.0.0.1"));
    }
}
