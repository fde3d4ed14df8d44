//! Parsing a manufacturing partner's device list: CSV (`registration_id[,label]`, optional
//! header row, `#` comments) or JSON (`["id", …]` or `{"devices": [{"registration_id", "label"}
//! | "id", …]}`). Every identifier must be a valid DPS registration ID; one bad row rejects the
//! whole import, listing the rows to fix.

use fieldlink_protocol::registration_id::validate_registration_id;
use serde::Deserialize;

use crate::model::AllowlistEntry;

/// Most rows reported back in an error.
const MAX_REPORTED: usize = 100;

/// One unusable row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line (CSV) or item index (JSON).
    pub row: usize,
    /// The offending value (truncated).
    pub value: String,
    /// Stable reason code (`registration_id.code()` or `malformed_row`).
    pub reason: String,
}

/// Why an import was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The body is not CSV/JSON of the expected shape.
    #[error("the list is not in a supported format: {0}")]
    Malformed(String),
    /// Some rows hold invalid identifiers.
    #[error("{total} rows hold invalid registration IDs")]
    InvalidRows {
        /// Rows with problems (the first hundred).
        rows: Vec<RowError>,
        /// How many rows had problems.
        total: usize,
    },
    /// The list is empty.
    #[error("the list holds no device")]
    Empty,
}

/// The list's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// `text/csv` (or `text/plain`).
    Csv,
    /// `application/json`.
    Json,
}

fn truncated(value: &str) -> String {
    value.chars().take(140).collect()
}

fn check(rows: Vec<(usize, String, Option<String>)>) -> Result<Vec<AllowlistEntry>, ImportError> {
    let mut errors = Vec::new();
    let mut total = 0;
    let mut entries = Vec::with_capacity(rows.len());
    for (row, id, label) in rows {
        match validate_registration_id(&id) {
            Ok(()) => entries.push(AllowlistEntry {
                registration_id: id,
                label: label.filter(|l| !l.is_empty()),
            }),
            Err(error) => {
                total += 1;
                if errors.len() < MAX_REPORTED {
                    errors.push(RowError {
                        row,
                        value: truncated(&id),
                        reason: error.code().to_owned(),
                    });
                }
            }
        }
    }
    if total > 0 {
        return Err(ImportError::InvalidRows {
            rows: errors,
            total,
        });
    }
    if entries.is_empty() {
        return Err(ImportError::Empty);
    }
    Ok(entries)
}

/// Splits one CSV line into fields (RFC 4180 quoting).
fn csv_fields(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() && !was_quoted => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                fields.push(std::mem::take(&mut field).trim().to_owned());
                was_quoted = false;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return None;
    }
    fields.push(field.trim().to_owned());
    Some(fields)
}

const HEADER_NAMES: [&str; 4] = ["registration_id", "registrationid", "hardware_id", "id"];

fn parse_csv(body: &str) -> Result<Vec<(usize, String, Option<String>)>, ImportError> {
    let mut rows = Vec::new();
    let mut first = true;
    for (index, line) in body.trim_start_matches('\u{feff}').lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = csv_fields(line).ok_or_else(|| {
            ImportError::Malformed(format!("line {}: unterminated quote", index + 1))
        })?;
        let mut fields = fields.into_iter();
        let id = fields.next().unwrap_or_default();
        if std::mem::take(&mut first) && HEADER_NAMES.contains(&id.to_ascii_lowercase().as_str()) {
            continue;
        }
        rows.push((index + 1, id, fields.next()));
    }
    Ok(rows)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonItem {
    Id(String),
    Entry {
        #[serde(alias = "hardware_id", alias = "registrationId")]
        registration_id: String,
        #[serde(default)]
        label: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonList {
    Items(Vec<JsonItem>),
    Wrapped { devices: Vec<JsonItem> },
}

fn parse_json(body: &str) -> Result<Vec<(usize, String, Option<String>)>, ImportError> {
    let list: JsonList = serde_json::from_str(body).map_err(|e| {
        ImportError::Malformed(format!(
            "expected [\"id\", …] or {{\"devices\": [{{\"registration_id\": …}}]}}: {e}"
        ))
    })?;
    let items = match list {
        JsonList::Items(items) | JsonList::Wrapped { devices: items } => items,
    };
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            JsonItem::Id(id) => (index + 1, id, None),
            JsonItem::Entry {
                registration_id,
                label,
            } => (index + 1, registration_id, label),
        })
        .collect())
}

/// Parses and validates a device list.
pub fn parse_device_list(
    format: ListFormat,
    body: &str,
) -> Result<Vec<AllowlistEntry>, ImportError> {
    let rows = match format {
        ListFormat::Csv => parse_csv(body)?,
        ListFormat::Json => parse_json(body)?,
    };
    check(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_csv_with_header_comments_and_quotes() {
        let body = "\u{feff}registration_id,label\n# batch 7\ndev-001,\"Line A, bay 3\"\n\n  dev-002  \n\"dev-003\",\"say \"\"hi\"\"\"\n";
        let entries = parse_device_list(ListFormat::Csv, body).expect("valid list");
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].registration_id, "dev-001");
        assert_eq!(entries[0].label.as_deref(), Some("Line A, bay 3"));
        assert_eq!(entries[1].label, None);
        assert_eq!(entries[2].label.as_deref(), Some("say \"hi\""));
    }

    #[test]
    fn parses_both_json_shapes() {
        let plain = parse_device_list(ListFormat::Json, r#"["dev-1", "dev-2"]"#).expect("plain");
        assert_eq!(plain.len(), 2);
        let wrapped = parse_device_list(
            ListFormat::Json,
            r#"{"devices": [{"registration_id": "dev-1", "label": "x"}, "dev-2", {"hardware_id": "dev-3"}]}"#,
        )
        .expect("wrapped");
        assert_eq!(wrapped[0].label.as_deref(), Some("x"));
        assert_eq!(wrapped[2].registration_id, "dev-3");
    }

    #[test]
    fn one_bad_row_rejects_the_import_with_its_line() {
        let body = "dev-1\nDEV_2\ndev-3.\n";
        match parse_device_list(ListFormat::Csv, body) {
            Err(ImportError::InvalidRows { rows, total }) => {
                assert_eq!(total, 2);
                assert_eq!(rows[0].row, 2);
                assert_eq!(rows[0].reason, "invalid_char");
                assert_eq!(rows[1].row, 3);
                assert_eq!(rows[1].reason, "bad_last_char");
            }
            other => panic!("expected invalid rows, got {other:?}"),
        }
        assert_eq!(
            parse_device_list(ListFormat::Csv, "registration_id\n# nothing\n"),
            Err(ImportError::Empty)
        );
        assert!(matches!(
            parse_device_list(ListFormat::Json, "{\"nope\": 1}"),
            Err(ImportError::Malformed(_))
        ));
        assert!(matches!(
            parse_device_list(ListFormat::Csv, "\"dev-1"),
            Err(ImportError::Malformed(_))
        ));
    }

    #[test]
    fn arbitrary_input_never_panics() {
        for body in [
            "",
            ",,,",
            "\"\"",
            "\u{0}",
            "a,\"b",
            "[1,2]",
            "{\"devices\":[null]}",
        ] {
            let _ = parse_device_list(ListFormat::Csv, body);
            let _ = parse_device_list(ListFormat::Json, body);
        }
    }
}
