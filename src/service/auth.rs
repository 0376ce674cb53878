//! Who is calling: roles, access tokens (HS256 JWT), password hashing
//! (argon2id) and secret comparison. Pure functions and values; the blocking
//! parts (hashing) are run on the blocking pool by the callers.

use super::ApiError;
use crate::expiring::ExpiringMap;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::rc::Rc;

/// What a caller may do (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A player: its own data only.
    Player,
    /// A game server: any player of its game.
    GameServer,
    /// An operator: everything.
    Admin,
}

impl Role {
    /// The role's name in JSON and tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Player => "player",
            Role::GameServer => "game_server",
            Role::Admin => "admin",
        }
    }
}

/// An authenticated caller, as established by a token or a TCP handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The game the caller acts in.
    pub game_id: String,
    /// The caller's role.
    pub role: Role,
    /// The player, for the `player` role.
    pub player_id: Option<i64>,
    /// Session id (refresh-token family or connection session).
    pub session_id: String,
    /// Printable subject: player id, server name or admin name.
    pub subject: String,
    /// The client's address, once the front end has set it (the audit
    /// log's actor; SPEC §13).
    pub client: Option<std::net::IpAddr>,
}

impl Caller {
    /// Whether the caller may read or change every player of `game_id`
    /// (admins, the game's servers): then a request needs no look at which
    /// player a record belongs to before acting on it.
    pub fn may_access_every_player(&self, game_id: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::GameServer => self.game_id == game_id,
            Role::Player => false,
        }
    }

    /// Whether the caller may read or change `player_id` of `game_id`.
    pub fn may_access_player(&self, game_id: &str, player_id: i64) -> bool {
        match self.role {
            Role::Player => self.game_id == game_id && self.player_id == Some(player_id),
            Role::Admin | Role::GameServer => self.may_access_every_player(game_id),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    gid: String,
    role: Role,
    sid: String,
    iat: i64,
    exp: i64,
}

/// Issues and verifies access tokens with the node's HS256 secret.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl_s: i64,
    /// Tokens this shard verified recently, until their expiry: a client
    /// sends the same token with every request, so the HMAC and JSON work
    /// is done once per token, not per request. At most
    /// [`VERIFIED_CAPACITY`]; forgetting one only costs a verification.
    verified: RefCell<ExpiringMap<Rc<str>, Caller, i64>>,
}

/// Most verified tokens remembered per shard.
pub const VERIFIED_CAPACITY: usize = 10_000;

impl TokenIssuer {
    /// A token issuer for `secret`; tokens live `access_ttl_s` seconds.
    pub fn new(secret: &[u8], access_ttl_s: u64) -> TokenIssuer {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        // A token that says it is not valid yet is refused until it is.
        validation.validate_nbf = true;
        validation.required_spec_claims = ["exp", "sub"].iter().map(|s| s.to_string()).collect();
        TokenIssuer {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl_s: access_ttl_s.min(i64::MAX as u64) as i64,
            verified: RefCell::new(ExpiringMap::new(VERIFIED_CAPACITY)),
        }
    }

    /// Signs an access token for `caller`; returns it with its expiry (Unix s).
    pub fn issue(&self, caller: &Caller, now_s: i64) -> Result<(String, i64), ApiError> {
        let exp = now_s.saturating_add(self.access_ttl_s);
        let claims = Claims {
            sub: caller.subject.clone(),
            gid: caller.game_id.clone(),
            role: caller.role,
            sid: caller.session_id.clone(),
            iat: now_s,
            exp,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| {
            tracing::error!(error = %e, "token signing failed");
            ApiError::internal()
        })?;
        Ok((token, exp))
    }

    /// Verifies signature and expiry and returns the caller the token names.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let now = crate::clock::now_s();
        if let Some((caller, exp)) = self.verified.borrow().get(token) {
            if exp > now {
                return Ok(caller.clone());
            }
        }
        let (caller, exp) = self.verify_signature(token)?;
        // A full cache drops expired tokens, then the one expiring soonest.
        self.verified
            .borrow_mut()
            .insert(Rc::from(token), caller.clone(), exp, now);
        Ok(caller)
    }

    fn verify_signature(&self, token: &str) -> Result<(Caller, i64), ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::unauthorized("token expired")
                }
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
                    ApiError::unauthorized("token not valid yet (nbf)")
                }
                _ => ApiError::unauthorized("invalid token"),
            })?;
        let c = data.claims;
        let exp = c.exp;
        let player_id = match c.role {
            Role::Player => Some(
                c.sub
                    .parse::<i64>()
                    .map_err(|_| ApiError::unauthorized("invalid token"))?,
            ),
            _ => None,
        };
        let caller = Caller {
            game_id: c.gid,
            role: c.role,
            player_id,
            session_id: c.sid,
            subject: c.sub,
            client: None,
        };
        Ok((caller, exp))
    }
}

