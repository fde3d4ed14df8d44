// Kotlin tests of the generated bindings: a Kotlin `BleLink` commissions virtual devices of the
// in-process sandbox with coroutines. Prints "N passed, M failed" and exits non-zero on failure.

import java.util.concurrent.CopyOnWriteArrayList
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import uniffi.fieldlink_mobile.CancelHandle
import uniffi.fieldlink_mobile.FieldlinkException
import uniffi.fieldlink_mobile.ProgressEvent
import uniffi.fieldlink_mobile.ProgressKind
import uniffi.fieldlink_mobile.ProgressListener
import uniffi.fieldlink_mobile.Sandbox
import uniffi.fieldlink_mobile.SandboxConfig
import uniffi.fieldlink_mobile.Step
import uniffi.fieldlink_mobile.startSandbox

const val MTU: UShort = 100u

class Recorder(private val onEvent: (ProgressEvent) -> Unit = {}) : ProgressListener {
    val events = CopyOnWriteArrayList<ProgressEvent>()
    override fun onProgress(event: ProgressEvent) {
        events.add(event)
        onEvent(event)
    }
}

fun check(condition: Boolean, message: () -> String) {
    if (!condition) throw AssertionError(message())
}

suspend fun waitForState(sandbox: Sandbox, index: UInt, wanted: String): Boolean {
    repeat(100) {
        if (sandbox.deviceState(index) == wanted) return true
        delay(20)
    }
    return false
}

suspend fun commissionsAVirtualDevice(sandbox: Sandbox) {
    val device = sandbox.devices()[0]
    val link = VirtualBleLink(sandbox.radio())
    val recorder = Recorder()
    val report = sandbox.client(null).commission(device.label, null, link, recorder, CancelHandle())
    check(report.agreed) { "not agreed: $report" }
    check(report.registrationId == device.registrationId) { report.registrationId }
    check(report.service.status == "assigned") { report.service.toString() }
    check(report.device.assignedHub == report.service.assignedHub) { report.toString() }
    check(report.mtu == MTU) { "mtu ${report.mtu}" }
    check(link.maxFrame.get() <= MTU.toInt() - 3) { "frame of ${link.maxFrame.get()} bytes" }
    check(report.link.roundTrips <= 2u) { "round trips ${report.link.roundTrips}" }
    val kinds = recorder.events.map { it.kind }
    check(kinds.any { it is ProgressKind.Connected && it.mtu == MTU }) { kinds.toString() }
    check(kinds.any { it is ProgressKind.RegistrationStage }) { kinds.toString() }
    check(recorder.events.last().step == Step.CONFIRMING) { recorder.events.last().toString() }
    check(sandbox.deviceState(0u) == "registered") { sandbox.deviceState(0u) }
}

suspend fun wrongPopIsATypedException(sandbox: Sandbox) {
    try {
        sandbox.client(null).commission(sandbox.wrongPopLabel(1u), null, VirtualBleLink(sandbox.radio()), Recorder(), CancelHandle())
        throw AssertionError("commissioned with a wrong PoP")
    } catch (error: FieldlinkException.WrongPop) {
        check(error.code == "wrong_pop") { error.code }
        check(error.reason.startsWith("wrong proof-of-possession (attempt 1 of 5)")) { error.reason }
        check(!error.retryable) { "retryable" }
    }
}

suspend fun cancellingTheCoroutineCancelsTheCommissioning(sandbox: Sandbox) = coroutineScope {
    val link = VirtualBleLink(sandbox.radio())
    val connected = CompletableDeferred<Unit>()
    val recorder = Recorder { if (it.kind is ProgressKind.Connected) connected.complete(Unit) }
    val job = launch {
        sandbox.client(null).commission(sandbox.devices()[2].label, null, link, recorder, CancelHandle())
        throw AssertionError("not cancelled")
    }
    withTimeout(5_000) { connected.await() }
    job.cancel(CancellationException("the installer navigated away"))
    job.join()
    check(job.isCancelled) { "job not cancelled" }
    check(waitForState(sandbox, 2u, "commissionable")) { sandbox.deviceState(2u) }
    repeat(100) { if (link.openConnections() > 0) delay(20) }
    check(link.openConnections() == 0) { "the core did not disconnect" }
}

