#!/usr/bin/env bash
# The desktop part of the test suite (src-tauri/ and ui/), called by scripts/test.sh.
#
#   scripts/test-desktop.sh                 # install what is missing, then every desktop test
#   scripts/test-desktop.sh --install-only  # only the system packages (run it before a
#                                           # workspace-wide cargo build: WebKitGTK headers)
#
# Steps: apt packages (as root, when missing) → npm ci → svelte-check, vitest, vite build →
# the generated TypeScript types are current → clippy and the Rust command tests
# (tauri::test::mock_builder, real OIDC issuer, in-process world) → Playwright in Debian chromium
# with mockIPC (every screen and error state, axe-core, screenshots) → the real app built with
# the Tauri CLI, driven by tauri-driver + WebKitWebDriver under Xvfb against `fieldlink sandbox
# up --ble bluez` in a separate process (real sign-in at the sandbox's issuer; BLE through
# btleplug → D-Bus → BlueZoo → the sandbox's device agents). The BLE bench's tools (dbus-daemon,
# busctl, BlueZoo 1.0.2) are installed by tests/ble-bench/install.sh, which this script runs.
#
# Under CI (CI set to anything), a missing prerequisite fails the run; nothing is skipped.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

log() { printf '\n==> desktop: %s\n' "$*" >&2; }
fail() {
  printf 'desktop tests: %s\n' "$*" >&2
  exit 1
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

# --- 1. System packages (see docs/desktop.md and the verified recipe) --------------------------
declare -A probes=(
  [libwebkit2gtk-4.1-dev]="pkg-config --exists webkit2gtk-4.1 javascriptcoregtk-4.1 libsoup-3.0"
  [libayatana-appindicator3-dev]="pkg-config --exists ayatana-appindicator3-0.1"
  [librsvg2-dev]="pkg-config --exists librsvg-2.0"
  [libxdo-dev]="test -e /usr/include/xdo.h"
  [libssl-dev]="pkg-config --exists openssl"
  [build-essential]="command -v cc"
  [pkg-config]="command -v pkg-config"
  [file]="command -v file"
  [xvfb]="command -v Xvfb"
  [xauth]="command -v xauth"
  [webkit2gtk-driver]="command -v WebKitWebDriver"
  [dbus-x11]="command -v dbus-launch"
  [at-spi2-core]="test -e /usr/libexec/at-spi-bus-launcher"
  [chromium]="test -x /usr/bin/chromium"
  [fonts-dejavu-core]="test -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
  [keyutils]="command -v keyctl"
  [nodejs]="command -v node"
  [npm]="command -v npm"
)
missing=()
for package in "${!probes[@]}"; do
  bash -c "${probes[$package]}" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing system packages: ${missing[*]}"
  if as_root apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null; then
    :
  elif [ -n "${CI:-}" ]; then
    fail "could not install ${missing[*]} (run as root, or install them first)"
  else
    fail "missing ${missing[*]}: install them (apt-get install ${missing[*]}) and run again"
  fi
fi
for package in "${!probes[@]}"; do
  bash -c "${probes[$package]}" >/dev/null 2>&1 || fail "$package is still missing after the install"
done
# The BLE bench behind `fieldlink sandbox up --ble bluez` (the end-to-end test's devices).
log "BLE bench tools (tests/ble-bench/install.sh)"
if ! bash tests/ble-bench/install.sh >&2; then
  fail "could not install the BLE bench (dbus-daemon, busctl, bluezoo 1.0.2): see tests/ble-bench/install.sh"
fi
if [ "${1:-}" = "--install-only" ]; then
  exit 0
fi

# --- 2. Node packages and the frontend ---------------------------------------------------------
log "npm ci in ui/"
npm ci --prefix ui --no-audit --no-fund --loglevel=error
log "svelte-check, vitest, vite build"
(cd ui && npm run --silent check && npx vitest run && npx vite build --logLevel warn)

# --- 3. Rust: generated types, clippy, command tests -------------------------------------------
# Built with the Tauri CLI's `custom-protocol` feature too, so the app build below reuses the
# compiled `tauri` crate (recipe pitfall 8). ui/dist exists from step 2.
features="demo,sandbox,tauri/custom-protocol"
log "clippy (fieldlink-desktop, all features)"
cargo clippy -p fieldlink-desktop --all-targets --locked --features "$features" -- -D warnings
log "cargo test -p fieldlink-desktop (includes the check that ui/src/generated is current)"
keyctl session - cargo test -p fieldlink-desktop --locked --features "$features"

# --- 4. The UI in a real browser with the IPC mocked -------------------------------------------
log "Playwright (Debian chromium, mockIPC, axe-core)"
(cd ui && npx vite build --config e2e/vite.mock.config.ts --logLevel warn && node --test e2e/ui.pw.mjs)

# --- 5. The real app end to end ------------------------------------------------------------------
log "building the app with the Tauri CLI (debug, features demo,sandbox) and the fieldlink CLI"
# The Tauri CLI reads CI as a boolean flag (`CI=1` is refused).
tauri_ci=false
[ -n "${CI:-}" ] && tauri_ci=true
(cd ui && CI=$tauri_ci TAURI_APP_PATH=../src-tauri npx tauri build --debug --no-bundle \
  --features demo,sandbox -- --locked)
cargo build -p fieldlink-cli --locked
# The binaries live in the cargo target directory, which CI keeps outside the clone.
target_dir=${CARGO_TARGET_DIR:-$root/target}
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
export FIELDLINK_DESKTOP_BIN="$target_dir/debug/fieldlink-desktop"
export FIELDLINK_BIN="$target_dir/debug/fieldlink"
tools="$target_dir/desktop-tools"
if [ ! -x "$tools/bin/tauri-driver" ]; then
  log "installing tauri-driver 2.x into $tools"
  cargo install tauri-driver --version '^2' --locked --root "$tools"
fi
export PATH="$tools/bin:$PATH"
log "tauri-driver + WebKitWebDriver under Xvfb against fieldlink sandbox up --ble bluez"
(cd ui && keyctl session - xvfb-run -a -s "-screen 0 1280x860x24" node --test e2e/tauri.e2e.mjs)

log "all desktop tests passed"
