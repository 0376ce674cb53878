//! Orders: create with an idempotency key, read, list, pay exactly once,
//! cancel, and admin status changes (refund).

use super::auth::random_hex;
use super::counters::Event;
use super::{
    page_json, require_player, require_role, time_json, ApiError, Caller, PageQuery, Role, Services,
};
use crate::cache::{keys, Change};
use crate::clock;
use crate::store::{Currency, NewOrder, Order};
use serde::Deserialize;
use serde_json::{json, Value};

/// Largest quantity of one order.
pub const MAX_ORDER_QUANTITY: i64 = 10_000;

/// Body of order creation.
#[derive(Debug, Deserialize)]
pub struct OrderCreate {
    /// Buyer; a player's own id when absent on a player's token.
    #[serde(default)]
    pub player_id: Option<i64>,
    /// Item to buy.
    pub item_id: String,
    /// How many.
    pub quantity: i64,
    /// `gold` or `diamonds`.
    pub currency: String,
    /// Idempotency key (the `Idempotency-Key` header wins when both are sent).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// The state changes of an existing order.
#[derive(Debug, Clone, Copy)]
enum Transition {
    Pay,
    Cancel,
    Refund,
}

/// Body of an admin status change.
#[derive(Debug, Deserialize)]
pub struct OrderStatusChange {
    /// `cancelled` (from pending) or `refunded` (from paid; admins only);
    /// `paid` is refused: paying is `POST /api/v1/orders/{id}/pay`.
    pub status: String,
}

/// The JSON shape of an order.
pub fn order_json(o: &Order) -> Value {
    json!({
        "order_id": o.order_id,
        "player_id": o.player_id,
        "item_id": o.item_id,
        "quantity": o.quantity,
        "unit_price": o.unit_price,
        "total_price": o.total_price,
        "currency": o.currency.as_str(),
        "status": o.status.as_str(),
        "idempotency_key": o.idempotency_key,
        "created_at": time_json(o.created_at),
        "updated_at": time_json(o.updated_at),
        "paid_at": time_json(o.paid_at),
        "cancel_reason": (!o.cancel_reason.is_empty()).then_some(o.cancel_reason.as_str()),
    })
}

/// A unique, time-sortable order id: `o` + 12 hex digits of Unix ms + 16 random hex digits.
pub fn new_order_id(now_ms: i64) -> String {
    format!("o{:012x}{}", now_ms.max(0), random_hex(8))
}

fn check_order_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(crate::store::Rule::OrderNotFound.into());
    }
    Ok(())
}

impl Services {
    /// Creates an order (the player itself, its game's servers, admins). A
    /// repeated create with the same idempotency key returns the same order.
    pub async fn create_order(
        &self,
        caller: &Caller,
        game_id: &str,
        req: OrderCreate,
        header_key: Option<&str>,
    ) -> Result<(Value, bool), ApiError> {
        let game = self.game(game_id)?;
        let player_id = req
            .player_id
            .or(caller.player_id)
            .ok_or_else(|| ApiError::bad_request("player_id required"))?;
        require_player(caller, game_id, player_id)?;
        super::items::check_item_id(&req.item_id)?;
        super::validate::in_range("quantity", req.quantity, 1..=MAX_ORDER_QUANTITY)?;
        let currency = Currency::parse(&req.currency)
            .ok_or_else(|| ApiError::bad_request("currency must be gold or diamonds"))?;
        let key = header_key.map(str::to_string).or(req.idempotency_key);
        if let Some(k) = &key {
            if k.is_empty() || k.len() > 64 || k.chars().any(|c| c.is_control()) {
                return Err(ApiError::bad_request(
                    "Idempotency-Key must be 1 to 64 printable characters",
                ));
            }
        }
        let now = clock::now_ms();
        let new = NewOrder {
            order_id: new_order_id(now),
            player_id,
            item_id: req.item_id,
            quantity: req.quantity,
            currency,
            idempotency_key: key,
            now_ms: now,
        };
        let actor = self.actor(caller);
        let done = game
            .store
            .run(async move |s| s.create_order(&new, &actor).await)
            .await?;
        let (order, created) = self.delivered(game_id, done);
        if created {
            business_event!(
                self,
                game = game_id,
                player_id,
                order_id = %order.order_id,
                item_id = %order.item_id,
                quantity = order.quantity,
                price = order.total_price,
                currency = order.currency.as_str(),
                "order created"
            );
        }
        self.changed(Change::written(
            game_id,
            player_id,
            vec![keys::orders(game_id, player_id)],
        ))
        .await;
        Ok((json!({ "order": order_json(&order) }), created))
    }

    async fn load_order_for(
        &self,
        caller: &Caller,
        game_id: &str,
        order_id: &str,
    ) -> Result<Order, ApiError> {
        let game = self.game(game_id)?;
        check_order_id(order_id)?;
        let id = order_id.to_string();
        let order = game
            .store
            .run(async move |s| s.order(&id).await)
            .await?
            .ok_or(crate::store::Rule::OrderNotFound)?;
        // Hide other players' orders as not found rather than forbidden.
        if !caller.may_access_player(game_id, order.player_id) {
            return Err(crate::store::Rule::OrderNotFound.into());
        }
        Ok(order)
    }

    /// One order (its player, the game's servers, admins).
    pub async fn get_order(
        &self,
        caller: &Caller,
        game_id: &str,
        order_id: &str,
    ) -> Result<Value, ApiError> {
        let order = self.load_order_for(caller, game_id, order_id).await?;
        Ok(json!({ "order": order_json(&order) }))
    }