suspend fun cancelHandleFromTheListener(sandbox: Sandbox) {
    val cancel = CancelHandle()
    val recorder = Recorder { if (it.kind is ProgressKind.Connected) cancel.cancel() }
    try {
        sandbox.client(null).commission(sandbox.devices()[3].label, null, VirtualBleLink(sandbox.radio()), recorder, cancel)
        throw AssertionError("not cancelled")
    } catch (error: FieldlinkException.Cancelled) {
        check(error.code == "cancelled") { error.code }
    }
}

// The DPS codes are their own exception cases (not `Other`), with the fields every case has.
fun dpsCodesAreTheirOwnCases() {
    val cases: List<Pair<FieldlinkException, String>> = listOf(
        FieldlinkException.DpsUnreachable("dps_unreachable", "no route", true, null, "{}") to "dps_unreachable",
        FieldlinkException.DpsThrottled("dps_throttled", "slow down", true, 3000uL, "{}") to "dps_throttled",
        FieldlinkException.DpsUnauthorized("dps_unauthorized", "bad key", false, null, "{}") to "dps_unauthorized",
        FieldlinkException.DpsNotFound("dps_not_found", "no scope", false, null, "{}") to "dps_not_found",
    )
    for ((error, code) in cases) {
        check(error !is FieldlinkException.Other) { code }
        val fields = when (error) {
            is FieldlinkException.DpsUnreachable -> Triple(error.code, error.retryable, error.detailsJson)
            is FieldlinkException.DpsThrottled -> Triple(error.code, error.retryable, error.detailsJson)
            is FieldlinkException.DpsUnauthorized -> Triple(error.code, error.retryable, error.detailsJson)
            is FieldlinkException.DpsNotFound -> Triple(error.code, error.retryable, error.detailsJson)
            else -> throw AssertionError("not a DPS case: $error")
        }
        check(fields.first == code) { fields.toString() }
        check(fields.second == (code == "dps_unreachable" || code == "dps_throttled")) { fields.toString() }
    }
}

// The API client's retries arrive as ProgressKind.ServiceRetry with their counts.
fun serviceRetryIsAProgressKind() {
    val kind: ProgressKind = ProgressKind.ServiceRetry(2u, 5u, 1200uL, null, "http_503")
    val event = ProgressEvent(Step.AWAITING_ASSIGNMENT, kind, 40uL, 1u)
    val retry = event.kind
    check(retry is ProgressKind.ServiceRetry && retry.attempt == 2u && retry.maxAttempts == 5u &&
        retry.waitMs == 1200uL && retry.retryAfterMs == null && retry.reason == "http_503") { retry.toString() }
}

suspend fun twoDevicesAtOnce(sandbox: Sandbox) = coroutineScope {
    val client = sandbox.client(null)
    val reports = listOf(4, 5).map { index ->
        async {
            client.commission(sandbox.devices()[index].label, null, VirtualBleLink(sandbox.radio()), Recorder(), CancelHandle())
        }
    }.awaitAll()
    check(reports.all { it.agreed }) { reports.toString() }
    check(reports.map { it.registrationId }.toSet().size == 2) { reports.toString() }
}

fun main() = runBlocking {
    val sandbox = startSandbox(SandboxConfig(devices = 6u, mtu = MTU, connectionIntervalMs = 2u, seed = 23u))
    val tests: List<Pair<String, suspend (Sandbox) -> Unit>> = listOf(
        "commissions a virtual device through a Kotlin BleLink" to ::commissionsAVirtualDevice,
        "wrong PoP is FieldlinkException.WrongPop" to ::wrongPopIsATypedException,
        "cancelling the coroutine cancels the commissioning" to ::cancellingTheCoroutineCancelsTheCommissioning,
        "CancelHandle from the progress listener" to ::cancelHandleFromTheListener,
        "two devices at once with coroutines" to ::twoDevicesAtOnce,
        "device-code sign-in with a Kotlin SecretStore" to { _ -> signInWithTheDeviceCodeFlow() },
        "DPS codes are their own FieldlinkException cases" to { _ -> dpsCodesAreTheirOwnCases() },
        "ServiceRetry is a ProgressKind with its counts" to { _ -> serviceRetryIsAProgressKind() },
    )
    var passed = 0
    var failed = 0
    for ((name, test) in tests) {
        try {
            withTimeout(60_000) { test(sandbox) }
            println("PASS $name")
            passed++
        } catch (error: Throwable) {
            println("FAIL $name: $error")
            failed++
        }
    }
    sandbox.shutdown()
    println("$passed passed, $failed failed")
    if (failed > 0) kotlin.system.exitProcess(1)
}
