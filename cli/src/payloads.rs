//! Onboarding inputs: a QR payload, a manual code, or a batch file.
//!
//! Batch file format (one entry per line):
//! - blank lines and lines starting with `#` are ignored;
//! - `network: NAME` makes the following entries use network profile `NAME` (`network: none`
//!   switches back to no network), so one file can carry a network per site;
//! - every other line is an onboarding payload (`FL1/...`).

use std::path::Path;

use fieldlink_core::workflow::{CommissionRequest, DiscriminatorMatch};
use fieldlink_protocol::{
    message::NetworkConfig,
    payload::{ManualCode, OnboardingPayload},
    session::SessionSecret,
};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::exit::{CliError, Exit};

/// One entry of a batch file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEntry {
    /// 1-based line number.
    pub line: usize,
    /// The payload.
    pub payload: OnboardingPayload,
    /// The network profile in force for it.
    pub network: Option<String>,
}

/// A parsed batch file.
#[derive(Debug, Clone)]
pub struct BatchFile {
    /// Absolute path.
    pub path: String,
    /// SHA-256 of the contents (hex).
    pub digest: String,
    /// The entries in order.
    pub entries: Vec<BatchEntry>,
}

/// Reads and validates a batch file; any bad line fails the whole file (nothing is started).
pub fn read_batch_file(path: &Path) -> Result<BatchFile, CliError> {
    let bytes = std::fs::read(path).map_err(|error| {
        CliError::new(
            Exit::InvalidPayload,
            "payload_file_unreadable",
            format!("cannot read {}: {error}", path.display()),
        )
    })?;
    let text = String::from_utf8(bytes.clone()).map_err(|_| {
        CliError::new(
            Exit::InvalidPayload,
            "invalid_payload_file",
            format!("{} is not UTF-8 text", path.display()),
        )
    })?;
    let entries = parse_batch(&text).map_err(|error| {
        let message = format!("{}: {}", path.display(), error.message);
        CliError { message, ..error }
    })?;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(BatchFile {
        path: absolute.display().to_string(),
        digest: hex::encode(Sha256::digest(&bytes)),
        entries,
    })
}

/// Parses batch file text.
pub fn parse_batch(text: &str) -> Result<Vec<BatchEntry>, CliError> {
    let mut network: Option<String> = None;
    let mut entries: Vec<BatchEntry> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let number = index + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix("network:") {
            let name = name.trim();
            network = match name {
                "" | "none" => None,
                other => Some(other.to_owned()),
            };
            continue;
        }
        let payload = OnboardingPayload::parse(line).map_err(|error| {
            CliError::from(error.clone())
                .with_details(json!({
                    "line": number,
                    "field": error.field.as_str(),
                    "reason": error.reason,
                }))
                .prefixed(&format!("line {number}: "))
        })?;
        if let Some(first) = entries
            .iter()
            .find(|e| e.payload.registration_id == payload.registration_id)
        {
            return Err(CliError::new(
                Exit::InvalidPayload,
                "duplicate_device",
                format!(
                    "line {number}: device {} is already on line {}",
                    payload.registration_id, first.line
                ),
            ));
        }
        entries.push(BatchEntry {
            line: number,
            payload,
            network: network.clone(),
        });
    }
    if entries.is_empty() {
        return Err(CliError::new(
            Exit::InvalidPayload,
            "empty_payload_file",
            "no onboarding payloads in the file",
        ));
    }
    Ok(entries)
}

impl CliError {
    fn prefixed(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}{}", self.message);
        self
    }
}

/// The request for a scanned QR label.
pub fn request_for_payload(
    payload: &OnboardingPayload,
    network: Option<NetworkConfig>,
) -> CommissionRequest {
    CommissionRequest {
        registration_id: Some(payload.registration_id.clone()),
        discriminator: DiscriminatorMatch::Full(payload.discriminator),
        secret: SessionSecret::Pop(payload.pop.clone()),
        network,
    }
}

/// The request for a typed manual code (the registration ID is learnt from the device).
pub fn request_for_manual_code(
    code: &str,
    network: Option<NetworkConfig>,
) -> Result<(CommissionRequest, String), CliError> {
    let manual = ManualCode::parse(code)?;
    let digits = manual.encode();
    let label = format!("manual:{}", &digits[..4.min(digits.len())]);
    Ok((
        CommissionRequest {
            registration_id: None,
            discriminator: DiscriminatorMatch::Short(manual.discriminator4),
            secret: SessionSecret::ManualPasscode(manual.passcode),
            network,
        },
        label,
    ))
}

#[cfg(test)]
mod tests {
    use fieldlink_protocol::payload::PopSecret;

    use super::*;

    fn payload(id: &str) -> String {
        OnboardingPayload::new(id.to_owned(), PopSecret::from_bytes([7; 11]), 0x123, 1)
            .unwrap()
            .encode()
    }

    #[test]
    fn batch_files_carry_networks_per_site() {
        let text = format!(
            "# site A\nnetwork: site-a\n{}\n\n{}\nnetwork: none\n{}\n",
            payload("dev-1"),
            payload("dev-2"),
            payload("dev-3")
        );
        let entries = parse_batch(&text).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].network.as_deref(), Some("site-a"));
        assert_eq!(entries[1].line, 5);
        assert_eq!(entries[2].network, None);
    }

    #[test]
    fn bad_lines_duplicates_and_empty_files_are_refused() {
        let bad = parse_batch(&format!("{}\nFL1/NOPE\n", payload("a"))).unwrap_err();
        assert_eq!(bad.exit, Exit::InvalidPayload);
        assert!(bad.message.starts_with("line 2: "), "{}", bad.message);
        assert_eq!(bad.details["line"], 2);
        let duplicate = parse_batch(&format!("{}\n{}\n", payload("a"), payload("a"))).unwrap_err();
        assert_eq!(duplicate.code, "duplicate_device");
        assert_eq!(
            parse_batch("# nothing\n").unwrap_err().code,
            "empty_payload_file"
        );
    }

    #[test]
    fn manual_codes_are_checked() {
        let good = OnboardingPayload::parse(&payload("dev-9"))
            .unwrap()
            .manual_code()
            .encode();
        let (request, label) = request_for_manual_code(&good, None).unwrap();
        assert!(request.registration_id.is_none());
        assert!(label.starts_with("manual:"));
        let mut typo = good.into_bytes();
        typo[3] = if typo[3] == b'1' { b'2' } else { b'1' };
        let error = request_for_manual_code(std::str::from_utf8(&typo).unwrap(), None).unwrap_err();
        assert_eq!(error.code, "invalid_payload");
        assert_eq!(error.details["field"], "manual_code");
    }
}
