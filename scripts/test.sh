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
missing=()
[ -d /usr/lib/postgresql ] || missing+=(postgresql)
command -v keyctl >/dev/null || missing+=(keyutils)
command -v dbus-daemon >/dev/null || missing+=(dbus-daemon)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v java >/dev/null || missing+=(default-jre-headless)
[ -e /usr/share/java/jna.jar ] || missing+=(libjna-java)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
# The desktop shell's system packages (WebKitGTK, Xvfb, WebKitWebDriver, chromium).
bash scripts/test-desktop.sh --install-only

# --- 2. Python and Node packages for the interoperability tests ----------------------------------
log "pip packages (authlib interop, mobile bindings pytest + bleak)"
python3 -m pip install --quiet --disable-pip-version-check \
  -r tests/oidc-interop/requirements.txt -r mobile-bindings/tests-python/requirements.txt
for dir in dps-emulator/sdk-test mobile-bindings/tests-kotlin; do
  log "npm ci in $dir"
  npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
done

# --- 2b. The BLE test bench (private dbus-daemon + BlueZoo) and the NetworkManager mock ----------
log "BLE bench and NetworkManager mock prerequisites"
bash tests/ble-bench/install.sh
bash device-agent/tests/nm-mock/install.sh

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
log "cargo clippy --all-targets -- -D warnings (default members)"
cargo clippy --all-targets --locked -- -D warnings
log "cargo test (default members)"
# A keyutils session keyring, so the OS keyring store is tested for real on headless Linux.
keyctl session - cargo test --locked
log "mobile bindings: generate Kotlin/Swift/Python, pytest, Kotlin"
keyctl session - bash mobile-bindings/run-tests.sh
log "desktop: src-tauri and ui"
bash scripts/test-desktop.sh
log "all test suites passed"
