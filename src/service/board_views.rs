//! Where leaderboard ranks are served from (SPEC §12): a view of each board
//! period in memory — a Redis sorted set when `cluster.redis` is set (every
//! node sees a write at once), else an index owned by one shard of the node
//! (`leaderboard::local`), asked over the mesh. Both are rebuilt from the
//! SQL records when missing, and both apply a record only when its version
//! is newer than the one they hold. When a view cannot answer (Redis down,
//! its load failed) the caller reads ranks from SQL instead.

use super::Services;
use crate::leaderboard::local::{self, LocalView};
use crate::leaderboard::rank_index::RankKey;
use crate::leaderboard::{member, rank_key, ViewAnswer, ViewKey, ViewOp, ViewRecord};
use crate::mesh::ShardMessage;
use crate::redis::Reply;
use crate::store::{BoardEntry, BoardReset, BoardSort};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Records read from SQL per page when a view is rebuilt.
const LOAD_PAGE: i64 = 20_000;
/// Records sent to Redis per script call when a view is rebuilt.
const REDIS_LOAD_BATCH: usize = 2_000;
/// How long a node waits for another to finish rebuilding a Redis view.
const REBUILD_WAIT: Duration = Duration::from_secs(60);

/// Applies a record in a Redis view: KEYS = set, versions, ready marker;
/// ARGV = player, version, member. Answers `{before, after}` (0-based
/// ranks, -1 for none) and `unready` as a third element when the view was
/// never built (or Redis lost it).
const APPLY: &str = r"
local cur = redis.call('HGET', KEYS[2], ARGV[1])
local before = -1
local ready = redis.call('EXISTS', KEYS[3])
if cur then
  local sep = string.find(cur, ':', 1, true)
  local m = string.sub(cur, sep + 1)
  before = redis.call('ZRANK', KEYS[1], m) or -1
  if tonumber(string.sub(cur, 1, sep - 1)) >= tonumber(ARGV[2]) then
    return {before, before, ready}
  end
  redis.call('ZREM', KEYS[1], m)
end
redis.call('ZADD', KEYS[1], 0, ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ':' .. ARGV[3])
return {before, redis.call('ZRANK', KEYS[1], ARGV[3]), ready}
";

/// Applies many records (a rebuild): ARGV = player, version, member, ...
const LOAD: &str = r"
for i = 1, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[2], ARGV[i])
  local newer = true
  if cur then
    local sep = string.find(cur, ':', 1, true)
    if tonumber(string.sub(cur, 1, sep - 1)) >= tonumber(ARGV[i + 1]) then
      newer = false
    else
      redis.call('ZREM', KEYS[1], string.sub(cur, sep + 1))
    end
  end
  if newer then
    redis.call('ZADD', KEYS[1], 0, ARGV[i + 2])
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1] .. ':' .. ARGV[i + 2])
  end
end
return 1
";

/// A player's rank: `{ready, rank, member}`, rank -1 when none.
const RANK: &str = r"
local ready = redis.call('EXISTS', KEYS[3])
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if not cur then return {ready, -1, ''} end
local m = string.sub(cur, string.find(cur, ':', 1, true) + 1)
return {ready, redis.call('ZRANK', KEYS[1], m) or -1, m}
";

/// Keys from a rank: `{ready, member, ...}`.
const RANGE: &str = r"
local ready = redis.call('EXISTS', KEYS[3])
local out = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2])
table.insert(out, 1, ready)
return out
";

/// The records around a player's: `{ready, start, member, ...}` with the
/// 0-based rank of the first, start -1 when the player has none. ARGV =
/// player, records before the player's, records.
const AROUND: &str = r"
local ready = redis.call('EXISTS', KEYS[3])
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if not cur then return {ready, -1} end
local m = string.sub(cur, string.find(cur, ':', 1, true) + 1)
local r = redis.call('ZRANK', KEYS[1], m)
if not r then return {ready, -1} end
local start = r - tonumber(ARGV[2])
if start < 0 then start = 0 end
local out = redis.call('ZRANGE', KEYS[1], start, start + tonumber(ARGV[3]) - 1)
table.insert(out, 1, start)
table.insert(out, 1, ready)
return out
";

/// Takes a player's record out.
const REMOVE: &str = r"
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if cur then
  redis.call('ZREM', KEYS[1], string.sub(cur, string.find(cur, ':', 1, true) + 1))
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return 1
";

