#!/usr/bin/env bash
# Installs (idempotently), starts and stops the real servers the tests run against, all on
# 127.0.0.1: moto (S3, unsigned), s3s-fs (S3, checks SigV4 signatures) and Azurite (Azure Blob).
#
#   scripts/test-servers.sh install   # tools into ~/.cache/shh-test-tools (or $SHH_TOOLS_DIR)
#   scripts/test-servers.sh start     # starts them, creates the buckets, writes .cache/servers/env
#   scripts/test-servers.sh stop
#
# Tests read the URLs from the environment: `source .cache/servers/env`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# Tools are shared by every checkout of this user (rebuilt when missing); run state is per checkout.
CACHE=${SHH_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/shh-test-tools}
RUN=$ROOT/.cache/servers
MOTO_PORT=${SHH_MOTO_PORT:-19100}
S3S_PORT=${SHH_S3S_PORT:-19200}
AZURITE_PORT=${SHH_AZURITE_PORT:-19300}
BUCKET=shh-test
S3S_KEY=shhtestaccess
S3S_SECRET=shhtestsecret0123456789

log() { echo "[test-servers] $*" >&2; }

install() {
  mkdir -p "$CACHE"
  if [ ! -x "$CACHE/venv/bin/moto_server" ]; then
    log "installing moto[server] (PyPI)"
    python3 -m venv "$CACHE/venv"
    "$CACHE/venv/bin/pip" install -q 'moto[server]'
  fi
  if [ ! -x "$CACHE/node/node_modules/.bin/azurite-blob" ] || [ ! -d "$CACHE/node/node_modules/@azure/storage-blob" ]; then
    log "installing azurite and @azure/storage-blob (npm)"
    npm install --prefix "$CACHE/node" --no-audit --no-fund azurite @azure/storage-blob >/dev/null
  fi
  if [ ! -x "$CACHE/cargo/bin/s3s-fs" ]; then
    log "building s3s-fs 0.14.1 (crates.io)"
    CARGO_TARGET_DIR="$CACHE/s3s-target" cargo install -q --root "$CACHE/cargo" s3s-fs@0.14.1 --locked --features binary
    rm -rf "$CACHE/s3s-target"
  fi
}

wait_port() { # port name
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  log "$2 did not open port $1; its log:"; cat "$RUN/$2.log" >&2 || true
  return 1
}

start() {
  install
  stop >/dev/null 2>&1 || true
  rm -rf "$RUN"; mkdir -p "$RUN/s3s/$BUCKET" "$RUN/azurite"

  "$CACHE/venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$RUN/moto.log" 2>&1 &
  echo $! >"$RUN/moto.pid"
  "$CACHE/cargo/bin/s3s-fs" --host 127.0.0.1 --port "$S3S_PORT" \
    --access-key "$S3S_KEY" --secret-key "$S3S_SECRET" "$RUN/s3s" >"$RUN/s3s.log" 2>&1 &
  echo $! >"$RUN/s3s.pid"
  "$CACHE/node/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" \
    --location "$RUN/azurite" --skipApiVersionCheck --loose --silent --disableTelemetry >"$RUN/azurite.log" 2>&1 &
  echo $! >"$RUN/azurite.pid"

  wait_port "$MOTO_PORT" moto
  wait_port "$S3S_PORT" s3s
  wait_port "$AZURITE_PORT" azurite

  curl -fsS -X PUT "http://127.0.0.1:$MOTO_PORT/$BUCKET" >/dev/null
  NODE_PATH="$CACHE/node/node_modules" node "$ROOT/scripts/azurite-container.js" "$AZURITE_PORT" "$BUCKET"

  cat >"$RUN/env" <<ENV
export SHH_TEST_S3_URL='s3://$BUCKET/moto?endpoint=http://127.0.0.1:$MOTO_PORT&region=us-east-1'
export SHH_TEST_S3_SIGNED_URL='s3://$BUCKET/signed?endpoint=http://127.0.0.1:$S3S_PORT&region=us-east-1'
export SHH_TEST_S3S_KEY='$S3S_KEY'
export SHH_TEST_S3S_SECRET='$S3S_SECRET'
export SHH_TEST_AZURE_URL='az://$BUCKET/azurite?emulator=true'
export AZURITE_BLOB_STORAGE_URL='http://127.0.0.1:$AZURITE_PORT'
export AWS_ACCESS_KEY_ID='$S3S_KEY'
export AWS_SECRET_ACCESS_KEY='$S3S_SECRET'
ENV
  log "moto :$MOTO_PORT, s3s-fs :$S3S_PORT, azurite :$AZURITE_PORT; environment in $RUN/env"
}

stop() {
  for name in moto s3s azurite; do
    if [ -f "$RUN/$name.pid" ]; then
      pid=$(cat "$RUN/$name.pid")
      kill "$pid" 2>/dev/null || true
      # A server still exiting keeps its port: a restart would then fail to bind while the old
      # one serves from the directory `start` is about to wipe.
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$RUN/$name.pid"
    fi
  done
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
