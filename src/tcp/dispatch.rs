//! Turns one decoded frame into a service call and its reply frame. The
//! connection's authentication lives in [`Session`]; every business message
//! goes through the same service functions as the HTTP routes.

use super::reply::{self, ReplyTo};
use crate::envelope::{parse_json, Data};
use crate::logging::{RequestId, Tagged};
use crate::pipeline::{self, Credentials, Scope};
use crate::protocol::{codes, flags, inflate_body, FrameRef, InflateError, MessageType};
use crate::service::budgets::Guesser;
use crate::service::connection_roles::{RoleSlot, TcpRoles};
use crate::service::leaderboards::{LeaderboardMessage, ScoreRequest};
use crate::service::notifications::{MessageRequest, NotifyRequest};
use crate::service::players::RegisterRequest;
use crate::service::sessions::{HandshakeRequest, LoginRequest, LogoutRequest};
use crate::service::{ApiError, Caller, PageQuery, Role};
use crate::shard::Shard;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Instant;

/// What a connection knows about its peer.
pub struct Session {
    /// The peer's address: the client the node's budgets count.
    pub peer: IpAddr,
    /// Set by a successful handshake ([`Session::set_caller`]).
    caller: Option<Caller>,
    /// Where this connection counts in the shard's connections by role.
    role: RoleSlot,
    /// The user id replies carry.
    pub user_id: String,
    /// Last Heartbeat or Ping.
    pub last_heartbeat: Instant,
    /// Handshakes that failed on this connection.
    pub failed_handshakes: u32,
    /// Set when the connection must close after this batch's replies.
    pub close: bool,
}

impl Session {
    /// A new, unauthenticated session of a client at `peer`, counted in
    /// `roles`.
    pub fn new(peer: IpAddr, roles: Rc<TcpRoles>) -> Session {
        Session {
            peer,
            caller: None,
            role: RoleSlot::new(roles),
            user_id: String::new(),
            last_heartbeat: Instant::now(),
            failed_handshakes: 0,
            close: false,
        }
    }

    /// Who the connection acts as, once a handshake succeeded.
    pub fn caller(&self) -> Option<&Caller> {
        self.caller.as_ref()
    }

    /// Sets (a handshake) or clears (a revocation) who the connection acts as.
    pub fn set_caller(&mut self, caller: Option<Caller>) {
        self.role.set(caller.as_ref().map(|c| c.role));
        self.caller = caller;
    }
}

/// Failed handshakes after which a connection is closed (SPEC §2).
const MAX_FAILED_HANDSHAKES: u32 = 5;

/// The fields every business body may carry besides its action's own: which
/// action, and on what. They are read here and removed before the body is
/// handed to the action ([`body_as`]).
#[derive(Deserialize, Default)]
struct Envelope {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    player_id: Option<i64>,
    #[serde(default)]
    item_id: Option<String>,
    #[serde(default)]
    order_id: Option<String>,
    #[serde(default)]
    page: Option<i64>,
    #[serde(default)]
    page_size: Option<i64>,
}

/// Envelope fields that address a player: the action and its player.
const PLAYER_ENVELOPE: &[&str] = &["action", "player_id"];
/// Envelope fields that address a player's item.
const ITEM_ENVELOPE: &[&str] = &["action", "player_id", "item_id"];
/// Only the action: the rest of an order creation (`player_id`, `item_id`)
/// is the order's own, as in the HTTP body.
const ACTION_ONLY: &[&str] = &["action"];

/// Deserialises the body as the action's own request `T` (the struct the
/// HTTP route takes) after removing the envelope fields `envelope` that
/// addressed it, so an action refuses exactly what its route refuses.
fn body_as<T: serde::de::DeserializeOwned>(body: &[u8], envelope: &[&str]) -> Result<T, ApiError> {
    let invalid = |e: serde_json::Error| ApiError::bad_request(format!("invalid body: {e}"));
    let mut fields: serde_json::Map<String, Value> =
        serde_json::from_slice(body).map_err(invalid)?;
    for name in envelope {
        fields.remove(*name);
    }
    T::deserialize(Value::Object(fields)).map_err(invalid)
}

