//! The one place where internal errors become public [`CommissionError`]s.
//!
//! Each function takes an internal error of one layer plus the step it happened in.

use std::time::Duration;

use fieldlink_protocol::{framing::FrameError, message::ErrorCode, session::SessionError};

use crate::{
    assignment::ServiceError,
    error::{CommissionError, DpsFailure, Step, TicketRejection},
    transport::TransportError,
    workflow::{report::DeviceRegistration, wire::WireError},
};

/// A transport failure during `step`.
pub(crate) fn transport(error: &TransportError, step: Step) -> CommissionError {
    match error {
        TransportError::Unavailable(detail) => CommissionError::BluetoothUnavailable {
            detail: detail.clone(),
        },
        TransportError::NotFound(_) => CommissionError::LinkLost {
            step,
            retryable: true,
        },
        TransportError::Timeout => CommissionError::Timeout { step },
        TransportError::Disconnected => CommissionError::LinkLost {
            step,
            retryable: true,
        },
        TransportError::FrameTooLarge { .. } => CommissionError::Internal {
            detail: format!("transport: {error}"),
        },
        TransportError::Platform(_) => CommissionError::LinkLost {
            step,
            retryable: true,
        },
    }
}

/// A provisioning-service failure (after retries).
pub(crate) fn service(error: &ServiceError) -> CommissionError {
    match error {
        ServiceError::Unavailable { detail } => CommissionError::ApiUnavailable {
            detail: detail.clone(),
        },
        ServiceError::Throttled { retry_after } => CommissionError::Throttled {
            retry_after: *retry_after,
        },
        ServiceError::Unauthorized => CommissionError::Unauthorized,
        ServiceError::Forbidden => CommissionError::Forbidden,
        ServiceError::UnknownRegistration { registration_id } => CommissionError::InvalidPayload {
            field: "registration_id".into(),
            reason: format!("{registration_id} is not known to the provisioning service"),
        },
        ServiceError::Invalid { detail } => CommissionError::ApiUnavailable {
            detail: detail.clone(),
        },
        // The service's record is in another DPS scope than the ticket: the two sides
        // contradict each other on `id_scope`.
        ServiceError::ScopeMismatch {
            expected, reported, ..
        } => CommissionError::ConfirmationMismatch {
            device: expected.to_string(),
            service: reported.to_string(),
        },
    }
}

/// A failure of framing, decoding or the secure session during `step`.
pub(crate) fn wire(error: &WireError, step: Step) -> CommissionError {
    match error {
        // A lost or corrupted frame on an unreliable link: retrying reconnects cleanly.
        WireError::Frame(FrameError::Timeout | FrameError::Gap { .. }) => {
            CommissionError::LinkLost {
                step,
                retryable: true,
            }
        }
        WireError::Session(SessionError::WrongSecret { .. }) => {
            // Handled as a message; kept here so the mapping is total.
            CommissionError::WrongPop { attempt: 0, max: 0 }
        }
        WireError::Frame(_) | WireError::Message(_) | WireError::Unexpected(_) => {
            CommissionError::IncompatibleDevice {
                detail: error.to_string(),
            }
        }
        WireError::Session(_) => CommissionError::IncompatibleDevice {
            detail: format!("secure session failed: {error}"),
        },
    }
}

