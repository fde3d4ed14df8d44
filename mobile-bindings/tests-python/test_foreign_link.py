"""The foreign-trait path: a Python `BleLink` wired to the sandbox's virtual devices commissions
them against the DPS emulator through the generated bindings."""

import asyncio
import json
import time

import pytest

import fieldlink_mobile as fm
from virtual_link import Recorder, VirtualBleLink

MTU = 185  # a typical iOS ATT MTU: the ticket needs several frames
DEVICES = 10


@pytest.fixture(scope="module")
def sandbox():
    sandbox = run(
        lambda: fm.start_sandbox(
            fm.SandboxConfig(devices=DEVICES, mtu=MTU, connection_interval_ms=2, seed=11)
        )
    )
    yield sandbox
    run(sandbox.shutdown)
    settle()


def settle():
    """Lets the Rust runtime's last wake-ups (continuation callbacks into Python, from its
    worker threads) land before the interpreter may finalize: a callback arriving during
    finalization aborts the process ("FATAL: exception not rethrown"). Apps never finalize
    an interpreter; test processes do."""
    time.sleep(0.3)


def run(body):
    """Runs `body()` on a fresh event loop that the bindings use for foreign async calls
    (they come from Rust runtime threads)."""

    async def main():
        fm.uniffi_set_event_loop(asyncio.get_running_loop())
        return await body()

    return asyncio.run(main())


def commission(client, code, link, listener=None, cancel=None, network=None):
    return client.commission(
        code, network, link, listener or Recorder(), cancel or fm.CancelHandle()
    )


