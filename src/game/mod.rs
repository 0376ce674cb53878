//! Per-game logic modules behind one trait. A module turns an action name and
//! its JSON parameters into a [`Progress`] change, a pure computation; the
//! service layer checks who may call it and the store applies it in one
//! transaction. Adding a game's own rules means adding a module here and
//! naming it in `games.<id>.logic`.

pub mod standard;

use crate::store::Progress;
use serde_json::Value;

/// A game's rules for `POST /api/v1/games/{game_id}/{action}`.
pub trait GameLogic: Send + Sync {
    /// The module's name in the configuration.
    fn name(&self) -> &'static str;
    /// The actions it offers.
    fn actions(&self) -> &'static [&'static str];
    /// Plans `action` with its parameters at `now_ms`.
    fn plan(&self, action: &str, params: &Value, now_ms: i64) -> Result<Progress, GameError>;
}

/// Why a game logic module refused to plan an action; the service layer
/// turns it into its answer (404 and 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GameError {
    /// The module offers no such action; the message lists those it offers.
    UnknownAction(String),
    /// The action's parameters are missing or out of range; the message
    /// names the parameter.
    BadParameters(String),
}

/// The module named `name`, if it exists.
pub fn by_name(name: &str) -> Option<&'static dyn GameLogic> {
    match name {
        "standard" => Some(&standard::Standard),
        _ => None,
    }
}
