#!/usr/bin/env bash
# Ingest benchmark, one run, same file, same machine:
#   shh:    CSV → typed, checked (schema, primary key, leak guard on every kept value), NIR
#           pseudonymized (HMAC-SHA-256), zstd Parquet, encrypted (AES-256-GCM), manifest +
#           audit event
#   DuckDB: CSV → zstd Parquet with SHA-256 of the identifier column (no checks, no
#           encryption), DuckDB pinned ($SHH_BENCH_DUCKDB, default below) so that ratios
#           compare across runs
# Prints rows/s for both and the ratio, the synthetic generator's rate, and the peak RSS of
# shh on the full file and on a tenth of it (memory must not grow with the input).
#
# With SHH_BENCH_BASELINE=/path/to/an/older/shh, that binary ingests the same file in the
# same run, alternating with this one (SHH_BENCH_REPEAT times each, default 3), and the
# medians are compared: the gate for a change is "not slower than before, measured in the
# same run".
#
#   bench/ingest.sh                    # 10 million claims rows (default)
#   SHH_BENCH_ROWS=5000000 SHH_BENCH_BASELINE=/tmp/shh-before bench/ingest.sh
#   SHH_BENCH_PROFILE=1 bench/ingest.sh    # also: where shh's CPU goes (perf, cpu-clock)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS_TARGET=${SHH_BENCH_ROWS:-10000000}
REPEAT=${SHH_BENCH_REPEAT:-3}
DUCKDB_VERSION=${SHH_BENCH_DUCKDB:-1.4.1}
WORK=${SHH_BENCH_DIR:-$(mktemp -d /tmp/shh-bench-ingest.XXXXXX)}
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

# DuckDB in a virtual environment of its own, at the pinned version.
. bench/duckdb.sh
PY=$(duckdb_python "$DUCKDB_VERSION")
cargo build --release -q -p shh
SHH=${CARGO_TARGET_DIR:-$PWD/target}/release/shh
BASE=${SHH_BENCH_BASELINE:-}
export SHH_PASSPHRASE=bench SHH_ACTOR=bench

# About 11 outpatient claims per patient and year.
PATIENTS=$(( ROWS_TARGET / 11 + 1 ))
t0=$(date +%s.%N)
"$SHH" --json synth snds --patients "$PATIENTS" --seed 1 --out "$WORK/snds" > "$WORK/synth.json"
t1=$(date +%s.%N)
SYNTH_ROWS=$("$PY" -c "import json;print(json.load(open('$WORK/synth.json'))['rows'])")
CSV=$WORK/snds/ER_PRS_F.csv
ROWS=$(( $(wc -l < "$CSV") - 1 ))
BYTES=$(stat -c %s "$CSV")

"$SHH" --hub "$WORK/hub" init --insecure-fast-kdf > /dev/null
if [ -n "$BASE" ]; then "$BASE" --hub "$WORK/base-hub" init --insecure-fast-kdf > /dev/null; fi
n=0
ingest() { # binary hub csv → "wall_s peak_kib cpu_s"
  n=$((n + 1))
  /usr/bin/time -f "%e %M %U %S" -o "$WORK/time.txt" \
    "$1" --hub "$2" --json ingest --dataset "claims$n" \
      --schema "$WORK/snds/ER_PRS_F.json" --policy "$WORK/snds/ER_PRS_F.policy.toml" "$3" > "$WORK/out.json"
  awk '{print $1, $2, $3 + $4}' "$WORK/time.txt"
}
: > "$WORK/runs.txt"
for i in $(seq 1 "$REPEAT"); do
  # Which binary goes first alternates, so neither always meets the page cache as the other
  # left it.
  if [ -n "$BASE" ] && [ $((i % 2)) -eq 0 ]; then
    echo "base $(ingest "$BASE" "$WORK/base-hub" "$CSV")" >> "$WORK/runs.txt"
  fi
  echo "shh $(ingest "$SHH" "$WORK/hub" "$CSV")" >> "$WORK/runs.txt"
  if [ -n "$BASE" ] && [ $((i % 2)) -eq 1 ]; then
    echo "base $(ingest "$BASE" "$WORK/base-hub" "$CSV")" >> "$WORK/runs.txt"
  fi
