#!/usr/bin/env bash
# W1: import the 1M-customer long CSV (11.6 M rows) into a fresh store through the HTTP API,
# durable, until the import reports success; wall time, the server's peak memory, and the
# first count after it (Q1: it waits until the segment engine holds the import).
#   bench/w1_import.sh [ROUNDS]       (default 3; median printed)
# Data: generated once with ../shared/bench/gen_customers.py (or set UNICO_BENCH_CSV).
# KEEP=1 leaves the last round's server running (for bench/w2_segments.py).
# With ANCHORS=1, DuckDB (pip install duckdb) loads and pivots the same file in the same run,
# one DuckDB round after each Unico round, so both see the same load on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
data_dir=${UNICO_BENCH_DATA:-target/bench-data}
csv=${UNICO_BENCH_CSV:-$data_dir/customers_long.csv}
if [ ! -f "$csv" ]; then
  mkdir -p "$data_dir"
  python3 ../shared/bench/gen_customers.py --customers 1000000 --format long --out "$csv"
fi
fields_json="$(dirname "$csv")/fields.json"
cargo build --release -q -p unico
bin="${CARGO_TARGET_DIR:-target}/release/unico"
key=bench-admin-key-0123456789
port=${PORT:-18282}
H="Authorization: Bearer $key"; J="Content-Type: application/json"
times=()
anchor_times=()
rows=$(( $(wc -l < "$csv") - 1 ))
for round in $(seq "$rounds"); do
  work=$(mktemp -d "${TMPDIR:-/tmp}/unico-w1.XXXXXX")
  UNICO_ADMIN_KEY=$key RUST_LOG=${RUST_LOG:-warn} "$bin" serve --data "$work/data" --addr 127.0.0.1:$port >"$work/log" 2>&1 &
  server=$!
  for _ in $(seq 50); do curl -sf localhost:$port/health >/dev/null && break; sleep 0.1; done
  curl -sf -H "$H" -H "$J" -d '{"name":"bench"}' localhost:$port/v1/apps >/dev/null
  python3 -c "import json,sys; [print(f['name'], f['type'].lower()) for f in json.load(open(sys.argv[1]))]" "$fields_json" |
    while read -r name type; do
      curl -sf -o /dev/null -H "$H" -H "$J" -d "{\"name\":\"$name\",\"type\":\"$type\"}" localhost:$port/v1/apps/1/fields
    done
  start=$(date +%s.%N)
  curl -sf -o /dev/null -H "$H" -H "Content-Type: text/csv" --data-binary @"$csv" localhost:$port/v1/apps/1/imports
  uploaded=$(date +%s.%N)
  while status=$(curl -sf -H "$H" localhost:$port/v1/apps/1/imports/1) && grep -q '"state":"running"' <<<"$status"; do sleep 0.05; done
  end=$(date +%s.%N)
  grep -q '"state":"succeeded"' <<<"$status" || { echo "import failed: $status"; exit 1; }
  rss_import=$(awk '/VmHWM/ {printf "%d", $2/1024}' /proc/$server/status)
  # The first count after the import reports success: it waits until the segment engine
  # holds the import.
  t0=$(date +%s.%N)
  first=$(curl -sf -H "$H" -H "$J" -d '{"filter":"country = \"ES\" and age between 25 and 34"}' localhost:$port/v1/apps/1/count)
  t1=$(date +%s.%N)
  first_ms=$(python3 -c "print(f'{($t1 - $t0) * 1000:.0f}')")
  rss=$(awk '/VmHWM/ {printf "%d", $2/1024}' /proc/$server/status)
  if [ "${KEEP:-0}" = 1 ] && [ "$round" = "$rounds" ]; then
    echo "server left running on port $port with the data in $work/data (pid $server)"
  else
    kill $server; wait $server 2>/dev/null || true
  fi
  disk=$(du -sm "$work/data" | cut -f1)
  t=$(python3 -c "print(f'{$end - $start:.2f}')")
  up=$(python3 -c "print(f'{$uploaded - $start:.2f}')")
  rate=$(python3 -c "print(f'{$rows / ($end - $start):,.0f}')")
  echo "round $round: ${t} s (upload ${up} s, ${rate} rows/s), peak RSS ${rss_import} MB through the import, ${rss} MB after the first count (${first_ms} ms: $first), on disk ${disk} MB"
  times+=("$t")
  [ "${KEEP:-0}" = 1 ] && [ "$round" = "$rounds" ] || rm -rf "$work"
  if [ "${ANCHORS:-0}" = 1 ]; then
    a=$(python3 bench/anchor_duckdb_import.py "$csv" 1 | sed -n 's/^DuckDB round 1: \([0-9.]*\) s$/\1/p')
    echo "round $round: DuckDB ${a} s"
    anchor_times+=("$a")
  fi
done
echo "Unico W1 import: median $(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (rounds + 1) / 2 ))p") s over $rounds rounds"
if [ "${ANCHORS:-0}" = 1 ]; then
  echo "DuckDB W1 import: median $(printf '%s\n' "${anchor_times[@]}" | sort -n | sed -n "$(( (rounds + 1) / 2 ))p") s over $rounds rounds"
fi
