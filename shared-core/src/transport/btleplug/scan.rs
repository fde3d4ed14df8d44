//! Scanning: one OS-level discovery filtered on the service UUID, filtered again in code.

use std::{collections::BTreeMap, time::Duration};

use ::btleplug::{
    api::{Central as _, CentralEvent, CentralState, Peripheral as _, PeripheralProperties},
    platform::{Adapter, Peripheral},
};
use fieldlink_protocol::gatt::{SERVICE_DATA_UUID, SERVICE_UUID};
use futures::StreamExt as _;
use tokio::time::Instant;
use uuid::Uuid;

use super::{
    BtleplugConfig, bounded,
    unavailable::{Unavailability, adapter_error},
};
use crate::transport::{DiscoveredDevice, PeripheralId, ScanFilter, TransportError};

/// Scans on `adapter` until `timeout`, or until a device matching `filter.discriminator` is seen.
pub(super) async fn run(
    adapter: &Adapter,
    adapter_name: &str,
    config: &BtleplugConfig,
    filter: ScanFilter,
    timeout: Duration,
) -> Result<Vec<DiscoveredDevice>, TransportError> {
    let deadline = Instant::now() + timeout;
    let call = config.call_timeout;
    // `start_scan` would power the adapter on by itself; an adapter switched off is the user's
    // choice and gets its own error instead.
    let state = bounded(deadline, call, adapter.adapter_state()).await?;
    if !matches!(state, Ok(CentralState::PoweredOn)) {
        return Err(Unavailability::BluetoothOff.error(format!("{adapter_name} is powered off")));
    }
    // One event stream per scan (each stream adds D-Bus match rules), taken before the discovery
    // starts so no advertisement is missed.
    let mut events = bounded(deadline, call, adapter.events())
        .await?
        .map_err(|error| adapter_error(error, "watching the adapter"))?;
    let os_filter = ::btleplug::api::ScanFilter {
        services: vec![Uuid::from_u128(filter.service_uuid)],
    };
    bounded(deadline, call, adapter.start_scan(os_filter))
        .await?
        .map_err(|error| adapter_error(error, "starting the scan"))?;

    let mut seen = BTreeMap::new();
    let mut poll = tokio::time::interval(config.scan_poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut events_open = true;
    loop {
        if filter.discriminator.is_some() && seen.values().any(|d| filter.matches(d)) {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            event = events.next(), if events_open => match event {
                Some(event) => {
                    if let Some(id) = event_peripheral(&event)
                        && let Ok(Ok(peripheral)) =
                            bounded(deadline, call, adapter.peripheral(id)).await
                    {
                        refresh(&peripheral, deadline, call, &mut seen).await;
                    }
                }
                None => events_open = false,
            },
            _ = poll.tick() => {
                if let Ok(Ok(peripherals)) = bounded(deadline, call, adapter.peripherals()).await {
                    for peripheral in peripherals {
                        refresh(&peripheral, deadline, call, &mut seen).await;
                    }
                }
            }
        }
    }
    drop(events);
    // Best effort: a failed stop must not hide what was found.
    if let Ok(Err(error)) = bounded(Instant::now() + call, call, adapter.stop_scan()).await {
        tracing::debug!(%error, "stopping the scan failed");
    }
    Ok(select(seen.into_values(), &filter))
}

/// The peripheral an event is about, for events that may change what a scan reports.
fn event_peripheral(event: &CentralEvent) -> Option<&::btleplug::platform::PeripheralId> {
    match event {
        CentralEvent::DeviceDiscovered(id)
        | CentralEvent::DeviceUpdated(id)
        | CentralEvent::ServiceDataAdvertisement { id, .. }
        | CentralEvent::ServicesAdvertisement { id, .. }
        | CentralEvent::RssiUpdate { id, .. } => Some(id),
        _ => None,
    }
}

/// Re-reads one peripheral's advertisement into `seen`.
async fn refresh(
    peripheral: &Peripheral,
    deadline: Instant,
    call: Duration,
    seen: &mut BTreeMap<PeripheralId, DiscoveredDevice>,
) {
    if let Ok(Ok(Some(properties))) = bounded(deadline, call, peripheral.properties()).await {
        let device = discovered(PeripheralId(peripheral.id().to_string()), &properties);
        seen.insert(device.id.clone(), device);
    }
}

/// What a scan reports for one peripheral. The 4 bytes of service data are read under the
/// 16-bit service-data UUID, falling back to the service UUID (some stacks file it there).
pub(super) fn discovered(id: PeripheralId, properties: &PeripheralProperties) -> DiscoveredDevice {
    let service_data = properties
        .service_data
        .get(&Uuid::from_u128(SERVICE_DATA_UUID))
        .or_else(|| properties.service_data.get(&Uuid::from_u128(SERVICE_UUID)))
        .cloned()
        .unwrap_or_default();
    DiscoveredDevice {
        id,
        local_name: properties
            .local_name
            .clone()
            .or_else(|| properties.advertisement_name.clone()),
        rssi: properties.rssi,
        service_uuids: properties
            .services
            .iter()
            .map(|uuid| uuid.as_u128())
            .collect(),
        service_data,
    }
}

/// The devices passing `filter` (BlueZ merges the discovery filters of every client on the
/// system, so the OS filter is not enough), strongest signal first, then by id.
pub(super) fn select(
    devices: impl IntoIterator<Item = DiscoveredDevice>,
    filter: &ScanFilter,
) -> Vec<DiscoveredDevice> {
    let mut found: Vec<_> = devices.into_iter().filter(|d| filter.matches(d)).collect();
    found.sort_by(|a, b| {
        let strength = |d: &DiscoveredDevice| d.rssi.unwrap_or(i16::MIN);
        strength(b).cmp(&strength(a)).then_with(|| a.id.cmp(&b.id))
    });
    found
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use fieldlink_protocol::gatt::{AdvertisedState, ServiceData};

    use super::*;

    fn properties(discriminator: u16, rssi: Option<i16>, under: u128) -> PeripheralProperties {
        let data = ServiceData {
            protocol_version: 1,
            discriminator,
            state: AdvertisedState::Commissionable,
        };
        PeripheralProperties {
            local_name: Some(fieldlink_protocol::gatt::local_name(discriminator)),
            rssi,
            services: vec![Uuid::from_u128(SERVICE_UUID)],
            service_data: HashMap::from([(Uuid::from_u128(under), data.encode().to_vec())]),
            ..PeripheralProperties::default()
        }
    }

    #[test]
    fn service_data_is_decoded_from_either_uuid() {
        for under in [SERVICE_DATA_UUID, SERVICE_UUID] {
            let device = discovered(
                PeripheralId("hci0/dev_1".into()),
                &properties(0xa42, Some(-50), under),
            );
            let adv = device.advertisement().expect("decodes");
            assert_eq!(adv.discriminator, 0xa42);
            assert_eq!(adv.state, AdvertisedState::Commissionable);
            assert_eq!(adv.protocol_version, 1);
            assert_eq!(device.local_name.as_deref(), Some("FL-A42"));
        }
    }

    #[test]
    fn selection_filters_in_code_and_sorts_by_rssi() {
        let mut other_service = properties(0x001, Some(-10), SERVICE_DATA_UUID);
        other_service.services = vec![Uuid::from_u128(0x180d)];
        let devices = vec![
            discovered(
                PeripheralId("a".into()),
                &properties(0x123, Some(-80), SERVICE_DATA_UUID),
            ),
            discovered(
                PeripheralId("b".into()),
                &properties(0x456, Some(-40), SERVICE_DATA_UUID),
            ),
            discovered(
                PeripheralId("c".into()),
                &properties(0x789, None, SERVICE_DATA_UUID),
            ),
            discovered(PeripheralId("d".into()), &other_service),
        ];
        let all = ScanFilter {
            service_uuid: SERVICE_UUID,
            discriminator: None,
        };
        let ids: Vec<_> = select(devices.clone(), &all)
            .into_iter()
            .map(|d| d.id.0)
            .collect();
        assert_eq!(ids, ["b", "a", "c"]);
        let one = ScanFilter {
            discriminator: Some(0x123),
            ..all
        };
        let ids: Vec<_> = select(devices, &one).into_iter().map(|d| d.id.0).collect();
        assert_eq!(ids, ["a"]);
    }

    #[test]
    fn missing_or_short_service_data_never_matches_a_discriminator() {
        let mut props = properties(0x123, Some(-40), SERVICE_DATA_UUID);
        props.service_data.clear();
        let device = discovered(PeripheralId("x".into()), &props);
        assert!(device.service_data.is_empty());
        let filter = ScanFilter {
            service_uuid: SERVICE_UUID,
            discriminator: Some(0x123),
        };
        assert!(select([device], &filter).is_empty());
    }
}
