//! Messages inside the secure session: requests, responses, events and what they carry.

use minicbor::{Decode, Encode};

use super::{
    DeviceState, DpsResult, ErrorCode, NetworkCapabilities, NetworkConfig, NetworkProgress,
    NetworkResult, RegistrationProgress, WifiNetwork,
};
use crate::ticket::SignedTicket;

/// What the device has staged or committed.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct Assignment {
    /// DPS ID scope from the ticket.
    #[n(0)]
    pub id_scope: String,
    /// Nonce of the ticket it came from (lets an installer recognise its own ticket on resume).
    #[n(1)]
    #[cbor(with = "minicbor::bytes")]
    pub ticket_nonce: [u8; 16],
    /// IoT hub, once DPS assigned one.
    #[n(2)]
    pub assigned_hub: Option<String>,
    /// Device ID in the hub, once assigned.
    #[n(3)]
    pub device_id: Option<String>,
}

/// Who the device is and what it can do; sealed inside `DeviceHello`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct DeviceInfo {
    /// DPS registration ID.
    #[n(0)]
    pub registration_id: String,
    /// Product code (as on the label).
    #[n(1)]
    pub product_code: u16,
    /// Firmware version.
    #[n(2)]
    pub firmware_version: String,
    /// Current state.
    #[n(3)]
    pub state: DeviceState,
    /// Staged or committed assignment, if any.
    #[n(4)]
    pub assignment: Option<Assignment>,
    /// Network capabilities.
    #[n(5)]
    pub network: NetworkCapabilities,
    /// A cached Wi-Fi scan, so the installer rarely needs `ScanNetworks`.
    #[n(6)]
    pub wifi_networks: Option<Vec<WifiNetwork>>,
}

/// The device's status (`Response::Status`).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct DeviceStatus {
    /// Current state.
    #[n(0)]
    pub state: DeviceState,
    /// Staged or committed assignment.
    #[n(1)]
    pub assignment: Option<Assignment>,
    /// Last DPS result.
    #[n(2)]
    pub registration: Option<DpsResult>,
    /// Last network join result.
    #[n(3)]
    pub network: Option<NetworkResult>,
    /// Seconds before the fail-safe rolls a staged ticket back.
    #[n(4)]
    pub fail_safe_remaining_s: Option<u32>,
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, thiserror::Error)]
#[cbor(map)]
#[error("{code}: {message}")]
pub struct ProtocolError {
    /// Stable code.
    #[n(0)]
    pub code: ErrorCode,
    /// What to do about it, for a person.
    #[n(1)]
    pub message: String,
    /// Seconds before retrying makes sense.
    #[n(2)]
    pub retry_after_s: Option<u32>,
}

impl ProtocolError {
    /// An error with the code's default message.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            message: code.default_message().to_owned(),
            retry_after_s: None,
        }
    }

    /// An error with a specific message.
    pub fn with_message(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }
}

/// Installer → device. One request at a time; each gets exactly one `Response`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub enum Request {
    /// Verify and stage the ticket, configure the network, arm the fail-safe, register.
    #[n(0)]
    Provision {
        /// The signed ticket.
        #[n(0)]
        ticket: SignedTicket,
        /// The network to use; `None` means keep the current one.
        #[n(1)]
        network: Option<NetworkConfig>,
    },
    /// Scan for Wi-Fi networks (only when the installer must pick one).
    #[n(1)]
    ScanNetworks,
    /// Report the current status.
    #[n(2)]
    GetStatus,
    /// Retry the network join with corrected settings (ticket already staged).
    #[n(3)]
    ConfigureNetwork {
        /// The corrected network.
        #[n(0)]
        network: NetworkConfig,
    },
    /// Roll a staged ticket back now (the installer gave up).
    #[n(4)]
    Cancel,
}

/// Device → installer, answering the `Request` before it.
#[allow(clippy::large_enum_variant)] // short-lived values; boxing would burden every caller
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub enum Response {
    /// The ticket is verified and staged; progress follows as events.
    #[n(0)]
    ProvisionAccepted {
        /// The state now.
        #[n(0)]
        state: DeviceState,
    },
    /// Wi-Fi scan results.
    #[n(1)]
    Networks(#[n(0)] Vec<WifiNetwork>),
    /// Status.
    #[n(2)]
    Status(#[n(0)] DeviceStatus),
    /// The request failed.
    #[n(3)]
    Error(#[n(0)] ProtocolError),
    /// The corrected network is being joined; progress follows as events.
    #[n(4)]
    NetworkAccepted {
        /// The state now.
        #[n(0)]
        state: DeviceState,
    },
    /// The staged ticket was rolled back.
    #[n(5)]
    Cancelled {
        /// The state now.
        #[n(0)]
        state: DeviceState,
    },
}

/// Device → installer, unsolicited (notifications).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub enum Event {
    /// A DPS registration step.
    #[n(0)]
    Registration(#[n(0)] RegistrationProgress),
    /// The final DPS result.
    #[n(1)]
    RegistrationResult(#[n(0)] DpsResult),
    /// A network join stage.
    #[n(2)]
    Network(#[n(0)] NetworkProgress),
    /// The network join result.
    #[n(3)]
    NetworkResult(#[n(0)] NetworkResult),
}

/// Everything that travels sealed inside the session.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub enum SecureMessage {
    /// Installer → device.
    #[n(0)]
    Request(#[n(0)] Request),
    /// Device → installer.
    #[n(1)]
    Response(#[n(0)] Response),
    /// Device → installer.
    #[n(2)]
    Event(#[n(0)] Event),
}
