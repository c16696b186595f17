#!/usr/bin/env bash
# Row 4 of scripts/bench.sh as an A/B: the bare request loop and one or more importer
# binaries take turns, each run against a fresh simulator, and each run's wall time and
# CPU a row (client and simulator) are printed, then the min and median per binary.
#
#   scripts/ab-row4.sh target/profiling/wolkvox-import /tmp/wolkvox-import-before
#   ROUNDS=7 scripts/ab-row4.sh BIN...
#
# Needs the files scripts/bench.sh generates ($BENCH_DIR/http.csv and row.json): run it once.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${BENCH_DIR:-/tmp/wolkvox-bench}
MAP=mappings/tickets.yaml
BASE=target/profiling/examples/baseline
[ -f "$DIR/http.csv" ] && [ -f "$DIR/row.json" ] || { echo "run scripts/bench.sh first (it makes $DIR/http.csv)" >&2; exit 1; }
[ $# -gt 0 ] || { echo "usage: scripts/ab-row4.sh BIN..." >&2; exit 1; }
SIM_BIN=$1
SENT=$("$SIM_BIN" validate "$DIR/http.csv" --mapping "$MAP" --report "$DIR/ab-r.csv" --errors "$DIR/ab-e.csv" --force -q --json | python3 -c "import json,sys; print(json.load(sys.stdin)['valid'])" || true)
OUT="$DIR/ab-row4.out"; : > "$OUT"
one() {  # one baseline | one BIN: a run against a fresh simulator
  local label=$1
  rm -f "$DIR/ab.url" "$DIR"/ab-ledger.sqlite*
  "$SIM_BIN" simulate --listen 127.0.0.1:0 --daily-limit 0 -q > "$DIR/ab.url" & local sim=$!
  for _ in $(seq 100); do [ -s "$DIR/ab.url" ] && break; sleep 0.05; done
  local url; url=$(head -1 "$DIR/ab.url")
  local start end; start=$(date +%s.%N)
  if [ "$label" = baseline ]; then
    /usr/bin/time -f '%U %S' -o "$DIR/ab.time" "$BASE" http "$url" "$SENT" "$DIR/row.json" >/dev/null 2>&1 || true
  else
    /usr/bin/time -f '%U %S' -o "$DIR/ab.time" env WOLKVOX_TOKEN=bench "$label" import "$DIR/http.csv" \
      --mapping "$MAP" --server "$url" --rate 0 --no-preflight --ledger "$DIR/ab-ledger.sqlite" \
      --report "$DIR/ab-r.csv" --errors "$DIR/ab-e.csv" --force -q >/dev/null 2>&1 || true
  fi
  end=$(date +%s.%N)
  local sim_cpu; sim_cpu=$(awk '{print ($14+$15)/100}' "/proc/$sim/stat")
  kill "$sim"; wait "$sim" 2>/dev/null || true
  python3 -c "
u, s = map(float, open('$DIR/ab.time').read().split()[-2:]); w = $end - $start
print(f'$label wall {w:.3f} client_us {1e6*(u+s)/$SENT:.0f} sim_us {1e6*$sim_cpu/$SENT:.0f}')" | tee -a "$OUT"
}
for _ in $(seq "${ROUNDS:-5}"); do
  one baseline
  for bin in "$@"; do one "$bin"; done
done
python3 - "$OUT" <<'PY'
import collections, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, _, wall, _, client, _, sim = line.split()
    runs[label].append((float(wall), int(client), int(sim)))
base = min(w for w, _, _ in runs.pop('baseline'))
print(f"baseline: {base:.3f} s (min)")
for label, r in runs.items():
    walls = sorted(w for w, _, _ in r); clients = sorted(c for _, c, _ in r)
    print(f"{label}: wall min {walls[0]:.3f} s, median {walls[len(walls)//2]:.3f} s, "
          f"{base/walls[0]:.2f}x the baseline (min); client CPU a row, median {clients[len(clients)//2]} us")
PY
