//! The public error tier.
//!
//! Every failure a shell can see is a [`CommissionError`]: a flat enum whose variants carry only
//! what an installer can act on, each with a stable snake_case [`code`](CommissionError::code),
//! an actionable message and a [`retryable`](CommissionError::retryable) flag. Shells that cross
//! a serialisation boundary (Tauri, `--json`) use [`ErrorView`]. Internal module errors are folded
//! into this type in exactly one place, the private `failure` module.

use std::{fmt, time::Duration};

use serde::Serialize;
use serde_json::{Value, json};

/// A step of one commissioning, as reported in progress events and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Looking for the device's advertisement.
    Scanning,
    /// Opening the BLE link.
    Connecting,
    /// PAKE handshake (round trip 1).
    Handshaking,
    /// Waiting for the signed ticket from the assignment source.
    AwaitingAssignment,
    /// Pushing the ticket and network config (round trip 2).
    Provisioning,
    /// The device is joining the network.
    JoiningNetwork,
    /// The device is registering with DPS.
    Registering,
    /// Comparing the device's report with the registration-status source.
    Confirming,
}

impl Step {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Scanning => "scanning",
            Step::Connecting => "connecting",
            Step::Handshaking => "handshaking",
            Step::AwaitingAssignment => "awaiting_assignment",
            Step::Provisioning => "provisioning",
            Step::JoiningNetwork => "joining_network",
            Step::Registering => "registering",
            Step::Confirming => "confirming",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the device refused the ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketRejection {
    /// The signature does not verify against the device's trust anchors.
    BadSignature,
    /// The ticket's key id is not among the device's trust anchors.
    UnknownKey,
    /// The ticket's validity window has passed.
    Expired,
    /// The ticket's validity window has not started (clock skew).
    NotYetValid,
    /// The device has already consumed this ticket's nonce.
    Replayed,
    /// The ticket names another registration ID.
    WrongDevice,
    /// The ticket could not be decoded.
    Malformed,
}

impl TicketRejection {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketRejection::BadSignature => "bad_signature",
            TicketRejection::UnknownKey => "unknown_key",
            TicketRejection::Expired => "expired",
            TicketRejection::NotYetValid => "not_yet_valid",
            TicketRejection::Replayed => "replayed",
            TicketRejection::WrongDevice => "wrong_device",
            TicketRejection::Malformed => "malformed",
        }
    }

    fn advice(self) -> &'static str {
        match self {
            TicketRejection::BadSignature | TicketRejection::UnknownKey => {
                "the device does not trust this provisioning service; check the tenant and the \
                 device's trust anchors"
            }
            TicketRejection::Expired | TicketRejection::Replayed => {
                "fetch a fresh ticket and retry"
            }
            TicketRejection::NotYetValid => {
                "check the device's and the server's clocks, then retry"
            }
            TicketRejection::WrongDevice => {
                "the ticket is for another device; check that the scanned label matches the device"
            }
            TicketRejection::Malformed => "the ticket is corrupt; fetch a fresh one",
        }
    }

    /// A fresh ticket may succeed.
    fn retryable(self) -> bool {
        matches!(
            self,
            TicketRejection::Expired | TicketRejection::NotYetValid | TicketRejection::Replayed
        )
    }
}

/// The typed reason a device failed to join the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkFailureKind {
    /// Wi-Fi authentication failed: almost always a wrong passphrase.
    WifiAuthFailed,
    /// The SSID was not seen (out of range, wrong SSID, 5 GHz-only network).
    NetworkNotFound,
    /// Associated, but no IP address was leased.
    DhcpFailed,
    /// Got an IP address, but the internet is not reachable (captive portal, firewall).
    NoInternet,
    /// The internet is reachable, but the DPS endpoint is not.
    DpsUnreachable,
    /// The device has no interface for that kind of network.
    Unsupported,
}

