//! Finding the platform's Bluetooth stack and choosing an adapter.

use std::time::Duration;

use ::btleplug::{
    api::{Central as _, CentralState, Manager as _},
    platform::{Adapter, Manager},
};

use super::unavailable::{Unavailability, adapter_error};
use crate::transport::TransportError;

/// One adapter as the platform reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Its short name (`hci0` on Linux; the platform's description elsewhere).
    pub name: String,
    /// Its address, when the platform exposes it (`00:11:22:33:44:55`).
    pub address: Option<String>,
    /// The platform's full description (`hci0 (usb:v1D6Bp0246d0540)`).
    pub info: String,
    /// Whether it is powered on.
    pub powered: bool,
}

impl AdapterSummary {
    /// Whether `wanted` names this adapter (by name or address, case-insensitively).
    pub fn is_named(&self, wanted: &str) -> bool {
        self.name.eq_ignore_ascii_case(wanted)
            || self
                .address
                .as_deref()
                .is_some_and(|address| address.eq_ignore_ascii_case(wanted))
    }
}

/// The short name in a btleplug adapter description: BlueZ's is `hci0 (usb:…)`.
fn short_name(info: &str) -> String {
    info.split_whitespace().next().unwrap_or(info).to_owned()
}

/// Lists the adapters in name order (btleplug's order is not stable).
pub async fn list_adapters(call_timeout: Duration) -> Result<Vec<AdapterSummary>, TransportError> {
    Ok(list(call_timeout)
        .await?
        .into_iter()
        .map(|(_, summary)| summary)
        .collect())
}

async fn list(call_timeout: Duration) -> Result<Vec<(Adapter, AdapterSummary)>, TransportError> {
    let manager = tokio::time::timeout(call_timeout, Manager::new())
        .await
        .map_err(|_| Unavailability::NoBluez.error("the Bluetooth service did not answer"))?
        .map_err(|error| {
            if matches!(error, ::btleplug::Error::PermissionDenied) {
                Unavailability::PermissionDenied.error(error)
            } else {
                Unavailability::NoBluez.error(error)
            }
        })?;
    let adapters = tokio::time::timeout(call_timeout, manager.adapters())
        .await
        .map_err(|_| Unavailability::NoBluez.error("listing adapters timed out"))?
        .map_err(|error| adapter_error(error, "listing adapters"))?;
    let mut found = Vec::with_capacity(adapters.len());
    for adapter in adapters {
        let info = match tokio::time::timeout(call_timeout, adapter.adapter_info()).await {
            Ok(Ok(info)) => info,
            Ok(Err(error)) => {
                tracing::debug!(%error, "skipping an adapter whose description cannot be read");
                continue;
            }
            Err(_) => return Err(TransportError::Timeout),
        };
        let powered = matches!(
            tokio::time::timeout(call_timeout, adapter.adapter_state()).await,
            Ok(Ok(CentralState::PoweredOn))
        );
        let address = match tokio::time::timeout(call_timeout, adapter.adapter_address()).await {
            Ok(Ok(Some(address))) => Some(address.to_string()),
            _ => None,
        };
        let summary = AdapterSummary {
            name: short_name(&info),
            address,
            info,
            powered,
        };
        found.push((adapter, summary));
    }
    found.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    Ok(found)
}

/// Picks the adapter named `wanted`, or the first powered one.
pub(super) async fn select(
    wanted: Option<&str>,
    call_timeout: Duration,
) -> Result<(Adapter, String), TransportError> {
    let adapters = list(call_timeout).await?;
    let summaries: Vec<_> = adapters.iter().map(|(_, s)| s.clone()).collect();
    let index = choose(&summaries, wanted)?;
    let (adapter, summary) = adapters
        .into_iter()
        .nth(index)
        .ok_or_else(|| Unavailability::NoAdapter.error("adapter list changed"))?;
    Ok((adapter, summary.name))
}

/// The index of the adapter to use, or why there is none.
fn choose(adapters: &[AdapterSummary], wanted: Option<&str>) -> Result<usize, TransportError> {
    let names = || {
        let names: Vec<_> = adapters.iter().map(|a| a.name.as_str()).collect();
        if names.is_empty() {
            "none present".to_owned()
        } else {
            format!("present: {}", names.join(", "))
        }
    };
    match wanted {
        Some(wanted) => {
            let index = adapters
                .iter()
                .position(|a| a.is_named(wanted))
                .ok_or_else(|| {
                    Unavailability::NoAdapter.error(format!("no adapter {wanted}; {}", names()))
                })?;
            if adapters[index].powered {
                Ok(index)
            } else {
                Err(Unavailability::BluetoothOff.error(format!("{wanted} is powered off")))
            }
        }
        None => {
            if adapters.is_empty() {
                return Err(Unavailability::NoAdapter.error(names()));
            }
            adapters.iter().position(|a| a.powered).ok_or_else(|| {
                Unavailability::BluetoothOff.error(format!("every adapter is off; {}", names()))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(name: &str, address: &str, powered: bool) -> AdapterSummary {
        AdapterSummary {
            name: name.into(),
            address: Some(address.into()),
            info: format!("{name} (usb:v1D6Bp0246d0540)"),
            powered,
        }
    }

    #[test]
    fn short_name_is_the_first_word() {
        assert_eq!(short_name("hci1 (usb:v1D6Bp0246d0540)"), "hci1");
        assert_eq!(short_name("CoreBluetooth"), "CoreBluetooth");
        assert_eq!(short_name(""), "");
    }

    #[test]
    fn a_named_adapter_is_found_by_name_or_address() {
        let list = [
            adapter("hci0", "00:11:22:33:44:55", true),
            adapter("hci1", "00:AA:BB:CC:DD:EE", true),
        ];
        assert_eq!(choose(&list, Some("hci1")), Ok(1));
        assert_eq!(choose(&list, Some("00:aa:bb:cc:dd:ee")), Ok(1));
        assert_eq!(choose(&list, Some("HCI0")), Ok(0));
    }

    #[test]
    fn a_missing_named_adapter_is_no_adapter_and_lists_the_others() {
        let list = [adapter("hci0", "00:11:22:33:44:55", true)];
        let error = choose(&list, Some("hci7")).expect_err("absent");
        assert_eq!(Unavailability::of(&error), Some(Unavailability::NoAdapter));
        assert!(error.to_string().contains("present: hci0"), "{error}");
    }

    #[test]
    fn a_named_adapter_that_is_off_is_bluetooth_off() {
        let list = [adapter("hci0", "00:11:22:33:44:55", false)];
        let error = choose(&list, Some("hci0")).expect_err("off");
        assert_eq!(
            Unavailability::of(&error),
            Some(Unavailability::BluetoothOff)
        );
    }

    #[test]
    fn without_a_name_the_first_powered_adapter_wins() {
        let list = [
            adapter("hci0", "00:11:22:33:44:55", false),
            adapter("hci1", "00:AA:BB:CC:DD:EE", true),
        ];
        assert_eq!(choose(&list, None), Ok(1));
        let off = [adapter("hci0", "00:11:22:33:44:55", false)];
        let error = choose(&off, None).expect_err("all off");
        assert_eq!(
            Unavailability::of(&error),
            Some(Unavailability::BluetoothOff)
        );
        let error = choose(&[], None).expect_err("none");
        assert_eq!(Unavailability::of(&error), Some(Unavailability::NoAdapter));
    }
}
