#!/usr/bin/env bash
# Ingest benchmark, one run, same file, same machine:
#   shh:    CSV → typed, checked (schema, primary key), NIR pseudonymized (HMAC-SHA-256),
#           zstd Parquet, encrypted (AES-256-GCM), manifest + audit event
#   DuckDB: CSV → zstd Parquet with SHA-256 of the identifier column (no checks, no encryption)
# Prints rows/s for both and the ratio, the synthetic generator's rate, and the peak RSS of
# shh on the full file and on a tenth of it (memory must not grow with the input).
#
#   bench/ingest.sh                    # 10 million claims rows (default)
#   SHH_BENCH_ROWS=1000000 bench/ingest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS_TARGET=${SHH_BENCH_ROWS:-10000000}
WORK=${SHH_BENCH_DIR:-$(mktemp -d /tmp/shh-bench-ingest.XXXXXX)}
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

python3 -c "import duckdb" 2>/dev/null \
  || pip install --quiet duckdb 2>/dev/null \
  || pip install --quiet --break-system-packages duckdb
cargo build --release -q -p shh
SHH=${CARGO_TARGET_DIR:-$PWD/target}/release/shh
export SHH_PASSPHRASE=bench SHH_ACTOR=bench

# About 11 outpatient claims per patient and year.
PATIENTS=$(( ROWS_TARGET / 11 + 1 ))
t0=$(date +%s.%N)
"$SHH" --json synth snds --patients "$PATIENTS" --seed 1 --out "$WORK/snds" > "$WORK/synth.json"
t1=$(date +%s.%N)
SYNTH_ROWS=$(python3 -c "import json;print(json.load(open('$WORK/synth.json'))['rows'])")
CSV=$WORK/snds/ER_PRS_F.csv
ROWS=$(( $(wc -l < "$CSV") - 1 ))
BYTES=$(stat -c %s "$CSV")

"$SHH" --hub "$WORK/hub" init --insecure-fast-kdf > /dev/null
ingest() { # name csv → "wall_s peak_kib cpu_s"
  /usr/bin/time -f "%e %M %U %S" -o "$WORK/time.txt" \
    "$SHH" --hub "$WORK/hub" --json ingest --dataset "$1" \
      --schema "$WORK/snds/ER_PRS_F.json" --policy "$WORK/snds/ER_PRS_F.policy.toml" "$2" > "$WORK/$1.json"
  awk '{print $1, $2, $3 + $4}' "$WORK/time.txt"
}
read -r SHH_WALL SHH_RSS SHH_CPU < <(ingest claims "$CSV")
head -n $(( ROWS / 10 + 1 )) "$CSV" > "$WORK/tenth.csv"
read -r _ TENTH_RSS _ < <(ingest claims_tenth "$WORK/tenth.csv")

/usr/bin/time -f "%e %M %U %S" -o "$WORK/time.txt" python3 - "$CSV" "$WORK/duck.parquet" <<'PY'
import sys, duckdb
src, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute(f"""COPY (SELECT * REPLACE (sha256(BEN_NIR_PSA) AS BEN_NIR_PSA)
                      FROM read_csv('{src}', header = true))
               TO '{out}' (FORMAT parquet, COMPRESSION zstd)""")
PY
read -r DUCK_WALL DUCK_RSS DUCK_CPU < <(awk '{print $1, $2, $3 + $4}' "$WORK/time.txt")

python3 - <<PY
rows, bytes_ = $ROWS, $BYTES
synth_s = $t1 - $t0
print(f"synthetic SNDS: {$SYNTH_ROWS:,} rows ({$PATIENTS:,} patients) in {synth_s:.2f} s = {$SYNTH_ROWS/synth_s/1e6:.2f} M rows/s")
print(f"input: ER_PRS_F.csv, {rows:,} rows, {bytes_/2**20:.0f} MiB")
print(f"{'':8} {'wall s':>8} {'rows/s':>12} {'CPU s':>8} {'peak RSS':>10}")
print(f"{'shh':8} {$SHH_WALL:8.2f} {rows/$SHH_WALL:12,.0f} {$SHH_CPU:8.2f} {$SHH_RSS/1024:8.0f} MiB")
print(f"{'duckdb':8} {$DUCK_WALL:8.2f} {rows/$DUCK_WALL:12,.0f} {$DUCK_CPU:8.2f} {$DUCK_RSS/1024:8.0f} MiB")
print(f"throughput ratio shh/duckdb: {$DUCK_WALL/$SHH_WALL:.2f}x (target >= 1.0)")
print(f"shh peak RSS: {$TENTH_RSS/1024:.0f} MiB on a tenth of the file, {$SHH_RSS/1024:.0f} MiB on all of it ({$SHH_RSS/$TENTH_RSS:.2f}x for 10x the rows)")
PY
