//! Network configuration: the [`NetworkConfigurator`] trait the agent drives, and
//! [`SimulatedNetworks`] for the virtual fleet.
//!
//! The agent applies a candidate config while keeping the proven one; a join reports each stage
//! (associating → authenticated → got IP → internet reachable → DPS reachable) and ends in a
//! typed [`JoinFailure`] or success. On failure (or fail-safe expiry) the agent calls
//! [`NetworkConfigurator::restore`] with the previous proven config.

#[cfg(all(target_os = "linux", feature = "networkmanager"))]
pub mod networkmanager;
mod simulated;

use async_trait::async_trait;

pub use simulated::{NetworkFault, SimulatedNetwork, SimulatedNetworks};

use crate::store::StoredNetwork;

pub use fieldlink_protocol::message::{
    JoinFailureKind, JoinStage, NetworkCapabilities as Capabilities, WifiNetwork as ScannedNetwork,
    WifiSecurity,
};

/// Why a join failed. Each maps to a protocol error code and an actionable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinFailure {
    /// The access point refused the passphrase.
    #[error("Wi-Fi authentication failed for \"{ssid}\": check the passphrase")]
    WifiAuthFailed {
        /// SSID.
        ssid: String,
    },
    /// No access point with that SSID (or BSSID) is in range.
    #[error("network \"{ssid}\" not found: check the SSID, or move closer to the access point")]
    NetworkNotFound {
        /// SSID.
        ssid: String,
    },
    /// Associated, but no DHCP lease.
    #[error("no IP address from DHCP on \"{ssid}\": check the DHCP server or the VLAN")]
    DhcpFailed {
        /// SSID.
        ssid: String,
    },
    /// On the network, but the internet is not reachable (captive portal, firewall).
    #[error("no internet access on \"{ssid}\" (captive portal or firewall?)")]
    NoInternet {
        /// SSID.
        ssid: String,
    },
    /// Online, but the DPS endpoint cannot be reached.
    #[error("DPS endpoint {endpoint} unreachable: allow outbound HTTPS (443) to it")]
    DpsUnreachable {
        /// The DPS host.
        endpoint: String,
    },
    /// The device cannot use this kind of network.
    #[error("this device has no {kind} interface")]
    Unsupported {
        /// `wifi` or `cellular`.
        kind: &'static str,
    },
    /// The join did not finish before its deadline.
    #[error("network join timed out at stage {}", last_stage.map_or("start", JoinStage::as_str))]
    Timeout {
        /// The last stage reached.
        last_stage: Option<JoinStage>,
    },
}

impl JoinFailure {
    /// The protocol's failure kind.
    pub fn kind(&self) -> JoinFailureKind {
        match self {
            Self::WifiAuthFailed { .. } => JoinFailureKind::WifiAuthFailed,
            Self::NetworkNotFound { .. } => JoinFailureKind::NetworkNotFound,
            Self::DhcpFailed { .. } => JoinFailureKind::DhcpFailed,
            Self::NoInternet { .. } => JoinFailureKind::NoInternet,
            Self::Timeout { last_stage } => match last_stage {
                None | Some(JoinStage::Associating) => JoinFailureKind::NetworkNotFound,
                Some(JoinStage::Authenticated) => JoinFailureKind::DhcpFailed,
                Some(JoinStage::GotIp) => JoinFailureKind::NoInternet,
                Some(_) => JoinFailureKind::DpsUnreachable,
            },
            Self::DpsUnreachable { .. } => JoinFailureKind::DpsUnreachable,
            Self::Unsupported { .. } => JoinFailureKind::Unsupported,
        }
    }

    /// Stable snake_case code (the protocol's `ErrorCode` name).
    pub fn code(&self) -> &'static str {
        self.kind().as_str()
    }
}

/// A scan or restore that could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("network operation failed: {0}")]
pub struct NetworkError(pub String);

/// Applies network configs on the device. Implementations: [`SimulatedNetworks`]; a
/// NetworkManager (D-Bus) one for Linux gateways plugs in here.
#[async_trait]
pub trait NetworkConfigurator: Send + Sync {
    /// The interfaces the device has.
    fn capabilities(&self) -> Capabilities;

    /// Scans for Wi-Fi networks (strongest first).
    async fn scan(&self) -> Result<Vec<ScannedNetwork>, NetworkError>;

    /// Joins `config` and checks reachability up to `dps_host`, reporting each stage. Must
    /// finish before `deadline_ms` (Unix ms); on failure the device is left off the candidate
    /// network, and the caller restores the previous config.
    async fn join(
        &self,
        config: &StoredNetwork,
        dps_host: &str,
        deadline_ms: u64,
        progress: &mut (dyn FnMut(JoinStage) + Send),
    ) -> Result<(), JoinFailure>;

    /// Returns to `previous` (the last proven config), or to no managed network if `None`.
    async fn restore(&self, previous: Option<&StoredNetwork>) -> Result<(), NetworkError>;
}