/// Handles `frame`, appending any reply to `out`, and counts it in the
/// shard's metrics.
pub async fn dispatch(
    shard: &Shard,
    session: &mut Session,
    frame: &FrameRef<'_>,
    out: &mut Vec<u8>,
) {
    let started = Instant::now();
    // Everything the frame logs carries an id of its own.
    let (name, code) = Tagged::new(RequestId::next(), answer(shard, session, frame, out)).await;
    pipeline::count(shard, "tcp", name, code, started);
}

/// Answers `frame`; returns the message name and the status (200 or the
/// error code) for metrics.
async fn answer(
    shard: &Shard,
    session: &mut Session,
    frame: &FrameRef<'_>,
    out: &mut Vec<u8>,
) -> (&'static str, u16) {
    if std::str::from_utf8(frame.game_id).is_err() || std::str::from_utf8(frame.user_id).is_err() {
        // Refused whatever the type, and never echoed back.
        let to = ReplyTo {
            sequence: frame.sequence,
            game_id: b"",
            user_id: b"",
        };
        reply::error_code(
            out,
            &to,
            codes::MALFORMED,
            "game id and user id must be UTF-8",
        );
        return ("invalid", codes::MALFORMED as u16);
    }
    let Some(msg_type) = MessageType::from_code(frame.msg_type) else {
        let to = reply_to(frame, session);
        let msg = format!("unknown message type 0x{:04x}", frame.msg_type);
        reply::error_code(out, &to, codes::MALFORMED, &msg);
        return ("unknown", codes::MALFORMED as u16);
    };
    if frame.flags & flags::ENCRYPTED != 0 {
        // SPEC §2: refused whatever the type — keep-alives included — before
        // anything else looks at the frame; the connection stays usable.
        reply::error_code(out, &reply_to(frame, session), codes::MALFORMED, ENCRYPTED);
        return (msg_type.name(), codes::MALFORMED as u16);
    }
    match msg_type {
        MessageType::Heartbeat | MessageType::Ping => {
            session.last_heartbeat = Instant::now();
            // A connection that only keeps itself alive still learns of a
            // revocation while the shard's bounded set remembers it (its
            // heartbeats come far more often than a revocation is kept).
            let revoked = session
                .caller()
                .is_some_and(|c| shard.services.check_not_revoked(c).is_err());
            if revoked {
                session.set_caller(None);
            }
            let answer = if msg_type == MessageType::Ping {
                MessageType::Pong
            } else {
                MessageType::Heartbeat
            };
            reply::frame(out, &reply_to(frame, session), answer, b"");
            return (msg_type.name(), 200);
        }
        MessageType::Error | MessageType::Pong => {
            let msg = format!("{} frames are sent by the server only", msg_type.name());
            reply::error_code(out, &reply_to(frame, session), codes::MALFORMED, &msg);
            return (msg_type.name(), codes::MALFORMED as u16);
        }
        _ => {}
    }
    // Every request (keep-alives aside) counts against the client's per-node
    // budget, exactly as an HTTP request does.
    let result = match pipeline::admit(shard, session.peer).await {
        Err(e) => Err(e),
        Ok(()) => match checked_body(shard, frame) {
            Ok(body) => handle(shard, session, msg_type, frame, &body).await,
            Err(e) => Err(e),
        },
    };
    let to = reply_to(frame, session);
    match result {
        Ok(data) => {
            if wants_reply(frame.flags) {
                reply::ok(out, &to, msg_type, &data);
            }
            (msg_type.name(), 200)
        }
        Err(e) => {
            reply::error(out, &to, &e);
            (msg_type.name(), e.tcp_code().min(u16::MAX as u32) as u16)
        }
    }
}

/// Whether a successful request is answered (SPEC §2 "Replies"): always, as
/// the original did (its client library never sets NeedResponse and waits
/// for the reply), except a fire-and-forget frame — Async set, NeedResponse
/// clear — which is answered only if it fails.
fn wants_reply(frame_flags: u8) -> bool {
    frame_flags & flags::ASYNC == 0 || frame_flags & flags::NEED_RESPONSE != 0
}

/// Replies to `frame` carry its sequence and game id and the session's user.
fn reply_to<'a>(frame: &FrameRef<'a>, session: &'a Session) -> ReplyTo<'a> {
    ReplyTo {
        sequence: frame.sequence,
        game_id: frame.game_id,
        user_id: session.user_id.as_bytes(),
    }
}

