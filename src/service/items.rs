//! The item catalogue (admin-edited, seeded from the config) and player
//! inventories: list, use, grant within the stack limit, transfer.

use super::players::parse_cached;
use super::{require_player, require_role, time_json, validate, ApiError, Caller, Role, Services};
use crate::cache::l1::Cached;
use crate::cache::{keys, Change};
use crate::clock;
use crate::config::ItemSeed;
use crate::store::{InventoryEntry, ItemDef, ItemDefPatch, ItemStatus};
use serde::Deserialize;
use serde_json::{json, Value};

/// Largest quantity of one inventory operation.
pub const MAX_QUANTITY: i64 = validate::MAX_QUANTITY;

/// Body of use and grant.
#[derive(Debug, Deserialize)]
pub struct QuantityRequest {
    /// How many (1 to [`MAX_QUANTITY`]).
    pub quantity: i64,
}

/// Body of a transfer.
#[derive(Debug, Deserialize)]
pub struct TransferRequest {
    /// Receiving player of the same game.
    pub target_player_id: i64,
    /// How many.
    pub quantity: i64,
}

/// Body of catalogue creation: the same shape as a configuration seed entry.
pub type ItemDefInput = ItemSeed;

/// Body of a catalogue update: the store's patch (absent fields stay).
pub type ItemDefUpdate = ItemDefPatch;

/// The JSON shape of a catalogue entry.
pub fn item_json(d: &ItemDef) -> Value {
    json!({
        "item_id": d.item_id,
        "name": d.name,
        "type": d.item_type,
        "quality": d.quality,
        "description": d.description,
        "price_gold": d.price_gold,
        "price_diamonds": d.price_diamonds,
        "max_stack": d.max_stack,
        "status": d.status,
    })
}

/// The JSON shape of an inventory line.
pub fn entry_json(e: &InventoryEntry) -> Value {
    json!({ "player_id": e.player_id, "item_id": e.item_id, "quantity": e.quantity, "updated_at": time_json(e.updated_at) })
}

/// Converts a configuration seed entry into a catalogue row.
pub fn seed_def(s: &ItemSeed) -> ItemDef {
    ItemDef {
        item_id: s.item_id.clone(),
        name: s.name.clone(),
        item_type: s.item_type.clone(),
        quality: s.quality.clone(),
        description: s.description.clone(),
        price_gold: s.price_gold,
        price_diamonds: s.price_diamonds,
        max_stack: s.max_stack,
        status: ItemStatus::Active,
    }
}

/// Checks a catalogue key: 1 to 64 of `[A-Za-z0-9_.-]`.
pub fn check_item_id(id: &str) -> Result<(), ApiError> {
    Ok(validate::item_id(id)?)
}

/// Checks the catalogue fields present in `p` (creation passes all of them)
/// with the rule set configuration seeds obey too.
fn check_def_fields(p: &ItemDefPatch) -> Result<(), ApiError> {
    validate::catalogue_fields(&validate::CatalogueFields {
        name: p.name.as_deref(),
        item_type: p.item_type.as_deref(),
        quality: p.quality.as_deref(),
        description: p.description.as_deref(),
        price_gold: p.price_gold,
        price_diamonds: p.price_diamonds,
        max_stack: p.max_stack,
    })?;
    if p.status
        .as_deref()
        .is_some_and(|s| ItemStatus::parse(s).is_none())
    {
        return Err(ApiError::bad_request("status must be active or deleted"));
    }
    Ok(())
}

