"""A real platform BLE library behind the bindings: a Python `BleLink` over bleak (BlueZ D-Bus
API) commissions a sandbox device agent served by bluer through the BlueZoo bench (an emulated
BlueZ with two linked adapters on a private D-Bus; tests/ble-bench, docs/ble.md).

Skipped when the bench's tools or bleak are missing, except under CI, where that fails."""

import asyncio
import importlib.util
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

import pytest

import fieldlink_mobile as fm

ROOT = pathlib.Path(__file__).resolve().parents[2]
BENCH = ROOT / "tests" / "ble-bench"


def _missing():
    missing = [tool for tool in ("dbus-daemon", "bluezoo", "busctl") if shutil.which(tool) is None]
    if importlib.util.find_spec("bleak") is None:
        missing.append("bleak (pip)")
    return missing


@pytest.fixture(scope="module")
def bench():
    missing = _missing()
    if missing:
        message = f"BLE bench prerequisites missing: {', '.join(missing)} (tests/ble-bench/install.sh; pip install -r mobile-bindings/tests-python/requirements.txt)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    directory = tempfile.mkdtemp(prefix="fieldlink-mobile-bench-")
    env = dict(os.environ, BLE_BENCH_DIR=directory)
    started = subprocess.run([str(BENCH / "start.sh")], env=env, capture_output=True, text=True, timeout=60)
    if started.returncode != 0:
        pytest.fail(f"the BLE bench did not start: {started.stderr}")
    saved = {}
    for line in started.stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        saved[key] = os.environ.get(key)
        os.environ[key] = value.strip("'")
    yield directory
    subprocess.run([str(BENCH / "stop.sh")], env=env, capture_output=True, timeout=60)
    shutil.rmtree(directory, ignore_errors=True)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def run(body):
    async def main():
        fm.uniffi_set_event_loop(asyncio.get_running_loop())
        return await body()

    return asyncio.run(main())


def test_bleak_commissions_the_device_agent_over_bluez(bench):
    from bleak_link import BleakLink

    sandbox = run(lambda: fm.start_sandbox(fm.SandboxConfig(devices=1, mtu=247, connection_interval_ms=2, seed=31)))
    try:
        run(lambda: sandbox.serve_over_bluez(0, "hci1"))
        time.sleep(1.5)  # BlueZoo reports advertisers once per scan interval (1 s)
        device = sandbox.devices()[0]
        client = sandbox.client_with_scan_deadline(None, 8000)
        events = []

        class Listener(fm.ProgressListener):
            def on_progress(self, event):
                events.append(event)

        link = BleakLink("hci0")
        started = time.perf_counter()
        report = run(lambda: client.commission(device.label, None, link, Listener(), fm.CancelHandle()))
        elapsed = time.perf_counter() - started

        assert report.agreed, report
        assert report.registration_id == device.registration_id
        assert report.device.status == "assigned"
        assert report.device.assigned_hub == report.service.assigned_hub
        assert report.mtu == link.mtus[-1] and report.mtu > 23
        assert report.link.round_trips <= 2
        assert sandbox.device_state(0) == "registered"
        found = [e.kind for e in events if isinstance(e.kind, fm.ProgressKind.DEVICE_FOUND)]
        assert found and found[0].peripheral_id == "00:AA:BB:CC:DD:EE"
        print(f"bleak over BlueZoo: commissioned in {elapsed:.2f} s, MTU {report.mtu}")
    finally:
        run(sandbox.shutdown)
        time.sleep(0.3)