/// The answer to a frame with the Encrypted flag (0xE002, SPEC §2): the
/// protocol's own encryption is not supported, TLS is.
const ENCRYPTED: &str = "encrypted bodies are not supported; use TLS";

/// Returns the (inflated) body of a frame [`answer`] has let through (the
/// Encrypted flag is refused there, for every type).
fn checked_body(shard: &Shard, frame: &FrameRef<'_>) -> Result<Vec<u8>, ApiError> {
    if frame.flags & flags::COMPRESSED == 0 {
        return Ok(frame.body.to_vec());
    }
    let limit = shard.config.tcp.max_body_bytes;
    inflate_body(frame.body, limit).map_err(|e| match e {
        InflateError::NotGzip => ApiError::bad_request("body is not valid gzip"),
        InflateError::TooLarge => {
            ApiError::new(413, format!("inflated body exceeds {limit} bytes"))
        }
    })
}

async fn handle(
    shard: &Shard,
    session: &mut Session,
    msg_type: MessageType,
    frame: &FrameRef<'_>,
    body: &[u8],
) -> Result<Data, ApiError> {
    if msg_type == MessageType::Handshake {
        return handshake(shard, session, frame, body).await.map(Data::from);
    }
    let authenticated = match pipeline::authenticate(shard, Credentials::Session(session.caller()))
    {
        Ok(caller) => caller,
        Err(e) => {
            // Revoked: the connection must handshake again with a new token.
            session.set_caller(None);
            return Err(e);
        }
    };
    let caller: &Caller = &authenticated;
    let requested = std::str::from_utf8(frame.game_id)
        .ok()
        .filter(|g| !g.is_empty());
    let kind = match msg_type {
        MessageType::PlayerLogout => Scope::EndSession,
        _ => Scope::Game,
    };
    let services = &shard.services;
    let game = pipeline::scope(shard, caller, requested, kind)?.id.as_str();
    // Parsed straight into the structs each action needs (no JSON tree).
    let value: &[u8] = if body.is_empty() { b"{}" } else { body };
    if value.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request("body must be a JSON object"));
    }
    let common: Envelope = parse_json(value)?;
    let action = common.action.as_deref().unwrap_or("");
    let player = || {
        common
            .player_id
            .or(caller.player_id)
            .ok_or_else(|| ApiError::bad_request("player_id required"))
    };
    let item = || {
        common
            .item_id
            .clone()
            .ok_or_else(|| ApiError::bad_request("item_id required"))
    };
    let order = || {
        common
            .order_id
            .clone()
            .ok_or_else(|| ApiError::bad_request("order_id required"))
    };
    let page = PageQuery {
        page: common.page,
        page_size: common.page_size,
    };
    let result = match msg_type {
        MessageType::PlayerLogin => {
            // A player's own connection guesses from its address; a game
            // server logs players in on their behalf (a relay).
            let guesser = if caller.role == Role::Player {
                Guesser::Client(session.peer)
            } else {
                Guesser::Relay
            };
            services
                .login(game, body_as::<LoginRequest>(value, ACTION_ONLY)?, guesser)
                .await
        }
        MessageType::PlayerLogout => {
            services
                .logout_player(
                    caller,
                    game,
                    LogoutRequest {
                        player_id: common.player_id,
                    },
                )
                .await
        }
        MessageType::PlayerData => match action {
            // Sent from the cache's JSON text as is.
            "get" => return services.get_player(caller, game, player()?).await,
            "update" => {
                services
                    .update_player(
                        caller,
                        game,
                        player()?,
                        body_as(value, PLAYER_ENVELOPE)?,
                        None,
                    )
                    .await
            }
            "create" => {
                services
                    .create_player(
                        caller,
                        game,
                        body_as::<RegisterRequest>(value, ACTION_ONLY)?,
                    )
                    .await
            }
            "wallet" => {
                services
                    .change_wallet(caller, game, player()?, body_as(value, PLAYER_ENVELOPE)?)
                    .await
            }
            "ledger" => services.ledger(caller, game, player()?, page).await,
            other => Err(unknown_action(
                "PlayerData",
                other,
                "get, update, create, wallet, ledger",
            )),
        },
        MessageType::ItemOperation => match action {
            "list" => services.inventory(caller, game, player()?).await,
            "use" => {
                services
                    .use_item(
                        caller,
                        game,
                        player()?,
                        &item()?,
                        body_as(value, ITEM_ENVELOPE)?,
                    )
                    .await
            }
            "grant" => {
                services
                    .grant_item(
                        caller,
                        game,
                        player()?,
                        &item()?,
                        body_as(value, ITEM_ENVELOPE)?,
                    )
                    .await
            }
            "transfer" => {
                services
                    .transfer_item(
                        caller,
                        game,
                        player()?,
                        &item()?,
                        body_as(value, ITEM_ENVELOPE)?,
                    )
                    .await
            }
            other => Err(unknown_action(
                "ItemOperation",
                other,
                "list, use, grant, transfer",
            )),
        },
        MessageType::OrderOperation => match action {
            "create" => services
                .create_order(caller, game, body_as(value, ACTION_ONLY)?, None)
                .await
                .map(|(v, _)| v),
            "get" => services.get_order(caller, game, &order()?).await,
            "list" => {
                services
                    .list_orders(caller, game, common.player_id, page)
                    .await
            }
            "pay" => services.pay_order(caller, game, &order()?).await,
            "cancel" => services.cancel_order(caller, game, &order()?).await,
            other => Err(unknown_action(
                "OrderOperation",
                other,
                "create, get, list, pay, cancel",
            )),
        },
        MessageType::Notify => {
            let req: NotifyRequest = body_as(value, ACTION_ONLY)?;
            let message = MessageRequest {
                subject: req.subject,
                body: req.body,
            };
            services
                .send_message(caller, game, req.player_id, message, req.persistent)
                .await
        }
        MessageType::Leaderboard => {
            let m: LeaderboardMessage = body_as(value, PLAYER_ENVELOPE)?;
            let board = m.board.as_str();
            let period = m.period.as_deref();
            match action {
                "submit" => {
                    let score = m
                        .score
                        .ok_or_else(|| ApiError::bad_request("submit needs \"score\""))?;
                    let req = ScoreRequest {
                        player_id: player()?,
                        score,
                        subscore: m.subscore,
                        write_id: m.write_id,
                    };
                    services.write_score(caller, game, board, req).await
                }
                "top" => {
                    services
                        .board_top(caller, game, board, m.limit, m.cursor.as_deref(), period)
                        .await
                }
                "around" => {
                    services
                        .board_around(caller, game, board, player()?, m.limit, period)
                        .await
                }
                "rank" => {
                    services
                        .board_player(caller, game, board, player()?, period)
                        .await
                }
                other => Err(unknown_action(
                    "Leaderboard",
                    other,
                    "submit, top, around, rank",
                )),
            }
        }
        _ => Err(ApiError::bad_request(format!(
            "{} is not a request",
            msg_type.name()
        ))),
    };
    result.map(Data::from)
}