/// Hashes a password with argon2id and a random salt (blocking: ~tens of ms).
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| {
            tracing::error!(error = %e, "password hashing failed");
            ApiError::internal()
        })
}

/// Checks a password against a stored PHC string (blocking).
pub fn verify_password(stored: &str, password: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// `n` random bytes as lowercase hex, for session ids and refresh secrets.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Compares secrets in time independent of where they differ (`subtle`);
/// only a difference in length shows, and lengths are not secret here.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            game_id: "game1".into(),
            role: Role::Player,
            player_id: Some(42),
            session_id: "s".into(),
            subject: "42".into(),
            client: None,
        }
    }

    #[test]
    fn token_round_trip_and_tamper_and_expiry() {
        let issuer = TokenIssuer::new(b"0123456789abcdef0123456789abcdef", 900);
        let now = crate::clock::now_s();
        let (t, exp) = issuer.issue(&caller(), now).expect("issue");
        assert_eq!(exp, now + 900);
        assert_eq!(issuer.verify(&t).expect("verify"), caller());
        let mut tampered = t.clone().into_bytes();
        let last = tampered.len() - 5;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert_eq!(issuer.verify(&tampered).unwrap_err().code, 401);
        let (old, _) = issuer.issue(&caller(), now - 10_000).expect("issue");
        assert_eq!(issuer.verify(&old).unwrap_err().message, "token expired");
        let other = TokenIssuer::new(b"another-secret-another-secret-xx", 900);
        assert!(other.verify(&t).is_err());
    }

    #[test]
    fn a_token_with_a_future_nbf_is_refused() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let issuer = TokenIssuer::new(secret, 900);
        let now = crate::clock::now_s();
        let sign = |nbf: i64| {
            let claims = serde_json::json!({
                "sub": "42", "gid": "game1", "role": "player", "sid": "s1",
                "iat": now, "exp": now + 900, "nbf": nbf,
            });
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(secret),
            )
            .expect("sign")
        };
        let e = issuer.verify(&sign(now + 600)).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (401, "token not valid yet (nbf)")
        );
        assert!(issuer.verify(&sign(now - 1)).is_ok());
    }

    #[test]
    fn the_verified_token_cache_stays_within_its_cap() {
        let issuer = TokenIssuer::new(b"0123456789abcdef0123456789abcdef", 900);
        let now = crate::clock::now_s();
        let mut tokens = Vec::new();
        for i in 0..VERIFIED_CAPACITY + 50 {
            let c = Caller {
                session_id: format!("s{i}"),
                ..caller()
            };
            // Later tokens expire later, so the first ones are evicted.
            let (t, _) = issuer.issue(&c, now + i as i64).expect("issue");
            assert_eq!(issuer.verify(&t).expect("verify").session_id, c.session_id);
            tokens.push(t);
        }
        let verified = issuer.verified.borrow();
        assert_eq!(verified.len(), VERIFIED_CAPACITY);
        assert!(verified.get(tokens[0].as_str()).is_none());
        assert!(verified
            .get(tokens[VERIFIED_CAPACITY + 49].as_str())
            .is_some());
        drop(verified);
        // An evicted token still verifies (the cache only saves work).
        assert_eq!(issuer.verify(&tokens[0]).expect("verify").session_id, "s0");
    }

    #[test]
    fn passwords_verify_only_when_equal() {
        let h = hash_password("hunter22").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "hunter22"));
        assert!(!verify_password(&h, "hunter23"));
        assert!(!verify_password("garbage", "hunter22"));
    }

    #[test]
    fn ownership_rules() {
        let p = caller();
        assert!(p.may_access_player("game1", 42));
        assert!(!p.may_access_player("game1", 43));
        assert!(!p.may_access_player("game2", 42));
        let gs = Caller {
            role: Role::GameServer,
            player_id: None,
            ..caller()
        };
        assert!(gs.may_access_player("game1", 7));
        assert!(!gs.may_access_player("game2", 7));
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
