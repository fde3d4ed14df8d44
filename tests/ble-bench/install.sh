#!/usr/bin/env bash
# Installs what the BLE bench needs on Debian/Ubuntu: dbus-daemon and busctl (systemd) from apt,
# BlueZoo 1.0.2 (Python >= 3.11) from PyPI. Idempotent; CI runs it before the tests.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v dbus-daemon >/dev/null || missing+=(dbus-daemon)
command -v busctl >/dev/null || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v bluezoo >/dev/null || [ "$(python3 -m pip show bluezoo 2>/dev/null | sed -n 's/^Version: //p')" != 1.0.2 ]; then
  python3 -m pip install --quiet --disable-pip-version-check 'bluezoo==1.0.2'
fi
command -v bluezoo >/dev/null && command -v dbus-daemon >/dev/null
echo "ble-bench: dbus-daemon $(dbus-daemon --version | head -n1 | awk '{print $NF}'), bluezoo $(python3 -m pip show bluezoo | sed -n 's/^Version: //p')"
