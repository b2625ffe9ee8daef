#!/usr/bin/env bash
# Interoperability test: openid-client v6 (npm) runs a CIBA poll-mode flow against a real
# `backchannel serve`, with the reference CLI authenticator approving. The last line is
# "1 passed, 0 failed" or "0 passed, 1 failed"; the exit status matches.
#
# Env: BACKCHANNEL_BIN (default $CARGO_TARGET_DIR/debug/backchannel, else target/debug/backchannel),
#      KEEP_TMP=1 to keep the temporary directory (server log, state files).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="${BACKCHANNEL_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/backchannel}"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/bc-interop.XXXXXX")"
server_pid=""
approver_pid=""

cleanup() {
  [ -n "$approver_pid" ] && kill "$approver_pid" 2>/dev/null
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

finish() {
  local status="$1" why="${2:-}"
  if [ "$status" -eq 0 ]; then
    echo "1 passed, 0 failed"
  else
    [ -n "$why" ] && echo "FAILED: $why" >&2
    if [ -f "$tmp/server.log" ]; then
      echo "--- server log (last 40 lines) ---" >&2
      tail -n 40 "$tmp/server.log" >&2
    fi
    echo "0 passed, 1 failed"
  fi
  exit "$status"
}

command -v node >/dev/null || finish 1 "node is not installed"
[ -x "$bin" ] || (cd "$repo" && cargo build -q -p backchannel) || finish 1 "cannot build backchannel"
[ -x "$bin" ] || finish 1 "no binary at $bin (set BACKCHANNEL_BIN)"
if [ ! -d "$here/node_modules/openid-client" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --silent) || finish 1 "npm ci failed"
fi

port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
issuer="http://127.0.0.1:$port"
export BACKCHANNEL_SERVER_LISTEN="127.0.0.1:$port"
export BACKCHANNEL_SERVER_ISSUER="$issuer"
export BACKCHANNEL_SERVER_DATA_DIR="$tmp"
export BACKCHANNEL_DATABASE_URL="sqlite://$tmp/db.sqlite"

"$bin" serve >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$issuer/healthz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || finish 1 "the server exited"
  sleep 0.1
done
curl -fsS "$issuer/healthz" >/dev/null 2>&1 || finish 1 "the server did not become healthy"

node "$here/genkey.mjs" "$tmp/client-private.json" "$tmp/client-jwks.json" || finish 1 "key generation failed"

json_field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s)[process.argv[1]];if(v===undefined)process.exit(1);console.log(v)})' "$1"; }

client_id="$("$bin" admin client create --name interop --auth-method private_key_jwt \
  --jwks-file "$tmp/client-jwks.json" --json | json_field client_id)" || finish 1 "client create failed"
sub="$("$bin" admin user create --email interop@example.com --json | json_field sub)" \
  || finish 1 "user create failed"
code="$("$bin" admin enrolment create --user "$sub" --json | json_field code)" \
  || finish 1 "enrolment create failed"
"$bin" authenticator enrol --server "$issuer" --code "$code" --state "$tmp/dev.json" \
  --name interop-device --json >"$tmp/enrol.json" || finish 1 "authenticator enrol failed"

"$bin" authenticator approve --state "$tmp/dev.json" --all --wait 30 --json \
  >"$tmp/approve.json" 2>"$tmp/approve.err" &
approver_pid=$!

out="$(cd "$here" && ISSUER="$issuer" CLIENT_ID="$client_id" PRIVATE_JWK="$tmp/client-private.json" \
  LOGIN_HINT=interop@example.com timeout 60 node ciba.mjs)"
node_status=$?
echo "$out"
[ "$node_status" -eq 0 ] || finish 1 "ciba.mjs exited with $node_status"

wait "$approver_pid"
approver_status=$?
approver_pid=""
[ "$approver_status" -eq 0 ] || finish 1 "authenticator approve exited with $approver_status: $(cat "$tmp/approve.err")"

# The ID token names the enrolled user, and the authenticator decided exactly one challenge.
got_sub="$(echo "$out" | json_field sub)" || finish 1 "no sub in the output"
[ "$got_sub" = "$sub" ] || finish 1 "sub $got_sub is not the user's $sub"
# openid-client lower-cases token_type; RFC 6749 §5.1 makes it case-insensitive.
token_type="$(echo "$out" | json_field token_type)"
[ "${token_type,,}" = bearer ] || finish 1 "token_type $token_type is not Bearer"
decided="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).decided.length)' "$tmp/approve.json")" \
  || finish 1 "approve printed no JSON"
[ "$decided" = 1 ] || finish 1 "the authenticator decided $decided challenges, expected 1"

finish 0
