//! The transactions of the item catalogue and of players' inventories
//! ([`ItemStore`]): catalogue entries, and using, granting and transferring
//! items; the inventory row changes an order also makes are the shared
//! helpers of `sql_store/mod.rs`.

use super::audit;
use super::{
    active_item, add_items, entry, found_or, issued, item_draft, item_from, live_player_ids,
    load_item, notify, remove_items, row_of, visible_player, Lock, SqlStore, ITEM_COLUMNS,
};
use crate::store::sql::{Backend, SqlConn, SqlValue};
use crate::store::{
    Actor, InventoryEntry, ItemDef, ItemDefPatch, ItemStatus, ItemStore, Notified, PlayerStatus,
    Rule, StoreError, StoreFuture,
};
use serde_json::json;

async fn insert_item(c: &mut dyn SqlConn, def: &ItemDef) -> Result<u64, StoreError> {
    c.exec(
        &format!("INSERT INTO item_defs ({ITEM_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
        args![
            &def.item_id,
            &def.name,
            &def.item_type,
            &def.quality,
            &def.description,
            def.price_gold,
            def.price_diamonds,
            def.max_stack,
            def.status.as_str()
        ],
    )
    .await
}

impl<B: Backend> ItemStore for SqlStore<B> {
    fn item_defs(&self, include_deleted: bool) -> StoreFuture<'_, Vec<ItemDef>> {
        Box::pin(self.read_one(async move |c| {
            let filter = if include_deleted {
                ""
            } else {
                " WHERE status = 'active'"
            };
            c.query(
                &format!("SELECT {ITEM_COLUMNS} FROM item_defs{filter} ORDER BY item_id"),
                &[],
            )
            .await?
            .iter()
            .map(item_from)
            .collect()
        }))
    }

    fn item_def<'a>(&'a self, item_id: &'a str) -> StoreFuture<'a, Option<ItemDef>> {
        Box::pin(self.read_one(async move |c| load_item(c, item_id, Lock::No).await))
    }

    fn create_item_def<'a>(
        &'a self,
        def: &'a ItemDef,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, ItemDef> {
        Box::pin(self.write(async move |c| {
            let r = insert_item(c, def).await;
            match r {
                Err(StoreError::Conflict(_)) => Err(StoreError::Rule(Rule::ItemExists)),
                other => other.map(|_| ()),
            }?;
            let made = found_or(
                load_item(c, &def.item_id, Lock::No).await?,
                Rule::ItemNotFound,
            )?;
            let details = serde_json::to_value(&made).unwrap_or_default();
            let d = audit::draft(
                "catalogue.create",
                format!("item_def:{}", made.item_id),
                details,
            );
            audit::append(c, actor, vec![d], now_ms).await?;
            Ok(made)
        }))
    }

    fn update_item_def<'a>(
        &'a self,
        item_id: &'a str,
        patch: &'a ItemDefPatch,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, ItemDef> {
        Box::pin(async move {
            // The service answers a bad status with a 400 before calling; one
            // that gets here anyway must not reach the table.
            let status = match patch.status.as_deref() {
                Some(s) => Some(ItemStatus::parse(s).ok_or_else(|| {
                    StoreError::Internal(format!("item status {s:?} is not active or deleted"))
                })?),
                None => None,
            };
            self.write(async |c| {
                let mut sets = Vec::new();
                let mut params: Vec<SqlValue> = Vec::new();
                let texts = [
                    ("name", &patch.name),
                    ("type", &patch.item_type),
                    ("quality", &patch.quality),
                    ("description", &patch.description),
                ];
                for (col, v) in texts {
                    if let Some(v) = v {
                        sets.push(format!("{col} = ?"));
                        params.push(v.into());
                    }
                }
                if let Some(s) = status {
                    sets.push("status = ?".to_string());
                    params.push(s.as_str().into());
                }
                for (col, v) in [
                    ("price_gold", patch.price_gold),
                    ("price_diamonds", patch.price_diamonds),
                    ("max_stack", patch.max_stack),
                ] {
                    if let Some(v) = v {
                        sets.push(format!("{col} = ?"));
                        params.push(v.into());
                    }
                }
                if !sets.is_empty() {
                    params.push(item_id.into());
                    c.exec(
                        &format!("UPDATE item_defs SET {} WHERE item_id = ?", sets.join(", ")),
                        &params,
                    )
                    .await?;
                }
                let def = found_or(load_item(c, item_id, Lock::No).await?, Rule::ItemNotFound)?;
                let details = serde_json::to_value(patch).unwrap_or_default();
                let d = audit::draft("catalogue.update", format!("item_def:{item_id}"), details);
                audit::append(c, actor, vec![d], now_ms).await?;
                Ok(def)
            })
            .await
        })
    }

    fn seed_item_defs<'a>(&'a self, defs: &'a [ItemDef]) -> StoreFuture<'a, usize> {
        Box::pin(async move {
            // Nodes starting together seed the same entries: the one whose
            // insert collides with another's commit tries again, and then
            // finds them there.
            let mut last = StoreError::Unavailable("catalogue seed contention".into());
            for _ in 0..3 {
                let seeded = self
                    .write(async |c| {
                        let mut added = 0;
                        for def in defs {
                            if load_item(c, &def.item_id, Lock::No).await?.is_none() {
                                insert_item(c, def).await?;
                                added += 1;
                            }
                        }
                        Ok(added)
                    })
                    .await;
                match seeded {
                    Err(e @ StoreError::Conflict(_)) => last = e,
                    other => return other,
                }
            }
            Err(last)
        })
    }

    fn inventory(
        &self,
        player_id: i64,
        include_deleted: bool,
    ) -> StoreFuture<'_, Vec<InventoryEntry>> {
        Box::pin(self.read(async move |c| {
            visible_player(c, player_id, include_deleted).await?;
            c.query(
                "SELECT item_id, quantity, updated_at FROM player_items WHERE player_id = ? AND quantity > 0 ORDER BY item_id",
                args![player_id],
            ).await?
            .iter()
            .map(|r| {
                row_of("player_items", r, |r| {
                    Ok(InventoryEntry {
                        player_id,
                        item_id: r.text(0)?,
                        quantity: r.int(1)?,
                        updated_at: r.int(2)?,
                    })
                })
            })
            .collect()
        }))
    }

    fn use_item<'a>(
        &'a self,
        player_id: i64,
        item_id: &'a str,
        quantity: i64,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<InventoryEntry>> {
        let persist = self.persist_all;
        Box::pin(self.write(async move |c| {
            // The notification's id is taken on the player's row first, so a
            // player's changes queue on it (and a deletion waits, or is seen).
            let ids = live_player_ids(c, player_id, 1).await?;
            match remove_items(c, player_id, item_id, quantity, now_ms).await {
                // A withdrawn item may still be used: inventories keep it.
                // Only a known item ever enters an inventory, and catalogue
                // entries are never deleted, so the catalogue is asked only
                // to tell a missing item (2002) from too few (2001).
                Err(StoreError::Rule(Rule::NotEnoughItems))
                    if load_item(c, item_id, Lock::No).await?.is_none() =>
                {
                    return Err(StoreError::Rule(Rule::ItemNotFound))
                }
                other => other?,
            }
            let left = entry(c, player_id, item_id).await?;
            let draft = item_draft(item_id, -quantity, left.quantity);
            let details =
                json!({"item_id": item_id, "delta": -quantity, "quantity": left.quantity});
            let record = audit::draft("item.use", audit::player(player_id), details);
            audit::append(c, actor, vec![record], now_ms).await?;
            issued(c, persist, ids, vec![draft], now_ms, left).await
        }))
    }

    fn grant_item<'a>(
        &'a self,
        player_id: i64,
        item_id: &'a str,
        quantity: i64,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<InventoryEntry>> {
        let persist = self.persist_all;
        Box::pin(self.write(async move |c| {
            let ids = live_player_ids(c, player_id, 1).await?;
            let def = active_item(c, item_id).await?;
            add_items(c, player_id, &def, quantity, now_ms).await?;
            let held = entry(c, player_id, item_id).await?;
            let draft = item_draft(item_id, quantity, held.quantity);
            let details = json!({"item_id": item_id, "delta": quantity, "quantity": held.quantity});
            let record = audit::draft("item.grant", audit::player(player_id), details);
            audit::append(c, actor, vec![record], now_ms).await?;
            issued(c, persist, ids, vec![draft], now_ms, held).await
        }))
    }

    fn transfer_item<'a>(
        &'a self,
        from: i64,
        to: i64,
        item_id: &'a str,
        quantity: i64,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<(InventoryEntry, InventoryEntry)>> {
        let persist = self.persist_all;
        Box::pin(self.write(async move |c| {
            // Lock both players in ascending id order: transfers in opposite
            // directions then queue instead of deadlocking. Neither may be
            // deleted.
            let lock = c.dialect().for_update();
            let found = c
                .query(
                    &format!("SELECT id, status FROM players WHERE id IN (?, ?) ORDER BY id{lock}"),
                    args![from.min(to), from.max(to)],
                )
                .await?;
            let mut live = 0;
            for r in &found {
                let status = row_of("players", r, |r| {
                    r.parsed(1, "a player status", PlayerStatus::parse)
                })?;
                if status != PlayerStatus::Deleted {
                    live += 1;
                }
            }
            if live < 2 {
                return Err(StoreError::Rule(Rule::PlayerNotFound));
            }
            let def = active_item(c, item_id).await?;
            remove_items(c, from, item_id, quantity, now_ms).await?;
            add_items(c, to, &def, quantity, now_ms).await?;
            let (given, got) = (entry(c, from, item_id).await?, entry(c, to, item_id).await?);
            let mut notices = Vec::new();
            let draft = item_draft(item_id, -quantity, given.quantity);
            notify(c, persist, from, vec![draft], now_ms, &mut notices).await?;
            let draft = item_draft(item_id, quantity, got.quantity);
            notify(c, persist, to, vec![draft], now_ms, &mut notices).await?;
            let details = json!({
                "item_id": item_id,
                "quantity": quantity,
                "from": from,
                "to": to,
                "from_left": given.quantity,
                "to_held": got.quantity,
            });
            // One record under each player, so either's history shows it.
            let records = vec![
                audit::draft("item.transfer", audit::player(from), details.clone()),
                audit::draft("item.receive", audit::player(to), details),
            ];
            audit::append(c, actor, records, now_ms).await?;
            Ok(Notified {
                value: (given, got),
                notices,
            })
        }))
    }
}
