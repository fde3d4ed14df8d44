//! Test-only (Linux): serves a sandbox device over BlueZ (bluer's GATT server and advertising on
//! an adapter of the BLE bench), so a BLE library on another adapter reaches it through real
//! D-Bus/BlueZ paths. The same glue as the bench test in `tests/tests/ble_bench.rs`.

use std::sync::Arc;

use fieldlink_device_agent::{agent::DeviceAgent, bluez::BluezPeripheral, link::BlePeripheral};
use tokio::task::JoinHandle;

use crate::error::FieldlinkError;

/// Serves `agent` on `adapter` until the returned tasks are aborted.
pub(super) async fn serve(
    agent: DeviceAgent,
    adapter: String,
) -> Result<Vec<JoinHandle<()>>, FieldlinkError> {
    let peripheral = Arc::new(BluezPeripheral::start(&adapter).await.map_err(|error| {
        FieldlinkError::invalid_argument(format!("BlueZ peripheral on {adapter}: {error}"))
    })?);
    let mut advertisement = agent.watch_advertisement();
    let advertiser = {
        let peripheral = Arc::clone(&peripheral);
        tokio::spawn(async move {
            loop {
                let current = advertisement.borrow_and_update().clone();
                if let Err(error) = peripheral.advertise(&current).await {
                    tracing::warn!(%error, "advertising failed");
                }
                if advertisement.changed().await.is_err() {
                    return;
                }
            }
        })
    };
    let server = tokio::spawn(async move {
        while let Ok(Some(connection)) = peripheral.accept().await {
            agent.serve(connection);
        }
    });
    Ok(vec![advertiser, server])
}