/// The Redis keys of a view: its sorted set, the players' versions and
/// members, the marker set once it was built, and the lock of its rebuild
/// (one hash tag: the same Cluster slot).
fn redis_keys(key: &ViewKey) -> [String; 4] {
    let tag = format!(
        "dm:lb:{{{}/{}/{}/{}}}",
        key.game, key.board, key.generation, key.period
    );
    [
        format!("{tag}:z"),
        format!("{tag}:h"),
        format!("{tag}:ready"),
        format!("{tag}:rebuild"),
    ]
}

/// The set of a board's periods that have Redis views (for pruning).
fn redis_periods_key(game: &str, board: &str, generation: i64) -> String {
    format!("dm:lb:periods:{{{game}/{board}/{generation}}}")
}

fn eval(script: &str, keys: &[String], args: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut cmd = Vec::with_capacity(3 + keys.len() + args.len());
    cmd.push(b"EVAL".to_vec());
    cmd.push(script.as_bytes().to_vec());
    cmd.push(keys.len().to_string().into_bytes());
    cmd.extend(keys.iter().map(|k| k.as_bytes().to_vec()));
    cmd.extend(args);
    cmd
}

fn int(r: Option<&Reply>) -> Option<i64> {
    match r? {
        Reply::Int(i) => Some(*i),
        _ => None,
    }
}

fn rank_of(i: i64) -> Option<usize> {
    (i >= 0).then(|| i as usize + 1)
}

/// A record of a Redis view: its key; the name is looked up by the caller
/// (members hold no names).
fn unnamed(key: RankKey) -> ViewRecord {
    ViewRecord {
        key,
        username: String::new(),
    }
}

/// The records members stand for, in their order.
fn members(items: &[Reply]) -> Vec<ViewRecord> {
    items
        .iter()
        .filter_map(|m| match m {
            Reply::Bulk(Some(m)) => member::decode(m).map(unnamed),
            _ => None,
        })
        .collect()
}

/// A Redis answer read as a view's, or `None` when the view is not built.
fn redis_answer(op: &ViewOp, reply: &Reply) -> Option<ViewAnswer> {
    let items = reply.as_array()?;
    match op {
        ViewOp::Apply(..) => {
            let (before, after, ready) =
                (int(items.first())?, int(items.get(1))?, int(items.get(2))?);
            (ready == 1).then(|| ViewAnswer::Applied(rank_of(before), rank_of(after)))
        }
        ViewOp::Remove(_) => Some(ViewAnswer::Removed),
        ViewOp::Ranked(_) => {
            if int(items.first())? != 1 {
                return None;
            }
            let rank = rank_of(int(items.get(1))?);
            let key = match items.get(2) {
                Some(Reply::Bulk(Some(m))) => member::decode(m).map(unnamed),
                _ => None,
            };
            Some(ViewAnswer::Ranked(rank.zip(key)))
        }
        ViewOp::Range(..) => {
            if int(items.first())? != 1 {
                return None;
            }
            Some(ViewAnswer::Range(members(&items[1..])))
        }
        ViewOp::Around(..) => {
            if int(items.first())? != 1 {
                return None;
            }
            let from = rank_of(int(items.get(1))?);
            Some(ViewAnswer::Around(from.map(|from| {
                (from, members(items.get(2..).unwrap_or_default()))
            })))
        }
    }
}

impl Services {
    /// The clock the boards' periods follow (`leaderboards.clock_offset_ms`
    /// moves it in tests).
    pub fn board_clock(&self) -> i64 {
        crate::clock::now_ms().saturating_add(self.config.leaderboards.clock_offset_ms)
    }

    /// Asks the view of `key` (a board of `sort`): in Redis when the node
    /// has it, else on the shard that owns the board.
    pub(super) async fn ask_view(&self, key: &ViewKey, sort: BoardSort, op: ViewOp) -> ViewAnswer {
        if self.registry().is_some() {
            return self.ask_redis_view(key, sort, op).await;
        }
        let owner = local::owner(&key.game, &key.board, self.node.gauges.len());
        if owner == self.shard {
            return self.ask_local_view(key.clone(), sort, op).await;
        }
        let key = key.clone();
        self.peers
            .ask(owner, |reply| ShardMessage::BoardView {
                key,
                sort,
                op,
                reply,
            })
            .await
            .unwrap_or(ViewAnswer::Unavailable)
    }

