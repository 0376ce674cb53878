//! The transactions of players' accounts and wallets ([`PlayerStore`]):
//! sign-up with its grants, profile changes, balances and their ledger, and
//! game progress; the player rows other domains lock are read by the shared
//! helpers of `sql_store/mod.rs`.

use super::audit;
use super::{
    change_balance, count, issued, live_player, load_player, notified, row_of, visible_player,
    wallet_draft, Account, BalanceChange, Lock, SqlStore,
};
use crate::store::sql::{Backend, SqlConn, SqlValue};
use crate::store::{
    Actor, Currency, LedgerEntry, NewPlayer, NoticeData, NoticeKind, Notified, Page, PageRequest,
    Player, PlayerCredentials, PlayerPatch, PlayerStatus, PlayerStore, Progress, Rule, StoreError,
    StoreFuture, WalletAdjustment,
};
use serde_json::json;

async fn must_player(c: &mut dyn SqlConn, id: i64) -> Result<Player, StoreError> {
    load_player(c, id, Lock::No)
        .await?
        .ok_or(StoreError::Rule(Rule::PlayerNotFound))
}

impl<B: Backend> PlayerStore for SqlStore<B> {
    fn create_player<'a>(
        &'a self,
        new: &'a NewPlayer,
        actor: &'a Actor,
    ) -> StoreFuture<'a, Player> {
        Box::pin(self.write(async move |c| {
            let inserted = c.exec(
                "INSERT INTO players (username, password_hash, email, nickname, gold, diamonds, \
                 created_at, updated_at) VALUES (?, ?, ?, ?, 0, 0, ?, ?)",
                args![
                    &new.username,
                    &new.password_hash,
                    &new.email,
                    &new.username,
                    new.now_ms,
                    new.now_ms
                ],
            ).await;
            match inserted {
                Err(StoreError::Conflict(_)) => return Err(StoreError::Rule(Rule::UsernameTaken)),
                other => other?,
            };
            let id = c.last_insert_id()?;
            for (currency, amount) in [
                (Currency::Gold, new.signup_gold),
                (Currency::Diamonds, new.signup_diamonds),
            ] {
                if amount == 0 {
                    continue;
                }
                let signup = BalanceChange {
                    currency,
                    delta: amount,
                    reason: "signup",
                    reference: "signup_grant",
                    now_ms: new.now_ms,
                };
                change_balance(c, Account::Id(id), &signup, 0).await?;
            }
            // The signup grants are part of creation, not updates.
            c.exec("UPDATE players SET version = 1 WHERE id = ?", args![id])
                .await?;
            if new.signup_gold != 0 || new.signup_diamonds != 0 {
                // Grants are ledger lines: an economy change.
                let details = json!({"gold": new.signup_gold, "diamonds": new.signup_diamonds, "reason": "signup"});
                let record = audit::draft("player.signup", audit::player(id), details);
                audit::append(c, actor, vec![record], new.now_ms).await?;
            }
            must_player(c, id).await
        }))
    }

    fn player(&self, id: i64) -> StoreFuture<'_, Option<Player>> {
        Box::pin(self.read_one(async move |c| load_player(c, id, Lock::No).await))
    }

    fn credentials<'a>(&'a self, username: &'a str) -> StoreFuture<'a, Option<PlayerCredentials>> {
        Box::pin(self.read_one(async move |c| {
            let Some(row) = c
                .query_one(
                    "SELECT id, password_hash, status FROM players WHERE username = ?",
                    args![username],
                )
                .await?
            else {
                return Ok(None);
            };
            row_of("players", &row, |r| {
                Ok(Some(PlayerCredentials {
                    id: r.int(0)?,
                    password_hash: r.text(1)?,
                    status: r.parsed(2, "a player status", PlayerStatus::parse)?,
                }))
            })
        }))
    }

    fn record_login(&self, id: i64, now_ms: i64) -> StoreFuture<'_, ()> {
        Box::pin(self.write(async move |c| {
            c.exec(
                "UPDATE players SET last_login_at = ? WHERE id = ?",
                args![now_ms, id],
            )
            .await
            .map(|_| ())
        }))
    }

    fn update_player<'a>(
        &'a self,
        id: i64,
        patch: &'a PlayerPatch,
        expected_version: Option<i64>,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<Player>> {
        let persist = self.persist_all;
        Box::pin(self.write(async move |c| {
            let mut sets = vec![
                "version = version + 1".to_string(),
                "updated_at = ?".to_string(),
            ];
            let mut params: Vec<SqlValue> = vec![now_ms.into()];
            let text_fields = [
                ("nickname", &patch.nickname),
                ("avatar", &patch.avatar),
                ("email", &patch.email),
            ];
            for (col, v) in text_fields {
                if let Some(v) = v {
                    sets.push(format!("{col} = ?"));
                    params.push(v.into());
                }
            }
            for (col, v) in [("level", patch.level), ("exp", patch.exp)] {
                if let Some(v) = v {
                    sets.push(format!("{col} = ?"));
                    params.push(v.into());
                }
            }
            if let Some(s) = patch.status {
                sets.push("status = ?".to_string());
                params.push(s.as_str().into());
            }
            let mut sql = format!(
                "UPDATE players SET {} WHERE id = ? AND status <> 'deleted'",
                sets.join(", ")
            );
            params.push(id.into());
            if let Some(v) = expected_version {
                sql.push_str(" AND version = ?");
                params.push(v.into());
            }
            if c.exec(&sql, &params).await? == 0 {
                live_player(c, id, Lock::No).await?;
                return Err(StoreError::Rule(Rule::VersionConflict));
            }
            let player = must_player(c, id).await?;
            // Status, level and exp are what game servers and admins set;
            // a player's own profile edits are not audited.
            let privileged = patch.status.is_some() || patch.level.is_some() || patch.exp.is_some();
            if privileged || actor.role == "admin" {
                let action = match patch.status {
                    Some(_) => "player.status",
                    None => "player.update",
                };
                let details = serde_json::to_value(patch).unwrap_or_default();
                audit::append(
                    c,
                    actor,
                    vec![audit::draft(action, audit::player(id), details)],
                    now_ms,
                )
                .await?;
            }
            let drafts = match patch.status {
                Some(status) => {
                    let data = NoticeData::Json(serde_json::json!({"status": status.as_str()}));
                    vec![(NoticeKind::Player, data)]
                }
                None => Vec::new(),
            };
            notified(c, persist, id, drafts, now_ms, player).await
        }))
    }

    fn adjust_balance<'a>(
        &'a self,
        id: i64,
        adjustment: &'a WalletAdjustment<'a>,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<Player>> {
        let WalletAdjustment {
            currency,
            delta,
            reason,
            reference,
        } = *adjustment;
        let persist = self.persist_all;
        Box::pin(self.write(async move |c| {
            let change = BalanceChange {
                currency,
                delta,
                reason,
                reference,
                now_ms,
            };
            let (balance, ids) = change_balance(c, Account::Id(id), &change, 1).await?;
            let player = must_player(c, id).await?;
            let drafts = vec![wallet_draft(&change, balance)];
            let details = json!({
                "currency": currency.as_str(),
                "delta": delta,
                "balance": balance,
                "reason": reason,
                "reference": reference,
            });
            let record = audit::draft("wallet.change", audit::player(id), details);
            audit::append(c, actor, vec![record], now_ms).await?;
            issued(c, persist, ids, drafts, now_ms, player).await
        }))
    }

    fn ledger(
        &self,
        id: i64,
        page: PageRequest,
        include_deleted: bool,
    ) -> StoreFuture<'_, Page<LedgerEntry>> {
        Box::pin(self.read(async move |c| {
            visible_player(c, id, include_deleted).await?;
            let total = count(c, "SELECT COUNT(*) FROM ledger WHERE player_id = ?", args![id]).await?;
            let items = c
                .query(
                    "SELECT id, player_id, currency, delta, balance_after, reason, reference, created_at \
                     FROM ledger WHERE player_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
                    args![id, page.page_size, page.offset()],
                ).await?
                .iter()
                .map(|r| {
                    row_of("ledger", r, |r| {
                        Ok(LedgerEntry {
                            id: r.int(0)?,
                            player_id: r.int(1)?,
                            currency: r.parsed(2, "a currency", Currency::parse)?,
                            delta: r.int(3)?,
                            balance_after: r.int(4)?,
                            reason: r.text(5)?,
                            reference: r.text(6)?,
                            created_at: r.int(7)?,
                        })
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok(Page { items, total })
        }))
    }

    fn apply_progress<'a>(
        &'a self,
        id: i64,
        progress: Progress,
        actor: &'a Actor,
        now_ms: i64,
    ) -> StoreFuture<'a, Notified<Player>> {
        let persist = self.persist_all;
        Box::pin(self.write(async move |c| {
            let p = live_player(c, id, Lock::Update).await?;
            let mut reward = None;
            match progress {
                Progress::AddExp {
                    amount,
                    level_for,
                    max_exp,
                } => {
                    let exp = p
                        .exp
                        .checked_add(amount)
                        .filter(|e| *e <= max_exp)
                        .ok_or(StoreError::Rule(Rule::ExpLimit(max_exp)))?;
                    let level = p.level.max(level_for(exp));
                    c.exec(
                        "UPDATE players SET exp = ?, level = ?, version = version + 1, updated_at = ? WHERE id = ?",
                        args![exp, level, now_ms, id],
                    ).await?;
                }
                Progress::LevelUp { exp_for, max_level } => {
                    if p.level >= max_level {
                        return Err(StoreError::Rule(Rule::LevelLimit(max_level)));
                    }
                    let level = p.level + 1;
                    let exp = p.exp.max(exp_for(level));
                    c.exec(
                        "UPDATE players SET exp = ?, level = ?, version = version + 1, updated_at = ? WHERE id = ?",
                        args![exp, level, now_ms, id],
                    ).await?;
                }
                Progress::DailyReward { day, currency, amount } => {
                    match c.exec("INSERT INTO daily_rewards (player_id, day) VALUES (?, ?)", args![id, day]).await {
                        Err(StoreError::Conflict(_)) => return Err(StoreError::Rule(Rule::AlreadyClaimed)),
                        other => other?,
                    };
                    let reference = format!("day:{day}");
                    let change = BalanceChange { currency, delta: amount, reason: "daily_reward", reference: &reference, now_ms };
                    let (balance, ids) = change_balance(c, Account::Locked(&p), &change, 1).await?;
                    let details = json!({"currency": currency.as_str(), "delta": amount, "balance": balance, "reason": "daily_reward", "reference": reference});
                    audit::append(c, actor, vec![audit::draft("wallet.change", audit::player(id), details)], now_ms).await?;
                    reward = Some((ids, wallet_draft(&change, balance)));
                }
            }
            let player = must_player(c, id).await?;
            if reward.is_none() {
                // Experience and levels are progress, not currency: recorded
                // like a game server's or admin's change of them.
                let details = json!({"exp": player.exp, "level": player.level, "was": {"exp": p.exp, "level": p.level}});
                let record = audit::draft("player.progress", audit::player(id), details);
                audit::append(c, actor, vec![record], now_ms).await?;
            }
            match reward {
                Some((ids, draft)) => issued(c, persist, ids, vec![draft], now_ms, player).await,
                None => Ok(Notified { value: player, notices: Vec::new() }),
            }
        }))
    }
}
