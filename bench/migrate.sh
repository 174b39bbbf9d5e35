#!/usr/bin/env bash
# Migration benchmark, one run, same data, same endpoints (all on 127.0.0.1):
#   shh migrate run          (BLAKE3 of every source byte; objects from 8 MiB streamed in signed
#                             chunks; each object verified on receipt by the service's SHA-256
#                             check of signed bodies and chunks where the probe finds one, read
#                             back and compared elsewhere)
#   rclone copy --checksum   (Debian's rclone; MD5 from the S3 ETag where the backend has one)
# for file → file (local disk to local disk), file → S3 and Azurite → S3, on s3s-fs and on moto. Prints wall time, client CPU seconds per
# GiB and peak RSS for both, and the ratios; and the CPU seconds the servers spent during each
# client's runs (they share the machine: on a small VM they, not the clients, can be the bound).
#
#   bench/migrate.sh                          # 2,000 small objects + 4 × 64 MiB
#   SHH_BENCH_SMALL=500 SHH_BENCH_LARGE_MIB=16 bench/migrate.sh
#   SHH_BENCH_ROUTES=s3s bench/migrate.sh       # only the s3s-fs target (file, moto, s3s)
#   SHH_BENCH_ROUTES=file SHH_BENCH_SMALL_KIB=16 bench/migrate.sh  # the hand-measured tree:
#                                               # 2,000 × 16 KiB + 4 × 64 MiB, file → file
set -euo pipefail
cd "$(dirname "$0")/.."
SMALL=${SHH_BENCH_SMALL:-2000}
LARGE=${SHH_BENCH_LARGE:-4}
LARGE_MIB=${SHH_BENCH_LARGE_MIB:-64}
WORK=${SHH_BENCH_DIR:-$(mktemp -d /tmp/shh-bench-migrate.XXXXXX)}
mkdir -p "$WORK"
trap '[ -n "${SHH_BENCH_KEEP_SERVERS:-}" ] || scripts/test-servers.sh stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

