//! Labels and the live scan.

use std::{collections::BTreeMap, time::Duration};

use fieldlink_core::transport::{DiscoveredDevice, ScanFilter};
use tauri::{State, ipc::Channel};

use crate::{
    dto::device::{LabelImage, LabelInfo, NearbyDevice, ScanUpdate},
    error::{CommandResult, scan_failure},
    label::{self, OnboardingCode},
    state::DesktopState,
};

/// A scan never runs longer than this, even if nobody stops it.
pub const SCAN_LIMIT: Duration = Duration::from_secs(300);
/// A device not seen for this many rounds leaves the list.
const FORGET_AFTER_ROUNDS: u32 = 3;

/// What a QR label or manual code says (without its secret).
#[tauri::command]
pub fn parse_label(code: String) -> CommandResult<LabelInfo> {
    Ok(OnboardingCode::parse(&code)?.info())
}

/// A QR label as SVG, with its manual code.
#[tauri::command]
pub fn render_label(code: String, min_px: Option<u32>) -> CommandResult<LabelImage> {
    Ok(label::render(&code, min_px.unwrap_or(240).clamp(64, 2048))?)
}

/// Scans in rounds of `window_ms` until cancelled (or [`SCAN_LIMIT`]), sending every
/// commissionable fieldlink device seen so far after each round. Returns the number of rounds.
#[tauri::command]
pub async fn scan(
    state: State<'_, DesktopState>,
    operation_id: String,
    window_ms: Option<u32>,
    on_update: Channel<ScanUpdate>,
) -> CommandResult<u32> {
    let guard = state.operations().start(&operation_id)?;
    let cancel = guard.token();
    let site = state.site().await?;
    let transport = site.transport().await?;
    let filter = ScanFilter {
        service_uuid: site.config().service_uuid,
        discriminator: None,
    };
    let window = Duration::from_millis(u64::from(window_ms.unwrap_or(1_000).clamp(100, 10_000)));
    let deadline = tokio::time::Instant::now() + SCAN_LIMIT;
    let mut seen: BTreeMap<String, (u32, DiscoveredDevice)> = BTreeMap::new();
    let mut round = 0;
    while !cancel.is_cancelled() && tokio::time::Instant::now() < deadline {
        let found = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            found = tokio::time::timeout(window * 2, transport.scan(filter, window)) => found,
        };
        let devices = match found {
            Ok(Ok(devices)) => devices,
            Ok(Err(error)) => return Err(scan_failure(&error).into()),
            Err(_) => Vec::new(),
        };
        round += 1;
        for device in devices {
            seen.insert(device.id.0.clone(), (round, device));
        }
        seen.retain(|_, (last, _)| round - *last < FORGET_AFTER_ROUNDS);
        let mut devices: Vec<NearbyDevice> =
            seen.values().map(|(_, device)| device.into()).collect();
        devices.sort_by_key(|device| std::cmp::Reverse(device.rssi.unwrap_or(i16::MIN)));
        if on_update.send(ScanUpdate { round, devices }).is_err() {
            break;
        }
    }
    Ok(round)
}
