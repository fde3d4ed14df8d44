#!/usr/bin/env bash
# Builds the fieldlink mobile library (crate fieldlink-mobile) and generates its Kotlin, Swift
# and Python bindings with uniffi-bindgen in library mode.
#
#   scripts/gen-bindings.sh [--release] [--testing]
#
#   --release   build with the release profile (what apps ship; see docs/mobile.md)
#   --testing   enable the `testing` feature (sandbox + virtual radio exports) — tests only,
#               never ship it
#
# Output (under $CARGO_TARGET_DIR, default ./target):
#   bindings/kotlin/uniffi/fieldlink_mobile/fieldlink_mobile.kt
#   bindings/swift/{fieldlink_mobile.swift, fieldlink_mobileFFI.h, fieldlink_mobileFFI.modulemap}
#   bindings/python/{fieldlink_mobile.py, libfieldlink_mobile.so}   (the .so next to the .py,
#                                                                   where the module loads it)
# Prints the path of the built library on its last line.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

profile=debug
cargo_args=(-p fieldlink-mobile)
for arg in "$@"; do
  case "$arg" in
    --release) profile=release; cargo_args+=(--release) ;;
    --testing) cargo_args+=(--features testing) ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gen-bindings: unknown argument $arg" >&2; exit 2 ;;
  esac
done

target_dir=${CARGO_TARGET_DIR:-$root/target}
case "$(uname -s)" in
  Darwin) lib_name=libfieldlink_mobile.dylib ;;
  *) lib_name=libfieldlink_mobile.so ;;
esac

# The library and the bindgen binary with the same features, so cargo builds the crate once.
cargo build "${cargo_args[@]}" --lib --bin uniffi-bindgen >&2
lib="$target_dir/$profile/$lib_name"
bindgen="$target_dir/$profile/uniffi-bindgen"
out="$target_dir/bindings"

for language in kotlin swift python; do
  rm -rf "${out:?}/$language"
  "$bindgen" generate "$lib" --language "$language" --out-dir "$out/$language" --no-format >&2
done
cp "$lib" "$out/python/"
echo "$lib"
