//! The one error shape every command returns: `{code, message, retryable, details}`.
//!
//! Commissioning failures keep the core's stable codes ([`CommissionError::view`]); the few
//! failures that only the shell can have (no site configured, a file that cannot be written)
//! get codes of their own, listed in [`ShellError`].

use fieldlink_core::{
    CommissionError, ErrorView, error::Step, journal::JournalError, transport::TransportError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use ts_rs::TS;

/// An error as the UI receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct CommandError {
    /// Stable snake_case code; the UI matches on it, never on the message.
    pub code: String,
    /// Actionable, human-readable message.
    pub message: String,
    /// Whether running the same thing again, unchanged, may succeed.
    pub retryable: bool,
    /// The failure's fields, keyed by stable snake_case names.
    #[ts(type = "Record<string, unknown>")]
    pub details: Value,
}

/// Failures that exist only in the desktop shell (public tier, stable codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    /// Nothing to commission against: no provisioning service for the active profile.
    #[error(
        "no provisioning service is configured for profile {profile:?}: {reason}; open a \
         sandbox manifest or choose another profile in Settings"
    )]
    NotConfigured {
        /// The active profile.
        profile: String,
        /// What is missing.
        reason: String,
    },
    /// This build cannot sign in (the core's sign-in support is missing or the profile has no
    /// issuer).
    #[error("sign-in is not available: {reason}")]
    SignInUnavailable {
        /// Why.
        reason: String,
    },
    /// A settings value is not usable.
    #[error("invalid setting {field}: {reason}")]
    InvalidSetting {
        /// The setting.
        field: String,
        /// Why.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("cannot use the file {path}: {detail}")]
    File {
        /// The file.
        path: String,
        /// What the OS said.
        detail: String,
    },
    /// No running operation has this id (it already finished).
    #[error("no running operation {0}; it may already have finished")]
    UnknownOperation(String),
    /// An operation with this id is already running.
    #[error("operation {0} is already running")]
    OperationRunning(String),
    /// Nothing to ask the registration-status source about.
    #[error(
        "no ticket was fetched for {registration_id} on this computer, so there is nothing to \
         ask the provisioning service about; commission the device first"
    )]
    NoAssignment {
        /// The device.
        registration_id: String,
    },
    /// A batch's labels differ from the ones it was started with.
    #[error(
        "the labels differ from the ones batch {batch_id} was started with; load the same list \
         to resume it"
    )]
    BatchSourceChanged {
        /// The batch.
        batch_id: String,
    },
}

impl ShellError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            ShellError::NotConfigured { .. } => "not_configured",
            ShellError::SignInUnavailable { .. } => "sign_in_unavailable",
            ShellError::InvalidSetting { .. } => "invalid_setting",
            ShellError::File { .. } => "file_error",
            ShellError::UnknownOperation(_) => "unknown_operation",
            ShellError::OperationRunning(_) => "operation_running",
            ShellError::NoAssignment { .. } => "no_assignment",
            ShellError::BatchSourceChanged { .. } => "batch_source_changed",
        }
    }

    fn details(&self) -> Value {
        match self {
            ShellError::NotConfigured { profile, reason } => {
                json!({"profile": profile, "reason": reason})
            }
            ShellError::SignInUnavailable { reason } => json!({"reason": reason}),
            ShellError::InvalidSetting { field, reason } => {
                json!({"field": field, "reason": reason})
            }
            ShellError::File { path, detail } => json!({"path": path, "detail": detail}),
            ShellError::UnknownOperation(id) | ShellError::OperationRunning(id) => {
                json!({"operation_id": id})
            }
            ShellError::NoAssignment { registration_id } => {
                json!({"registration_id": registration_id})
            }
            ShellError::BatchSourceChanged { batch_id } => json!({"batch_id": batch_id}),
        }
    }
}

