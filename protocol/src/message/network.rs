//! Network capabilities, Wi-Fi scan results, network configuration and join reporting.

use minicbor::{Decode, Encode};

use super::ErrorCode;
use crate::secret::Secret;

/// Which networks the device can use (in `DeviceInfo`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct NetworkCapabilities {
    /// Has a Wi-Fi station interface.
    #[n(0)]
    pub wifi: bool,
    /// Has Ethernet.
    #[n(1)]
    pub ethernet: bool,
    /// Has a cellular modem.
    #[n(2)]
    pub cellular: bool,
    /// Already has working internet access (no configuration needed).
    #[n(3)]
    pub already_online: bool,
}

/// Wi-Fi security of a scanned network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
#[cbor(index_only)]
pub enum WifiSecurity {
    /// No security.
    #[n(0)]
    Open,
    /// WEP.
    #[n(1)]
    Wep,
    /// WPA-Personal.
    #[n(2)]
    WpaPersonal,
    /// WPA2-Personal.
    #[n(3)]
    Wpa2Personal,
    /// WPA3-Personal (SAE).
    #[n(4)]
    Wpa3Personal,
    /// WPA2/WPA3-Personal transition mode.
    #[n(5)]
    Wpa2Wpa3Personal,
    /// WPA2/WPA3-Enterprise (not configurable over fieldlink).
    #[n(6)]
    Enterprise,
    /// Something else.
    #[n(7)]
    Other,
}

/// One Wi-Fi scan result.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct WifiNetwork {
    /// SSID (non-UTF-8 bytes are replaced by U+FFFD).
    #[n(0)]
    pub ssid: String,
    /// Signal strength in dBm.
    #[n(1)]
    pub rssi: i8,
    /// Security.
    #[n(2)]
    pub security: WifiSecurity,
    /// Channel number.
    #[n(3)]
    pub channel: u8,
    /// BSSID, when the device reports one.
    #[n(4)]
    #[cbor(with = "minicbor::bytes")]
    pub bssid: Option<[u8; 6]>,
}

/// The network the device should use (rides with the ticket in `Request::Provision`).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub enum NetworkConfig {
    /// Join a Wi-Fi network.
    #[n(0)]
    Wifi {
        /// SSID.
        #[n(0)]
        ssid: String,
        /// Passphrase (empty for an open network). Never logged.
        #[n(1)]
        passphrase: Secret,
        /// The network does not broadcast its SSID.
        #[n(2)]
        hidden: bool,
        /// Join only this access point.
        #[n(3)]
        #[cbor(with = "minicbor::bytes")]
        bssid: Option<[u8; 6]>,
    },
    /// Use the cellular modem with this APN.
    #[n(1)]
    Cellular {
        /// Access point name.
        #[n(0)]
        apn: String,
    },
    /// Keep the current network configuration (Ethernet, or already online).
    #[n(2)]
    KeepCurrent,
}

/// A step of joining the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
#[cbor(index_only)]
pub enum JoinStage {
    /// Associating with the access point (or attaching to the cellular network).
    #[n(0)]
    Associating,
    /// Authenticated (Wi-Fi handshake done).
    #[n(1)]
    Authenticated,
    /// Got an IP address.
    #[n(2)]
    GotIp,
    /// The internet is reachable.
    #[n(3)]
    InternetReachable,
    /// The DPS endpoint is reachable.
    #[n(4)]
    DpsReachable,
}

impl JoinStage {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Associating => "associating",
            Self::Authenticated => "authenticated",
            Self::GotIp => "got_ip",
            Self::InternetReachable => "internet_reachable",
            Self::DpsReachable => "dps_reachable",
        }
    }
}

/// One network join progress report (`Event::Network`).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct NetworkProgress {
    /// The stage just reached.
    #[n(0)]
    pub stage: JoinStage,
}

/// Why joining the network failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
#[cbor(index_only)]
pub enum JoinFailureKind {
    /// The access point rejected the passphrase.
    #[n(0)]
    WifiAuthFailed,
    /// The SSID was not found (or is out of range).
    #[n(1)]
    NetworkNotFound,
    /// Associated, but no IP address.
    #[n(2)]
    DhcpFailed,
    /// An IP address, but no internet (gateway, DNS, captive portal).
    #[n(3)]
    NoInternet,
    /// Internet, but the DPS endpoint is not reachable.
    #[n(4)]
    DpsUnreachable,
    /// The device has no interface for this kind of network.
    #[n(5)]
    Unsupported,
}

impl JoinFailureKind {
    /// The matching error code (whose `as_str` is the stable name).
    pub fn error_code(self) -> ErrorCode {
        match self {
            Self::WifiAuthFailed => ErrorCode::WifiAuthFailed,
            Self::NetworkNotFound => ErrorCode::NetworkNotFound,
            Self::DhcpFailed => ErrorCode::DhcpFailed,
            Self::NoInternet => ErrorCode::NoInternet,
            Self::DpsUnreachable => ErrorCode::DpsUnreachable,
            Self::Unsupported => ErrorCode::NetworkUnsupported,
        }
    }

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        self.error_code().as_str()
    }

    /// What the installer should do about it.
    pub fn actionable_message(self) -> &'static str {
        self.error_code().default_message()
    }
}

/// How joining the network ended (`Event::NetworkResult`). On failure the device has restored
/// its previous network configuration and stays commissionable; a corrected retry needs no reset.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub enum NetworkResult {
    /// Online, and DPS is reachable.
    #[n(0)]
    Joined {
        /// The address obtained, for display (for example `192.0.2.10`).
        #[n(0)]
        address: Option<String>,
    },
    /// Joining failed.
    #[n(1)]
    Failed {
        /// Why.
        #[n(0)]
        kind: JoinFailureKind,
        /// Device-side detail for support (never contains secrets).
        #[n(1)]
        detail: Option<String>,
    },
}
