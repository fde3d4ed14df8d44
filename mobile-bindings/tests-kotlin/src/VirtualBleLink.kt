// A Kotlin `BleLink` over the sandbox's virtual radio: the same shape as an Android
// implementation over BluetoothGatt (see docs/mobile.md), with the virtual radio standing in for
// the platform BLE stack. Notifications are pumped into the core's sink from a coroutine.

import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.atomic.AtomicInteger
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch
import uniffi.fieldlink_mobile.BleLink
import uniffi.fieldlink_mobile.BleLinkException
import uniffi.fieldlink_mobile.DisconnectCause
import uniffi.fieldlink_mobile.LinkInfo
import uniffi.fieldlink_mobile.NotificationSink
import uniffi.fieldlink_mobile.ScanRequest
import uniffi.fieldlink_mobile.ScannedDevice
import uniffi.fieldlink_mobile.VirtualConnection
import uniffi.fieldlink_mobile.VirtualRadio

/** Without a discriminator (manual code) an app collects scan results for a short window. */
private const val SHORT_SCAN_MS: ULong = 500u

class VirtualBleLink(private val radio: VirtualRadio) : BleLink {
    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.IO)
    private val connections = ConcurrentHashMap<String, Pair<VirtualConnection, Job>>()
    val writes = AtomicInteger()
    val connects = AtomicInteger()
    val maxFrame = AtomicInteger()

    override suspend fun scan(request: ScanRequest): List<ScannedDevice> {
        val window = if (request.discriminator != null) request.timeoutMs else minOf(request.timeoutMs, SHORT_SCAN_MS)
        return radio.scan(request.discriminator, window)
    }

    override suspend fun connect(peripheralId: String, timeoutMs: ULong, notifications: NotificationSink): LinkInfo {
        val connection = radio.connect(peripheralId, timeoutMs)
        connects.incrementAndGet()
        val pump = scope.launch {
            while (isActive) {
                val frame = connection.nextNotification()
                if (frame == null) {
                    notifications.disconnected(DisconnectCause.REMOTE)
                    break
                }
                notifications.deliver(frame)
            }
        }
        connections[peripheralId] = connection to pump
        return LinkInfo(connection.mtu())
    }

    override suspend fun write(peripheralId: String, frame: ByteArray) {
        val (connection, _) = connections[peripheralId] ?: throw BleLinkException.Disconnected()
        writes.incrementAndGet()
        maxFrame.accumulateAndGet(frame.size) { a, b -> maxOf(a, b) }
        connection.write(frame)
    }

    override suspend fun disconnect(peripheralId: String) {
        connections.remove(peripheralId)?.let { (connection, pump) ->
            pump.cancel()
            connection.disconnect()
        }
    }

    fun openConnections(): Int = connections.size
}
