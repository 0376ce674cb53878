//! A record as a member of a Redis sorted set (SPEC §12: "a composite score
//! for ties"). Every member has the score 0, so Redis orders them by their
//! bytes; the member is the [`RankKey`] in 32 big-endian bytes with each
//! signed field's sign bit flipped, so that byte order is rank order — a
//! score, subscore, write time and player exact to 64 bits, where a
//! double's 53 bits could not hold them together.

use super::rank_index::RankKey;

/// A member's length.
pub const MEMBER_LEN: usize = 32;

fn ordered(x: i64) -> [u8; 8] {
    ((x as u64) ^ (1 << 63)).to_be_bytes()
}

fn from_ordered(b: &[u8]) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(b);
    (u64::from_be_bytes(raw) ^ (1 << 63)) as i64
}

/// `key` as a member.
pub fn encode(key: &RankKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(MEMBER_LEN);
    for field in [key.score, key.subscore, key.written_at, key.player_id] {
        out.extend_from_slice(&ordered(field));
    }
    out
}

/// The key a member holds; `None` when it is not one of ours.
pub fn decode(member: &[u8]) -> Option<RankKey> {
    if member.len() != MEMBER_LEN {
        return None;
    }
    let f = |i: usize| from_ordered(&member[i * 8..i * 8 + 8]);
    Some(RankKey {
        score: f(0),
        subscore: f(1),
        written_at: f(2),
        player_id: f(3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_is_key_order_and_members_decode_back() {
        let values = [i64::MIN, -(1 << 53), -2, -1, 0, 1, 2, 1 << 53, i64::MAX];
        let mut keys = Vec::new();
        for (i, &score) in values.iter().enumerate() {
            for &subscore in &values[..3] {
                keys.push(RankKey {
                    score,
                    subscore,
                    written_at: 1_700_000_000_000 + i as i64,
                    player_id: values[(i + 4) % values.len()],
                });
            }
        }
        let mut by_key = keys.clone();
        by_key.sort();
        let mut by_bytes = keys.clone();
        by_bytes.sort_by_key(encode);
        assert_eq!(by_key, by_bytes);
        for k in &keys {
            assert_eq!(decode(&encode(k)), Some(*k));
        }
        assert_eq!(decode(b"short"), None);
    }
}
