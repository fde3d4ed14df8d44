// Generated from src-tauri/src/dto by ts-rs (src-tauri/src/bindings.rs). Do not edit:
// run `FIELDLINK_WRITE_TYPES=1 cargo test -p fieldlink-desktop generated_types`.

export type CommandError = { 
/**
 * Stable snake_case code; the UI matches on it, never on the message.
 */
code: string, 
/**
 * Actionable, human-readable message.
 */
message: string, 
/**
 * Whether running the same thing again, unchanged, may succeed.
 */
retryable: boolean, 
/**
 * The failure's fields, keyed by stable snake_case names.
 */
details: Record<string, unknown>, };

export type StepName = "scanning" | "connecting" | "handshaking" | "awaiting_assignment" | "provisioning" | "joining_network" | "registering" | "confirming";

export type ProgressDetail = { "kind": "started" } | { "kind": "completed" } | { "kind": "device_found", 
/**
 * Platform handle.
 */
peripheral: string, 
/**
 * dBm.
 */
rssi: number | null, } | { "kind": "connected", 
/**
 * Negotiated ATT MTU.
 */
mtu: number, } | { "kind": "network_stage", 
/**
 * Stage name.
 */
stage: string, } | { "kind": "registration_stage", 
/**
 * Stage name.
 */
stage: string, } | { "kind": "link_lost" } | { "kind": "resumed", 
/**
 * The device's state.
 */
device_state: string, } | { "kind": "status_pending", 
/**
 * The service's status so far.
 */
status: string, } | { "kind": "service_retry", 
/**
 * The attempt after the wait (2 = the first retry).
 */
attempt: number, 
/**
 * The attempt cap.
 */
max_attempts: number, 
/**
 * The wait, `Retry-After` included.
 */
wait_ms: number, 
/**
 * The server's `Retry-After`, if any.
 */
retry_after_ms: number | null, 
/**
 * Why the last attempt failed (`unreachable`, `timed_out`, `http_503`, ...).
 */
reason: string, };

export type ProgressUpdate = { 
/**
 * The step it belongs to.
 */
step: StepName, 
/**
 * What happened.
 */
detail: ProgressDetail, 
/**
 * Milliseconds since the commissioning started.
 */
at_ms: number, 
/**
 * Attempt number of this step (1 = first try; reconnects raise it).
 */
attempt: number, };

export type RegistrationStatus = { 
/**
 * DPS `status`.
 */
status: string, 
/**
 * Assigned IoT hub.
 */
assigned_hub: string | null, 
/**
 * Device ID in that hub.
 */
device_id: string | null, 
/**
 * DPS `substatus`.
 */
substatus: string | null, 
/**
 * DPS `errorCode`.
 */
error_code: number | null, };

export type DeviceReport = { 
/**
 * DPS `status`.
 */
status: string, 
/**
 * Assigned IoT hub.
 */
assigned_hub: string | null, 
/**
 * Device ID.
 */
device_id: string | null, 
/**
 * DPS `substatus`.
 */
substatus: string | null, 
/**
 * DPS `errorCode`.
 */
error_code: number | null, 
/**
 * DPS `errorMessage`.
 */
error_message: string | null, };

export type StepTime = { 
/**
 * The step.
 */
step: StepName, 
/**
 * First start, ms since the commissioning started.
 */
started_ms: number, 
/**
 * Last completion.
 */
finished_ms: number, 
/**
 * How many times it started.
 */
attempts: number, };

export type LinkTotals = { 
/**
 * Connections opened.
 */
connections: number, 
/**
 * Client-initiated round trips.
 */
round_trips: number, 
/**
 * Frames written.
 */
frames_sent: number, 
/**
 * Frames received.
 */
frames_received: number, 
/**
 * Bytes written.
 */
bytes_sent: number, 
/**
 * Bytes received.
 */
bytes_received: number, };

export type AssignmentSummary = { 
/**
 * DPS instance.
 */
dps_instance: string, 
/**
 * DPS ID scope.
 */
id_scope: string, 
/**
 * Ticket expiry, unix seconds.
 */
expires_at: number, };

export type CommissionResult = { 
/**
 * The journal's attempt id.
 */
attempt_id: number, 
/**
 * DPS registration ID.
 */
registration_id: string, 
/**
 * The DPS target of the pushed ticket, when this attempt fetched one (a resumed device
 * that already held a ticket has none).
 */
assignment: AssignmentSummary | null, 
/**
 * ATT MTU of the last connection.
 */
mtu: number, 
/**
 * What the device reported.
 */
device: DeviceReport, 
/**
 * What the provisioning service reported.
 */
service: RegistrationStatus, 
/**
 * Whether the two agree.
 */
agreed: boolean, 
/**
 * Whether network credentials were pushed.
 */
network_configured: boolean, 
/**
 * Step timings.
 */
steps: Array<StepTime>, 
/**
 * Link counters.
 */
link: LinkTotals, 
/**
 * Reconnect-and-resume cycles.
 */
resumes: number, 
/**
 * Total duration, ms.
 */
total_ms: number, };

