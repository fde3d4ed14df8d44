//! `fieldlink history`: the journal as a table, CSV or JSON, and `--sync` of queued
//! confirmations.

use std::{io::Write, time::Duration};

use fieldlink_core::journal::{AttemptQuery, AttemptRecord};
use serde_json::json;

use super::{Context, sync::sync_pending};
use crate::{
    args::{ExportFormat, HistoryArgs},
    exit::{CliError, Exit},
    target::{Target, open_journal},
};

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 26] = [
    "id",
    "started_at",
    "finished_at",
    "registration_id",
    "installer",
    "profile",
    "transport",
    "batch_id",
    "batch_position",
    "outcome",
    "confirmation",
    "error_code",
    "dps_instance",
    "id_scope",
    "assigned_hub",
    "device_id",
    "total_ms",
    "mtu",
    "connections",
    "round_trips",
    "frames_sent",
    "frames_received",
    "bytes_sent",
    "bytes_received",
    "resumes",
    "recheck",
];

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// One attempt as a CSV row.
pub fn csv_row(a: &AttemptRecord) -> String {
    let opt = |v: Option<String>| v.unwrap_or_default();
    let link = a.link.as_ref();
    let cells = [
        a.id.to_string(),
        time(a.started_at_ms),
        opt(a.finished_at_ms.map(time)),
        a.registration_id.clone(),
        a.installer.clone(),
        a.profile.clone(),
        a.transport.clone(),
        opt(a.batch_id.clone()),
        opt(a.batch_position.map(|p| p.to_string())),
        opt(a.outcome.clone()),
        opt(a.confirmation.clone()),
        opt(a.error_code.clone()),
        opt(a.dps_instance.clone()),
        opt(a.id_scope.clone()),
        opt(a.assigned_hub.clone()),
        opt(a.device_id.clone()),
        opt(a.total_ms.map(|v| v.to_string())),
        opt(a.mtu.map(|v| v.to_string())),
        opt(link.map(|l| l.connections.to_string())),
        opt(link.map(|l| l.round_trips.to_string())),
        opt(link.map(|l| l.frames_sent.to_string())),
        opt(link.map(|l| l.frames_received.to_string())),
        opt(link.map(|l| l.bytes_sent.to_string())),
        opt(link.map(|l| l.bytes_received.to_string())),
        opt(a.resumes.map(|v| v.to_string())),
        opt(a.recheck.clone()),
    ];
    cells
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs `history`.
pub async fn run(args: HistoryArgs, context: &Context) -> Result<Exit, CliError> {
    let settings = context.settings()?;
    let journal = open_journal(&settings)?;
    let output = &context.output;
    let mut synced = None;
    if args.sync {
        let target = Target::resolve(&settings, &args.target)?;
        let backend = target.backend(&settings).await?;
        let summary = sync_pending(&journal, &backend.status, Duration::from_secs(10)).await?;
        output.info(format!(
            "queued confirmations: {} confirmed, {} rejected, {} still queued",
            summary.confirmed, summary.rejected, summary.pending
        ));
        synced = Some(summary);
    }
    if args.batches {
        let batches = journal.batches(
            false,
            if args.limit == 0 {
                u32::MAX
            } else {
                args.limit
            },
        )?;
        output.line(format!(
            "{:<20} {:<25} {:>6} {:>9} {:>6} {:>9}  {}",
            "BATCH", "CREATED", "TOTAL", "SUCCEEDED", "FAILED", "UNFINISHED", "SOURCE"
        ));
        for batch in &batches {
            output.line(format!(
                "{:<20} {:<25} {:>6} {:>9} {:>6} {:>9}  {}",
                batch.id,
                time(batch.created_at_ms),
                batch.counts.total(),
                batch.counts.succeeded,
                batch.counts.failed,
                batch.counts.pending + batch.counts.in_flight,
                batch.source
            ));
        }
        output.result(
            "history",
            Exit::Success,
            json!({"batches": batches, "sync": synced}),
        );
        return Ok(Exit::Success);
    }
    let attempts = journal.attempts(&AttemptQuery {
        registration_id: args.device.clone(),
        batch_id: args.batch.clone(),
        limit: (args.limit > 0).then_some(args.limit),
    })?;
    match args.export {
        Some(ExportFormat::Csv) => {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}", CSV_COLUMNS.join(","));
            for attempt in &attempts {
                let _ = writeln!(stdout, "{}", csv_row(attempt));
            }
            return Ok(Exit::Success);
        }
        Some(ExportFormat::Json) => {
            let text = serde_json::to_string_pretty(&attempts)
                .map_err(|error| CliError::internal(error.to_string()))?;
            let _ = writeln!(std::io::stdout().lock(), "{text}");
            return Ok(Exit::Success);
        }
        None => {}
    }
    output.line(format!(
        "{:>5} {:<24} {:<26} {:<11} {:<22} {:<8} {:>8} {:>3}",
        "ID", "STARTED", "DEVICE", "OUTCOME", "CONFIRMATION/ERROR", "DPS", "MS", "RT"
    ));
    for a in &attempts {
        output.line(format!(
            "{:>5} {:<24} {:<26} {:<11} {:<22} {:<8} {:>8} {:>3}",
            a.id,
            time(a.started_at_ms),
            a.registration_id,
            a.outcome.as_deref().unwrap_or("open"),
            a.confirmation
                .as_deref()
                .or(a.error_code.as_deref())
                .unwrap_or("-"),
            a.dps_instance.as_deref().unwrap_or("-"),
            a.total_ms.map_or_else(|| "-".to_owned(), |v| v.to_string()),
            a.link
                .as_ref()
                .map_or_else(|| "-".to_owned(), |l| l.round_trips.to_string()),
        ));
    }
    let pending = journal.pending_confirmations()?.len();
    if pending > 0 {
        output.info(format!(
            "{pending} confirmation(s) queued; sync them with `fieldlink history --sync`"
        ));
    }
    output.result(
        "history",
        Exit::Success,
        json!({"attempts": attempts, "queued_confirmations": pending, "sync": synced}),
    );
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