done
head -n $(( ROWS / 10 + 1 )) "$CSV" > "$WORK/tenth.csv"
read -r _ TENTH_RSS _ < <(ingest "$SHH" "$WORK/hub" "$WORK/tenth.csv")

/usr/bin/time -f "%e %M %U %S" -o "$WORK/time.txt" "$PY" - "$CSV" "$WORK/duck.parquet" <<'PY'
import sys, duckdb
src, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute(f"""COPY (SELECT * REPLACE (sha256(BEN_NIR_PSA) AS BEN_NIR_PSA)
                      FROM read_csv('{src}', header = true))
               TO '{out}' (FORMAT parquet, COMPRESSION zstd)""")
PY
read -r DUCK_WALL DUCK_RSS DUCK_CPU < <(awk '{print $1, $2, $3 + $4}' "$WORK/time.txt")


"$PY" - "$WORK/runs.txt" <<PY
import sys, statistics
runs = {}
for line in open(sys.argv[1]):
    who, wall, rss, cpu = line.split()
    runs.setdefault(who, []).append((float(wall), int(rss), float(cpu)))
rows, bytes_ = $ROWS, $BYTES
synth_s = $t1 - $t0
print(f"synthetic SNDS: {$SYNTH_ROWS:,} rows ({$PATIENTS:,} patients) in {synth_s:.2f} s = {$SYNTH_ROWS/synth_s/1e6:.2f} M rows/s")
print(f"input: ER_PRS_F.csv, {rows:,} rows, {bytes_/2**20:.0f} MiB; DuckDB $DUCKDB_VERSION")
print(f"{'':8} {'wall s':>8} {'rows/s':>12} {'CPU s':>8} {'peak RSS':>10}   (medians of {len(runs['shh'])})")
med = lambda who, k: statistics.median(r[k] for r in runs[who])
for who in runs:
    print(f"{who:8} {med(who,0):8.2f} {rows/med(who,0):12,.0f} {med(who,2):8.2f} {med(who,1)/1024:8.0f} MiB   walls {[r[0] for r in runs[who]]}")
print(f"{'duckdb':8} {$DUCK_WALL:8.2f} {rows/$DUCK_WALL:12,.0f} {$DUCK_CPU:8.2f} {$DUCK_RSS/1024:8.0f} MiB")
print(f"throughput ratio shh/duckdb: {$DUCK_WALL/med('shh',0):.2f}x (target >= 1.0)")
if 'base' in runs:
    print(f"throughput ratio shh/baseline: {med('base',0)/med('shh',0):.3f}x, CPU {med('shh',2)/med('base',2):.3f}x (gate: not slower)")
print(f"shh peak RSS: {$TENTH_RSS/1024:.0f} MiB on a tenth of the file, {med('shh',1)/1024:.0f} MiB on all of it ({med('shh',1)/$TENTH_RSS:.2f}x for 10x the rows)")
PY

if [ "${SHH_BENCH_PROFILE:-0}" = 1 ]; then
  profile() { # label binary hub
    perf record -q -e cpu-clock -F 999 -g -o "$WORK/perf.data" -- \
      "$2" --hub "$3" --json ingest --dataset claims_profiled \
        --schema "$WORK/snds/ER_PRS_F.json" --policy "$WORK/snds/ER_PRS_F.policy.toml" "$CSV" > /dev/null 2>&1
    echo "where $1's CPU goes (self time, top 25):"
    perf report -i "$WORK/perf.data" --stdio --no-children --sort symbol 2>/dev/null \
      | awk '/^ +[0-9.]+%/ && n < 25 { print; n++ }' || true
  }
  profile shh "$SHH" "$WORK/hub"
  if [ -n "$BASE" ]; then profile baseline "$BASE" "$WORK/base-hub"; fi
fi