export type NearbyDevice = { 
/**
 * Platform handle (a BD address on Linux).
 */
id: string, 
/**
 * Advertised local name.
 */
local_name: string | null, 
/**
 * Signal strength, dBm.
 */
rssi: number | null, 
/**
 * The 12-bit discriminator from the service data, when it decodes.
 */
discriminator: number | null, 
/**
 * The advertised state (`commissionable`, `registered`, `locked`, ...).
 */
state: string | null, 
/**
 * Protocol version the device speaks.
 */
protocol_version: number | null, };

export type ScanUpdate = { 
/**
 * Scan rounds completed (1, 2, ...).
 */
round: number, 
/**
 * The devices.
 */
devices: Array<NearbyDevice>, };

export type LabelKind = "qr_label" | "manual_code";

export type LabelInfo = { 
/**
 * QR label or manual code.
 */
kind: LabelKind, 
/**
 * DPS registration ID (QR label only; a manual code learns it from the device).
 */
registration_id: string | null, 
/**
 * The full 12-bit discriminator (QR label only).
 */
discriminator: number | null, 
/**
 * Its top 4 bits (both kinds): what a manual code matches on.
 */
short_discriminator: number, 
/**
 * Product code (QR label only).
 */
product_code: number | null, 
/**
 * The device's manual code (QR label only), to print under the QR code.
 */
manual_code: string | null, };

export type LabelImage = { 
/**
 * The QR code as an SVG document (error-correction level M).
 */
svg: string, 
/**
 * The registration ID printed beside it.
 */
registration_id: string, 
/**
 * The manual code printed under it.
 */
manual_code: string, };

export type StepEntry = { 
/**
 * Step name.
 */
step: string, 
/**
 * Start, ms since the attempt started.
 */
started_ms: number, 
/**
 * End.
 */
finished_ms: number, 
/**
 * Starts.
 */
attempts: number, };

export type AttemptEntry = { 
/**
 * Attempt id.
 */
id: number, 
/**
 * The device.
 */
registration_id: string, 
/**
 * Installer identity.
 */
installer: string, 
/**
 * Profile.
 */
profile: string, 
/**
 * Transport.
 */
transport: string, 
/**
 * Batch, if any.
 */
batch_id: string | null, 
/**
 * Position in the batch.
 */
batch_position: number | null, 
/**
 * Start, unix ms.
 */
started_at_ms: number, 
/**
 * End, unix ms; `null` while open.
 */
finished_at_ms: number | null, 
/**
 * `succeeded`, `failed`, `interrupted`, or `null` while open.
 */
outcome: string | null, 
/**
 * `confirmed` or `queued`.
 */
confirmation: string | null, 
/**
 * DPS instance.
 */
dps_instance: string | null, 
/**
 * DPS ID scope.
 */
id_scope: string | null, 
/**
 * Assigned hub.
 */
assigned_hub: string | null, 
/**
 * Device ID.
 */
device_id: string | null, 
/**
 * Error code.
 */
error_code: string | null, 
/**
 * Error message.
 */
error_message: string | null, 
/**
 * Whether the failure is retryable.
 */
retryable: boolean | null, 
/**
 * Duration, ms.
 */
total_ms: number | null, 
/**
 * ATT MTU.
 */
mtu: number | null, 
/**
 * Resumes.
 */
resumes: number | null, 
/**
 * Link counters.
 */
link: LinkTotals | null, 
/**
 * Re-check note.
 */
recheck: string | null, 
/**
 * Step timings.
 */
steps: Array<StepEntry>, };

export type HistoryQuery = { 
/**
 * Only this device.
 */
registration_id: string | null, 
/**
 * Only this batch.
 */
batch_id: string | null, 
/**
 * At most this many.
 */
limit: number | null, };

export type ExportFormat = "csv" | "json";

export type ExportResult = { 
/**
 * The file written.
 */
path: string, 
/**
 * Attempts in it.
 */
count: number, 
/**
 * Its size.
 */
bytes: number, };

export type BatchItemStatus = "pending" | "in_flight" | "succeeded" | "failed";

export type BatchTally = { 
/**
 * Not started.
 */
pending: number, 
/**
 * In flight.
 */
in_flight: number, 
/**
 * Commissioned.
 */
succeeded: number, 
/**
 * Failed.
 */
failed: number, };

export type BatchEntry = { 
/**
 * Batch id.
 */
id: string, 
/**
 * Creation, unix ms.
 */
created_at_ms: number, 
/**
 * Installer identity.
 */
installer: string, 
/**
 * Profile.
 */
profile: string, 
/**
 * Where its labels came from.
 */
source: string, 
/**
 * When its last run left nothing to do, unix ms.
 */
closed_at_ms: number | null, 
/**
 * Item counts.
 */
counts: BatchTally, };

