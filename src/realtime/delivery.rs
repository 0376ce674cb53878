//! A notification as the sockets send it (SPEC §11): rendered once into
//! its text frame's JSON, shared by every socket and shard it goes to, and
//! carried between nodes as it is.

use crate::store::Notice;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One notification for one player of one game, ready to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The game.
    pub game: String,
    /// Whom it is for.
    pub player_id: i64,
    /// Its id in the player's sequence.
    pub id: i64,
    /// The whole `{"type":"notification",...}` message.
    pub text: String,
}

impl Delivery {
    /// Renders `notice` of `game`.
    pub fn of(game: &str, notice: &Notice) -> Arc<Delivery> {
        let text = serde_json::json!({
            "type": "notification",
            "id": notice.id,
            "game": game,
            "player_id": notice.player_id,
            "kind": notice.kind.as_str(),
            "data": notice.data,
            "at": crate::clock::rfc3339_ms(notice.at),
        })
        .to_string();
        Arc::new(Delivery {
            game: game.to_string(),
            player_id: notice.player_id,
            id: notice.id,
            text,
        })
    }

    /// Bytes it holds while queued, for the memory budget.
    pub fn footprint(&self) -> usize {
        std::mem::size_of::<Delivery>() + self.game.len() + self.text.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NoticeKind;

    #[test]
    fn a_delivery_carries_the_spec_fields() {
        let notice = Notice {
            player_id: 7,
            id: 3,
            kind: NoticeKind::Wallet,
            data: crate::store::NoticeData::Wallet {
                currency: crate::store::Currency::Gold,
                delta: 5,
                balance: 15,
                reason: "quest".into(),
            },
            at: 1_700_000_000_000,
        };
        let d = Delivery::of("g1", &notice);
        let v: serde_json::Value = serde_json::from_str(&d.text).unwrap_or_default();
        assert_eq!(v["type"], "notification");
        assert_eq!(v["id"], 3);
        assert_eq!(v["game"], "g1");
        assert_eq!(v["player_id"], 7);
        assert_eq!(v["kind"], "wallet");
        assert_eq!(v["data"]["balance"], 15);
        assert_eq!(v["at"], "2023-11-14T22:13:20.000Z");
        assert_eq!((d.player_id, d.id), (7, 3));
    }
}
