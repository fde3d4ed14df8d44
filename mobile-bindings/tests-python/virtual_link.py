"""A Python `BleLink` over the sandbox's virtual radio: it sits between the core and a virtual
device exactly where BluetoothGatt or CoreBluetooth sits in an app (scan, connect, write, pump
notifications into the sink, report link loss)."""

import asyncio

import fieldlink_mobile as fm


SHORT_SCAN_MS = 500


class VirtualBleLink(fm.BleLink):
    """`BleLink` over `Sandbox.radio()`.

    `lose_link_after_writes`: after that many writes, the link "drops" (the platform reports a
    supervision timeout) and every later connect fails, like a device carried out of range.
    """

    def __init__(self, radio, lose_link_after_writes=None):
        self._radio = radio
        self._connections = {}
        self._pumps = {}
        self._lose_after = lose_link_after_writes
        self._out_of_range = False
        self.writes = 0
        self.connects = 0
        self.max_frame = 0

    async def scan(self, request):
        if request.service_uuid != fm.gatt_profile().service_uuid:
            raise fm.BleLinkError.Platform(f"unexpected service {request.service_uuid}")
        # Without a discriminator (a manual code) collect for a short window, as an app's scan
        # screen does: the core's scanning deadline equals `timeout_ms`, so scanning for all of
        # it would race that deadline.
        window = request.timeout_ms if request.discriminator is not None else min(request.timeout_ms, SHORT_SCAN_MS)
        return await self._radio.scan(request.discriminator, window)

    async def connect(self, peripheral_id, timeout_ms, notifications):
        if self._out_of_range:
            raise fm.BleLinkError.Timeout()
        connection = await self._radio.connect(peripheral_id, timeout_ms)
        self.connects += 1
        self._connections[peripheral_id] = (connection, notifications)
        self._pumps[peripheral_id] = asyncio.ensure_future(self._pump(connection, notifications))
        return fm.LinkInfo(mtu=connection.mtu())

    async def _pump(self, connection, sink):
        while True:
            frame = await connection.next_notification()
            if frame is None:
                sink.disconnected(fm.DisconnectCause.REMOTE)
                return
            sink.deliver(frame)

    async def write(self, peripheral_id, frame):
        entry = self._connections.get(peripheral_id)
        if entry is None:
            raise fm.BleLinkError.Disconnected()
        connection, sink = entry
        self.writes += 1
        self.max_frame = max(self.max_frame, len(frame))
        if self._lose_after is not None and self.writes > self._lose_after:
            self._out_of_range = True
            await self._close(peripheral_id)
            sink.disconnected(fm.DisconnectCause.LINK_LOSS)
            raise fm.BleLinkError.Disconnected()
        await connection.write(frame)

    async def disconnect(self, peripheral_id):
        await self._close(peripheral_id)

    async def _close(self, peripheral_id):
        entry = self._connections.pop(peripheral_id, None)
        pump = self._pumps.pop(peripheral_id, None)
        if pump is not None:
            pump.cancel()
        if entry is not None:
            await entry[0].disconnect()


class Recorder(fm.ProgressListener):
    """Collects progress events (called from a Rust runtime thread)."""

    def __init__(self, on_event=None):
        self.events = []
        self._on_event = on_event

    def on_progress(self, event):
        self.events.append(event)
        if self._on_event is not None:
            self._on_event(event)

    def steps_completed(self):
        return [event.step for event in self.events if isinstance(event.kind, fm.ProgressKind.COMPLETED)]