    /// A page of orders, newest first: a player's own; for game servers and
    /// admins one player's (`player_id`; 1001 when it does not exist, or is
    /// deleted and the caller is not an admin) or all of the game's.
    pub async fn list_orders(
        &self,
        caller: &Caller,
        game_id: &str,
        player_id: Option<i64>,
        page: PageQuery,
    ) -> Result<Value, ApiError> {
        let game = self.game(game_id)?;
        let page = page.resolve()?;
        let filter = match caller.role {
            Role::Player => Some(
                player_id
                    .or(caller.player_id)
                    .ok_or_else(|| ApiError::forbidden("no player"))?,
            ),
            _ => player_id,
        };
        if let Some(p) = filter {
            require_player(caller, game_id, p)?;
        }
        let all = caller.role == Role::Admin;
        let rows = game
            .store
            .read(filter, async move |s| s.orders(filter, page, all).await)
            .await?;
        Ok(page_json(
            rows.items.iter().map(order_json).collect(),
            page,
            rows.total,
        ))
    }

    /// Pays a pending order: charges once, delivers once (idempotent).
    pub async fn pay_order(
        &self,
        caller: &Caller,
        game_id: &str,
        order_id: &str,
    ) -> Result<Value, ApiError> {
        self.transition(caller, game_id, order_id, Transition::Pay)
            .await
    }

    /// Cancels a pending order.
    pub async fn cancel_order(
        &self,
        caller: &Caller,
        game_id: &str,
        order_id: &str,
    ) -> Result<Value, ApiError> {
        self.transition(caller, game_id, order_id, Transition::Cancel)
            .await
    }

    /// `PUT /api/v1/orders/{id}/status`: the operators' transitions — a
    /// game server's or an admin's `cancelled` (from pending), an admin's
    /// `refunded` (from paid). It never pays: `paid` is refused (400) with
    /// a pointer to `POST /api/v1/orders/{id}/pay`, the one documented way
    /// to charge and deliver (issue 21).
    pub async fn change_order_status(
        &self,
        caller: &Caller,
        game_id: &str,
        order_id: &str,
        req: OrderStatusChange,
    ) -> Result<Value, ApiError> {
        require_role(caller, &[Role::GameServer, Role::Admin])?;
        let transition = match req.status.as_str() {
            "cancelled" => Transition::Cancel,
            "refunded" => {
                require_role(caller, &[Role::Admin])?;
                Transition::Refund
            }
            "paid" => {
                // The id is echoed only when it is a well-formed one.
                let path = match check_order_id(order_id) {
                    Ok(()) => format!("POST /api/v1/orders/{order_id}/pay"),
                    Err(_) => "POST /api/v1/orders/{order_id}/pay".to_string(),
                };
                return Err(ApiError::bad_request(format!(
                    "this route does not pay an order; use {path}"
                )));
            }
            _ => {
                return Err(ApiError::bad_request(
                    "status must be cancelled or refunded (to pay, use POST /api/v1/orders/{order_id}/pay)",
                ))
            }
        };
        self.transition(caller, game_id, order_id, transition).await
    }

    /// Moves an order the caller may see to its next state and announces it.
    async fn transition(
        &self,
        caller: &Caller,
        game_id: &str,
        order_id: &str,
        transition: Transition,
    ) -> Result<Value, ApiError> {
        // A caller who may see every order of the game needs no look
        // first (a round of the database): the transition itself answers
        // 3002 for an order that does not exist.
        let id = if caller.may_access_every_player(game_id) {
            check_order_id(order_id)?;
            order_id.to_string()
        } else {
            self.load_order_for(caller, game_id, order_id)
                .await?
                .order_id
        };
        let game = self.game(game_id)?;
        let (now, actor) = (clock::now_ms(), self.actor(caller));
        let done = game
            .store
            .run(async move |s| match transition {
                Transition::Pay => s.pay_order(&id, &actor, now).await,
                Transition::Cancel => s.cancel_order(&id, &actor, now).await,
                Transition::Refund => s.refund_order(&id, &actor, now).await,
            })
            .await?;
        let (order, moved) = self.delivered(game_id, done);
        // Counted when this request made the move; a repeat answers the
        // order as it already was.
        let counters = self.counters();
        match transition {
            Transition::Pay if moved => {
                counters.event(game_id, Event::OrderPaid);
                counters.currency(game_id, order.currency, -order.total_price);
            }
            Transition::Refund if moved => {
                counters.currency(game_id, order.currency, order.total_price)
            }
            _ => {}
        }
        if moved {
            business_event!(
                self,
                game = game_id,
                player_id = order.player_id,
                order_id = %order.order_id,
                status = order.status.as_str(),
                price = order.total_price,
                currency = order.currency.as_str(),
                by = %caller.subject,
                "order moved"
            );
        }
        self.order_changed(game_id, &order).await;
        Ok(json!({ "order": order_json(&order) }))
    }

    /// Announces what an order change may have touched: the buyer's
    /// balances, inventory and orders.
    async fn order_changed(&self, game_id: &str, order: &Order) {
        let p = order.player_id;
        self.changed(Change::written(
            game_id,
            p,
            vec![
                keys::player(game_id, p),
                keys::inventory(game_id, p),
                keys::orders(game_id, p),
            ],
        ))
        .await;
    }
}
