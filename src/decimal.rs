//! Integers as decimal text, written into a stack buffer: for hot paths that
//! would otherwise allocate a `String` per number (HTTP response heads, the
//! audit log's record hashes).

/// Room for any `u64` (20 digits) or `i64` (a sign and 19 digits).
pub const MAX_DIGITS: usize = 20;

/// `n` in decimal, as `to_string` writes it, at the end of `digits`.
pub fn unsigned(mut n: u64, digits: &mut [u8; MAX_DIGITS]) -> &[u8] {
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[start..]
}

/// `n` in decimal, as `to_string` writes it (a leading `-` when negative).
pub fn signed(n: i64, digits: &mut [u8; MAX_DIGITS]) -> &[u8] {
    let len = unsigned(n.unsigned_abs(), digits).len();
    let mut start = digits.len() - len;
    if n < 0 {
        start -= 1;
        digits[start] = b'-';
    }
    &digits[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_to_string_writes() {
        let mut d = [0u8; MAX_DIGITS];
        for n in [0, 7, 10, 99, 1_700_000_000_000, u64::MAX] {
            assert_eq!(unsigned(n, &mut d), n.to_string().as_bytes());
        }
        for n in [0, -1, 42, -1_700_000_000_000, i64::MAX, i64::MIN] {
            assert_eq!(signed(n, &mut d), n.to_string().as_bytes());
        }
    }
}