    /// Answers for a view this shard owns (from the mesh or this shard).
    pub async fn ask_local_view(&self, key: ViewKey, sort: BoardSort, op: ViewOp) -> ViewAnswer {
        let view = self.local_view(&key, sort);
        match op {
            ViewOp::Apply(k, version, username) => {
                let was_ready = view.is_ready();
                if !view.ready().await {
                    return ViewAnswer::Unavailable;
                }
                let (before, after) = view.apply(k, version, &username);
                // A view loaded meanwhile already held the record: its rank
                // before the write is unknown.
                ViewAnswer::Applied(before.filter(|_| was_ready), after)
            }
            ViewOp::Remove(player) => {
                view.remove(player);
                ViewAnswer::Removed
            }
            ViewOp::Ranked(player) => match view.ready().await {
                true => ViewAnswer::Ranked(view.ranked(player)),
                false => ViewAnswer::Unavailable,
            },
            ViewOp::Range(from, limit) => match view.ready().await {
                true => ViewAnswer::Range(view.range(from, limit)),
                false => ViewAnswer::Unavailable,
            },
            ViewOp::Around(player, limit) => match view.ready().await {
                true => ViewAnswer::Around(view.around(player, limit)),
                false => ViewAnswer::Unavailable,
            },
        }
    }

    /// The local view of `key`, its load from SQL started on first use.
    fn local_view(&self, key: &ViewKey, sort: BoardSort) -> Rc<LocalView> {
        let (view, fresh) = self.board_views.view(key);
        if fresh {
            let (view, key) = (view.clone(), key.clone());
            let store = self.games.get(&key.game).map(|g| g.store.clone());
            let views = self.board_views.clone();
            glommio::spawn_local(async move {
                let started = Instant::now();
                let mut after = 0;
                let mut ok = store.is_some();
                while let Some(store) = store.as_ref() {
                    let (board, period) = (key.board.clone(), key.period);
                    match store
                        .run(async move |s| s.board_entries(&board, period, after, LOAD_PAGE).await)
                        .await
                    {
                        Ok(page) => {
                            view.load_page(
                                page.iter().map(|(e, name)| (rank_key(sort, e), e.version, name.as_str())),
                            );
                            match page.last() {
                                Some((last, _)) if page.len() as i64 == LOAD_PAGE => after = last.player_id,
                                _ => break,
                            }
                        }
                        Err(e) => {
                            tracing::warn!(board = %key.board, error = %e, "leaderboard view not loaded; ranks come from SQL");
                            ok = false;
                            break;
                        }
                    }
                }
                if !ok {
                    views.forget(&key);
                }
                view.loaded(ok);
                if ok && view.len() >= 10_000 {
                    tracing::info!(board = %key.board, game = %key.game, records = view.len(), ms = started.elapsed().as_millis() as u64, "leaderboard view loaded");
                }
            })
            .detach();
        }
        view
    }