export type BatchItemEntry = { 
/**
 * Position in the batch.
 */
position: number, 
/**
 * The device.
 */
registration_id: string, 
/**
 * Status.
 */
status: BatchItemStatus, 
/**
 * Attempts started.
 */
attempts: number, 
/**
 * Error code of the last failure.
 */
error_code: string | null, 
/**
 * Whether that failure is retryable.
 */
retryable: boolean | null, 
/**
 * `confirmed`/`queued` once succeeded.
 */
confirmation: string | null, };

export type BatchRequest = { 
/**
 * The onboarding codes (QR label text or manual codes), one per device. Blank entries and
 * `#` comments are ignored.
 */
labels: Array<string>, 
/**
 * How many devices to commission at once (1..=32).
 */
concurrency: number, 
/**
 * The file the labels were read from, if any (recorded so a resume can name it).
 */
source_path: string | null, };

export type BatchEvent = { "kind": "planned", 
/**
 * The journal's batch id.
 */
batch_id: string, 
/**
 * The devices, in order (registration ID, or `null` for a manual code).
 */
registration_ids: Array<string | null>, } | { "kind": "started", 
/**
 * Position in the batch.
 */
position: number, } | { "kind": "progress", 
/**
 * Position in the batch.
 */
position: number, 
/**
 * The event.
 */
update: ProgressUpdate, } | { "kind": "succeeded", 
/**
 * Position in the batch.
 */
position: number, 
/**
 * The result.
 */
result: CommissionResult, } | { "kind": "failed", 
/**
 * Position in the batch.
 */
position: number, 
/**
 * Why.
 */
error: CommandError, } | { "kind": "skipped", 
/**
 * Position in the batch.
 */
position: number, };

export type BatchSummary = { 
/**
 * The journal's batch id.
 */
batch_id: string, 
/**
 * Item counts after the run.
 */
counts: BatchTally, 
/**
 * Whether the run was cancelled.
 */
cancelled: boolean, 
/**
 * Wall time of the run, ms.
 */
total_ms: number, };

export type Theme = "system" | "light" | "dark";

export type SiteKind = "bluetooth" | "simulator" | "sandbox";

export type Profile = { 
/**
 * Unique name.
 */
name: string, 
/**
 * The organisation (tenant) shown at sign-in.
 */
organisation: string, 
/**
 * Real radio and API, or the built-in simulator.
 */
site: SiteKind, 
/**
 * Provisioning API base URL (`https://...`; `http://` only to loopback).
 */
api_url: string | null, 
/**
 * OIDC issuer URL.
 */
issuer: string | null, 
/**
 * OIDC client id registered for the desktop app.
 */
client_id: string | null, 
/**
 * An extra CA certificate (PEM) to trust for this profile's servers.
 */
ca_file: string | null, 
/**
 * The `fieldlink sandbox up` manifest this profile came from, if any.
 */
sandbox_manifest: string | null, };

export type Settings = { 
/**
 * The profiles.
 */
profiles: Array<Profile>, 
/**
 * The profile in use.
 */
active_profile: string | null, 
/**
 * The Bluetooth adapter (`hci0`, or an address); `null` takes the first powered one.
 */
ble_adapter: string | null, 
/**
 * Colour scheme.
 */
theme: Theme, 
/**
 * Devices commissioned at once in a batch.
 */
batch_concurrency: number, };

export type SignInMethod = "browser" | "device_code" | "local" | "restored";

export type SessionInfo = { 
/**
 * The profile.
 */
profile: string, 
/**
 * The organisation.
 */
organisation: string, 
/**
 * Who (`sub`/e-mail, or `local:<user>`).
 */
identity: string, 
/**
 * How.
 */
method: SignInMethod, 
/**
 * When the session expires, unix ms.
 */
expires_at_ms: number | null, };

export type SignInEvent = { "kind": "browser_opened", 
/**
 * The authorization URL (shown so it can be copied when no browser opened).
 */
url: string, } | { "kind": "device_code", 
/**
 * The code to type.
 */
user_code: string, 
/**
 * Where to type it.
 */
verification_uri: string, 
/**
 * The same with the code filled in (for a QR code), if the issuer gives one.
 */
verification_uri_complete: string | null, 
/**
 * Seconds until the code expires.
 */
expires_in_s: number, };

export type AdapterInfo = { 
/**
 * Short name (`hci0`).
 */
name: string, 
/**
 * Address, when known.
 */
address: string | null, 
/**
 * Whether it is powered on.
 */
powered: boolean, };

export type AppInfo = { 
/**
 * App version.
 */
version: string, 
/**
 * Whether the built-in simulator is compiled in.
 */
simulator_available: boolean, 
/**
 * Whether this build can open `fieldlink sandbox up` manifests.
 */
sandbox_available: boolean, 
/**
 * Whether sign-in with an OIDC issuer is available.
 */
sign_in_available: boolean, 
/**
 * Whether this build can reach a provisioning API.
 */
api_client_available: boolean, 
/**
 * Where the commissioning journal lives.
 */
journal_path: string, 
/**
 * Where the settings live.
 */
settings_path: string, };

export type SiteLabel = { 
/**
 * Registration ID.
 */
registration_id: string, 
/**
 * The QR label text.
 */
label: string, };

