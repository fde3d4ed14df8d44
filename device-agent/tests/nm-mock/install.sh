#!/usr/bin/env bash
# Installs what the NetworkManager mock tests need (device-agent/tests/networkmanager.rs) on
# Debian/Ubuntu: dbus-daemon from apt, python-dbusmock 0.38.1 from PyPI for the `python3` on PATH
# (dbus-python, its dependency, builds from source: libdbus-1-dev, libglib2.0-dev, pkg-config and
# a C compiler come from apt when it is missing). Idempotent; CI runs it before the tests.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}
python=${FIELDLINK_NM_MOCK_PYTHON:-python3}
command -v dbus-daemon >/dev/null || apt_install dbus-daemon
version() { "$python" -c 'import dbusmock; print(dbusmock.__version__)' 2>/dev/null || true; }
if [ "$(version)" != 0.38.1 ]; then
  if ! "$python" -c 'import dbus' 2>/dev/null; then
    missing=()
    for pkg in libdbus-1-dev libglib2.0-dev pkg-config gcc; do
      dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
  fi
  "$python" -m pip install --quiet --disable-pip-version-check 'python-dbusmock==0.38.1'
fi
[ "$(version)" = 0.38.1 ] || { echo "nm-mock: python-dbusmock 0.38.1 is not importable by $python" >&2; exit 1; }
echo "nm-mock: dbus-daemon $(dbus-daemon --version | head -n1 | awk '{print $NF}'), python-dbusmock $(version) ($python)"