impl NetworkFailureKind {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkFailureKind::WifiAuthFailed => "wifi_auth_failed",
            NetworkFailureKind::NetworkNotFound => "network_not_found",
            NetworkFailureKind::DhcpFailed => "dhcp_failed",
            NetworkFailureKind::NoInternet => "no_internet",
            NetworkFailureKind::DpsUnreachable => "dps_unreachable",
            NetworkFailureKind::Unsupported => "network_unsupported",
        }
    }

    fn advice(self) -> &'static str {
        match self {
            NetworkFailureKind::WifiAuthFailed => {
                "Wi-Fi authentication failed: re-enter the passphrase and retry"
            }
            NetworkFailureKind::NetworkNotFound => {
                "the network was not found: check the SSID, or move the device closer to the \
                 access point"
            }
            NetworkFailureKind::DhcpFailed => {
                "the device joined but got no IP address: check the network's DHCP server"
            }
            NetworkFailureKind::NoInternet => {
                "the device is on the network but cannot reach the internet: check for a captive \
                 portal or firewall"
            }
            NetworkFailureKind::DpsUnreachable => {
                "the device is online but cannot reach Azure DPS: allow outbound HTTPS to the DPS \
                 endpoint"
            }
            NetworkFailureKind::Unsupported => {
                "the device has no interface for that kind of network: pick one from its \
                 capabilities"
            }
        }
    }
}

/// DPS's own account of a failed registration, as reported by the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DpsFailure {
    /// DPS `status` (`failed`, `disabled`, ...).
    pub status: String,
    /// DPS `errorCode`, when given (for example 401002).
    pub error_code: Option<u32>,
    /// DPS `errorMessage`, when given.
    pub error_message: Option<String>,
}

impl DpsFailure {
    fn retryable(&self) -> bool {
        self.error_code
            .is_some_and(|code| matches!(code / 1000, 429 | 500..=599))
    }
}

impl fmt::Display for DpsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "status {}", self.status)?;
        if let Some(code) = self.error_code {
            write!(f, ", error {code}")?;
        }
        if let Some(message) = &self.error_message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

/// Every failure of a commissioning as a shell sees it.
///
/// Match on the variant (or on [`code`](Self::code)), never on the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommissionError {
    /// The device's key confirmation did not match: the PoP or manual code is wrong.
    #[error(
        "wrong proof-of-possession (attempt {attempt} of {max}): rescan the device's QR label or \
         re-enter the manual code"
    )]
    WrongPop {
        /// This attempt's number, counted by the device.
        attempt: u8,
        /// Attempts allowed before the device locks.
        max: u8,
    },
    /// The device refuses handshakes after too many wrong attempts.
    #[error(
        "device locked after too many wrong proof-of-possession attempts: retry in {} s",
        retry_after.as_secs()
    )]
    DeviceLocked {
        /// How long until the device accepts a handshake again.
        retry_after: Duration,
    },
    /// No device with the label's discriminator was seen.
    #[error(
        "device not found: nothing advertised discriminator {discriminator:#05x}; check that it \
         is powered, in range and not already commissioned"
    )]
    DeviceNotFound {
        /// The discriminator searched for.
        discriminator: u16,
    },
    /// Bluetooth is off, missing or not permitted on the installer's machine.
    #[error("Bluetooth unavailable ({detail}): turn Bluetooth on and grant the permission")]
    BluetoothUnavailable {
        /// What the platform said.
        detail: String,
    },
    /// The device is in a session with another installer.
    #[error("device busy with another installer: wait for that session to end, then retry")]
    DeviceBusy,
    /// The BLE link dropped.
    #[error("BLE link lost while {step}{}", if *retryable { "; move closer and retry" } else { "" })]
    LinkLost {
        /// The step that was running.
        step: Step,
        /// Retrying may succeed.
        retryable: bool,
    },
    /// A step did not finish within its deadline.
    #[error("timed out while {step}: retry; if it persists, power-cycle the device")]
    Timeout {
        /// The step that ran out of time.
        step: Step,
    },
    /// The device refused the commissioning ticket.
    #[error("device rejected the ticket ({}): {}", reason.as_str(), reason.advice())]
    TicketRejected {
        /// Why.
        reason: TicketRejection,
    },
    /// DPS refused the device's registration.
    #[error("DPS registration failed ({dps}): check the enrollment for this registration ID")]
    RegistrationFailed {
        /// DPS's own account.
        dps: DpsFailure,
    },
    /// The device could not reach DPS (connection, TLS or timeouts) during registration.
    #[error(
        "the device cannot reach DPS ({dps}): check that the site's network lets the device          make HTTPS (port 443) connections to the DPS global endpoint, then retry"
    )]
    DpsUnreachable {
        /// What the device saw.
        dps: DpsFailure,
    },
    /// DPS refused the device's credential (HTTP 401/403).
    #[error(
        "DPS refused the device's credential ({dps}): check its enrollment in the DPS instance          the ticket names (enrollment group or individual enrollment, key, enabled); retrying          will not help until it is fixed"
    )]
    DpsUnauthorized {
        /// What DPS said.
        dps: DpsFailure,
    },
    /// DPS does not know the ID scope or enrollment the ticket names (HTTP 404).
    #[error(
        "DPS does not know the ID scope or enrollment the ticket names ({dps}): the provisioning          service's DPS instance list may be out of date; tell an administrator"
    )]
    DpsNotFound {
        /// What DPS said.
        dps: DpsFailure,
    },
    /// DPS kept throttling the device's registration until the device gave up.
    #[error("DPS is throttling registrations ({dps}): retry in a minute")]
    DpsThrottled {
        /// What the device saw.
        dps: DpsFailure,
    },
    /// The device's report and the provisioning API's view of DPS disagree.
    #[error(
        "confirmation failed: the device reports {device} but the provisioning service reports \
         {service}; do not hand the device over, and contact support"
    )]
    ConfirmationMismatch {
        /// What the device reported (`status hub/device`).
        device: String,
        /// What the registration-status source reported.
        service: String,
    },
    /// The provisioning API could not be reached or failed.
    #[error("provisioning service unavailable ({detail}): check connectivity and retry")]
    ApiUnavailable {
        /// A short, secret-free description.
        detail: String,
    },
    /// A server asked us to slow down.
    #[error("throttled by the service: retry{}", retry_after.map(|d| format!(" in {} s", d.as_secs())).unwrap_or_default())]
    Throttled {
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// The user or the shell cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The QR label or manual code could not be parsed.
    #[error("invalid onboarding code: {field} {reason}; rescan the label")]
    InvalidPayload {
        /// The field at fault.
        field: String,
        /// Why.
        reason: String,
    },
    /// The device could not join the network it was given.
    #[error("network join failed ({}): {}", kind.as_str(), kind.advice())]
    NetworkJoinFailed {
        /// The typed reason.
        kind: NetworkFailureKind,
    },
    /// The device speaks an incompatible protocol version or broke the protocol.
    #[error("incompatible device ({detail}): update the installer or the device firmware")]
    IncompatibleDevice {
        /// What was wrong.
        detail: String,
    },
    /// The installer's sign-in is missing or expired.
    #[error("not signed in or the session expired: sign in again")]
    Unauthorized,
    /// The signed-in user may not commission this device.
    #[error("not allowed to commission this device: ask an administrator for access")]
    Forbidden,
    /// A bug or an unexpected condition.
    #[error("internal error ({detail}): please report it")]
    Internal {
        /// A short, secret-free description.
        detail: String,
    },
}

