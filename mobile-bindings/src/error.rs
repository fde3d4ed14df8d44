//! Errors as the apps see them.
//!
//! [`FieldlinkError`] is a flat enum: one variant per stable code of the core's public error
//! tier ([`fieldlink_core::CommissionError::code`]), and every variant carries the same fields
//! (the snake_case `code`, the core's actionable message as `reason`, `retryable`,
//! `retry_after_ms` and the variant's details as JSON). Apps branch on the variant (Kotlin
//! `is FieldlinkException.WrongPop`, Swift `case .WrongPop`, Python `except
//! FieldlinkError.WrongPop`) and show `reason`.
//!
//! [`BleLinkError`] and [`SecretStoreError`] are what the apps' own implementations of the
//! foreign traits return; they are mapped onto the core's internal error types here.

use fieldlink_core::{
    CommissionError,
    api_client::{ApiClientError, ConfigError},
    assignment::ServiceError,
    auth::AuthError,
    journal::JournalError,
    transport::TransportError,
};

macro_rules! fieldlink_error {
    ($( $(#[doc = $doc:literal])* $variant:ident = $code:literal, )*) => {
        /// A failure, with the core's stable code and actionable message.
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
        pub enum FieldlinkError {
            $(
                $(#[doc = $doc])*
                #[error("{reason}")]
                $variant {
                    /// The stable snake_case code (never changes once released).
                    code: String,
                    /// Actionable, human-readable message (English).
                    reason: String,
                    /// Whether running the same operation again, unchanged, may succeed.
                    retryable: bool,
                    /// How long to wait before retrying, when the device or a server said so.
                    retry_after_ms: Option<u64>,
                    /// The variant's fields as a JSON object (stable snake_case keys).
                    details_json: String,
                },
            )*
        }

        impl FieldlinkError {
            /// Builds the variant for `code` (`Other` for a code these bindings do not know).
            fn from_parts(
                code: &str,
                reason: String,
                retryable: bool,
                retry_after_ms: Option<u64>,
                details_json: String,
            ) -> Self {
                let code_owned = code.to_owned();
                match code {
                    $( $code => Self::$variant {
                        code: code_owned, reason, retryable, retry_after_ms, details_json,
                    }, )*
                    _ => Self::Other {
                        code: code_owned, reason, retryable, retry_after_ms, details_json,
                    },
                }
            }

            /// The stable snake_case code.
            pub fn code(&self) -> &str {
                match self {
                    $( Self::$variant { code, .. } => code, )*
                }
            }

            /// The actionable message.
            pub fn reason(&self) -> &str {
                match self {
                    $( Self::$variant { reason, .. } => reason, )*
                }
            }
        }
    };
}

fieldlink_error! {
    /// The PoP or manual code is wrong (`details`: attempt, max).
    WrongPop = "wrong_pop",
    /// The device refuses handshakes for a while after too many wrong attempts.
    DeviceLocked = "device_locked",
    /// No device with the label's discriminator was seen.
    DeviceNotFound = "device_not_found",
    /// The device is in a session with another installer.
    DeviceBusy = "device_busy",
    /// Bluetooth is off, missing or not permitted (the app's `BleLink` said so).
    BluetoothUnavailable = "bluetooth_unavailable",
    /// The BLE link dropped (`details`: step, retryable).
    LinkLost = "link_lost",
    /// A step did not finish within its deadline (`details`: step).
    Timeout = "timeout",
    /// The device refused the commissioning ticket (`details`: reason).
    TicketRejected = "ticket_rejected",
    /// DPS refused the device's registration (`details`: dps).
    RegistrationFailed = "registration_failed",
    /// The device could not reach DPS during registration: the site's network (retryable;
    /// `details`: dps).
    DpsUnreachable = "dps_unreachable",
    /// DPS kept throttling the device's registration (retryable; `details`: dps).
    DpsThrottled = "dps_throttled",
    /// DPS refused the device's credential (HTTP 401/403): its enrollment needs fixing (not
    /// retryable; `details`: dps).
    DpsUnauthorized = "dps_unauthorized",
    /// DPS does not know the ID scope or enrollment the ticket names (HTTP 404; not retryable;
    /// `details`: dps).
    DpsNotFound = "dps_not_found",
    /// The device's report and the provisioning service's view disagree.
    ConfirmationMismatch = "confirmation_mismatch",
    /// The provisioning service could not be reached or failed.
    ApiUnavailable = "api_unavailable",
    /// A server asked to slow down (`retry_after_ms`).
    Throttled = "throttled",
    /// The app cancelled (a `CancelHandle`, or the calling coroutine/task was cancelled).
    Cancelled = "cancelled",
    /// The QR label or manual code could not be parsed (`details`: field, reason).
    InvalidPayload = "invalid_payload",
    /// The device could not join the network it was given (`details`: kind).
    NetworkJoinFailed = "network_join_failed",
    /// The device speaks an incompatible protocol version.
    IncompatibleDevice = "incompatible_device",
    /// Not signed in, or the session expired.
    Unauthorized = "unauthorized",
    /// The signed-in user may not do this.
    Forbidden = "forbidden",
    /// A bug or an unexpected condition.
    Internal = "internal",
    /// No stored sign-in for this profile: sign in.
    NotSignedIn = "not_signed_in",
    /// The sign-in ended (refresh refused, revoked): sign in again.
    SessionExpired = "session_expired",
    /// The user or the issuer denied the sign-in.
    AccessDenied = "access_denied",
    /// The device code or browser sign-in ran out of time.
    SignInExpired = "sign_in_expired",
    /// The identity provider is unreachable (retryable).
    IssuerUnavailable = "issuer_unavailable",
    /// The identity provider's configuration is unusable.
    DiscoveryFailed = "discovery_failed",
    /// The identity provider refused with an OAuth error.
    IssuerRejected = "issuer_rejected",
    /// The identity provider lacks a needed capability (e.g. the device grant).
    Unsupported = "unsupported",
    /// The browser redirect is not the one this sign-in expects (state, issuer, shape).
    InvalidRedirect = "invalid_redirect",
    /// The profile is incomplete or malformed.
    InvalidProfile = "invalid_profile",
    /// A URL is refused (plain HTTP outside loopback).
    InsecureUrl = "insecure_url",
    /// The app's secret store is locked or unavailable.
    KeyringUnavailable = "keyring_unavailable",
    /// The history database failed (disk full, corrupt file).
    JournalError = "journal_error",
    /// The history database cannot be opened (bad path, no permission).
    JournalUnavailable = "journal_unavailable",
    /// The history database was written by a newer fieldlink.
    JournalTooNew = "journal_too_new",
    /// An argument from the app is malformed (a URL, a BSSID, a UUID); the only code the
    /// bindings add to the core's.
    InvalidArgument = "invalid_argument",
    /// A code newer than these bindings; `code` names it.
    Other = "other",
}

impl FieldlinkError {
    /// An `invalid_argument` error naming `what`.
    pub(crate) fn invalid_argument(what: impl std::fmt::Display) -> Self {
        Self::from_parts(
            "invalid_argument",
            format!("invalid argument: {what}"),
            false,
            None,
            "{}".into(),
        )
    }
}

impl From<&CommissionError> for FieldlinkError {
    fn from(error: &CommissionError) -> Self {
        let view = error.view();
        let retry_after_ms = error
            .retry_after()
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self::from_parts(
            view.code,
            view.message,
            view.retryable,
            retry_after_ms,
            view.details.to_string(),
        )
    }
}

impl From<CommissionError> for FieldlinkError {
    fn from(error: CommissionError) -> Self {
        Self::from(&error)
    }
}

impl From<JournalError> for FieldlinkError {
    fn from(error: JournalError) -> Self {
        Self::from_parts(error.code(), error.to_string(), false, None, "{}".into())
    }
}

impl From<AuthError> for FieldlinkError {
    fn from(error: AuthError) -> Self {
        Self::from_parts(
            error.code(),
            error.to_string(),
            error.is_retryable(),
            None,
            "{}".into(),
        )
    }
}

impl From<ConfigError> for FieldlinkError {
    fn from(error: ConfigError) -> Self {
        Self::from_parts(error.code(), error.to_string(), false, None, "{}".into())
    }
}

impl FieldlinkError {
    /// A provisioning-API failure about `registration_id`, mapped by the core.
    pub(crate) fn from_api(error: &ApiClientError, registration_id: &str) -> Self {
        Self::from(&error.to_commission_error(registration_id))
    }
}

impl From<&ServiceError> for FieldlinkError {
    /// The core's mapping, the one a commissioning applies.
    fn from(error: &ServiceError) -> Self {
        Self::from(&error.to_commission_error())
    }
}

/// What an app's `BleLink` reports when a platform call fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum BleLinkError {
    /// Bluetooth is off, absent, or the app lacks the permission.
    #[error("bluetooth unavailable: {detail}")]
    Unavailable {
        /// What the platform said.
        detail: String,
    },
    /// The peripheral is not known (any more).
    #[error("peripheral not found: {detail}")]
    NotFound {
        /// What the platform said.
        detail: String,
    },
    /// The platform call did not finish in time.
    #[error("timed out")]
    Timeout,
    /// The link is down.
    #[error("disconnected")]
    Disconnected,
    /// Anything else (GATT status codes, service not found, ...).
    #[error("platform error: {detail}")]
    Platform {
        /// What the platform said.
        detail: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for BleLinkError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Platform {
            detail: error.reason,
        }
    }
}

impl BleLinkError {
    /// The core's transport error for this failure; `peripheral` names the device.
    pub(crate) fn into_transport(self, peripheral: &str) -> TransportError {
        match self {
            Self::Unavailable { detail } => TransportError::Unavailable(detail),
            Self::NotFound { .. } => TransportError::NotFound(
                fieldlink_core::transport::PeripheralId(peripheral.to_owned()),
            ),
            Self::Timeout => TransportError::Timeout,
            Self::Disconnected => TransportError::Disconnected,
            Self::Platform { detail } => TransportError::Platform(detail),
        }
    }
}

impl From<TransportError> for BleLinkError {
    fn from(error: TransportError) -> Self {
        match error {
            TransportError::Unavailable(detail) => Self::Unavailable { detail },
            TransportError::NotFound(id) => Self::NotFound { detail: id.0 },
            TransportError::Timeout => Self::Timeout,
            TransportError::Disconnected => Self::Disconnected,
            TransportError::Platform(detail) => Self::Platform { detail },
            other @ TransportError::FrameTooLarge { .. } => Self::Platform {
                detail: other.to_string(),
            },
        }
    }
}

/// What an app's `SecretStore` reports when the platform store fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum SecretStoreError {
    /// The store is locked or not available (device locked, no user authentication).
    #[error("secret store unavailable: {detail}")]
    Unavailable {
        /// What the platform said.
        detail: String,
    },
    /// Anything else the platform reported.
    #[error("secret store failed: {detail}")]
    Platform {
        /// What the platform said.
        detail: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for SecretStoreError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Platform {
            detail: error.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fieldlink_core::error::{NetworkFailureKind, Step};

    use super::*;

    fn dps_failure() -> fieldlink_core::error::DpsFailure {
        fieldlink_core::error::DpsFailure {
            status: "failed".into(),
            error_code: None,
            error_message: Some("dps_unreachable: connection refused".into()),
        }
    }

    fn every_core_error() -> Vec<CommissionError> {
        vec![
            CommissionError::WrongPop { attempt: 2, max: 5 },
            CommissionError::DeviceLocked {
                retry_after: Duration::from_secs(30),
            },
            CommissionError::DeviceNotFound {
                discriminator: 0xabc,
            },
            CommissionError::DeviceBusy,
            CommissionError::BluetoothUnavailable {
                detail: "off".into(),
            },
            CommissionError::LinkLost {
                step: Step::Handshaking,
                retryable: true,
            },
            CommissionError::Timeout {
                step: Step::Scanning,
            },
            CommissionError::TicketRejected {
                reason: fieldlink_core::error::TicketRejection::Expired,
            },
            CommissionError::RegistrationFailed {
                dps: fieldlink_core::error::DpsFailure {
                    status: "failed".into(),
                    error_code: Some(401002),
                    error_message: None,
                },
            },
            CommissionError::DpsUnreachable { dps: dps_failure() },
            CommissionError::DpsThrottled { dps: dps_failure() },
            CommissionError::DpsUnauthorized { dps: dps_failure() },
            CommissionError::DpsNotFound { dps: dps_failure() },
            CommissionError::ConfirmationMismatch {
                device: "a".into(),
                service: "b".into(),
            },
            CommissionError::ApiUnavailable { detail: "x".into() },
            CommissionError::Throttled {
                retry_after: Some(Duration::from_millis(1500)),
            },
            CommissionError::Cancelled,
            CommissionError::InvalidPayload {
                field: "pop".into(),
                reason: "short".into(),
            },
            CommissionError::NetworkJoinFailed {
                kind: NetworkFailureKind::WifiAuthFailed,
            },
            CommissionError::IncompatibleDevice {
                detail: "v9".into(),
            },
            CommissionError::Unauthorized,
            CommissionError::Forbidden,
            CommissionError::Internal { detail: "x".into() },
        ]
    }

    #[test]
    fn every_core_code_has_its_own_variant() {
        for core in every_core_error() {
            let mapped = FieldlinkError::from(&core);
            assert_eq!(mapped.code(), core.code());
            assert_eq!(mapped.reason(), core.to_string());
            assert!(
                !matches!(mapped, FieldlinkError::Other { .. }),
                "{} fell through to Other",
                core.code()
            );
        }
    }

    #[test]
    fn dps_codes_keep_their_retryability_and_details() {
        let cases = [
            (CommissionError::DpsUnreachable { dps: dps_failure() }, true),
            (CommissionError::DpsThrottled { dps: dps_failure() }, true),
            (
                CommissionError::DpsUnauthorized { dps: dps_failure() },
                false,
            ),
            (CommissionError::DpsNotFound { dps: dps_failure() }, false),
        ];
        for (core, retryable) in cases {
            let mapped = FieldlinkError::from(&core);
            let (FieldlinkError::DpsUnreachable {
                code,
                retryable: mapped_retryable,
                details_json,
                ..
            }
            | FieldlinkError::DpsThrottled {
                code,
                retryable: mapped_retryable,
                details_json,
                ..
            }
            | FieldlinkError::DpsUnauthorized {
                code,
                retryable: mapped_retryable,
                details_json,
                ..
            }
            | FieldlinkError::DpsNotFound {
                code,
                retryable: mapped_retryable,
                details_json,
                ..
            }) = &mapped
            else {
                panic!("{} is not a DPS variant: {mapped:?}", core.code());
            };
            assert_eq!(code, core.code());
            assert_eq!(*mapped_retryable, retryable, "{code}");
            let details: serde_json::Value = serde_json::from_str(details_json).unwrap();
            assert_eq!(details["dps"]["status"], "failed", "{code}");
        }
    }

    #[test]
    fn wrong_pop_keeps_message_details_and_retryability() {
        let mapped = FieldlinkError::from(CommissionError::WrongPop { attempt: 2, max: 5 });
        let FieldlinkError::WrongPop {
            reason,
            retryable,
            details_json,
            ..
        } = &mapped
        else {
            panic!("{mapped:?}");
        };
        assert!(reason.starts_with("wrong proof-of-possession (attempt 2 of 5)"));
        assert!(!retryable);
        let details: serde_json::Value = serde_json::from_str(details_json).unwrap();
        assert_eq!(details["attempt"], 2);
        assert_eq!(details["max"], 5);
        assert_eq!(mapped.to_string(), *reason);
    }

    #[test]
    fn retry_after_is_in_milliseconds() {
        let locked = FieldlinkError::from(CommissionError::DeviceLocked {
            retry_after: Duration::from_secs(30),
        });
        assert!(matches!(
            locked,
            FieldlinkError::DeviceLocked {
                retry_after_ms: Some(30_000),
                retryable: true,
                ..
            }
        ));
        let throttled = FieldlinkError::from(CommissionError::Throttled {
            retry_after: Some(Duration::from_millis(1500)),
        });
        assert!(matches!(
            throttled,
            FieldlinkError::Throttled {
                retry_after_ms: Some(1500),
                ..
            }
        ));
    }

    #[test]
    fn service_errors_take_the_cores_commissioning_mapping() {
        let throttled = FieldlinkError::from(&ServiceError::Throttled {
            retry_after: Some(Duration::from_secs(2)),
        });
        assert!(matches!(
            throttled,
            FieldlinkError::Throttled {
                retry_after_ms: Some(2_000),
                retryable: true,
                ..
            }
        ));
        let unknown = FieldlinkError::from(&ServiceError::UnknownRegistration {
            registration_id: "sensor-9".into(),
        });
        assert!(
            matches!(&unknown, FieldlinkError::InvalidPayload { reason, .. } if reason.contains("sensor-9")),
            "{unknown:?}"
        );
        assert!(matches!(
            FieldlinkError::from(&ServiceError::Invalid { detail: "x".into() }),
            FieldlinkError::ApiUnavailable { .. }
        ));
    }

    #[test]
    fn unknown_codes_land_in_other_with_their_code() {
        let error = FieldlinkError::from_parts("brand_new", "x".into(), false, None, "{}".into());
        assert!(matches!(error, FieldlinkError::Other { .. }));
        assert_eq!(error.code(), "brand_new");
    }

    #[test]
    fn ble_link_errors_map_onto_transport_errors_and_back() {
        let cases = [
            BleLinkError::Unavailable {
                detail: "off".into(),
            },
            BleLinkError::NotFound {
                detail: "aa".into(),
            },
            BleLinkError::Timeout,
            BleLinkError::Disconnected,
            BleLinkError::Platform {
                detail: "gatt 133".into(),
            },
        ];
        for case in cases {
            let transport = case.clone().into_transport("aa");
            assert_eq!(BleLinkError::from(transport), case);
        }
        let unexpected = BleLinkError::from(uniffi::UnexpectedUniFFICallbackError {
            reason: "ValueError".into(),
        });
        assert!(matches!(unexpected, BleLinkError::Platform { detail } if detail == "ValueError"));
    }
}
