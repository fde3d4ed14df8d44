#!/usr/bin/env bash
# Stops what start.sh started (BlueZoo, then the dbus-daemon) and removes the bus socket.
set -uo pipefail
dir=${BLE_BENCH_DIR:-${TMPDIR:-/tmp}/fieldlink-ble-bench}
for name in bluezoo dbus; do
  if [ -f "$dir/$name.pid" ]; then
    pid=$(cat "$dir/$name.pid")
    kill "$pid" 2>/dev/null && for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    rm -f "$dir/$name.pid"
  fi
done
rm -f "$dir/system_bus_socket"
echo "ble-bench: stopped"