/// A typed refusal from the device during `step`.
pub(crate) fn device(
    code: ErrorCode,
    step: Step,
    retry_after: Option<Duration>,
) -> CommissionError {
    let ticket = |reason| CommissionError::TicketRejected { reason };
    match code {
        ErrorCode::TicketMalformed => ticket(TicketRejection::Malformed),
        ErrorCode::TicketBadSignature => ticket(TicketRejection::BadSignature),
        ErrorCode::TicketUnknownKey => ticket(TicketRejection::UnknownKey),
        ErrorCode::TicketExpired => ticket(TicketRejection::Expired),
        ErrorCode::TicketNotYetValid => ticket(TicketRejection::NotYetValid),
        ErrorCode::TicketReplayed => ticket(TicketRejection::Replayed),
        ErrorCode::TicketWrongDevice => ticket(TicketRejection::WrongDevice),
        ErrorCode::DeviceLocked => CommissionError::DeviceLocked {
            retry_after: retry_after.unwrap_or_default(),
        },
        ErrorCode::Busy | ErrorCode::InvalidState => CommissionError::DeviceBusy,
        ErrorCode::WrongPop => CommissionError::WrongPop { attempt: 0, max: 0 },
        ErrorCode::DpsThrottled => CommissionError::Throttled { retry_after },
        ErrorCode::RegistrationFailed => CommissionError::RegistrationFailed {
            dps: DpsFailure {
                status: "failed".into(),
                error_code: None,
                error_message: None,
            },
        },
        ErrorCode::DpsUnreachable => network(crate::error::NetworkFailureKind::DpsUnreachable),
        ErrorCode::WifiAuthFailed => network(crate::error::NetworkFailureKind::WifiAuthFailed),
        ErrorCode::NetworkNotFound => network(crate::error::NetworkFailureKind::NetworkNotFound),
        ErrorCode::DhcpFailed => network(crate::error::NetworkFailureKind::DhcpFailed),
        ErrorCode::NoInternet => network(crate::error::NetworkFailureKind::NoInternet),
        ErrorCode::NetworkUnsupported => network(crate::error::NetworkFailureKind::Unsupported),
        ErrorCode::MalformedMessage | ErrorCode::UnsupportedVersion => {
            CommissionError::IncompatibleDevice {
                detail: format!("device says {}", code.as_str()),
            }
        }
        _ => CommissionError::Internal {
            detail: format!("device error {} during {step}", code.as_str()),
        },
    }
}

fn network(kind: crate::error::NetworkFailureKind) -> CommissionError {
    CommissionError::NetworkJoinFailed { kind }
}

