//! History exports: the journal's attempts as CSV (one row per attempt) or JSON.

use std::fmt::Write as _;

use crate::dto::history::{AttemptEntry, ExportFormat};

/// CSV columns, in order.
pub const CSV_COLUMNS: [&str; 22] = [
    "id",
    "started_at_ms",
    "finished_at_ms",
    "registration_id",
    "outcome",
    "confirmation",
    "dps_instance",
    "id_scope",
    "assigned_hub",
    "device_id",
    "error_code",
    "error_message",
    "retryable",
    "total_ms",
    "round_trips",
    "bytes_sent",
    "bytes_received",
    "installer",
    "profile",
    "transport",
    "batch_id",
    "batch_position",
];

/// One CSV field, quoted when it holds a separator, a quote or a line break (RFC 4180). A
/// leading `=`, `+`, `-` or `@` is prefixed with `'` so spreadsheets do not run it as a formula.
fn field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

fn row(attempt: &AttemptEntry) -> [String; CSV_COLUMNS.len()] {
    let link = attempt.link.as_ref();
    [
        attempt.id.to_string(),
        attempt.started_at_ms.to_string(),
        opt(attempt.finished_at_ms),
        attempt.registration_id.clone(),
        opt(attempt.outcome.as_ref()),
        opt(attempt.confirmation.as_ref()),
        opt(attempt.dps_instance.as_ref()),
        opt(attempt.id_scope.as_ref()),
        opt(attempt.assigned_hub.as_ref()),
        opt(attempt.device_id.as_ref()),
        opt(attempt.error_code.as_ref()),
        opt(attempt.error_message.as_ref()),
        opt(attempt.retryable),
        opt(attempt.total_ms),
        opt(link.map(|l| l.round_trips)),
        opt(link.map(|l| l.bytes_sent)),
        opt(link.map(|l| l.bytes_received)),
        attempt.installer.clone(),
        attempt.profile.clone(),
        attempt.transport.clone(),
        opt(attempt.batch_id.as_ref()),
        opt(attempt.batch_position),
    ]
}

/// The attempts as CSV with a header line.
pub fn csv(attempts: &[AttemptEntry]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for attempt in attempts {
        let fields: Vec<String> = row(attempt).iter().map(|f| field(f)).collect();
        let _ = write!(out, "{}\r\n", fields.join(","));
    }
    out
}

/// The attempts in `format`.
pub fn render(attempts: &[AttemptEntry], format: ExportFormat) -> Result<String, String> {
    match format {
        ExportFormat::Csv => Ok(csv(attempts)),
        ExportFormat::Json => {
            serde_json::to_string_pretty(attempts).map_err(|error| error.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(message: &str) -> AttemptEntry {
        AttemptEntry {
            id: 7,
            registration_id: "pump-1".into(),
            installer: "local:ann".into(),
            profile: "simulator".into(),
            transport: "memory".into(),
            batch_id: None,
            batch_position: None,
            started_at_ms: 1_000,
            finished_at_ms: Some(2_000),
            outcome: Some("failed".into()),
            confirmation: None,
            dps_instance: None,
            id_scope: None,
            assigned_hub: None,
            device_id: None,
            error_code: Some("wrong_pop".into()),
            error_message: Some(message.into()),
            retryable: Some(false),
            total_ms: Some(1_000),
            mtu: None,
            resumes: None,
            link: None,
            recheck: None,
            steps: Vec::new(),
        }
    }

    #[test]
    fn csv_has_a_header_and_quotes_what_needs_quoting() {
        let text = csv(&[attempt("wrong \"PoP\", attempt 1 of 5")]);
        let mut lines = text.split("\r\n");
        assert_eq!(lines.next().unwrap(), CSV_COLUMNS.join(","));
        let row = lines.next().unwrap();
        assert!(row.starts_with("7,1000,2000,pump-1,failed,,"), "{row}");
        assert!(row.contains(r#""wrong ""PoP"", attempt 1 of 5""#), "{row}");
        assert_eq!(lines.next(), Some(""));
    }

    #[test]
    fn csv_defuses_formulas() {
        let text = csv(&[attempt("=HYPERLINK(\"x\")")]);
        assert!(text.contains(r#""'=HYPERLINK(""x"")""#), "{text}");
    }

    #[test]
    fn json_is_an_array_of_attempts() {
        let text = render(&[attempt("m")], ExportFormat::Json).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value[0]["error_code"], "wrong_pop");
    }
}
