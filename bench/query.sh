#!/usr/bin/env bash
# Query benchmark, one run, same data, same machine: an SNDS-like suite on a synthetic
# population of ≥ 10 million outpatient claims rows.
#   shh:    Hub::query under permits, from the encrypted store (AES-256-GCM, every range
#           authenticated), the permits' views (project pseudonyms), disclosure control on
#           (per-patient measures, threshold, cell-key noise, the project's ledger)
#   DuckDB: the same SQL on the hub's own clear export (`datasets export`) of the same
#           versions, DuckDB pinned ($SHH_BENCH_DUCKDB), 2 threads like shh
# Prints, per query, both medians of three, their ratio and both peak RSS; stock DataFusion's
# time on the bare tables of the same export (the engine alone, for where the time goes); and
# whether the harness's unperturbed run of the same query (the library, not the CLI) equals
# DuckDB's.
#
#   bench/query.sh                          # ≈ 10.4 million claims rows (default)
#   SHH_BENCH_ROWS=1000000 bench/query.sh   # a quick run
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS_TARGET=${SHH_BENCH_ROWS:-10400000}
DUCKDB_VERSION=${SHH_BENCH_DUCKDB:-2.0.1}
WORK=${SHH_BENCH_DIR:-$(mktemp -d /tmp/shh-bench-query.XXXXXX)}
mkdir -p "$WORK"
[ -n "${SHH_BENCH_KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT

# DuckDB in a virtual environment of its own, at the pinned version.
. bench/duckdb.sh
PY=$(duckdb_python "$DUCKDB_VERSION")
cargo build --release -q -p shh
SHH=${CARGO_TARGET_DIR:-$PWD/target}/release/shh
export SHH_PASSPHRASE=bench SHH_ACTOR=bench

if [ ! -d "$WORK/hub" ]; then
  PATIENTS=$(( ROWS_TARGET / 11 + 1 ))
  "$SHH" synth snds --patients "$PATIENTS" --seed 1 --out "$WORK/snds" > /dev/null
  "$SHH" --hub "$WORK/hub" init --insecure-fast-kdf > /dev/null
  for t in IR_BEN_R ER_PRS_F ER_PHA_F T_MCO_B; do
    "$SHH" --hub "$WORK/hub" ingest --dataset "$t" --schema "$WORK/snds/$t.json" \
      --policy "$WORK/snds/$t.policy.toml" "$WORK/snds/$t.csv" > /dev/null
    "$SHH" --hub "$WORK/hub" datasets export "$t" --out "$WORK/export-$t" > /dev/null
    mkdir -p "$WORK/export/$t"
    find "$WORK/export-$t" -name '*.parquet' -exec mv {} "$WORK/export/$t/" \;
    rm -rf "$WORK/export-$t"
  done
  rm -rf "$WORK/snds"
fi
CLAIMS=$("$PY" -c "import duckdb;print(duckdb.sql(\"SELECT count(*) FROM read_parquet('$WORK/export/ER_PRS_F/*.parquet')\").fetchall()[0][0])")

cat > "$WORK/queries.json" <<'JSON'
{
  "1-cohort": "SELECT count(DISTINCT BEN_NIR_PSA) AS patients FROM ER_PRS_F WHERE PRS_NAT_REF = 1111 AND EXE_SOI_DTD >= DATE '2023-07-01'",
  "2-prevalence": "SELECT (2023 - b.BEN_NAI_ANN) - (2023 - b.BEN_NAI_ANN) % 10 AS age_band, b.BEN_RES_COM AS dpt, count(DISTINCT d.BEN_NIR_PSA) AS patients FROM ER_PHA_F d JOIN IR_BEN_R b ON d.BEN_NIR_PSA = b.BEN_NIR_PSA WHERE d.PHA_ATC_C07 LIKE 'A10%' GROUP BY (2023 - b.BEN_NAI_ANN) - (2023 - b.BEN_NAI_ANN) % 10, b.BEN_RES_COM",
  "3-exposure": "SELECT count(DISTINCT m.NIR_ANO_17) AS patients FROM T_MCO_B m JOIN ER_PHA_F d ON m.NIR_ANO_17 = d.BEN_NIR_PSA WHERE m.DGN_PAL LIKE 'I%' AND d.PHA_ATC_C07 LIKE 'C%' AND d.FLX_DIS_DTD > m.EXE_SOI_DTF",
  "4-readmission": "SELECT count(DISTINCT a.NIR_ANO_17) AS patients FROM T_MCO_B a JOIN T_MCO_B b ON a.NIR_ANO_17 = b.NIR_ANO_17 WHERE b.EXE_SOI_DTD > a.EXE_SOI_DTF AND b.EXE_SOI_DTD <= a.EXE_SOI_DTF + INTERVAL '30 days'",
  "5-top-acts": "SELECT PRS_NAT_REF, count(*) AS n FROM ER_PRS_F GROUP BY PRS_NAT_REF ORDER BY n DESC, PRS_NAT_REF LIMIT 10"
}
JSON

"$PY" bench/query_duckdb.py "$WORK" > "$WORK/duckdb.jsonl"
# The harness, built with the release profile like `shh` (one set of optimized dependencies).
HARNESS=$(cargo build --release -q -p shh-hub --bench query --message-format=json \
  | "$PY" -c "import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get('reason') == 'compiler-artifact' and m.get('target', {}).get('name') == 'query' and m.get('executable'):
        print(m['executable'])")
"$HARNESS" "$WORK" > "$WORK/shh.jsonl"

"$PY" - "$WORK" "$CLAIMS" <<'PY'
import json, math, sys
work, claims = sys.argv[1], int(sys.argv[2])
duck = {j["query"]: j for j in map(json.loads, open(f"{work}/duckdb.jsonl"))}
shh = {j["query"]: j for j in map(json.loads, open(f"{work}/shh.jsonl"))}
print(f"query suite on {claims:,} claims rows (ER_PRS_F), medians of 3")
print("| query | shh | DuckDB | shh/DuckDB | stock DataFusion/DuckDB | shh peak RSS | DuckDB peak RSS | cells published | unperturbed = DuckDB |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :-: |")
ratios = []
for q in sorted(duck):
    s, d = shh[q], duck[q]
    r = s["shh_s"] / d["duckdb_s"]
    ratios.append(r)
    print(f"| {q} | {s['shh_s']:.3f} s | {d['duckdb_s']:.3f} s | {r:.2f}× | {s['datafusion_s'] / d['duckdb_s']:.2f}× | {s['shh_peak_kib']/1024:.0f} MiB | {d['duckdb_peak_kib']/1024:.0f} MiB | {s['published']}/{s['cells']} | {'yes' if s['equal_duckdb'] else 'NO'} |")
g = math.exp(sum(map(math.log, ratios)) / len(ratios))
print(f"geometric mean shh/DuckDB: {g:.2f}× (targets: every query ≤ 1.5×, mean ≤ 1.2×)")
gs = math.exp(sum(math.log(shh[q]["datafusion_s"] / duck[q]["duckdb_s"]) for q in duck) / len(duck))
print(f"geometric mean stock DataFusion (bare tables of the clear export, same engine and settings)/DuckDB: {gs:.2f}×")
PY