/// A DPS result that is not `assigned`, with the device's typed reason (`DpsResult.failure`):
/// the installer tells "DPS unreachable" from "DPS refused the credential" from "throttled" by
/// that code, never by the message text.
pub(crate) fn registration(
    result: &DeviceRegistration,
    failure: Option<ErrorCode>,
) -> CommissionError {
    let dps = DpsFailure {
        status: result.status.clone(),
        error_code: result.error_code,
        error_message: result.error_message.clone(),
    };
    match failure {
        Some(ErrorCode::DpsUnreachable) => CommissionError::DpsUnreachable { dps },
        Some(ErrorCode::DpsUnauthorized) => CommissionError::DpsUnauthorized { dps },
        Some(ErrorCode::DpsNotFound) => CommissionError::DpsNotFound { dps },
        Some(ErrorCode::DpsThrottled) => CommissionError::DpsThrottled { dps },
        Some(ErrorCode::FailSafeExpired) => CommissionError::Timeout {
            step: Step::Registering,
        },
        Some(ErrorCode::Internal) => CommissionError::Internal {
            detail: format!("the device failed to register: {dps}"),
        },
        // `registration_failed`, a code from a newer device, or none (an older device that
        // also left the message without a code): DPS's own account.
        _ => CommissionError::RegistrationFailed { dps },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::NetworkFailureKind;

    #[test]
    fn device_codes_map_to_public_codes() {
        let expired = device(ErrorCode::TicketExpired, Step::Provisioning, None);
        assert_eq!(
            expired,
            CommissionError::TicketRejected {
                reason: TicketRejection::Expired
            }
        );
        let locked = device(
            ErrorCode::DeviceLocked,
            Step::Handshaking,
            Some(Duration::from_secs(9)),
        );
        assert_eq!(
            locked,
            CommissionError::DeviceLocked {
                retry_after: Duration::from_secs(9)
            }
        );
        let dhcp = device(ErrorCode::DhcpFailed, Step::JoiningNetwork, None);
        assert_eq!(
            dhcp,
            CommissionError::NetworkJoinFailed {
                kind: NetworkFailureKind::DhcpFailed
            }
        );
        let unknown = device(ErrorCode::Unknown(999), Step::Registering, None);
        assert_eq!(unknown.code(), "internal");
        assert!(unknown.to_string().contains("registering"));
    }

    #[test]
    fn service_and_transport_errors_map_to_public_codes() {
        let throttled = service(&ServiceError::Throttled {
            retry_after: Some(Duration::from_secs(4)),
        });
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(4)));
        assert_eq!(service(&ServiceError::Unauthorized).code(), "unauthorized");
        assert_eq!(
            service(&ServiceError::Unavailable {
                detail: "503".into()
            })
            .code(),
            "api_unavailable"
        );
        assert_eq!(
            transport(&TransportError::Timeout, Step::Connecting),
            CommissionError::Timeout {
                step: Step::Connecting
            }
        );
        assert_eq!(
            transport(
                &TransportError::Unavailable("adapter off".into()),
                Step::Scanning
            )
            .code(),
            "bluetooth_unavailable"
        );
        let lost = transport(&TransportError::Disconnected, Step::Registering);
        assert_eq!(
            lost,
            CommissionError::LinkLost {
                step: Step::Registering,
                retryable: true
            }
        );
    }

    #[test]
    fn the_public_methods_apply_the_workflow_mapping() {
        for error in [
            TransportError::Unavailable("bluetooth_off".into()),
            TransportError::NotFound(crate::transport::PeripheralId("AA:BB".into())),
            TransportError::Timeout,
            TransportError::Disconnected,
            TransportError::FrameTooLarge {
                len: 300,
                limit: 244,
            },
            TransportError::Platform("adapter reset".into()),
        ] {
            assert_eq!(
                error.to_commission_error(Step::Scanning),
                transport(&error, Step::Scanning)
            );
        }
        let unknown = ServiceError::UnknownRegistration {
            registration_id: "sensor-1".into(),
        };
        assert_eq!(unknown.to_commission_error(), service(&unknown));
        assert_eq!(unknown.to_commission_error().code(), "invalid_payload");
    }

    #[test]
    fn a_lost_frame_is_a_link_problem_and_garbage_is_an_incompatible_device() {
        let gap = wire(&WireError::Frame(FrameError::Timeout), Step::Registering);
        assert_eq!(gap.code(), "link_lost");
        let garbage = wire(
            &WireError::Unexpected("second DeviceHello"),
            Step::Handshaking,
        );
        assert_eq!(garbage.code(), "incompatible_device");
    }

    #[test]
    fn dps_failure_codes_map_to_their_own_public_codes() {
        let report = DeviceRegistration {
            status: "unassigned".into(),
            assigned_hub: None,
            device_id: None,
            substatus: None,
            error_code: None,
            error_message: Some("whatever the text says".into()),
        };
        let cases = [
            (Some(ErrorCode::DpsUnreachable), "dps_unreachable", true),
            (Some(ErrorCode::DpsUnauthorized), "dps_unauthorized", false),
            (Some(ErrorCode::DpsNotFound), "dps_not_found", false),
            (Some(ErrorCode::DpsThrottled), "dps_throttled", true),
            (Some(ErrorCode::FailSafeExpired), "timeout", true),
            (
                Some(ErrorCode::RegistrationFailed),
                "registration_failed",
                false,
            ),
            (Some(ErrorCode::Unknown(4242)), "registration_failed", false),
            (None, "registration_failed", false),
        ];
        for (failure, code, retryable) in cases {
            let error = registration(&report, failure);
            assert_eq!(error.code(), code, "{failure:?}");
            assert_eq!(error.retryable(), retryable, "{failure:?}");
        }
        let unreachable = registration(&report, Some(ErrorCode::DpsUnreachable)).to_string();
        assert!(unreachable.contains("443"), "{unreachable}");
        let refused = registration(&report, Some(ErrorCode::DpsUnauthorized)).to_string();
        assert!(refused.contains("enrollment"), "{refused}");
    }
}
