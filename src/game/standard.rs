//! The standard game logic: level = floor(exp / 100) + 1, never lowered and
//! never above [`MAX_LEVEL`] (the highest level a profile update may set);
//! `add_exp`, `level_up`, and a `daily_reward` of gold once per UTC day.

use super::{GameError, GameLogic};
use crate::store::{Currency, Progress};
use crate::validate::{MAX_EXP, MAX_LEVEL};
use serde_json::Value;

/// Gold granted by `daily_reward`.
pub const DAILY_REWARD_GOLD: i64 = 100;
/// Largest `amount` of one `add_exp`.
pub const MAX_EXP_STEP: i64 = 1_000_000_000;

/// The standard module.
pub struct Standard;

fn level_for(exp: i64) -> i64 {
    (exp.max(0) / 100 + 1).min(MAX_LEVEL)
}

fn exp_for(level: i64) -> i64 {
    (level - 1).max(0).saturating_mul(100)
}

impl GameLogic for Standard {
    fn name(&self) -> &'static str {
        "standard"
    }

    fn actions(&self) -> &'static [&'static str] {
        &["add_exp", "level_up", "daily_reward"]
    }

    fn plan(&self, action: &str, params: &Value, now_ms: i64) -> Result<Progress, GameError> {
        match action {
            "add_exp" => {
                let amount = params
                    .get("amount")
                    .and_then(Value::as_i64)
                    .filter(|a| (1..=MAX_EXP_STEP).contains(a))
                    .ok_or_else(|| {
                        GameError::BadParameters(format!(
                            "amount must be an integer from 1 to {MAX_EXP_STEP}"
                        ))
                    })?;
                Ok(Progress::AddExp {
                    amount,
                    level_for,
                    max_exp: MAX_EXP,
                })
            }
            "level_up" => Ok(Progress::LevelUp {
                exp_for,
                max_level: MAX_LEVEL,
            }),
            "daily_reward" => Ok(Progress::DailyReward {
                day: now_ms.div_euclid(86_400_000),
                currency: Currency::Gold,
                amount: DAILY_REWARD_GOLD,
            }),
            other => Err(GameError::UnknownAction(format!(
                "unknown action `{other}` (standard offers: {})",
                self.actions().join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_formula() {
        assert_eq!(level_for(0), 1);
        assert_eq!(level_for(99), 1);
        assert_eq!(level_for(100), 2);
        assert_eq!(level_for(250), 3);
        assert_eq!(exp_for(3), 200);
        assert_eq!(level_for(exp_for(7)), 7);
        // The formula stops at the highest level a profile may have.
        assert_eq!(level_for(exp_for(MAX_LEVEL)), MAX_LEVEL);
        assert_eq!(level_for(exp_for(MAX_LEVEL) + 100), MAX_LEVEL);
        assert_eq!(level_for(MAX_EXP), MAX_LEVEL);
    }

    #[test]
    fn plans() {
        let s = Standard;
        assert!(matches!(
            s.plan("add_exp", &serde_json::json!({"amount": 5}), 0),
            Ok(Progress::AddExp { amount: 5, .. })
        ));
        assert_eq!(
            s.plan("add_exp", &serde_json::json!({"amount": 0}), 0)
                .err(),
            Some(GameError::BadParameters(
                "amount must be an integer from 1 to 1000000000".into()
            ))
        );
        assert_eq!(
            s.plan("fly", &serde_json::json!({}), 0).err(),
            Some(GameError::UnknownAction(
                "unknown action `fly` (standard offers: add_exp, level_up, daily_reward)".into()
            ))
        );
        match s.plan("daily_reward", &serde_json::json!({}), 86_400_000 * 3 + 5) {
            Ok(Progress::DailyReward { day, amount, .. }) => {
                assert_eq!((day, amount), (3, DAILY_REWARD_GOLD))
            }
            other => panic!("{other:?}"),
        }
    }
}