impl CommissionError {
    /// The stable snake_case code. Never changes once released.
    pub fn code(&self) -> &'static str {
        match self {
            CommissionError::WrongPop { .. } => "wrong_pop",
            CommissionError::DeviceLocked { .. } => "device_locked",
            CommissionError::DeviceNotFound { .. } => "device_not_found",
            CommissionError::DeviceBusy => "device_busy",
            CommissionError::BluetoothUnavailable { .. } => "bluetooth_unavailable",
            CommissionError::LinkLost { .. } => "link_lost",
            CommissionError::Timeout { .. } => "timeout",
            CommissionError::TicketRejected { .. } => "ticket_rejected",
            CommissionError::RegistrationFailed { .. } => "registration_failed",
            CommissionError::DpsUnreachable { .. } => "dps_unreachable",
            CommissionError::DpsUnauthorized { .. } => "dps_unauthorized",
            CommissionError::DpsNotFound { .. } => "dps_not_found",
            CommissionError::DpsThrottled { .. } => "dps_throttled",
            CommissionError::ConfirmationMismatch { .. } => "confirmation_mismatch",
            CommissionError::ApiUnavailable { .. } => "api_unavailable",
            CommissionError::Throttled { .. } => "throttled",
            CommissionError::Cancelled => "cancelled",
            CommissionError::InvalidPayload { .. } => "invalid_payload",
            CommissionError::NetworkJoinFailed { .. } => "network_join_failed",
            CommissionError::IncompatibleDevice { .. } => "incompatible_device",
            CommissionError::Unauthorized => "unauthorized",
            CommissionError::Forbidden => "forbidden",
            CommissionError::Internal { .. } => "internal",
        }
    }

    /// Whether running the same commissioning again, unchanged (after `retry_after` where
    /// given), may succeed. `false` means a person must change something first.
    pub fn retryable(&self) -> bool {
        match self {
            CommissionError::DeviceLocked { .. }
            | CommissionError::DeviceNotFound { .. }
            | CommissionError::DeviceBusy
            | CommissionError::Timeout { .. }
            | CommissionError::ApiUnavailable { .. }
            | CommissionError::Throttled { .. }
            | CommissionError::DpsUnreachable { .. }
            | CommissionError::DpsThrottled { .. } => true,
            CommissionError::LinkLost { retryable, .. } => *retryable,
            CommissionError::TicketRejected { reason } => reason.retryable(),
            CommissionError::RegistrationFailed { dps } => dps.retryable(),
            CommissionError::NetworkJoinFailed { kind } => !matches!(
                kind,
                NetworkFailureKind::WifiAuthFailed | NetworkFailureKind::Unsupported
            ),
            CommissionError::WrongPop { .. }
            | CommissionError::DpsUnauthorized { .. }
            | CommissionError::DpsNotFound { .. }
            | CommissionError::ConfirmationMismatch { .. }
            | CommissionError::Cancelled
            | CommissionError::InvalidPayload { .. }
            | CommissionError::IncompatibleDevice { .. }
            | CommissionError::BluetoothUnavailable { .. }
            | CommissionError::Unauthorized
            | CommissionError::Forbidden
            | CommissionError::Internal { .. } => false,
        }
    }

    /// How long to wait before retrying, when the device or a server said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CommissionError::DeviceLocked { retry_after } => Some(*retry_after),
            CommissionError::Throttled { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// The variant's fields as JSON, keyed by stable snake_case names.
    fn details(&self) -> Value {
        match self {
            CommissionError::WrongPop { attempt, max } => json!({"attempt": attempt, "max": max}),
            CommissionError::DeviceLocked { retry_after } => {
                json!({"retry_after_s": retry_after.as_secs()})
            }
            CommissionError::DeviceNotFound { discriminator } => {
                json!({"discriminator": discriminator})
            }
            CommissionError::LinkLost { step, retryable } => {
                json!({"step": step, "retryable": retryable})
            }
            CommissionError::Timeout { step } => json!({"step": step}),
            CommissionError::TicketRejected { reason } => json!({"reason": reason}),
            CommissionError::RegistrationFailed { dps }
            | CommissionError::DpsUnreachable { dps }
            | CommissionError::DpsUnauthorized { dps }
            | CommissionError::DpsNotFound { dps }
            | CommissionError::DpsThrottled { dps } => json!({"dps": dps}),
            CommissionError::ConfirmationMismatch { device, service } => {
                json!({"device": device, "service": service})
            }
            CommissionError::ApiUnavailable { detail }
            | CommissionError::IncompatibleDevice { detail }
            | CommissionError::BluetoothUnavailable { detail }
            | CommissionError::Internal { detail } => json!({"detail": detail}),
            CommissionError::Throttled { retry_after } => {
                json!({"retry_after_s": retry_after.map(|d| d.as_secs())})
            }
            CommissionError::InvalidPayload { field, reason } => {
                json!({"field": field, "reason": reason})
            }
            CommissionError::NetworkJoinFailed { kind } => json!({"kind": kind}),
            CommissionError::DeviceBusy
            | CommissionError::Cancelled
            | CommissionError::Unauthorized
            | CommissionError::Forbidden => json!({}),
        }
    }

    /// The serialisable view for shells: `{code, message, retryable, details}`.
    pub fn view(&self) -> ErrorView {
        ErrorView {
            code: self.code(),
            message: self.to_string(),
            retryable: self.retryable(),
            details: self.details(),
        }
    }
}

