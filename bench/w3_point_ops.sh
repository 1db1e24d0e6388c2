#!/usr/bin/env bash
# W3 point operations over HTTP, measured with wrk (C, light on the CPU, so the 2 cores go
# to the server): reads of one customer and durable single-field PATCHes, 32 keep-alive
# connections, 5 rounds of 3 s each, median printed.
#   bench/w3_point_ops.sh            (needs wrk: apt-get install wrk)
#   DATABASE=postgres://… bench/w3_point_ops.sh   (the same against PostgreSQL: give it an
#                                    empty database)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p unico
work=$(mktemp -d "${TMPDIR:-/tmp}/unico-w3.XXXXXX")
key=bench-admin-key-0123456789
port=${PORT:-18181}
UNICO_ADMIN_KEY=$key RUST_LOG=warn ./target/release/unico serve --data "$work/data" ${DATABASE:+--database "$DATABASE"} --addr 127.0.0.1:$port >"$work/log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -sf localhost:$port/health >/dev/null && break; sleep 0.1; done
H="Authorization: Bearer $key"; J="Content-Type: application/json"
curl -sf -H "$H" -H "$J" -d '{"name":"bench"}' localhost:$port/v1/apps >/dev/null
curl -sf -H "$H" -H "$J" -d '{"name":"visits","type":"number"}' localhost:$port/v1/apps/1/fields >/dev/null
python3 -c "import json; print(json.dumps([{'customerId': 'c%07d' % i, 'fields': {'visits': i}} for i in range(10000)]))" >"$work/batch.json"
curl -sf -o /dev/null -H "$H" -H "$J" --data-binary @"$work/batch.json" localhost:$port/v1/apps/1/customers/batch
for op in GET PATCH; do
  cat >"$work/$op.lua" <<LUA
counter = 0
request = function()
  counter = counter + 1
  local id = string.format("c%07d", (counter * 7919 + math.random(0, 9999)) % 10000)
  if "$op" == "GET" then
    return wrk.format("GET", "/v1/apps/1/customers/" .. id, {["Authorization"] = "Bearer $key"})
  end
  return wrk.format("PATCH", "/v1/apps/1/customers/" .. id,
    {["Authorization"] = "Bearer $key", ["Content-Type"] = "application/json"},
    '{"fields":{"visits":' .. counter .. '}}')
end
LUA
  rates=()
  for _ in 1 2 3 4 5; do
    out=$(wrk -t2 -c32 -d3s -s "$work/$op.lua" http://127.0.0.1:$port)
    if grep -q "Non-2xx" <<<"$out"; then echo "$op: errors during the run"; echo "$out"; exit 1; fi
    rates+=("$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out")")
  done
  median=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n 3p)
  echo "$op one customer: median $median req/s (rounds: ${rates[*]})"
done
