#!/usr/bin/env bash
# The README's leaderboard walk-through as one script: run it against a
# server started with an admin account (README, "Try it": ops /
# ops-password-1). The admin defines a board, the game server writes three
# players' scores, and the ranks are read: the top, one player, the records
# around a player, a past period, and the board is withdrawn — every call
# checked: an error stops the script with the server's message.
#
# Settings: BASE_URL (http://127.0.0.1:8080), ADMIN_USER (ops),
# ADMIN_PASSWORD (ops-password-1), SERVER_KEY (the embedded default's key
# for game1), GAME (game1), SUFFIX (a fresh one per run, so the script can
# run again on the same database).
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8080}"
ADMIN_USER="${ADMIN_USER:-ops}"
ADMIN_PASSWORD="${ADMIN_PASSWORD:-ops-password-1}"
SERVER_KEY="${SERVER_KEY:-dev-server-key-game1}"
GAME="${GAME:-game1}"
SUFFIX="${SUFFIX:-$(date +%s)$$}"
command -v curl >/dev/null || { echo "this example needs curl" >&2; exit 1; }
command -v python3 >/dev/null || { echo "this example needs python3 (to read JSON)" >&2; exit 1; }

# api (a checked call) and json (a field of an answer): examples/lib.sh.
# shellcheck source=examples/lib.sh
source "$(dirname "$0")/lib.sh"
# ranks: reads a list answer, prints "rank username score" lines
ranks() {
  python3 -c 'import json,sys
for r in json.load(sys.stdin)["data"]["records"]:
    print(r["rank"], r["username"], r["score"])'
}

echo "== the admin defines a board: higher is better, the best score kept, a new one every day"
ADMIN=$(api POST /api/v1/auth/admin "" "{\"username\":\"$ADMIN_USER\",\"password\":\"$ADMIN_PASSWORD\"}" | json data.token)
BOARD="arena_$SUFFIX"
api POST /api/v1/leaderboards "$ADMIN" "{\"id\":\"$BOARD\",\"sort\":\"desc\",\"operator\":\"best\",\"reset\":\"daily\"}" | json data.board.id

echo "== three players; the game server writes their scores"
GS=$(api POST /api/v1/auth/server "" "{\"game_id\":\"$GAME\",\"server_key\":\"$SERVER_KEY\"}" | json data.token)
declare -A ID
for name in ann ben cid; do
  ID[$name]=$(api POST /api/v1/players "" "{\"username\":\"${name}_$SUFFIX\",\"password\":\"secret-$name\"}" | json data.player.id)
done
api POST "/api/v1/leaderboards/$BOARD/scores" "$GS" "{\"player_id\":${ID[ann]},\"score\":1200}" >/dev/null
api POST "/api/v1/leaderboards/$BOARD/scores" "$GS" "{\"player_id\":${ID[ben]},\"score\":900}" >/dev/null
api POST "/api/v1/leaderboards/$BOARD/scores" "$GS" "{\"player_id\":${ID[cid]},\"score\":1500,\"subscore\":3}" >/dev/null
# A worse score changes nothing on a `best` board: ann stays at 1200.
RANK=$(api POST "/api/v1/leaderboards/$BOARD/scores" "$GS" "{\"player_id\":${ID[ann]},\"score\":10}" | json data.record.rank)
echo "ann is ranked $RANK"

echo "== the top (anyone signed in to the game may read it)"
ANN_TOKEN=$(api POST /api/v1/auth/login "" "{\"username\":\"ann_$SUFFIX\",\"password\":\"secret-ann\"}" | json data.token)
api GET "/api/v1/leaderboards/$BOARD?limit=10" "$ANN_TOKEN" | ranks

echo "== one player's rank, and the records around a player"
api GET "/api/v1/leaderboards/$BOARD/players/${ID[ben]}" "$ANN_TOKEN" | json data.rank
api GET "/api/v1/leaderboards/$BOARD/around/${ID[ann]}?limit=3" "$ANN_TOKEN" | ranks

echo "== today's period by name (yesterday's reads the same way while kept)"
PERIOD=$(api GET "/api/v1/leaderboards/$BOARD" "$ANN_TOKEN" | json data.period)
api GET "/api/v1/leaderboards/$BOARD?period=$PERIOD&limit=1" "$ANN_TOKEN" | ranks

echo "== the admin withdraws the board"
api DELETE "/api/v1/leaderboards/$BOARD" "$ADMIN" | json data.deleted
echo "leaderboards done"
