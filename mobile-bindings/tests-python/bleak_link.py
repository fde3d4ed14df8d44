"""A `BleLink` over bleak (BlueZ's D-Bus API on Linux): the closest thing on a Linux machine to
a phone's native BLE stack driving the core. Shaped like the Android and iOS links in
docs/mobile.md: scan with the platform's filter, connect, subscribe to TX, report the MTU BlueZ
negotiated, write RX with response, forward notifications and disconnects to the sink."""

import asyncio

from bleak import BleakClient, BleakScanner

import fieldlink_mobile as fm

SHORT_SCAN_MS = 3000


def advertised_discriminator(service_data):
    """The discriminator in fieldlink's 4-byte service data (docs/protocol.md), else None."""
    for uuid, data in service_data.items():
        if uuid.lower().startswith("0000464c") and len(data) >= 4:
            return ((data[1] & 0x0F) << 8) | data[2]
    return None


class BleakLink(fm.BleLink):
    def __init__(self, adapter="hci0"):
        self._adapter = adapter
        self._devices = {}
        self._clients = {}
        profile = fm.gatt_profile()
        self._rx = profile.rx_char_uuid
        self._tx = profile.tx_char_uuid
        self.mtus = []

    async def scan(self, request):
        seen = {}
        found = asyncio.Event()

        def on_advertisement(device, advertisement):
            self._devices[device.address] = device
            seen[device.address] = fm.ScannedDevice(
                peripheral_id=device.address,
                local_name=advertisement.local_name,
                rssi=advertisement.rssi,
                service_uuids=list(advertisement.service_uuids),
                service_data=[
                    fm.ServiceDataEntry(uuid=uuid, data=bytes(data))
                    for uuid, data in advertisement.service_data.items()
                ],
            )
            if (
                request.discriminator is not None
                and advertised_discriminator(advertisement.service_data) == request.discriminator
            ):
                found.set()

        scanner = BleakScanner(
            on_advertisement, service_uuids=[request.service_uuid], bluez={"adapter": self._adapter}
        )
        window = request.timeout_ms if request.discriminator is not None else min(request.timeout_ms, SHORT_SCAN_MS)
        await scanner.start()
        try:
            # Stop a little before the core's scanning deadline (which equals timeout_ms).
            await asyncio.wait_for(found.wait(), max(window - 300, 100) / 1000)
        except asyncio.TimeoutError:
            pass
        finally:
            await scanner.stop()
        return list(seen.values())

    async def connect(self, peripheral_id, timeout_ms, notifications):
        target = self._devices.get(peripheral_id, peripheral_id)
        client = BleakClient(
            target,
            bluez={"adapter": self._adapter},
            timeout=timeout_ms / 1000,
            disconnected_callback=lambda _: notifications.disconnected(fm.DisconnectCause.REMOTE),
        )
        try:
            await client.connect()
            await client.start_notify(self._tx, lambda _, data: notifications.deliver(bytes(data)))
        except asyncio.TimeoutError:
            raise fm.BleLinkError.Timeout()
        except Exception as error:  # bleak raises BleakError and D-Bus errors
            await client.disconnect()
            raise fm.BleLinkError.Platform(f"{type(error).__name__}: {error}")
        self._clients[peripheral_id] = client
        # BlueZ negotiates the ATT MTU itself and exposes it on the characteristic.
        mtu = client.services.get_characteristic(self._rx).max_write_without_response_size + 3
        self.mtus.append(mtu)
        return fm.LinkInfo(mtu=mtu)

    async def write(self, peripheral_id, frame):
        client = self._clients.get(peripheral_id)
        if client is None or not client.is_connected:
            raise fm.BleLinkError.Disconnected()
        try:
            await client.write_gatt_char(self._rx, bytes(frame), response=True)
        except Exception as error:
            raise fm.BleLinkError.Platform(f"{type(error).__name__}: {error}")

    async def disconnect(self, peripheral_id):
        client = self._clients.pop(peripheral_id, None)
        if client is not None:
            await client.disconnect()
