//! The transactions of orders ([`OrderStore`]): creation, idempotent per
//! key, and the pay, cancel and refund transitions, each of which locks the
//! order first (the head of the global lock order).

use super::audit;
use super::{
    active_item, add_items, change_balance, count, entry, found_or, issued, item_draft,
    live_player, live_player_ids, notified, remove_items, row_of, visible_player, wallet_draft,
    Account, BalanceChange, Draft, Lock, SqlStore,
};
use crate::store::sql::{Backend, Row, SqlConn, SqlValue};
use crate::store::{
    Actor, Currency, NewOrder, NoticeData, NoticeKind, Notified, Order, OrderStatus, OrderStore,
    Page, PageRequest, Rule, StoreError, StoreFuture,
};
use serde_json::json;

const ORDER_COLUMNS: &str = "order_id, player_id, item_id, quantity, unit_price, total_price, \
     currency, status, idempotency_key, created_at, updated_at, paid_at, cancel_reason";

fn order_from(r: &Row) -> Result<Order, StoreError> {
    row_of("orders", r, |r| {
        Ok(Order {
            order_id: r.text(0)?,
            player_id: r.int(1)?,
            item_id: r.text(2)?,
            quantity: r.int(3)?,
            unit_price: r.int(4)?,
            total_price: r.int(5)?,
            currency: r.parsed(6, "a currency", Currency::parse)?,
            status: r.parsed(7, "an order status", OrderStatus::parse)?,
            idempotency_key: r.opt_text(8)?,
            created_at: r.int(9)?,
            updated_at: r.int(10)?,
            paid_at: r.int(11)?,
            cancel_reason: r.text(12)?,
        })
    })
}

async fn load_order(
    c: &mut dyn SqlConn,
    order_id: &str,
    lock: Lock,
) -> Result<Option<Order>, StoreError> {
    let suffix = lock.suffix(c.dialect());
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = ?{suffix}");
    c.query_one(&sql, args![order_id])
        .await?
        .map(|r| order_from(&r))
        .transpose()
}

/// What an order transition should do after locking the order.
enum Transition {
    /// The order already has the target state: answer it (idempotent repeat).
    Done(Order),
    /// The order is in the source state: go ahead.
    Go(Order),
}

/// Locks an order for a move `from` → `to`; 3003 when it is in neither.
async fn lock_for(
    c: &mut dyn SqlConn,
    order_id: &str,
    from: OrderStatus,
    to: OrderStatus,
) -> Result<Transition, StoreError> {
    let order = found_or(
        load_order(c, order_id, Lock::Update).await?,
        Rule::OrderNotFound,
    )?;
    match order.status {
        s if s == to => Ok(Transition::Done(order)),
        s if s == from => Ok(Transition::Go(order)),
        _ => Err(StoreError::Rule(Rule::OrderState)),
    }
}

/// Records the move of `order` (locked by [`lock_for`], in state `from`) to
/// `to`, stamping `paid_at` for payments, and returns the order as it now is.
async fn finish(
    c: &mut dyn SqlConn,
    order: Order,
    from: OrderStatus,
    to: OrderStatus,
    now_ms: i64,
) -> Result<Order, StoreError> {
    let order_id = order.order_id.as_str();
    let paid_at = if to == OrderStatus::Paid {
        "paid_at = ?, "
    } else {
        ""
    };
    let sql = format!(
        "UPDATE orders SET status = ?, {paid_at}updated_at = ? WHERE order_id = ? AND status = ?"
    );
    let mut params: Vec<SqlValue> = vec![to.as_str().into()];
    if to == OrderStatus::Paid {
        params.push(now_ms.into());
    }
    params.extend([now_ms.into(), order_id.into(), from.as_str().into()]);
    if c.exec(&sql, &params).await? != 1 {
        return Err(StoreError::Internal(format!(
            "order {order_id} left state {} while locked",
            from.as_str()
        )));
    }
    // The row is locked since `lock_for` read it: it is that row with
    // what this statement set.
    Ok(Order {
        status: to,
        updated_at: now_ms,
        paid_at: if to == OrderStatus::Paid {
            now_ms
        } else {
            order.paid_at
        },
        ..order
    })
}

/// The `order` notification of an order in its new state.
fn order_draft(order: &Order) -> Draft {
    let data = NoticeData::Order {
        order_id: order.order_id.clone(),
        status: order.status.as_str(),
    };
    (NoticeKind::Order, data)
}

/// An order with no notification (a repeat of a change already made).
fn unchanged(order: Order) -> Notified<(Order, bool)> {
    Notified {
        value: (order, false),
        notices: Vec::new(),
    }
}

