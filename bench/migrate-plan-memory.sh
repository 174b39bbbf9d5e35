#!/usr/bin/env bash
# Peak memory of `shh migrate plan` over many small objects (target: < 256 MiB for 1 million).
# The source is a local store of N one-byte objects in 1,000 folders (tmpfs when available);
# the destination already holds every tenth, so the merge sees copies, sames and
# destination-only objects.
#
#   bench/migrate-plan-memory.sh            # 1,000,000 objects
#   SHH_BENCH_OBJECTS=100000 bench/migrate-plan-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${SHH_BENCH_OBJECTS:-1000000}
BASE=/tmp; [ -w /dev/shm ] && BASE=/dev/shm
WORK=${SHH_BENCH_DIR:-$(mktemp -d "$BASE/shh-bench-plan.XXXXXX")}
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
cargo build --release -q -p shh
SHH=${CARGO_TARGET_DIR:-$PWD/target}/release/shh
export SHH_PASSPHRASE=bench SHH_ACTOR=bench

python3 - "$WORK" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for side in ("src", "dst"):
    for d in range(1000):
        os.makedirs(f"{root}/{side}/datasets/d{d:03d}", exist_ok=True)
for i in range(n):
    p = f"datasets/d{i % 1000:03d}/object-{i:08d}.parquet"
    with open(f"{root}/src/{p}", "wb") as f:
        f.write(b"x")
    if i % 10 == 0:
        with open(f"{root}/dst/{p}", "wb") as f:
            f.write(b"y" if i % 20 else b"x")
for i in range(n // 100):
    with open(f"{root}/dst/datasets/d000/stray-{i:06d}", "wb") as f:
        f.write(b"z")
PY
"$SHH" --hub "$WORK/hub" init --insecure-fast-kdf >/dev/null
/usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$SHH" --hub "$WORK/hub" --json migrate plan \
  --from "file://$WORK/src" --to "file://$WORK/dst" --out "$WORK/plan.json" > "$WORK/plan-out.json"
read -r WALL RSS < "$WORK/time.txt"
python3 - "$WORK/plan-out.json" "$N" "$WALL" "$RSS" <<'PY'
import json, sys
h = json.load(open(sys.argv[1])); n, wall, rss = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
s = h["summary"]
print(f"planned {n:,} source objects in {wall:.1f} s: "
      + ", ".join(f"{k} {v['objects']:,}" for k, v in s.items()))
print(f"peak RSS {rss/1024:.0f} MiB (target < 256 MiB)")
sys.exit(0 if rss < 256 * 1024 else 1)
PY
