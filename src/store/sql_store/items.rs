//! The transactions of the item catalogue and of players' inventories
//! ([`ItemStore`]): catalogue entries, and using, granting and transferring
//! items; the inventory row changes an order also makes are the shared
//! helpers of `sql_store/mod.rs`.

use super::{
    active_item, add_items, entry, found_or, item_from, live_player, load_item, remove_items,
    row_of, visible_player, Lock, SqlStore, ITEM_COLUMNS,
};
use crate::store::sql::{Backend, SqlConn, SqlValue};
use crate::store::{
    InventoryEntry, ItemDef, ItemDefPatch, ItemStatus, ItemStore, PlayerStatus, Rule, StoreError,
};

fn insert_item(c: &mut dyn SqlConn, def: &ItemDef) -> Result<u64, StoreError> {
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
}

impl<B: Backend> ItemStore for SqlStore<B> {
    fn item_defs(&self, include_deleted: bool) -> Result<Vec<ItemDef>, StoreError> {
        self.read_one(|c| {
            let filter = if include_deleted {
                ""
            } else {
                " WHERE status = 'active'"
            };
            c.query(
                &format!("SELECT {ITEM_COLUMNS} FROM item_defs{filter} ORDER BY item_id"),
                &[],
            )?
            .iter()
            .map(item_from)
            .collect()
        })
    }

    fn item_def(&self, item_id: &str) -> Result<Option<ItemDef>, StoreError> {
        self.read_one(|c| load_item(c, item_id, Lock::No))
    }

    fn create_item_def(&self, def: &ItemDef) -> Result<ItemDef, StoreError> {
        self.write(|c| {
            let r = insert_item(c, def);
            match r {
                Err(StoreError::Conflict(_)) => Err(StoreError::Rule(Rule::ItemExists)),
                other => other.map(|_| ()),
            }?;
            found_or(load_item(c, &def.item_id, Lock::No)?, Rule::ItemNotFound)
        })
    }

    fn update_item_def(&self, item_id: &str, patch: &ItemDefPatch) -> Result<ItemDef, StoreError> {
        // The service answers a bad status with a 400 before calling; one
        // that gets here anyway must not reach the table.
        let status = match patch.status.as_deref() {
            Some(s) => Some(ItemStatus::parse(s).ok_or_else(|| {
                StoreError::Internal(format!("item status {s:?} is not active or deleted"))
            })?),
            None => None,
        };
        self.write(|c| {
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
                )?;
            }
            found_or(load_item(c, item_id, Lock::No)?, Rule::ItemNotFound)
        })
    }

    fn seed_item_defs(&self, defs: &[ItemDef]) -> Result<usize, StoreError> {
        self.write(|c| {
            let mut added = 0;
            for def in defs {
                if load_item(c, &def.item_id, Lock::No)?.is_none() {
                    insert_item(c, def)?;
                    added += 1;
                }
            }
            Ok(added)
        })
    }

    fn inventory(
        &self,
        player_id: i64,
        include_deleted: bool,
    ) -> Result<Vec<InventoryEntry>, StoreError> {
        self.read(|c| {
            visible_player(c, player_id, include_deleted)?;
            c.query(
                "SELECT item_id, quantity, updated_at FROM player_items WHERE player_id = ? AND quantity > 0 ORDER BY item_id",
                args![player_id],
            )?
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
        })
    }

    fn use_item(
        &self,
        player_id: i64,
        item_id: &str,
        quantity: i64,
        now_ms: i64,
    ) -> Result<InventoryEntry, StoreError> {
        self.write(|c| {
            // Shared: uses and grants of one player do not queue on each
            // other, only a deletion waits for them (or is seen).
            live_player(c, player_id, Lock::Share)?;
            match remove_items(c, player_id, item_id, quantity, now_ms) {
                // A withdrawn item may still be used: inventories keep it.
                // Only a known item ever enters an inventory, and catalogue
                // entries are never deleted, so the catalogue is asked only
                // to tell a missing item (2002) from too few (2001).
                Err(StoreError::Rule(Rule::NotEnoughItems))
                    if load_item(c, item_id, Lock::No)?.is_none() =>
                {
                    return Err(StoreError::Rule(Rule::ItemNotFound))
                }
                other => other?,
            }
            entry(c, player_id, item_id)
        })
    }

    fn grant_item(
        &self,
        player_id: i64,
        item_id: &str,
        quantity: i64,
        now_ms: i64,
    ) -> Result<InventoryEntry, StoreError> {
        self.write(|c| {
            live_player(c, player_id, Lock::Share)?;
            let def = active_item(c, item_id)?;
            add_items(c, player_id, &def, quantity, now_ms)?;
            entry(c, player_id, item_id)
        })
    }

    fn transfer_item(
        &self,
        from: i64,
        to: i64,
        item_id: &str,
        quantity: i64,
        now_ms: i64,
    ) -> Result<(InventoryEntry, InventoryEntry), StoreError> {
        self.write(|c| {
            // Lock both players in ascending id order: transfers in opposite
            // directions then queue instead of deadlocking. Neither may be
            // deleted.
            let lock = c.dialect().for_update();
            let found = c.query(
                &format!("SELECT id, status FROM players WHERE id IN (?, ?) ORDER BY id{lock}"),
                args![from.min(to), from.max(to)],
            )?;
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
            let def = active_item(c, item_id)?;
            remove_items(c, from, item_id, quantity, now_ms)?;
            add_items(c, to, &def, quantity, now_ms)?;
            Ok((entry(c, from, item_id)?, entry(c, to, item_id)?))
        })
    }
}
