#!/usr/bin/env bash
# Tests of the generated mobile bindings (called by scripts/test.sh; runnable alone):
#   1. scripts/gen-bindings.sh --testing        (library + Kotlin/Swift/Python bindings)
#   2. Swift: the generated files exist and export the API (no Swift compiler on Linux)
#   3. pytest mobile-bindings/tests-python      (a Python BleLink over the virtual radio; the
#                                                bleak-over-BlueZoo test when the bench is there)
#   4. Kotlin: kotlinc compiles the bindings + tests, java runs them (coroutines, a Kotlin BleLink)
#
# A missing prerequisite is skipped with a message on a developer machine and FAILS the run when
# CI is set. Install everything with:
#   python3 -m pip install -r mobile-bindings/tests-python/requirements.txt   # pytest, bleak
#   tests/ble-bench/install.sh            # dbus-daemon, busctl, bluezoo (the BLE bench)
#   apt-get install -y default-jre-headless libjna-java
#   npm ci --prefix mobile-bindings/tests-kotlin
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
target_dir=${CARGO_TARGET_DIR:-$root/target}
bindings="$target_dir/bindings"
export FIELDLINK_BINDINGS_DIR="$bindings"

log() { printf '\n==> mobile: %s\n' "$*" >&2; }
missing() {
  if [ -n "${CI:-}" ]; then
    echo "mobile: MISSING $1 — install it with: $2" >&2
    exit 1
  fi
  echo "mobile: SKIPPING $3: $1 is missing (install it with: $2)" >&2
}

log "building the library (feature testing) and generating the bindings"
lib=$(scripts/gen-bindings.sh --testing | tail -n 1)
lib_dir=$(dirname "$lib")

log "Swift: checking the generated files"
for file in fieldlink_mobile.swift fieldlink_mobileFFI.h fieldlink_mobileFFI.modulemap; do
  [ -s "$bindings/swift/$file" ] || { echo "mobile: $bindings/swift/$file was not generated" >&2; exit 1; }
done
for symbol in "public protocol BleLink" "public protocol SecretStore" "open class FieldlinkClient" \
  "enum FieldlinkError: Swift.Error" "func commission("; do
  grep -q "$symbol" "$bindings/swift/fieldlink_mobile.swift" ||
    { echo "mobile: the Swift bindings lack '$symbol'" >&2; exit 1; }
done
echo "Swift bindings generated (not compiled: no Swift toolchain on Linux)" >&2

log "pytest on the Python bindings"
if python3 -c 'import pytest' 2>/dev/null; then
  set +e
  python3 -m pytest -q mobile-bindings/tests-python
  status=$?
  set -e
  [ "$status" = 0 ] || exit "$status"
else
  missing "pytest" "python3 -m pip install -r mobile-bindings/tests-python/requirements.txt" \
    "the Python binding tests"
fi

log "Kotlin bindings: compile and run"
kotlin_home=mobile-bindings/tests-kotlin/node_modules/kotlin-compiler
jna_jar=/usr/share/java/jna.jar
if ! command -v java >/dev/null; then
  missing "java" "apt-get install -y default-jre-headless" "the Kotlin binding tests"
elif [ ! -f "$jna_jar" ]; then
  missing "JNA ($jna_jar)" "apt-get install -y libjna-java" "the Kotlin binding tests"
elif [ ! -x "$kotlin_home/bin/kotlinc" ]; then
  missing "kotlinc" "npm ci --prefix mobile-bindings/tests-kotlin" "the Kotlin binding tests"
else
  build="$target_dir/kotlin-tests"
  mkdir -p "$build"
  coroutines="$kotlin_home/lib/kotlinx-coroutines-core-jvm.jar"
  "$kotlin_home/bin/kotlinc" -nowarn -cp "$jna_jar:$coroutines" \
    "$bindings/kotlin/uniffi/fieldlink_mobile/fieldlink_mobile.kt" \
    mobile-bindings/tests-kotlin/src/*.kt -d "$build/tests.jar"
  java -Djna.library.path="$lib_dir" \
    -cp "$build/tests.jar:$jna_jar:$coroutines:$kotlin_home/lib/kotlin-stdlib.jar" MainKt
fi
log "mobile binding tests done"