impl<B: Backend> OrderStore for SqlStore<B> {
    fn create_order<'a>(
        &'a self,
        new: &'a NewOrder,
        actor: &'a Actor,
    ) -> StoreFuture<'a, Notified<(Order, bool)>> {
        let persist = self.persist_all;
        Box::pin(async move {
            // Two attempts: a concurrent create with the same key makes our
            // insert fail; the second attempt then finds that order.
            for _ in 0..2 {
                let result = self.write(async |c| {
                    // Held until the order is in: a deletion of the player waits,
                    // or is seen (1001) — also by a repeat of an older create.
                    // The notification's id is taken on it at once.
                    let ids = live_player_ids(c, new.player_id, 1).await?;
                    if let Some(key) = &new.idempotency_key {
                        let existing = c.query_one(
                            &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE player_id = ? AND idempotency_key = ?"),
                            args![new.player_id, key],
                        ).await?;
                        if let Some(row) = existing {
                            let order = order_from(&row)?;
                            if order.item_id != new.item_id || order.quantity != new.quantity || order.currency != new.currency {
                                return Err(StoreError::Rule(Rule::IdempotencyMismatch));
                            }
                            // A repeat notifies nothing: the id goes back.
                            return issued(c, persist, ids, Vec::new(), new.now_ms, (order, false)).await;
                        }
                    }
                    let def = active_item(c, &new.item_id).await?;
                    let unit = def.price(new.currency).ok_or(StoreError::Rule(Rule::NotForSale))?;
                    let total = unit.checked_mul(new.quantity).ok_or(StoreError::Rule(Rule::NotEnoughCurrency))?;
                    c.exec(
                        &format!("INSERT INTO orders ({ORDER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, 0, '')"),
                        args![&new.order_id, new.player_id, &new.item_id, new.quantity, unit, total, new.currency.as_str(), new.idempotency_key.clone(), new.now_ms, new.now_ms],
                    ).await?;
                    // The row is what was just inserted.
                    let order = Order {
                        order_id: new.order_id.clone(),
                        player_id: new.player_id,
                        item_id: new.item_id.clone(),
                        quantity: new.quantity,
                        unit_price: unit,
                        total_price: total,
                        currency: new.currency,
                        status: OrderStatus::Pending,
                        idempotency_key: new.idempotency_key.clone(),
                        created_at: new.now_ms,
                        updated_at: new.now_ms,
                        paid_at: 0,
                        cancel_reason: String::new(),
                    };
                    let draft = order_draft(&order);
                    let details = json!({
                        "order_id": order.order_id,
                        "item_id": order.item_id,
                        "quantity": order.quantity,
                        "currency": order.currency.as_str(),
                        "total_price": order.total_price,
                        "status": "pending",
                    });
                    let record = audit::draft("order.create", audit::player(order.player_id), details);
                    audit::append(c, actor, vec![record], new.now_ms).await?;
                    issued(c, persist, ids, vec![draft], new.now_ms, (order, true)).await
                }).await;
                match result {
                    Err(StoreError::Conflict(_)) if new.idempotency_key.is_some() => continue,
                    other => return other,
                }
            }
            Err(StoreError::Unavailable("order creation contention".into()))
        })
    }

    fn order<'a>(&'a self, order_id: &'a str) -> StoreFuture<'a, Option<Order>> {
        Box::pin(self.read_one(async move |c| load_order(c, order_id, Lock::No).await))
    }

    fn orders(
        &self,
        player_id: Option<i64>,
        page: PageRequest,
        include_deleted: bool,
    ) -> StoreFuture<'_, Page<Order>> {
        Box::pin(self.read(async move |c| {
            if let Some(p) = player_id {
                visible_player(c, p, include_deleted).await?;
            }
            let (filter, params): (&str, Vec<SqlValue>) = match player_id {
                Some(p) => (" WHERE player_id = ?", vec![p.into()]),
                None => ("", Vec::new()),
            };
            let total = count(c, &format!("SELECT COUNT(*) FROM orders{filter}"), &params).await?;
            let mut p = params.clone();
            p.push(page.page_size.into());
            p.push(page.offset().into());
            let items = c
                .query(&format!("SELECT {ORDER_COLUMNS} FROM orders{filter} ORDER BY order_id DESC LIMIT ? OFFSET ?"), &p).await?
                .iter()
                .map(order_from)
                .collect::<Result<_, _>>()?;
            Ok(Page { items, total })
        }))
    }

    fn pay_order<'a>(
        &'a self,
        order_id: &'a str,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<(Order, bool)>> {
        let persist = self.persist_all;
        Box::pin(self.write(async move |c| {
            let order = match lock_for(c, order_id, OrderStatus::Pending, OrderStatus::Paid).await?
            {
                Transition::Done(order) => return Ok(unchanged(order)),
                Transition::Go(order) => order,
            };
            // In the global lock order (orders, players, item_defs, items);
            // any refusal rolls back and leaves the order pending.
            let buyer = live_player(c, order.player_id, Lock::Update).await?;
            let def = active_item(c, &order.item_id).await?;
            let payment = BalanceChange {
                currency: order.currency,
                delta: -order.total_price,
                reason: "order_pay",
                reference: order_id,
                now_ms,
            };
            // Three ids: the wallet's, the item's and the order's.
            let (balance, ids) = change_balance(c, Account::Locked(&buyer), &payment, 3).await?;
            let held = add_items(c, order.player_id, &def, order.quantity, now_ms).await?;
            let quantity = order.quantity;
            let paid = finish(c, order, OrderStatus::Pending, OrderStatus::Paid, now_ms).await?;
            let drafts = vec![
                wallet_draft(&payment, balance),
                item_draft(&paid.item_id, quantity, held),
                order_draft(&paid),
            ];
            let details = json!({
                "order_id": order_id,
                "currency": paid.currency.as_str(),
                "delta": -paid.total_price,
                "balance": balance,
                "item_id": paid.item_id,
                "quantity": quantity,
                "status": "paid",
            });
            let record = audit::draft("order.pay", audit::player(paid.player_id), details);
            audit::append(c, actor, vec![record], now_ms).await?;
            issued(c, persist, ids, drafts, now_ms, (paid, true)).await
        }))
    }

    fn cancel_order<'a>(
        &'a self,
        order_id: &'a str,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<(Order, bool)>> {
        let persist = self.persist_all;
        Box::pin(self.write(async move |c| {
            let (from, to) = (OrderStatus::Pending, OrderStatus::Cancelled);
            match lock_for(c, order_id, from, to).await? {
                Transition::Done(order) => Ok(unchanged(order)),
                Transition::Go(order) => {
                    let cancelled = finish(c, order, from, to, now_ms).await?;
                    let (player_id, draft) = (cancelled.player_id, order_draft(&cancelled));
                    let details = json!({"order_id": order_id, "status": "cancelled", "reason": cancelled.cancel_reason});
                    let record = audit::draft("order.cancel", audit::player(player_id), details);
                    audit::append(c, actor, vec![record], now_ms).await?;
                    notified(
                        c,
                        persist,
                        player_id,
                        vec![draft],
                        now_ms,
                        (cancelled, true),
                    )
                    .await
                }
            }
        }))
    }

    fn refund_order<'a>(
        &'a self,
        order_id: &'a str,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<(Order, bool)>> {
        let persist = self.persist_all;
        Box::pin(self.write(async move |c| {
            let order =
                match lock_for(c, order_id, OrderStatus::Paid, OrderStatus::Refunded).await? {
                    Transition::Done(order) => return Ok(unchanged(order)),
                    Transition::Go(order) => order,
                };
            let refund = BalanceChange {
                currency: order.currency,
                delta: order.total_price,
                reason: "order_refund",
                reference: order_id,
                now_ms,
            };
            // Up to three ids (no item's when none is taken back).
            let (balance, ids) =
                change_balance(c, Account::Id(order.player_id), &refund, 3).await?;
            let held = entry(c, order.player_id, &order.item_id).await?.quantity;
            let take_back = held.min(order.quantity);
            let player_id = order.player_id;
            let mut drafts = vec![wallet_draft(&refund, balance)];
            if take_back > 0 {
                remove_items(c, player_id, &order.item_id, take_back, now_ms).await?;
                drafts.push(item_draft(&order.item_id, -take_back, held - take_back));
            }
            let refunded =
                finish(c, order, OrderStatus::Paid, OrderStatus::Refunded, now_ms).await?;
            drafts.push(order_draft(&refunded));
            let details = json!({
                "order_id": order_id,
                "currency": refunded.currency.as_str(),
                "delta": refunded.total_price,
                "balance": balance,
                "item_id": refunded.item_id,
                "taken_back": take_back,
                "status": "refunded",
            });
            let record = audit::draft("order.refund", audit::player(player_id), details);
            audit::append(c, actor, vec![record], now_ms).await?;
            issued(c, persist, ids, drafts, now_ms, (refunded, true)).await
        }))
    }
}
