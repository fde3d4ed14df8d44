//! The network configurator `--network` picks: an online gateway whose network fieldlink leaves
//! alone, simulated access points, or NetworkManager.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::args::Configurator;
use crate::clock::SharedClock;
use crate::network::{
    Capabilities, JoinFailure, JoinStage, NetworkConfigurator, NetworkError, NetworkFault,
    ScannedNetwork, SimulatedNetwork, SimulatedNetworks, WifiSecurity,
};
use crate::secret::SecretString;
use crate::store::StoredNetwork;

/// A gateway that is online through a network fieldlink does not manage: no scan, and network
/// configs are refused as unsupported.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct AlreadyOnline;

#[async_trait]
impl NetworkConfigurator for AlreadyOnline {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            wifi: false,
            ethernet: true,
            cellular: false,
            already_online: true,
        }
    }

    async fn scan(&self) -> Result<Vec<ScannedNetwork>, NetworkError> {
        Ok(Vec::new())
    }

    async fn join(
        &self,
        config: &StoredNetwork,
        _dps_host: &str,
        _deadline_ms: u64,
        _progress: &mut (dyn FnMut(JoinStage) + Send),
    ) -> Result<(), JoinFailure> {
        Err(JoinFailure::Unsupported {
            kind: match config {
                StoredNetwork::Wifi { .. } => "wifi",
                StoredNetwork::Cellular { .. } => "cellular",
            },
        })
    }

    async fn restore(&self, _previous: Option<&StoredNetwork>) -> Result<(), NetworkError> {
        Ok(())
    }
}

/// One access point of a `--simulated-networks` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessPointFile {
    ssid: String,
    #[serde(default)]
    passphrase: String,
    #[serde(default = "default_rssi")]
    rssi: i8,
    #[serde(default)]
    security: Option<String>,
    #[serde(default = "default_channel")]
    channel: u8,
    #[serde(default)]
    hidden: bool,
    #[serde(default)]
    fault: Option<String>,
}

fn default_rssi() -> i8 {
    -55
}

fn default_channel() -> u8 {
    6
}

fn access_point(file: AccessPointFile) -> Result<SimulatedNetwork, String> {
    let security = match file.security.as_deref() {
        None if file.passphrase.is_empty() => WifiSecurity::Open,
        None | Some("wpa2") => WifiSecurity::Wpa2Personal,
        Some("open") => WifiSecurity::Open,
        Some("wpa") => WifiSecurity::WpaPersonal,
        Some("wpa3") => WifiSecurity::Wpa3Personal,
        Some("enterprise") => WifiSecurity::Enterprise,
        Some(other) => return Err(format!("{}: unknown security {other:?}", file.ssid)),
    };
    let fault = match file.fault.as_deref() {
        None => None,
        Some("out_of_range") => Some(NetworkFault::OutOfRange),
        Some("no_dhcp") => Some(NetworkFault::NoDhcp),
        Some("captive_portal") => Some(NetworkFault::CaptivePortal),
        Some("dps_unreachable") => Some(NetworkFault::DpsUnreachable),
        Some(other) => return Err(format!("{}: unknown fault {other:?}", file.ssid)),
    };
    Ok(SimulatedNetwork {
        ssid: file.ssid,
        passphrase: SecretString::new(file.passphrase),
        rssi: file.rssi,
        security,
        channel: file.channel,
        hidden: file.hidden,
        bssid: None,
        fault,
    })
}

fn simulated(path: Option<&Path>, clock: SharedClock) -> Result<SimulatedNetworks, String> {
    let Some(path) = path else {
        return Ok(SimulatedNetworks::wired(clock));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let files: Vec<AccessPointFile> = serde_json::from_str(&text)
        .map_err(|error| format!("{} is not a list of access points: {error}", path.display()))?;
    let access_points = files
        .into_iter()
        .map(access_point)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SimulatedNetworks::new(
        access_points,
        Duration::from_millis(200),
        clock,
    ))
}

/// The configurator for `--network`.
pub(super) async fn configurator(
    network: &Configurator,
    clock: SharedClock,
) -> Result<Arc<dyn NetworkConfigurator>, String> {
    match network {
        Configurator::Online => Ok(Arc::new(AlreadyOnline)),
        Configurator::Simulated { access_points } => {
            Ok(Arc::new(simulated(access_points.as_deref(), clock)?))
        }
        Configurator::NetworkManager { wifi_interface } => {
            network_manager(wifi_interface.clone(), clock).await
        }
    }
}

#[cfg(all(target_os = "linux", feature = "networkmanager"))]
async fn network_manager(
    wifi_interface: Option<String>,
    clock: SharedClock,
) -> Result<Arc<dyn NetworkConfigurator>, String> {
    use crate::network::networkmanager::{
        NetworkManagerConfig, NetworkManagerConfigurator, TcpProbe,
    };
    let config = NetworkManagerConfig {
        wifi_interface,
        ..NetworkManagerConfig::default()
    };
    let configurator = NetworkManagerConfigurator::connect(config, Arc::new(TcpProbe), clock)
        .await
        .map_err(|error| error.to_string())?;
    Ok(Arc::new(configurator))
}

#[cfg(not(all(target_os = "linux", feature = "networkmanager")))]
async fn network_manager(
    _wifi_interface: Option<String>,
    _clock: SharedClock,
) -> Result<Arc<dyn NetworkConfigurator>, String> {
    Err("this build has no NetworkManager support (Linux, feature `networkmanager`)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn online_refuses_network_configs() {
        let online = AlreadyOnline;
        assert!(online.capabilities().already_online);
        let failure = online
            .join(
                &StoredNetwork::Cellular { apn: "iot".into() },
                "dps",
                0,
                &mut |_| {},
            )
            .await
            .unwrap_err();
        assert_eq!(failure.code(), "network_unsupported");
        assert!(online.scan().await.unwrap().is_empty());
    }

    #[test]
    fn simulated_access_points_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aps.json");
        std::fs::write(
            &path,
            r#"[{"ssid": "site-a", "passphrase": "pw-1234"},
                {"ssid": "cafe"},
                {"ssid": "hotel", "passphrase": "x", "fault": "captive_portal", "rssi": -70}]"#,
        )
        .unwrap();
        let clock: SharedClock = Arc::new(ManualClock::new(0));
        let networks = simulated(Some(&path), clock.clone()).unwrap();
        assert!(networks.capabilities().wifi);
        assert!(!networks.capabilities().already_online);
        std::fs::write(&path, r#"[{"ssid": "x", "fault": "gremlins"}]"#).unwrap();
        assert!(
            simulated(Some(&path), clock.clone())
                .unwrap_err()
                .contains("gremlins")
        );
        std::fs::write(&path, r#"[{"ssid": "x", "colour": "blue"}]"#).unwrap();
        assert!(simulated(Some(&path), clock.clone()).is_err());
        assert!(
            simulated(None, clock)
                .unwrap()
                .capabilities()
                .already_online
        );
    }
}
