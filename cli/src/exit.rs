//! Exit codes and the CLI's own error type.
//!
//! Exit codes are stable and documented in `docs/cli.md`.

use fieldlink_core::{CommissionError, journal::JournalError};
use fieldlink_protocol::payload::PayloadError;
use serde_json::{Value, json};

/// How `fieldlink` exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// Everything asked for succeeded.
    Success,
    /// The commissioning failed (one device, or every device of a batch).
    Failed,
    /// Bad command line (clap's own code).
    Usage,
    /// Some devices of a batch failed, others succeeded.
    Partial,
    /// An onboarding payload, manual code or payload file is invalid.
    InvalidPayload,
    /// Not signed in, session expired, forbidden, or sign-in unavailable.
    Auth,
    /// The provisioning service (or the sandbox's bridge) is unreachable or throttling.
    ServiceUnavailable,
    /// Bluetooth (or the sandbox's virtual radio) is unavailable.
    TransportUnavailable,
    /// The configuration is invalid or lacks something the command needs.
    Config,
    /// The journal cannot be opened or written, or the batch is unknown or busy.
    Journal,
    /// A bug.
    Internal,
    /// Interrupted by Ctrl-C.
    Interrupted,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Partial => 3,
            Exit::InvalidPayload => 4,
            Exit::Auth => 5,
            Exit::ServiceUnavailable => 6,
            Exit::TransportUnavailable => 7,
            Exit::Config => 8,
            Exit::Journal => 9,
            Exit::Internal => 70,
            Exit::Interrupted => 130,
        }
    }

    /// The exit code a single failed commissioning maps to.
    pub fn for_error(error: &CommissionError) -> Exit {
        match error {
            CommissionError::InvalidPayload { .. } => Exit::InvalidPayload,
            CommissionError::Unauthorized | CommissionError::Forbidden => Exit::Auth,
            CommissionError::ApiUnavailable { .. } | CommissionError::Throttled { .. } => {
                Exit::ServiceUnavailable
            }
            CommissionError::BluetoothUnavailable { .. } => Exit::TransportUnavailable,
            CommissionError::Cancelled => Exit::Interrupted,
            CommissionError::Internal { .. } => Exit::Internal,
            _ => Exit::Failed,
        }
    }
}

/// The exit code for a commissioning error's stable code (see [`Exit::for_error`]).
pub fn exit_for_code(code: &str) -> Exit {
    match code {
        "invalid_payload" => Exit::InvalidPayload,
        "unauthorized" | "forbidden" => Exit::Auth,
        "api_unavailable" | "throttled" => Exit::ServiceUnavailable,
        "bluetooth_unavailable" => Exit::TransportUnavailable,
        "cancelled" => Exit::Interrupted,
        "internal" => Exit::Internal,
        _ => Exit::Failed,
    }
}

/// A command's failure: a stable snake_case code, an actionable message and an exit code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// Stable snake_case code.
    pub code: String,
    /// Actionable message.
    pub message: String,
    /// How the process exits.
    pub exit: Exit,
    /// Extra fields for `--json`.
    pub details: Value,
}

impl CliError {
    /// A new error.
    pub fn new(exit: Exit, code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            exit,
            details: json!({}),
        }
    }

    /// Adds `--json` details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// A configuration problem.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(Exit::Config, "config_error", message)
    }

    /// A bug.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Exit::Internal, "internal", message)
    }

    /// The JSON form: `{code, message, exit_code, details}`.
    pub fn to_json(&self) -> Value {
        json!({
            "code": self.code,
            "message": self.message,
            "exit_code": self.exit.code(),
            "details": self.details,
        })
    }
}

impl From<JournalError> for CliError {
    fn from(error: JournalError) -> Self {
        CliError::new(Exit::Journal, error.code(), error.to_string())
    }
}

impl From<&CommissionError> for CliError {
    fn from(error: &CommissionError) -> Self {
        let view = error.view();
        CliError::new(Exit::for_error(error), view.code, view.message).with_details(view.details)
    }
}

impl From<PayloadError> for CliError {
    fn from(error: PayloadError) -> Self {
        CliError::new(
            Exit::InvalidPayload,
            "invalid_payload",
            format!(
                "invalid onboarding code: {} {}; rescan the label or re-type the code",
                error.field, error.reason
            ),
        )
        .with_details(json!({"field": error.field.as_str(), "reason": error.reason}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let all = [
            Exit::Success,
            Exit::Failed,
            Exit::Usage,
            Exit::Partial,
            Exit::InvalidPayload,
            Exit::Auth,
            Exit::ServiceUnavailable,
            Exit::TransportUnavailable,
            Exit::Config,
            Exit::Journal,
            Exit::Internal,
            Exit::Interrupted,
        ];
        let mut codes: Vec<u8> = all.iter().map(|e| e.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn commission_errors_map_to_their_exit_codes() {
        let payload = CommissionError::InvalidPayload {
            field: "checksum".into(),
            reason: "bad".into(),
        };
        assert_eq!(Exit::for_error(&payload), Exit::InvalidPayload);
        assert_eq!(Exit::for_error(&CommissionError::Forbidden), Exit::Auth);
        let lost = CommissionError::DeviceNotFound { discriminator: 1 };
        assert_eq!(Exit::for_error(&lost), Exit::Failed);
        let error = CliError::from(&payload);
        assert_eq!(error.code, "invalid_payload");
        assert_eq!(error.to_json()["exit_code"], 4);
    }
}