impl Services {
    /// The catalogue (any authenticated caller; admins also see deleted entries).
    pub async fn list_item_defs(&self, caller: &Caller, game_id: &str) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        let all = caller.role == Role::Admin;
        if all {
            let defs = game
                .store
                .run(async move |s| s.item_defs(true).await)
                .await?;
            return Ok(json!({ "items": defs.iter().map(item_json).collect::<Vec<_>>() }));
        }
        let store = game.store.clone();
        let cached = self
            .cache()
            .get_or_load(&keys::catalogue(game_id), || async move {
                let defs = store.run(async move |s| s.item_defs(false).await).await?;
                Ok(Some(
                    Value::Array(defs.iter().map(item_json).collect()).to_string(),
                ))
            })
            .await?;
        match cached {
            Cached::Value(json) => Ok(json!({ "items": parse_cached(&json)? })),
            Cached::Missing => Ok(json!({ "items": [] })),
        }
    }

    /// One catalogue entry (2002 when absent or deleted, except for admins).
    pub async fn get_item_def(
        &self,
        caller: &Caller,
        game_id: &str,
        item_id: &str,
    ) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        check_item_id(item_id)?;
        let id = item_id.to_string();
        let def = game
            .store
            .read(None, async move |s| s.item_def(&id).await)
            .await?;
        match def {
            Some(d) if d.status == ItemStatus::Active || caller.role == Role::Admin => {
                Ok(json!({ "item": item_json(&d) }))
            }
            _ => Err(crate::store::Rule::ItemNotFound.into()),
        }
    }

    /// Adds a catalogue entry (admin).
    pub async fn create_item_def(
        &self,
        caller: &Caller,
        game_id: &str,
        req: ItemDefInput,
    ) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        self.require_admin(caller)?;
        check_item_id(&req.item_id)?;
        let def = seed_def(&req);
        check_def_fields(&ItemDefPatch {
            name: Some(def.name.clone()),
            item_type: Some(def.item_type.clone()),
            quality: Some(def.quality.clone()),
            description: Some(def.description.clone()),
            price_gold: Some(def.price_gold),
            price_diamonds: Some(def.price_diamonds),
            max_stack: Some(def.max_stack),
            status: None,
        })?;
        let (actor, now) = (self.actor(caller), clock::now_ms());
        let def = game
            .store
            .run(async move |s| s.create_item_def(&def, &actor, now).await)
            .await?;
        business_event!(self, game = game_id, item_id = %def.item_id, by = %caller.subject, "catalogue entry created");
        Ok(self.catalogue_saved(game_id, &def).await)
    }

    /// Changes a catalogue entry (admin).
    pub async fn update_item_def(
        &self,
        caller: &Caller,
        game_id: &str,
        item_id: &str,
        req: ItemDefUpdate,
    ) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        self.require_admin(caller)?;
        check_item_id(item_id)?;
        check_def_fields(&req)?;
        let (id, actor, now) = (item_id.to_string(), self.actor(caller), clock::now_ms());
        let def = game
            .store
            .run(async move |s| s.update_item_def(&id, &req, &actor, now).await)
            .await?;
        business_event!(
            self,
            game = game_id,
            item_id = %def.item_id,
            status = def.status.as_str(),
            by = %caller.subject,
            "catalogue entry changed"
        );
        Ok(self.catalogue_saved(game_id, &def).await)
    }

    /// After a catalogue write: drops the cached catalogue everywhere and
    /// answers with the saved entry.
    async fn catalogue_saved(&self, game_id: &str, def: &ItemDef) -> Value {
        self.changed(Change::written(game_id, 0, vec![keys::catalogue(game_id)]))
            .await;
        json!({ "item": item_json(def) })
    }

    /// Withdraws a catalogue entry (admin): it can no longer be bought or
    /// granted; inventories keep what they hold.
    pub async fn delete_item_def(
        &self,
        caller: &Caller,
        game_id: &str,
        item_id: &str,
    ) -> Result<Value, ApiError> {
        let update = ItemDefUpdate {
            status: Some(ItemStatus::Deleted.as_str().into()),
            ..ItemDefUpdate::default()
        };
        self.update_item_def(caller, game_id, item_id, update).await
    }

    /// A player's inventory (a deleted player's for admins only, whose reads
    /// bypass the cache).
    pub async fn inventory(
        &self,
        caller: &Caller,
        game_id: &str,
        player_id: i64,
    ) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        require_player(caller, game_id, player_id)?;
        let store = game.store.clone();
        if caller.role == Role::Admin {
            let items = store
                .run(async move |s| s.inventory(player_id, true).await)
                .await?;
            let items: Vec<Value> = items.iter().map(entry_json).collect();
            return Ok(json!({ "player_id": player_id, "items": items }));
        }
        let cached = self
            .cache()
            .get_or_load(&keys::inventory(game_id, player_id), || async move {
                let items = store
                    .run(async move |s| s.inventory(player_id, false).await)
                    .await?;
                Ok(Some(
                    Value::Array(items.iter().map(entry_json).collect()).to_string(),
                ))
            })
            .await?;
        let items = match cached {
            Cached::Value(json) => parse_cached(&json)?,
            Cached::Missing => json!([]),
        };
        Ok(json!({ "player_id": player_id, "items": items }))
    }

    /// Consumes items (the owner, its game's servers, admins); 2001 when not enough.
    pub async fn use_item(
        &self,
        caller: &Caller,
        game_id: &str,
        player_id: i64,
        item_id: &str,
        req: QuantityRequest,
    ) -> Result<Value, ApiError> {
        self.change_stack(caller, game_id, player_id, item_id, req.quantity, false)
            .await
    }

    /// Adds items (game servers and admins) within the item's stack limit (2003).
    pub async fn grant_item(
        &self,
        caller: &Caller,
        game_id: &str,
        player_id: i64,
        item_id: &str,
        req: QuantityRequest,
    ) -> Result<Value, ApiError> {
        require_role(caller, &[Role::GameServer, Role::Admin])?;
        self.change_stack(caller, game_id, player_id, item_id, req.quantity, true)
            .await
    }

    /// Uses (`grant` false) or grants `quantity` of an item, and announces
    /// the inventory change.
    async fn change_stack(
        &self,
        caller: &Caller,
        game_id: &str,
        player_id: i64,
        item_id: &str,
        quantity: i64,
        grant: bool,
    ) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        require_player(caller, game_id, player_id)?;
        check_item_id(item_id)?;
        validate::in_range("quantity", quantity, 1..=MAX_QUANTITY)?;
        let (id, now) = (item_id.to_string(), clock::now_ms());
        let actor = self.actor(caller);
        let entry = game
            .store
            .run(async move |s| {
                if grant {
                    s.grant_item(player_id, &id, quantity, &actor, now).await
                } else {
                    s.use_item(player_id, &id, quantity, &actor, now).await
                }
            })
            .await
            .map(|done| self.delivered(game_id, done));
        self.changed(Change::written(
            game_id,
            player_id,
            vec![keys::inventory(game_id, player_id)],
        ))
        .await;
        let entry = entry?;
        let verb = if grant { "granted" } else { "used" };
        business_event!(
            self,
            game = game_id,
            player_id,
            item_id,
            quantity,
            by = %caller.subject,
            "item {verb}"
        );
        Ok(json!({ "item": entry_json(&entry), verb: quantity }))
    }

    /// Moves items to another player of the same game, atomically.
    pub async fn transfer_item(
        &self,
        caller: &Caller,
        game_id: &str,
        player_id: i64,
        item_id: &str,
        req: TransferRequest,
    ) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        require_player(caller, game_id, player_id)?;
        check_item_id(item_id)?;
        validate::in_range("quantity", req.quantity, 1..=MAX_QUANTITY)?;
        if req.target_player_id == player_id {
            return Err(ApiError::bad_request(
                "target_player_id must differ from the sender",
            ));
        }
        if req.target_player_id <= 0 {
            return Err(ApiError::bad_request(
                "target_player_id must be a positive integer",
            ));
        }
        let (id, to, q, now) = (
            item_id.to_string(),
            req.target_player_id,
            req.quantity,
            clock::now_ms(),
        );
        let actor = self.actor(caller);
        let result = game
            .store
            .run(async move |s| s.transfer_item(player_id, to, &id, q, &actor, now).await)
            .await
            .map(|done| self.delivered(game_id, done));
        let target = req.target_player_id;
        self.changed(
            Change::written(
                game_id,
                player_id,
                vec![keys::inventory(game_id, player_id)],
            )
            .and(Change::written(
                game_id,
                target,
                vec![keys::inventory(game_id, target)],
            )),
        )
        .await;
        let (from, to) = result?;
        business_event!(
            self,
            game = game_id,
            player_id,
            target_player_id = target,
            item_id,
            quantity = q,
            "item transferred"
        );
        Ok(json!({ "from": entry_json(&from), "to": entry_json(&to), "transferred": q }))
    }
}
