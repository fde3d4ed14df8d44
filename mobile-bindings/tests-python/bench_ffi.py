"""FFI overhead figure (docs/benchmarks.md, "Mobile bindings"): one commissioning through the
Python bindings (a Python `BleLink` over the virtual radio: every frame crosses the FFI twice)
against the same commissioning in pure Rust (the core over its in-memory radio), in the same
sandbox. Not a test; run it by hand on a release build:

    scripts/gen-bindings.sh --release --testing
    FIELDLINK_BINDINGS_DIR=target/bindings python3 mobile-bindings/tests-python/bench_ffi.py [N]
"""

import asyncio
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import conftest  # noqa: E402,F401  (puts the generated bindings on sys.path)
import fieldlink_mobile as fm  # noqa: E402
from virtual_link import Recorder, VirtualBleLink  # noqa: E402


def summary(samples):
    samples = sorted(samples)
    p90 = samples[min(len(samples) - 1, int(len(samples) * 0.9))]
    return f"median {statistics.median(samples):7.1f} ms   p90 {p90:7.1f} ms"


async def main(rounds):
    fm.uniffi_set_event_loop(asyncio.get_running_loop())
    mtu = 185
    sandbox = await fm.start_sandbox(
        fm.SandboxConfig(devices=2 * rounds + 1, mtu=mtu, connection_interval_ms=2, seed=5)
    )
    devices = sandbox.devices()
    client = sandbox.client(None)
    # Warm up both paths once (TLS to the emulator, code paths).
    await client.commission(devices[0].label, None, VirtualBleLink(sandbox.radio()), Recorder(), fm.CancelHandle())
    python_wall, python_core, rust_wall, rust_core = [], [], [], []
    frames = 0
    for i in range(rounds):
        # Alternate, so drift affects both paths alike.
        started = time.perf_counter()
        report = await client.commission(devices[1 + 2 * i].label, None, VirtualBleLink(sandbox.radio()), Recorder(), fm.CancelHandle())
        python_wall.append((time.perf_counter() - started) * 1000)
        python_core.append(report.total_ms)
        frames = report.link.frames_sent + report.link.frames_received
        started = time.perf_counter()
        report = await sandbox.commission_in_rust(2 + 2 * i)
        rust_wall.append((time.perf_counter() - started) * 1000)
        rust_core.append(report.total_ms)
    await sandbox.shutdown()
    print(f"{rounds} commissionings each, MTU {mtu}, 2 ms connection interval, {frames} frames per commissioning")
    print(f"Python BleLink (wall)   {summary(python_wall)}")
    print(f"pure Rust      (wall)   {summary(rust_wall)}")
    print(f"Python BleLink (report) {summary(python_core)}")
    print(f"pure Rust      (report) {summary(rust_core)}")
    overhead = statistics.median(python_wall) - statistics.median(rust_wall)
    print(f"overhead of the FFI + foreign trait: {overhead:.1f} ms per commissioning "
          f"({overhead / max(frames, 1):.2f} ms per frame)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
    time.sleep(0.3)  # let the runtime's last callbacks land (see test_foreign_link.settle)