command -v rclone >/dev/null || { sudo -n true 2>/dev/null && SUDO=sudo || SUDO=; $SUDO apt-get install -y -qq rclone >/dev/null; }
cargo build --release -q -p shh
SHH=${SHH_BENCH_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/shh} # SHH_BENCH_BIN: another build (a baseline)
export SHH_PASSPHRASE=bench SHH_ACTOR=bench
scripts/test-servers.sh start >/dev/null
# shellcheck disable=SC1091
source .cache/servers/env
MOTO=$(sed -n 's/.*endpoint=\(http:\/\/[^&]*\).*/\1/p' <<<"$SHH_TEST_S3_URL")
AZ_PORT=${AZURITE_BLOB_STORAGE_URL##*:}
TOOLS=${SHH_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/shh-test-tools}
SAS=$(NODE_PATH="$TOOLS/node/node_modules" node scripts/azurite-sas.js "$AZ_PORT" shh-test)

# Data: many small objects (1-64 KiB) and a few large ones, incompressible.
# SHH_BENCH_SMALL_KIB fixes the small objects' size (else 1-64 KiB).
python3 - "$WORK/data" "$SMALL" "$LARGE" "$LARGE_MIB" "${SHH_BENCH_SMALL_KIB:-0}" <<'PY'
import os, random, sys
root, small, large, mib, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rnd = random.Random(7)
for i in range(small):
    d = os.path.join(root, "small", f"{i % 20:02d}")
    os.makedirs(d, exist_ok=True)
    size = kib * 1024 if kib else rnd.randint(1024, 65536)
    open(os.path.join(d, f"obj-{i:06d}.bin"), "wb").write(os.urandom(size))
os.makedirs(os.path.join(root, "large"), exist_ok=True)
for i in range(large):
    with open(os.path.join(root, "large", f"big-{i}.bin"), "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
PY
BYTES=$(du -sb "$WORK/data" | cut -f1)
OBJECTS=$(find "$WORK/data" -type f | wc -l)
"$SHH" --hub "$WORK/hub" init --insecure-fast-kdf --allow "$SHH_TEST_S3_URL" --allow "$SHH_TEST_AZURE_URL" >/dev/null

SERVERS=() # PIDs of the servers of the scenario running, whose CPU each run also reports
ticks() { # CPU clock ticks used so far by the PIDs in SERVERS
  local t=0 p
  for p in "${SERVERS[@]}"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}
run() { # command… → "wall cpu rss_kib servers_cpu"
  local before after
  # What the previous copy left in the page cache unsynced (rclone never fsyncs) is written out
  # now, untimed: else shh's final fsync of the file system would pay for it.
  sync
  before=$(ticks)
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/time.txt" "$@" > "$WORK/out.txt" 2>&1 || { echo "failed: $*" >&2; cat "$WORK/out.txt" >&2; exit 1; }
  after=$(ticks)
  awk -v s="$(( after - before ))" -v hz="$(getconf CLK_TCK)" '{print $1, $2 + $3, $4, s / hz}' "$WORK/time.txt"
}
s3url() { echo "s3://shh-test/$1?endpoint=$MOTO&region=us-east-1"; }
RCLONE_S3=":s3,provider=Other,env_auth=false,access_key_id=bench,secret_access_key=bench,endpoint='$MOTO':shh-test"

# Azurite gets the same data first (not timed).
AZ="az://shh-test/bench-src?emulator=true"
"$SHH" --hub "$WORK/hub" migrate run --from "file://$WORK/data" --to "$AZ" >/dev/null

# Each scenario runs REPS times (5; 9 gives steadier medians), shh and rclone alternating (each
# time to a fresh prefix), and reports medians: on a shared 2-core VM single runs move by 5-10 %
# and the VM's speed drifts over minutes, which only the alternation cancels.
REPS=${SHH_BENCH_REPS:-5}
report() { # scenario "shh results…" "rclone results…" ["rclone+sync results…"] (each: wall cpu rss_kib servers_cpu)
  python3 - "$1" "$2" "$3" "$BYTES" "$OBJECTS" "${4:-}" <<'PY'
import statistics, sys
name, shh, rcl, b, n = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
synced = sys.argv[6]
def runs(text):
    v = list(map(float, text.split()))
    return [v[i:i + 4] for i in range(0, len(v), 4)]
def med(rs):
    return [statistics.median(r[k] for r in rs) for k in range(4)]
gib = b / 2**30
(sw, sc, sr, ss), (rw, rc, rr, rs_) = med(runs(shh)), med(runs(rcl))
walls = lambda rs: "/".join(f"{r[0]:.2f}" for r in rs)
print(f"\n{name}: {n} objects, {b/2**20:.0f} MiB, median of {len(runs(shh))} alternating runs")
print(f"  {'':8} {'wall s':>8} {'MiB/s':>8} {'CPU s/GiB':>10} {'peak RSS MiB':>13} {'servers CPU s':>14}   walls")
for who, w, c, r, sv, rs in (("shh", sw, sc, sr, ss, runs(shh)), ("rclone", rw, rc, rr, rs_, runs(rcl))):
    print(f"  {who:8} {w:8.2f} {b/2**20/w:8.1f} {c/gib:10.2f} {r/1024:13.0f} {sv:14.2f}   {walls(rs)}")
print(f"  throughput shh/rclone: {rw/sw:.2f}x   CPU per GiB shh/rclone: {sc/rc:.2f}x   RSS shh/rclone: {sr/rr:.2f}x")
if synced:
    # The same durability as shh's: rclone, then `sync` (its local backend never fsyncs).
    yw = med(runs(synced))[0]
    print(f"  {'rclone+sync':11} {yw:5.2f} s {b/2**20/yw:8.1f} MiB/s   walls {walls(runs(synced))}")
    print(f"  throughput shh/(rclone+sync): {yw/sw:.2f}x")
PY
}

ROUTES=${SHH_BENCH_ROUTES:-file,moto,s3s} # which routes to run
RCLONE_FLAGS=() # extra rclone flags of the scenario running
CLEAN=() # run after each copy is measured, with @ for its prefix (keeps memory flat)
scenario() { # name shh_hub shh_from shh_to_base rclone_from rclone_to_base
  local name=$1 hub=$2 from=$3 to=$4 rfrom=$5 rto=$6 shh_r="" rcl_r="" syn_r="" i
  for i in $(seq 1 "$REPS"); do
    # Who goes first alternates too, so neither always meets the servers as the other left them.
    if (( i % 2 )); then
      shh_r="$shh_r $(run "$SHH" --hub "$hub" migrate run --from "$from" --to "${to/@/$i}")"
      rcl_r="$rcl_r $(run env -u AWS_CA_BUNDLE rclone copy --checksum "${RCLONE_FLAGS[@]}" "$rfrom" "${rto/@/$i}")"
    else
      rcl_r="$rcl_r $(run env -u AWS_CA_BUNDLE rclone copy --checksum "${RCLONE_FLAGS[@]}" "$rfrom" "${rto/@/$i}")"
      shh_r="$shh_r $(run "$SHH" --hub "$hub" migrate run --from "$from" --to "${to/@/$i}")"
    fi
    if [ -n "${PEER_SYNC:-}" ]; then
      syn_r="$syn_r $(run sh -c 'rclone copy --checksum "$@" && sync' sh "${RCLONE_FLAGS[@]}" "$rfrom" "${rto/@/s$i}")"
    fi
    if [ ${#CLEAN[@]} -gt 0 ]; then "${CLEAN[@]/@/*-$i}" 2>/dev/null || true; fi
  done
  report "$name" "$shh_r" "$rcl_r" "$syn_r"
}

# Local disk to local disk, as measured by hand: rclone with 8 transfers, and rclone followed by
# `sync` for the same durability as shh's (its local backend
# never fsyncs; shh hashes every byte, checks each file's size before its rename and fsyncs
# every file and directory together before it reports success). The page cache is not
# dropped between runs (that needs root): both read warm sources alike.
if [[ ,$ROUTES, == *,file,* ]]; then
  DST=$WORK/dst
  mkdir -p "$DST"
  # Copies are kept until the end: deleting thousands of files between runs makes ext4 scan
  # its recently deleted inodes on every create that follows, for both tools alike.
  CLEAN=()
  RCLONE_FLAGS=(--transfers 8)
  SERVERS=()
  PEER_SYNC=1
  scenario "file → file (local disk)" "$WORK/hub" "file://$WORK/data" "file://$DST/shh-@" \
    "$WORK/data" "$DST/rclone-@"
  PEER_SYNC=
  RCLONE_FLAGS=()
  CLEAN=()
fi

# s3s-fs first: a Rust S3 server that checks SigV4 signatures, the SHA-256 of every signed body
# and the signature of every chunk (as AWS and the sovereign S3 services do), so shh's probe
# finds the checks and relies on them. Its own s3s-fs on a tmpfs, each copy removed once
# measured: the test server writes to disk, and writeback of the gigabytes these runs send made
# single runs vary by 3x.
if [[ ,$ROUTES, == *,s3s,* ]]; then
  S3S_PORT=${SHH_BENCH_S3S_PORT:-19250}
  S3S_DIR=$(mktemp -d /dev/shm/shh-bench-s3s.XXXXXX)
  mkdir -p "$S3S_DIR/shh-test"
  "$TOOLS/cargo/bin/s3s-fs" --host 127.0.0.1 --port "$S3S_PORT" --access-key "$SHH_TEST_S3S_KEY" \
    --secret-key "$SHH_TEST_S3S_SECRET" "$S3S_DIR" >"$WORK/s3s.log" 2>&1 &
  S3S_PID=$!
  trap 'kill $S3S_PID 2>/dev/null; rm -rf "$S3S_DIR"; [ -n "${SHH_BENCH_KEEP_SERVERS:-}" ] || scripts/test-servers.sh stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$S3S_PORT") 2>/dev/null && break; sleep 0.1; done
  S3S=http://127.0.0.1:$S3S_PORT
  RCLONE_S3S=":s3,provider=Other,env_auth=false,access_key_id=$SHH_TEST_S3S_KEY,secret_access_key=$SHH_TEST_S3S_SECRET,endpoint='$S3S':shh-test"
  "$SHH" --hub "$WORK/hub2" init --insecure-fast-kdf --allow "s3://shh-test/x?endpoint=$S3S&region=us-east-1" --allow "$SHH_TEST_AZURE_URL" >/dev/null
  CLEAN=(bash -c "rm -rf $S3S_DIR/shh-test/@")
  SERVERS=("$S3S_PID" "$(cat .cache/servers/azurite.pid)")
  scenario "file → S3 (s3s-fs)" "$WORK/hub2" "file://$WORK/data" \
    "s3://shh-test/shh-file-@?endpoint=$S3S&region=us-east-1" "$WORK/data" "$RCLONE_S3S/rclone-file-@"
  scenario "Azurite → S3 (s3s-fs)" "$WORK/hub2" "$AZ" \
    "s3://shh-test/shh-az-@?endpoint=$S3S&region=us-east-1" \
    ":azureblob,sas_url='$SAS':shh-test/bench-src" "$RCLONE_S3S/rclone-az-@"
  kill "$S3S_PID" 2>/dev/null || true
  rm -rf "$S3S_DIR"
  CLEAN=()
fi

# moto (Python) is slow enough to hide both clients' costs, and it checks neither signatures
# nor payload hashes nor chunk signatures, so shh reads every object back there.
if [[ ,$ROUTES, == *,moto,* ]]; then
  SERVERS=("$(cat .cache/servers/moto.pid)" "$(cat .cache/servers/azurite.pid)")
  scenario "file → S3 (moto)" "$WORK/hub" "file://$WORK/data" "$(s3url shh-file-@)" \
    "$WORK/data" "$RCLONE_S3/rclone-file-@"
  scenario "Azurite → S3 (moto)" "$WORK/hub" "$AZ" "$(s3url shh-az-@)" \
    ":azureblob,sas_url='$SAS':shh-test/bench-src" "$RCLONE_S3/rclone-az-@"
fi
