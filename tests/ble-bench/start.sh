#!/usr/bin/env bash
# Starts the BLE bench by hand: a private dbus-daemon standing in for the system bus, and BlueZoo
# (an emulated BlueZ) with two linked adapters, hci0 = 00:11:22:33:44:55 (installer) and
# hci1 = 00:AA:BB:CC:DD:EE (device). Waits until both adapters are powered, then prints the
# environment to use:
#
#   eval "$(tests/ble-bench/start.sh)"     # exports DBUS_SYSTEM_BUS_ADDRESS and BLE_BENCH_DIR
#   ...                                    # run the device agent on hci1, the installer on hci0
#   tests/ble-bench/stop.sh
#
# The Rust test harness (tests/tests/ble_bench.rs) does the same by itself.
set -euo pipefail

dir=${BLE_BENCH_DIR:-${TMPDIR:-/tmp}/fieldlink-ble-bench}
for tool in dbus-daemon bluezoo busctl; do
  command -v "$tool" >/dev/null || {
    echo "ble-bench: $tool not found; run tests/ble-bench/install.sh" >&2
    exit 1
  }
done
if [ -f "$dir/bluezoo.pid" ] && kill -0 "$(cat "$dir/bluezoo.pid")" 2>/dev/null; then
  echo "ble-bench: already running in $dir (stop it with tests/ble-bench/stop.sh)" >&2
  exit 1
fi
mkdir -p "$dir"
rm -f "$dir/system_bus_socket" "$dir"/*.pid
address="unix:path=$dir/system_bus_socket"

dbus-daemon --session --nofork --nopidfile --address="$address" >"$dir/dbus.log" 2>&1 &
echo $! >"$dir/dbus.pid"
for _ in $(seq 50); do [ -S "$dir/system_bus_socket" ] && break; sleep 0.1; done
[ -S "$dir/system_bus_socket" ] || { echo "ble-bench: dbus-daemon did not start" >&2; exit 1; }

DBUS_SYSTEM_BUS_ADDRESS="$address" bluezoo --auto-enable --scan-interval 1 \
  -a 00:11:22:33:44:55 -a 00:AA:BB:CC:DD:EE >"$dir/bluezoo.log" 2>&1 &
echo $! >"$dir/bluezoo.pid"

powered() {
  busctl --address="$address" get-property org.bluez "/org/bluez/$1" org.bluez.Adapter1 Powered \
    2>/dev/null | grep -q true
}
for _ in $(seq 100); do
  if powered hci0 && powered hci1; then
    echo "export DBUS_SYSTEM_BUS_ADDRESS='$address'"
    echo "export BLE_BENCH_DIR='$dir'"
    exit 0
  fi
  kill -0 "$(cat "$dir/bluezoo.pid")" 2>/dev/null || break
  sleep 0.1
done
echo "ble-bench: BlueZoo did not come up; see $dir/bluezoo.log" >&2
"$(dirname "$0")/stop.sh" >/dev/null 2>&1 || true
exit 1
