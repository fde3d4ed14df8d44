#!/usr/bin/env bash
# The whole fieldlink test suite, from a fresh machine: installs what is missing, starts the
# services the tests need (PostgreSQL on a private loopback port), then runs fmt, clippy and every
# test suite. `.ci/run` calls exactly this script. See README.md.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

log() { printf '\n==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

# --- 1. System packages -------------------------------------------------------------------------
apt_packages=(postgresql keyutils dbus-daemon pkg-config nodejs npm)
missing=()
command -v initdb >/dev/null || [ -d /usr/lib/postgresql ] || missing+=(postgresql)
command -v keyctl >/dev/null || missing+=(keyutils)
command -v dbus-daemon >/dev/null || missing+=(dbus-daemon)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
: "${apt_packages[@]}"

# --- 2. Node packages for the real-SDK tests ----------------------------------------------------
for dir in dps-emulator/sdk-test; do
  if [ -f "$dir/package-lock.json" ]; then
    log "npm ci in $dir"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  fi
done

# --- 2b. The BLE test bench: private dbus-daemon + BlueZoo (see docs/ble.md) --------------------
log "BLE bench prerequisites"
bash tests/ble-bench/install.sh

# --- 3. PostgreSQL on a private port ------------------------------------------------------------
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
pg_dir=$(mktemp -d /tmp/fieldlink-pg.XXXXXX)
pg_port=${FIELDLINK_PG_PORT:-55432}
cleanup() {
  if [ -f "$pg_dir/data/postmaster.pid" ]; then
    run_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true
  fi
  rm -rf "$pg_dir"
}
trap cleanup EXIT
run_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
log "starting PostgreSQL ($pg_bin) on 127.0.0.1:$pg_port"
[ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
run_pg "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
run_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
  -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null
psql -h 127.0.0.1 -p "$pg_port" -U postgres -qc \
  "CREATE ROLE fieldlink LOGIN SUPERUSER PASSWORD 'fieldlink'" >/dev/null
psql -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE DATABASE fieldlink OWNER fieldlink" >/dev/null
export FIELDLINK_TEST_POSTGRES_URL="postgres://fieldlink:fieldlink@127.0.0.1:$pg_port/fieldlink"

# --- 4. Checks and tests ------------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo test"
# A keyutils session keyring, so the OS keyring store is tested for real on headless Linux.
keyctl session - cargo test --workspace --locked
log "all test suites passed"