impl From<ErrorView> for CommandError {
    fn from(view: ErrorView) -> Self {
        let ErrorView {
            code,
            message,
            retryable,
            details,
        } = view;
        Self {
            code: code.to_owned(),
            message,
            retryable,
            details,
        }
    }
}

impl From<CommissionError> for CommandError {
    fn from(error: CommissionError) -> Self {
        error.view().into()
    }
}

impl From<&CommissionError> for CommandError {
    fn from(error: &CommissionError) -> Self {
        error.view().into()
    }
}

impl From<ShellError> for CommandError {
    fn from(error: ShellError) -> Self {
        Self {
            code: error.code().to_owned(),
            message: error.to_string(),
            retryable: false,
            details: error.details(),
        }
    }
}

impl From<JournalError> for CommandError {
    fn from(error: JournalError) -> Self {
        let retryable = matches!(error, JournalError::BatchBusy { .. });
        Self {
            code: error.code().to_owned(),
            message: error.to_string(),
            retryable,
            details: json!({}),
        }
    }
}

/// A transport failure while scanning, in the public tier: the core's own mapping
/// ([`TransportError::to_commission_error`]) at the scanning step.
pub fn scan_failure(error: &TransportError) -> CommissionError {
    error.to_commission_error(Step::Scanning)
}

/// What every command returns.
pub type CommandResult<T> = Result<T, CommandError>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn commission_errors_keep_the_core_codes_and_details() {
        let error: CommandError = CommissionError::WrongPop { attempt: 2, max: 5 }.into();
        assert_eq!(error.code, "wrong_pop");
        assert!(!error.retryable);
        assert_eq!(error.details, json!({"attempt": 2, "max": 5}));
        assert!(error.message.contains("attempt 2 of 5"));
        let locked: CommandError = CommissionError::DeviceLocked {
            retry_after: Duration::from_secs(30),
        }
        .into();
        assert!(locked.retryable);
        assert_eq!(locked.details["retry_after_s"], 30);
    }

    #[test]
    fn shell_errors_have_their_own_stable_codes() {
        let error: CommandError = ShellError::NotConfigured {
            profile: "acme".into(),
            reason: "no API URL".into(),
        }
        .into();
        assert_eq!(error.code, "not_configured");
        assert_eq!(error.details["profile"], "acme");
        assert!(error.message.contains("Settings"));
        let value = serde_json::to_value(&error).unwrap();
        let mut keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["code", "details", "message", "retryable"]);
    }

    #[test]
    fn scan_failures_name_the_scanning_step() {
        let off = scan_failure(&TransportError::Unavailable(
            "bluetooth_off: turn it on".into(),
        ));
        assert_eq!(off.code(), "bluetooth_unavailable");
        let slow = scan_failure(&TransportError::Timeout);
        assert_eq!(CommandError::from(slow).details["step"], "scanning");
    }

    #[test]
    fn service_failures_keep_their_codes_and_details() {
        use fieldlink_core::assignment::ServiceError;

        let unknown: CommandError = ServiceError::UnknownRegistration {
            registration_id: "pump-1".into(),
        }
        .to_commission_error()
        .into();
        assert_eq!(unknown.code, "invalid_payload");
        assert!(!unknown.retryable);
        assert_eq!(unknown.details["field"], "registration_id");
        assert!(unknown.message.contains("pump-1"));
        let throttled: CommandError = ServiceError::Throttled {
            retry_after: Some(Duration::from_secs(4)),
        }
        .to_commission_error()
        .into();
        assert_eq!(throttled.code, "throttled");
        assert!(throttled.retryable);
        assert_eq!(throttled.details["retry_after_s"], 4);
        let invalid: CommandError = ServiceError::Invalid {
            detail: "not JSON".into(),
        }
        .to_commission_error()
        .into();
        assert_eq!(invalid.code, "api_unavailable");
        let denied: CommandError = ServiceError::Forbidden.to_commission_error().into();
        assert_eq!(denied.code, "forbidden");
    }
}
