#!/usr/bin/env bash
# The README's quickstart as one script: run it against a server started with
# ./scripts/run.sh (the embedded default). It registers two players, logs
# them in, reads and updates a profile, has the game server credit gold and
# grant items, buys and pays an order, transfers an item, and reads the
# ledger — every id taken from the answers, every call checked: an error
# stops the script with the server's message.
#
# Settings: BASE_URL (http://127.0.0.1:8080), SERVER_KEY (the embedded
# default's key for game1), GAME (game1), SUFFIX (a fresh one per run, so the
# script can run again on the same database).
set -euo pipefail
BASE_URL="${BASE_URL:-http://127.0.0.1:8080}"
SERVER_KEY="${SERVER_KEY:-dev-server-key-game1}"
GAME="${GAME:-game1}"
SUFFIX="${SUFFIX:-$(date +%s)$$}"
command -v curl >/dev/null || { echo "quickstart needs curl" >&2; exit 1; }
command -v python3 >/dev/null || { echo "quickstart needs python3 (to read JSON)" >&2; exit 1; }

# api (a checked call) and json (a field of an answer): examples/lib.sh.
# shellcheck source=examples/lib.sh
source "$(dirname "$0")/lib.sh"

echo "== health"
api GET /health

echo "== register alice and bob, log in"
ALICE_NAME="alice_$SUFFIX" BOB_NAME="bob_$SUFFIX"
ALICE=$(api POST /api/v1/players "" "{\"username\":\"$ALICE_NAME\",\"password\":\"secret-1\"}" | json data.player.id)
BOB=$(api POST /api/v1/players "" "{\"username\":\"$BOB_NAME\",\"password\":\"secret-2\"}" | json data.player.id)
ALICE_TOKEN=$(api POST /api/v1/auth/login "" "{\"username\":\"$ALICE_NAME\",\"password\":\"secret-1\"}" | json data.token)
echo "alice is player $ALICE, bob is player $BOB"

echo "== alice reads and updates her profile (If-Match: her version)"
VERSION=$(api GET "/api/v1/players/$ALICE" "$ALICE_TOKEN" | json data.player.version)
api PUT "/api/v1/players/$ALICE" "$ALICE_TOKEN" '{"nickname":"Ally"}' -H "If-Match: $VERSION" | json data.player.nickname

echo "== the game server authenticates, credits gold and grants potions"
GS_TOKEN=$(api POST /api/v1/auth/server "" "{\"game_id\":\"$GAME\",\"server_key\":\"$SERVER_KEY\"}" | json data.token)
api POST "/api/v1/players/$ALICE/wallet" "$GS_TOKEN" '{"currency":"gold","delta":500,"reason":"quest"}' | json data.gold
api POST "/api/v1/players/$ALICE/items/potion/grant" "$GS_TOKEN" '{"quantity":5}' >/dev/null

echo "== alice buys two potions (Idempotency-Key: a retry returns the same order) and pays"
ORDER=$(api POST /api/v1/orders "$ALICE_TOKEN" '{"item_id":"potion","quantity":2,"currency":"gold"}' \
  -H "Idempotency-Key: quickstart-$SUFFIX" | json data.order.order_id)
AGAIN=$(api POST /api/v1/orders "$ALICE_TOKEN" '{"item_id":"potion","quantity":2,"currency":"gold"}' \
  -H "Idempotency-Key: quickstart-$SUFFIX" | json data.order.order_id)
[ "$ORDER" = "$AGAIN" ] || { echo "a repeated create made a second order" >&2; exit 1; }
api POST "/api/v1/orders/$ORDER/pay" "$ALICE_TOKEN" | json data.order.status

echo "== alice gives bob two potions, uses one, and reads her ledger"
api POST "/api/v1/players/$ALICE/items/potion/transfer" "$ALICE_TOKEN" "{\"target_player_id\":$BOB,\"quantity\":2}" >/dev/null
api POST "/api/v1/players/$ALICE/items/potion/use" "$ALICE_TOKEN" '{"quantity":1}' >/dev/null
POTIONS=$(api GET "/api/v1/players/$ALICE/items" "$ALICE_TOKEN" | python3 -c 'import json,sys
items = json.load(sys.stdin)["data"]["items"]
print(sum(i["quantity"] for i in items if i["item_id"] == "potion"))')
echo "alice has $POTIONS potions (5 granted + 2 bought - 2 given - 1 used)"
[ "$POTIONS" = 4 ] || { echo "expected 4 potions" >&2; exit 1; }
api GET "/api/v1/players/$ALICE/ledger?page=1&page_size=5" "$ALICE_TOKEN" | python3 -c 'import json,sys
for e in json.load(sys.stdin)["data"]["items"]:
    print("  %-8s %+6d -> %6d  %s" % (e["currency"], e["delta"], e["balance_after"], e["reason"]))'

echo "== logout: alice's token stops working on every node"
api POST /api/v1/auth/logout "$ALICE_TOKEN" >/dev/null
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ALICE_TOKEN" "$BASE_URL/api/v1/players/$ALICE")
[ "$code" = 401 ] || { echo "a revoked token answered $code" >&2; exit 1; }
echo "quickstart done"