fn unknown_action(message: &str, action: &str, known: &str) -> ApiError {
    if action.is_empty() {
        ApiError::bad_request(format!("{message} needs an action ({known})"))
    } else {
        ApiError::bad_request(format!("unknown {message} action `{action}` ({known})"))
    }
}

async fn handshake(
    shard: &Shard,
    session: &mut Session,
    frame: &FrameRef<'_>,
    body: &[u8],
) -> Result<Value, ApiError> {
    let game_id = std::str::from_utf8(frame.game_id).unwrap_or("");
    let header_user = std::str::from_utf8(frame.user_id).unwrap_or("");
    let request: HandshakeRequest = if body.is_empty() {
        HandshakeRequest::default()
    } else {
        parse_json(body)?
    };
    let result = shard
        .services
        .handshake(game_id, header_user, request, session.peer)
        .await;
    let (caller, user_id) = match result {
        Ok(v) => v,
        Err(e) => {
            session.failed_handshakes += 1;
            if session.failed_handshakes >= MAX_FAILED_HANDSHAKES {
                session.close = true;
            }
            return Err(e);
        }
    };
    let data = json!({
        "game_id": caller.game_id,
        "user_id": user_id,
        "role": caller.role.as_str(),
        "session_id": caller.session_id,
        "heartbeat_interval_s": shard.config.tcp.heartbeat_interval_s,
    });
    let mut caller = caller;
    caller.client = Some(session.peer);
    session.set_caller(Some(caller));
    session.user_id = user_id;
    session.last_heartbeat = Instant::now();
    Ok(data)
}