/// The shape a [`CommissionError`] takes across a serialisation boundary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorView {
    /// Stable snake_case code.
    pub code: &'static str,
    /// Actionable, human-readable message (English).
    pub message: String,
    /// See [`CommissionError::retryable`].
    pub retryable: bool,
    /// The variant's fields.
    pub details: Value,
}

impl From<&CommissionError> for ErrorView {
    fn from(error: &CommissionError) -> Self {
        error.view()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_pop_message_names_attempt_and_max() {
        let error = CommissionError::WrongPop { attempt: 2, max: 5 };
        assert_eq!(error.code(), "wrong_pop");
        assert!(
            error
                .to_string()
                .starts_with("wrong proof-of-possession (attempt 2 of 5)")
        );
        assert!(!error.retryable());
    }

    #[test]
    fn view_serialises_code_message_retryable_details() {
        let error = CommissionError::LinkLost {
            step: Step::Registering,
            retryable: true,
        };
        let value = serde_json::to_value(error.view()).unwrap();
        assert_eq!(value["code"], "link_lost");
        assert_eq!(value["retryable"], true);
        assert_eq!(value["details"]["step"], "registering");
        assert!(
            value["message"]
                .as_str()
                .unwrap()
                .contains("while registering")
        );
    }

    #[test]
    fn retry_after_is_exposed_for_lockout_and_throttling() {
        let locked = CommissionError::DeviceLocked {
            retry_after: Duration::from_secs(30),
        };
        assert_eq!(locked.retry_after(), Some(Duration::from_secs(30)));
        assert!(locked.to_string().contains("retry in 30 s"));
        assert_eq!(locked.view().details["retry_after_s"], 30);
        let throttled = CommissionError::Throttled { retry_after: None };
        assert_eq!(throttled.retry_after(), None);
        assert!(throttled.retryable());
    }

    fn dps() -> DpsFailure {
        DpsFailure {
            status: "unassigned".into(),
            error_code: None,
            error_message: None,
        }
    }

    #[test]
    fn codes_are_unique_snake_case() {
        let errors = [
            CommissionError::WrongPop { attempt: 1, max: 5 },
            CommissionError::DeviceLocked {
                retry_after: Duration::ZERO,
            },
            CommissionError::DeviceNotFound {
                discriminator: 0xabc,
            },
            CommissionError::DeviceBusy,
            CommissionError::BluetoothUnavailable {
                detail: "off".into(),
            },
            CommissionError::LinkLost {
                step: Step::Connecting,
                retryable: true,
            },
            CommissionError::Timeout {
                step: Step::Scanning,
            },
            CommissionError::TicketRejected {
                reason: TicketRejection::Expired,
            },
            CommissionError::RegistrationFailed {
                dps: DpsFailure {
                    status: "failed".into(),
                    error_code: None,
                    error_message: None,
                },
            },
            CommissionError::DpsUnreachable { dps: dps() },
            CommissionError::DpsUnauthorized { dps: dps() },
            CommissionError::DpsNotFound { dps: dps() },
            CommissionError::DpsThrottled { dps: dps() },
            CommissionError::ConfirmationMismatch {
                device: "a".into(),
                service: "b".into(),
            },
            CommissionError::ApiUnavailable { detail: "x".into() },
            CommissionError::Throttled { retry_after: None },
            CommissionError::Cancelled,
            CommissionError::InvalidPayload {
                field: "pop".into(),
                reason: "short".into(),
            },
            CommissionError::NetworkJoinFailed {
                kind: NetworkFailureKind::DhcpFailed,
            },
            CommissionError::IncompatibleDevice {
                detail: "v9".into(),
            },
            CommissionError::Unauthorized,
            CommissionError::Forbidden,
            CommissionError::Internal { detail: "x".into() },
        ];
        let mut codes: Vec<_> = errors.iter().map(CommissionError::code).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'))
        );
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), errors.len());
    }

    #[test]
    fn retryability_follows_the_cause() {
        let expired = CommissionError::TicketRejected {
            reason: TicketRejection::Expired,
        };
        let foreign = CommissionError::TicketRejected {
            reason: TicketRejection::WrongDevice,
        };
        assert!(expired.retryable());
        assert!(!foreign.retryable());
        let auth = CommissionError::NetworkJoinFailed {
            kind: NetworkFailureKind::WifiAuthFailed,
        };
        assert!(!auth.retryable());
        assert!(auth.to_string().contains("passphrase"));
        let throttled_dps = DpsFailure {
            status: "failed".into(),
            error_code: Some(429001),
            error_message: Some("throttled".into()),
        };
        assert!(CommissionError::RegistrationFailed { dps: throttled_dps }.retryable());
        let denied = DpsFailure {
            status: "failed".into(),
            error_code: Some(401002),
            error_message: None,
        };
        assert!(!CommissionError::RegistrationFailed { dps: denied }.retryable());
    }

    #[test]
    fn device_not_found_prints_discriminator_in_hex() {
        let error = CommissionError::DeviceNotFound {
            discriminator: 0xabc,
        };
        assert!(error.to_string().contains("0xabc"), "{error}");
    }
}