async def wait_for_state(sandbox, index, wanted, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sandbox.device_state(index) == wanted:
            return True
        await asyncio.sleep(0.02)
    return False


def test_commissions_a_virtual_device_with_progress_report_and_history(sandbox, tmp_path):
    device = sandbox.devices()[0]
    client = sandbox.client(str(tmp_path / "journal.sqlite"))
    link = VirtualBleLink(sandbox.radio())
    recorder = Recorder()

    report = run(lambda: commission(client, device.label, link, recorder))

    assert report.registration_id == device.registration_id
    assert report.agreed
    assert report.service.status == "assigned"
    assert report.device.status == "assigned"
    assert report.device.assigned_hub == report.service.assigned_hub
    assert report.device.device_id == report.service.device_id == device.registration_id
    assert report.mtu == MTU
    assert report.resumes == 0
    assert report.link.connections == 1
    assert report.link.round_trips <= 2
    assert link.max_frame <= MTU - 3
    assert link.writes == report.link.frames_sent
    assert [t.step for t in report.steps][0] == fm.Step.SCANNING
    assert report.steps[-1].step == fm.Step.CONFIRMING

    events = recorder.events
    assert events[0].step == fm.Step.SCANNING
    assert isinstance(events[0].kind, fm.ProgressKind.STARTED)
    found = [e.kind for e in events if isinstance(e.kind, fm.ProgressKind.DEVICE_FOUND)]
    assert found and found[0].peripheral_id == device.peripheral_id
    connected = [e.kind for e in events if isinstance(e.kind, fm.ProgressKind.CONNECTED)]
    assert [c.mtu for c in connected] == [MTU]
    assert any(isinstance(e.kind, fm.ProgressKind.REGISTRATION_STAGE) for e in events)
    assert recorder.steps_completed()[-1] == fm.Step.CONFIRMING
    assert [e.at_ms for e in events] == sorted(e.at_ms for e in events)
    assert sandbox.device_state(0) == "registered"

    history = client.history(None, 10)
    assert len(history) == 1
    entry = history[0]
    assert entry.registration_id == device.registration_id
    assert entry.outcome == "succeeded"
    assert entry.confirmation == "confirmed"
    assert entry.profile == "sandbox"
    assert entry.assigned_hub == report.service.assigned_hub
    assert entry.dps_instance is not None
    assert [s.step for s in entry.steps][-1] == "confirming"

    status = run(lambda: client.registration_status(device.registration_id))
    assert status.status == "assigned"
    assert status.device_id == device.registration_id


def test_wrong_pop_is_a_flat_error_with_code_message_and_details(sandbox, tmp_path):
    device = sandbox.devices()[1]
    client = sandbox.client(str(tmp_path / "journal.sqlite"))
    link = VirtualBleLink(sandbox.radio())

    with pytest.raises(fm.FieldlinkError.WrongPop) as caught:
        run(lambda: commission(client, sandbox.wrong_pop_label(1), link))

    error = caught.value
    assert isinstance(error, fm.FieldlinkError)
    assert error.code == "wrong_pop"
    assert error.reason.startswith("wrong proof-of-possession (attempt 1 of 5)")
    assert not error.retryable
    assert json.loads(error.details_json) == {"attempt": 1, "max": 5}
    assert sandbox.device_state(1) == "commissionable"
    failed = client.history(device.registration_id, 5)
    assert [(h.outcome, h.error_code) for h in failed] == [("failed", "wrong_pop")]

    # The right label still works (the device resets its attempt counter).
    report = run(lambda: commission(client, device.label, VirtualBleLink(sandbox.radio())))
    assert report.agreed


def test_link_lost_during_the_handshake(sandbox):
    client = sandbox.client(None)
    sandbox.drop_link_at(2, fm.FaultDirection.TO_PHONE, 0)  # before DeviceHello arrives
    recorder = Recorder()

    with pytest.raises(fm.FieldlinkError.LinkLost) as caught:
        run(lambda: commission(client, sandbox.devices()[2].label, VirtualBleLink(sandbox.radio()), recorder))

    assert caught.value.code == "link_lost"
    assert caught.value.retryable
    assert json.loads(caught.value.details_json)["step"] == "handshaking"
    assert sandbox.device_state(2) == "commissionable"


def test_link_lost_when_the_apps_ble_stack_fails_a_write(sandbox):
    client = sandbox.client(None)
    link = VirtualBleLink(sandbox.radio(), lose_link_after_writes=0)

    with pytest.raises(fm.FieldlinkError.LinkLost) as caught:
        run(lambda: commission(client, sandbox.devices()[3].label, link))

    assert caught.value.retryable
    assert link.connects == 1, "no automatic second handshake before the ticket was sent"


def test_link_lost_after_the_ticket_resumes_and_completes(sandbox):
    client = sandbox.client(None)
    # Messages to the phone: DeviceHello, ProvisionAccepted, then registration events.
    sandbox.drop_link_at(4, fm.FaultDirection.TO_PHONE, 2)
    recorder = Recorder()
    link = VirtualBleLink(sandbox.radio())

    report = run(lambda: commission(client, sandbox.devices()[4].label, link, recorder))

    assert report.agreed
    assert report.resumes == 1
    assert report.link.connections == 2
    assert link.connects == 2
    kinds = [e.kind for e in recorder.events]
    assert any(isinstance(k, fm.ProgressKind.LINK_LOST) for k in kinds)
    assert any(isinstance(k, fm.ProgressKind.RESUMED) for k in kinds)
    assert sandbox.device_state(4) == "registered"


def test_cancel_handle_before_the_ticket(sandbox):
    client = sandbox.client(None)
    cancel = fm.CancelHandle()

    def on_event(event):
        if isinstance(event.kind, fm.ProgressKind.CONNECTED):
            cancel.cancel()

    with pytest.raises(fm.FieldlinkError.Cancelled) as caught:
        run(lambda: commission(client, sandbox.devices()[5].label, VirtualBleLink(sandbox.radio()), Recorder(on_event), cancel))

    assert caught.value.code == "cancelled"
    assert cancel.is_cancelled()
    assert sandbox.device_state(5) == "commissionable"


def test_cancel_handle_after_the_ticket_rolls_the_device_back(sandbox):
    client = sandbox.client(None)
    cancel = fm.CancelHandle()

    def on_event(event):
        if event.step == fm.Step.PROVISIONING and isinstance(event.kind, fm.ProgressKind.COMPLETED):
            cancel.cancel()

    async def body():
        with pytest.raises(fm.FieldlinkError.Cancelled):
            await commission(client, sandbox.devices()[6].label, VirtualBleLink(sandbox.radio()), Recorder(on_event), cancel)
        # Rolled back at once (the core told it to), long before DPS would have answered.
        return await wait_for_state(sandbox, 6, "commissionable", timeout=2.0)

    # DPS keeps the registration `assigning` for 5 s: the cancel lands while it registers.
    sandbox.set_dps_assignment_delay(5000)
    try:
        assert run(body), sandbox.device_state(6)
    finally:
        sandbox.set_dps_assignment_delay(0)


def test_cancelling_the_python_task_cancels_the_commissioning(sandbox):
    client = sandbox.client(None)

    async def body():
        connected = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_event(event):
            if isinstance(event.kind, fm.ProgressKind.CONNECTED):
                loop.call_soon_threadsafe(connected.set)

        link = VirtualBleLink(sandbox.radio())
        task = asyncio.ensure_future(
            commission(client, sandbox.devices()[7].label, link, Recorder(on_event))
        )
        await asyncio.wait_for(connected.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The core still closes the session: the link is released, nothing stays staged.
        for _ in range(100):
            if not link._connections:
                break
            await asyncio.sleep(0.02)
        assert not link._connections
        return await wait_for_state(sandbox, 7, "commissionable")

    assert run(body)


def test_manual_code(sandbox):
    devices = sandbox.devices()
    device = devices[8]
    # A manual code carries only the top 4 bits of the discriminator: take the devices sharing
    # them out of range, so the labelled one is the only candidate.
    twins = [d.index for d in devices if d.index != 8 and d.discriminator >> 8 == device.discriminator >> 8]
    for index in twins:
        sandbox.set_in_range(index, False)
    try:
        report = run(lambda: commission(sandbox.client(None), device.manual_code, VirtualBleLink(sandbox.radio())))
    finally:
        for index in twins:
            sandbox.set_in_range(index, True)
    assert report.registration_id == device.registration_id
    assert report.agreed


def test_bluetooth_off_in_the_app(sandbox):
    class BluetoothOff(VirtualBleLink):
        async def scan(self, request):
            raise fm.BleLinkError.Unavailable("Bluetooth is off")

    with pytest.raises(fm.FieldlinkError.BluetoothUnavailable) as caught:
        run(lambda: commission(sandbox.client(None), sandbox.devices()[9].label, BluetoothOff(sandbox.radio())))
    assert "Bluetooth is off" in caught.value.reason


def test_bad_arguments_are_rejected_before_any_radio_work(sandbox):
    link = VirtualBleLink(sandbox.radio())
    with pytest.raises(fm.FieldlinkError.InvalidPayload) as caught:
        run(lambda: commission(sandbox.client(None), "FL1/NOT-A-LABEL", link))
    assert "invalid onboarding code" in caught.value.reason
    wifi = fm.NetworkSettings.WIFI(ssid="site", passphrase="secret", hidden=False, bssid=b"\x01\x02")
    with pytest.raises(fm.FieldlinkError.InvalidArgument):
        run(lambda: commission(sandbox.client(None), sandbox.devices()[9].label, link, network=wifi))
    assert link.connects == 0


def test_labels_parse_and_render(sandbox):
    device = sandbox.devices()[0]
    info = fm.parse_onboarding_code(device.label)
    assert info.kind == fm.CodeKind.QR_LABEL
    assert info.registration_id == device.registration_id
    assert info.discriminator == device.discriminator
    assert info.manual_code == device.manual_code
    manual = fm.parse_onboarding_code(device.manual_code)
    assert manual.kind == fm.CodeKind.MANUAL_CODE
    assert manual.short_discriminator == device.discriminator >> 8
    svg = fm.render_label_svg(device.label, 256)
    assert svg.startswith("<?xml") and "<svg" in svg
    with pytest.raises(fm.FieldlinkError.InvalidPayload):
        fm.render_label_svg("FL1/X/Y", 256)
    profile = fm.gatt_profile()
    assert profile.service_uuid == "4e440001-9ed1-4205-9301-1ce0dbed452f"
