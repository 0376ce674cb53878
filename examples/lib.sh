# shellcheck shell=bash
# What the examples share: `api` (one checked HTTP call) and `json` (one
# field of an answer). Sourced by examples/quickstart.sh and
# examples/leaderboards.sh, which set BASE_URL and GAME first.

# api METHOD PATH [TOKEN] [JSON] [extra curl args...]: prints the answer's
# body; stops the script with the status and message on anything but 2xx.
api() {
  local method=$1 path=$2 token=${3:-} body=${4:-} out status
  shift $(($# < 4 ? $# : 4))
  local args=(-sS -X "$method" -H "X-Game-Id: $GAME" -o /dev/stdout -w '\n%{http_code}')
  [ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' -d "$body")
  out=$(curl "${args[@]}" "$@" "$BASE_URL$path")
  status=${out##*$'\n'}
  out=${out%$'\n'*}
  if [ "${status:0:1}" != 2 ]; then
    echo "$method $path -> HTTP $status: $out" >&2
    exit 1
  fi
  printf '%s\n' "$out"
}
# json FIELD-PATH: reads stdin's JSON, prints e.g. data.player.id
json() {
  python3 -c 'import json,sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$1"
}
