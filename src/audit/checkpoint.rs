//! Signed checkpoints of the audit chains (SPEC §13): a node signs each
//! chain's head (game, chain, seq, hash, when, which node) with Ed25519.
//! Someone who can write to the database can rebuild a chain's hashes after
//! changing a record, but not sign: a checkpoint whose record no longer
//! has the signed hash shows the change, and the checkpoint also goes to the
//! node's log, a copy outside the database.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// A signed chain head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The chain.
    pub chain: i64,
    /// The head's place in it.
    pub seq: i64,
    /// The head's hash.
    pub hash: String,
    /// When it was signed (Unix ms).
    pub at: i64,
    /// The node that signed it.
    pub node: String,
    /// The signer's public key (hex).
    pub public_key: String,
    /// The signature (hex) of [`message`].
    pub signature: String,
}

/// What a checkpoint signs: its game and fields, length-prefixed.
pub fn message(game: &str, c: &Checkpoint) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    for f in [
        "dm-audit-checkpoint-v1",
        game,
        &c.chain.to_string(),
        &c.seq.to_string(),
        &c.hash,
        &c.at.to_string(),
        &c.node,
    ] {
        out.extend_from_slice(&(f.len() as u64).to_be_bytes());
        out.extend_from_slice(f.as_bytes());
    }
    out
}

/// The node's signing key.
pub struct AuditKey(SigningKey);

impl AuditKey {
    /// A key from its 32-byte seed, written as 64 hex digits (or base64).
    pub fn parse(text: &str) -> Result<AuditKey, String> {
        use base64::Engine;
        let text = text.trim();
        let bytes = hex::decode(text)
            .ok()
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .ok_or("audit.signing_key must be 32 bytes in hex (64 digits) or base64")?;
        let seed: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| "audit.signing_key must be 32 bytes in hex (64 digits) or base64")?;
        Ok(AuditKey(SigningKey::from_bytes(&seed)))
    }

    /// A new random key.
    pub fn generate() -> AuditKey {
        AuditKey(SigningKey::from_bytes(&rand::random::<[u8; 32]>()))
    }

    /// The seed, hex (what [`AuditKey::parse`] reads).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    /// The public key, hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.0.verifying_key().to_bytes())
    }

    /// Signs `c` (its `public_key` and `signature` are set).
    pub fn sign(&self, game: &str, mut c: Checkpoint) -> Checkpoint {
        c.public_key = self.public_hex();
        c.signature = hex::encode(self.0.sign(&message(game, &c)).to_bytes());
        c
    }
}

/// Whether `c` carries a valid signature by the key `public_hex`.
pub fn signed_by(game: &str, c: &Checkpoint, public_hex: &str) -> bool {
    if c.public_key != public_hex {
        return false;
    }
    let (Ok(key), Ok(sig)) = (hex::decode(&c.public_key), hex::decode(&c.signature)) else {
        return false;
    };
    let (Ok(key), Ok(sig)) = (
        <[u8; 32]>::try_from(key.as_slice()),
        <[u8; 64]>::try_from(sig.as_slice()),
    ) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&key) else {
        return false;
    };
    key.verify(&message(game, c), &Signature::from_bytes(&sig))
        .is_ok()
}

/// A short id of a public key (its SHA-256's first 8 hex digits), for logs.
pub fn key_id(public_hex: &str) -> String {
    hex::encode(Sha256::digest(public_hex.as_bytes()))[..8].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_checkpoint_verifies_and_any_change_does_not() {
        let key = AuditKey::generate();
        let again = AuditKey::parse(&key.to_hex()).expect("parse");
        assert_eq!(again.public_hex(), key.public_hex());
        let c = key.sign(
            "game1",
            Checkpoint {
                chain: 2,
                seq: 10,
                hash: "ab".repeat(32),
                at: 5,
                node: "n1".into(),
                public_key: String::new(),
                signature: String::new(),
            },
        );
        let public = key.public_hex();
        assert!(signed_by("game1", &c, &public));
        assert!(!signed_by("game2", &c, &public), "another game");
        let moved = Checkpoint {
            seq: 11,
            ..c.clone()
        };
        assert!(!signed_by("game1", &moved, &public));
        let other = AuditKey::generate();
        let forged = other.sign("game1", c.clone());
        assert!(!signed_by("game1", &forged, &public), "not our key");
        assert!(AuditKey::parse("short").is_err());
    }
}
