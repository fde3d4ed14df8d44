//! `fieldlink scan`: nearby fieldlink devices.

use std::time::Duration;

use fieldlink_core::transport::ScanFilter;
use fieldlink_protocol::gatt::{AdvertisedState, SERVICE_UUID};
use serde::Serialize;
use serde_json::json;

use super::Context;
use crate::{
    args::ScanArgs,
    exit::{CliError, Exit},
    target::Target,
};

/// One row of `scan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScannedRow {
    /// Platform handle.
    pub peripheral: String,
    /// Advertised name.
    pub local_name: Option<String>,
    /// 12-bit discriminator.
    pub discriminator: Option<u16>,
    /// RSSI, dBm.
    pub rssi: Option<i16>,
    /// Advertised state (snake_case).
    pub state: Option<String>,
}

/// Runs `scan`.
pub async fn run(args: ScanArgs, context: &Context) -> Result<Exit, CliError> {
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 600.0) {
        return Err(CliError::new(
            Exit::Usage,
            "usage",
            "--timeout must be between 0 and 600 seconds",
        ));
    }
    let settings = context.settings()?;
    let target = Target::resolve(&settings, &args.target)?;
    let transport = target.transport().await?;
    let filter = ScanFilter {
        service_uuid: SERVICE_UUID,
        discriminator: None,
    };
    let found = transport
        .scan(filter, Duration::from_secs_f64(args.timeout))
        .await
        .map_err(|error| {
            CliError::new(
                Exit::TransportUnavailable,
                "bluetooth_unavailable",
                format!("scan failed: {error}"),
            )
        })?;
    let mut rows: Vec<ScannedRow> = found
        .iter()
        .filter(|d| args.all || d.state() == Some(AdvertisedState::Commissionable))
        .map(|d| ScannedRow {
            peripheral: d.id.0.clone(),
            local_name: d.local_name.clone(),
            discriminator: d.discriminator(),
            rssi: d.rssi,
            state: d.state().map(|s| s.as_str().to_owned()),
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.rssi));
    let output = &context.output;
    output.line(format!(
        "{:<20} {:<20} {:>13} {:>6}  {}",
        "PERIPHERAL", "NAME", "DISCRIMINATOR", "RSSI", "STATE"
    ));
    for row in &rows {
        output.line(format!(
            "{:<20} {:<20} {:>13} {:>6}  {}",
            row.peripheral,
            row.local_name.as_deref().unwrap_or("-"),
            row.discriminator
                .map_or_else(|| "-".to_owned(), |d| format!("{d:#05x}")),
            row.rssi.map_or_else(|| "-".to_owned(), |r| r.to_string()),
            row.state.as_deref().unwrap_or("-")
        ));
    }
    output.info(format!("{} device(s)", rows.len()));
    output.result("scan", Exit::Success, json!({ "devices": rows }));
    Ok(Exit::Success)
}