    async fn ask_redis_view(&self, key: &ViewKey, sort: BoardSort, op: ViewOp) -> ViewAnswer {
        let Some(registry) = self.registry() else {
            return ViewAnswer::Unavailable;
        };
        let keys = redis_keys(key);
        let call = match &op {
            ViewOp::Apply(k, version, _) => eval(
                APPLY,
                &keys[..3],
                vec![
                    k.player_id.to_string().into_bytes(),
                    version.to_string().into_bytes(),
                    member::encode(k),
                ],
            ),
            ViewOp::Remove(player) => {
                eval(REMOVE, &keys[..2], vec![player.to_string().into_bytes()])
            }
            ViewOp::Ranked(player) => eval(RANK, &keys[..3], vec![player.to_string().into_bytes()]),
            ViewOp::Range(from, limit) => {
                let start = from.saturating_sub(1);
                let stop = (start + limit).saturating_sub(1);
                eval(
                    RANGE,
                    &keys[..3],
                    vec![
                        start.to_string().into_bytes(),
                        stop.to_string().into_bytes(),
                    ],
                )
            }
            ViewOp::Around(player, limit) => eval(
                AROUND,
                &keys[..3],
                vec![
                    player.to_string().into_bytes(),
                    (limit.saturating_sub(1) / 2).to_string().into_bytes(),
                    limit.to_string().into_bytes(),
                ],
            ),
        };
        for attempt in 0..2 {
            let reply = match registry.redis().command(call.clone()).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e.0, "leaderboard view in Redis unavailable; ranks come from SQL");
                    return ViewAnswer::Unavailable;
                }
            };
            match redis_answer(&op, &reply) {
                // After a rebuild the record was already in the view: its
                // rank before the write is unknown.
                Some(ViewAnswer::Applied(_, after)) if attempt > 0 => {
                    return ViewAnswer::Applied(None, after)
                }
                Some(answer) => return answer,
                None => {}
            }
            if attempt == 0 && !self.rebuild_redis_view(key, sort).await {
                break;
            }
        }
        ViewAnswer::Unavailable
    }

    /// Builds a view in Redis from SQL, or waits for the node that is doing
    /// it; whether it is built.
    async fn rebuild_redis_view(&self, key: &ViewKey, sort: BoardSort) -> bool {
        let (Some(registry), Ok(game)) = (self.registry(), self.game(&key.game)) else {
            return false;
        };
        let redis = registry.redis();
        let keys = redis_keys(key);
        let bytes = |s: &str| s.as_bytes().to_vec();
        let lock = vec![
            bytes("SET"),
            bytes(&keys[3]),
            bytes(&self.config.node.id),
            bytes("NX"),
            bytes("PX"),
            bytes(&REBUILD_WAIT.as_millis().to_string()),
        ];
        match redis.command(lock).await {
            Ok(Reply::Status(_)) => {}
            Ok(_) => {
                // Another node rebuilds it: wait for its marker.
                let until = Instant::now() + REBUILD_WAIT;
                while Instant::now() < until {
                    glommio::timer::sleep(Duration::from_millis(20)).await;
                    match redis.command(vec![bytes("EXISTS"), bytes(&keys[2])]).await {
                        Ok(Reply::Int(1)) => return true,
                        Ok(_) => {}
                        Err(_) => return false,
                    }
                }
                return false;
            }
            Err(_) => return false,
        }
        // What is left of an older view (Redis lost part of it) goes;
        // writes from now on are kept, and the load adds only records
        // newer than theirs.
        let clear = vec![bytes("DEL"), bytes(&keys[0]), bytes(&keys[1])];
        if redis.command(clear).await.is_err() {
            return false;
        }
        let started = Instant::now();
        let mut after = 0;
        let mut records = 0usize;
        loop {
            let (board, period) = (key.board.clone(), key.period);
            let page = match game
                .store
                .run(async move |s| s.board_entries(&board, period, after, LOAD_PAGE).await)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(board = %key.board, error = %e, "leaderboard view not rebuilt");
                    let _ = redis.command(vec![bytes("DEL"), bytes(&keys[3])]).await;
                    return false;
                }
            };
            let calls: Vec<Vec<Vec<u8>>> = page
                .chunks(REDIS_LOAD_BATCH)
                .map(|chunk| eval(LOAD, &keys[..2], load_args(sort, chunk)))
                .collect();
            if !calls.is_empty() && redis.pipeline(&calls).await.is_err() {
                return false;
            }
            records += page.len();
            match page.last() {
                Some((last, _)) if page.len() as i64 == LOAD_PAGE => after = last.player_id,
                _ => break,
            }
        }
        let done = [
            vec![bytes("SET"), bytes(&keys[2]), bytes("1")],
            vec![bytes("DEL"), bytes(&keys[3])],
            vec![
                bytes("SADD"),
                bytes(&redis_periods_key(&key.game, &key.board, key.generation)),
                bytes(&key.period.to_string()),
            ],
        ];
        if redis.pipeline(&done).await.is_err() {
            return false;
        }
        if records >= 10_000 {
            tracing::info!(board = %key.board, game = %key.game, records, ms = started.elapsed().as_millis() as u64, "leaderboard view rebuilt in Redis");
        }
        true
    }

    /// Forgets the views of a board's periods before `first_kept` (all of
    /// them with `i64::MAX`, and the board's definition), in Redis and on
    /// every shard of the node (other nodes read their definitions again
    /// within a second).
    pub(super) async fn forget_board_views(
        &self,
        game: &str,
        board: &str,
        generation: i64,
        first_kept: i64,
    ) {
        if let Some(registry) = self.registry() {
            let redis = registry.redis();
            let set = redis_periods_key(game, board, generation);
            let periods = match redis
                .command(vec![b"SMEMBERS".to_vec(), set.clone().into_bytes()])
                .await
            {
                Ok(Reply::Array(Some(items))) => items
                    .iter()
                    .filter_map(|i| i.as_text()?.parse::<i64>().ok())
                    .filter(|p| *p < first_kept)
                    .collect::<Vec<_>>(),
                _ => Vec::new(),
            };
            let mut cmds = Vec::new();
            for period in periods {
                let key = ViewKey {
                    game: game.to_string(),
                    board: board.to_string(),
                    generation,
                    period,
                };
                // One slot per command in a Cluster: a DEL per key.
                for k in &redis_keys(&key)[..3] {
                    cmds.push(vec![b"DEL".to_vec(), k.clone().into_bytes()]);
                }
                cmds.push(vec![
                    b"SREM".to_vec(),
                    set.clone().into_bytes(),
                    period.to_string().into_bytes(),
                ]);
            }
            if !cmds.is_empty() {
                if let Err(e) = redis.pipeline(&cmds).await {
                    tracing::warn!(error = %e.0, "old leaderboard views not deleted from Redis");
                }
            }
        }
        self.forget_board_views_here(game, board, first_kept);
        let (game, board) = (game.to_string(), board.to_string());
        self.peers
            .broadcast(true, |ack| ShardMessage::ForgetBoardViews {
                game: game.clone(),
                board: board.clone(),
                first_kept,
                ack,
            })
            .await;
    }

    /// Forgets the views of periods the reset job no longer keeps.
    pub async fn forget_old_board_views(&self, game_id: &str, now_ms: i64, keep_periods: i64) {
        let Ok(game) = self.game(game_id) else { return };
        let Ok(boards) = game.store.run(async move |s| s.boards().await).await else {
            return;
        };
        for board in boards.iter().filter(|b| b.reset != BoardReset::Never) {
            let current = board.reset.period_start(now_ms);
            let first_kept = board.reset.first_kept(current, keep_periods);
            self.forget_board_views(game_id, &board.id, board.created_at, first_kept)
                .await;
        }
    }

    /// Forgets views on this shard (a peer's `forget_board_views`);
    /// all of them (`i64::MAX`: the board was withdrawn) with its
    /// definition.
    pub fn forget_board_views_here(&self, game: &str, board: &str, first_kept: i64) {
        self.board_views.forget_before(game, board, first_kept);
        if first_kept == i64::MAX {
            self.known_boards
                .borrow_mut()
                .remove(&(game.to_string(), board.to_string()));
        }
    }

    /// Ranks this shard answered from SQL because a view could not.
    pub fn board_sql_answers(&self) -> u64 {
        self.board_sql_answers.get()
    }

    /// Counts a rank answered from SQL.
    pub(super) fn answered_from_sql(&self) {
        self.board_sql_answers.set(self.board_sql_answers.get() + 1);
    }

    /// This shard's local views and their records, for `/metrics`.
    pub fn board_view_sizes(&self) -> (usize, usize) {
        self.board_views.sizes()
    }

    /// Rebuilds the views of every board's current period (a node that
    /// starts): the local ones this shard owns, or the Redis ones missing.
    pub async fn rebuild_board_views(&self) {
        if self.registry().is_some() && self.shard != 0 {
            return;
        }
        let now = self.board_clock();
        for game in self.games.values() {
            let boards = match game.store.run(async move |s| s.boards().await).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(game = %game.id, error = %e, "leaderboard views not rebuilt at start");
                    continue;
                }
            };
            for board in boards {
                let key = ViewKey {
                    game: game.id.clone(),
                    board: board.id.clone(),
                    generation: board.created_at,
                    period: board.reset.period_start(now),
                };
                if self.registry().is_none()
                    && local::owner(&key.game, &key.board, self.node.gauges.len()) != self.shard
                {
                    continue;
                }
                // A rank asked for nobody: builds the view, answers nothing.
                let _ = self.ask_view(&key, board.sort, ViewOp::Ranked(0)).await;
            }
        }
    }
}

fn load_args(sort: BoardSort, entries: &[(BoardEntry, String)]) -> Vec<Vec<u8>> {
    let mut args = Vec::with_capacity(entries.len() * 3);
    for (e, _) in entries {
        args.push(e.player_id.to_string().into_bytes());
        args.push(e.version.to_string().into_bytes());
        args.push(member::encode(&rank_key(sort, e)));
    }
    args
}
