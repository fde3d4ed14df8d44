//! Messages of the fleet socket (one JSON object per line).

use std::time::Duration;

use fieldlink_core::{
    assignment::{DpsScope, RegistrationView, ServiceError},
    transport::{DisconnectReason, DiscoveredDevice, PeripheralId, TransportError},
};
use serde::{Deserialize, Serialize};

/// The longest line either side accepts.
pub const MAX_LINE: usize = 256 * 1024;

/// The first line of every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The manifest's token.
    pub token: String,
    /// The operation.
    #[serde(flatten)]
    pub request: Request,
}

/// An operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Scan the virtual radio.
    Scan {
        /// Only this 12-bit discriminator (returns at the first match).
        discriminator: Option<u16>,
        /// Scan time.
        timeout_ms: u64,
    },
    /// Connect; the connection then carries the link.
    Connect {
        /// The peripheral.
        peripheral: String,
        /// Deadline.
        timeout_ms: u64,
    },
    /// A ticket for a device.
    Assignment {
        /// The device.
        registration_id: String,
    },
    /// A device's DPS registration state.
    Status {
        /// The device.
        registration_id: String,
        /// The ticket whose DPS instance to ask; without it every instance is searched.
        ticket: Option<String>,
    },
    /// What each virtual device holds.
    Devices,
    /// Switch a fault.
    Fault {
        /// The status service answers "unavailable".
        status_offline: bool,
    },
}

/// A scanned device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireDevice {
    /// Peripheral id.
    pub id: String,
    /// Local name.
    pub local_name: Option<String>,
    /// RSSI, dBm.
    pub rssi: Option<i16>,
    /// Service UUIDs (32 hex digits).
    pub service_uuids: Vec<String>,
    /// Service data (hex).
    pub service_data: String,
}

impl From<&DiscoveredDevice> for WireDevice {
    fn from(device: &DiscoveredDevice) -> Self {
        Self {
            id: device.id.0.clone(),
            local_name: device.local_name.clone(),
            rssi: device.rssi,
            service_uuids: device
                .service_uuids
                .iter()
                .map(|u| format!("{u:032x}"))
                .collect(),
            service_data: hex::encode(&device.service_data),
        }
    }
}

impl WireDevice {
    /// Back to the core's type; `None` if a field is malformed.
    pub fn to_discovered(&self) -> Option<DiscoveredDevice> {
        let service_uuids = self
            .service_uuids
            .iter()
            .map(|u| u128::from_str_radix(u, 16).ok())
            .collect::<Option<Vec<_>>>()?;
        Some(DiscoveredDevice {
            id: PeripheralId(self.id.clone()),
            local_name: self.local_name.clone(),
            rssi: self.rssi,
            service_uuids,
            service_data: hex::decode(&self.service_data).ok()?,
        })
    }
}

/// A registration view on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireView {
    /// DPS status.
    pub status: String,
    /// Assigned hub.
    pub assigned_hub: Option<String>,
    /// Device ID.
    pub device_id: Option<String>,
    /// Substatus.
    pub substatus: Option<String>,
    /// Error code.
    pub error_code: Option<u32>,
    /// The DPS instance that holds the record, when known.
    pub dps_instance: Option<String>,
}

impl WireView {
    /// From the core's view.
    pub fn of(view: &RegistrationView, dps_instance: Option<String>) -> Self {
        Self {
            status: view.status.clone(),
            assigned_hub: view.assigned_hub.clone(),
            device_id: view.device_id.clone(),
            substatus: view.substatus.clone(),
            error_code: view.error_code,
            dps_instance,
        }
    }

    /// To the core's view.
    pub fn to_view(&self) -> RegistrationView {
        RegistrationView {
            status: self.status.clone(),
            assigned_hub: self.assigned_hub.clone(),
            device_id: self.device_id.clone(),
            substatus: self.substatus.clone(),
            error_code: self.error_code,
        }
    }
}

/// What a virtual device holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceHolding {
    /// Registration ID.
    pub registration_id: String,
    /// Peripheral id on the radio.
    pub peripheral: String,
    /// Advertised state (`commissionable`, `registered`, ...).
    pub state: String,
    /// Tickets the device accepted so far (burnt nonces).
    pub tickets_accepted: usize,
    /// Committed hub, if registered.
    pub assigned_hub: Option<String>,
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Scan result.
    Scanned {
        /// Devices seen.
        devices: Vec<WireDevice>,
    },
    /// The link is up.
    Connected {
        /// Negotiated MTU.
        mtu: u16,
    },
    /// A ticket.
    Assignment {
        /// base64url.
        ticket: String,
    },
    /// A registration view.
    Status {
        /// The view.
        view: WireView,
    },
    /// Device holdings.
    Devices {
        /// One per device.
        devices: Vec<DeviceHolding>,
    },
    /// Done.
    Done,
    /// Failed.
    Error(WireError),
}

/// A failure on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// `not_found`, `timeout`, `disconnected`, `frame_too_large`, `unavailable`, `throttled`,
    /// `unauthorized`, `forbidden`, `unknown_registration`, `invalid`, `scope_mismatch`,
    /// `platform`.
    pub code: String,
    /// Detail.
    pub detail: String,
    /// Retry-After, for `throttled`.
    pub retry_after_ms: Option<u64>,
    /// For `scope_mismatch`: both scopes and the service's view (absent otherwise, and from
    /// older peers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_mismatch: Option<Box<WireScopeMismatch>>,
}

/// A registration answered about another DPS scope than the ticket's, on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireScopeMismatch {
    /// The ticket's ID scope.
    pub expected_id_scope: String,
    /// The ticket's DPS instance.
    pub expected_dps_instance: String,
    /// The ID scope the service answered about.
    pub reported_id_scope: String,
    /// The DPS instance the service answered about.
    pub reported_dps_instance: String,
    /// What the service reported there.
    pub view: WireView,
}

impl WireError {
    /// An error.
    pub fn new(code: &str, detail: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            detail: detail.into(),
            retry_after_ms: None,
            scope_mismatch: None,
        }
    }

    /// From a transport error.
    pub fn transport(error: &TransportError) -> Self {
        match error {
            TransportError::NotFound(id) => Self::new("not_found", id.0.clone()),
            TransportError::Timeout => Self::new("timeout", "timed out"),
            TransportError::Disconnected => Self::new("disconnected", "link down"),
            TransportError::FrameTooLarge { len, limit } => {
                Self::new("frame_too_large", format!("{len} > {limit}"))
            }
            TransportError::Unavailable(detail) => Self::new("unavailable", detail.clone()),
            TransportError::Platform(detail) => Self::new("platform", detail.clone()),
        }
    }

    /// Back to a transport error.
    pub fn to_transport(&self) -> TransportError {
        match self.code.as_str() {
            "not_found" => TransportError::NotFound(PeripheralId(self.detail.clone())),
            "timeout" => TransportError::Timeout,
            "disconnected" => TransportError::Disconnected,
            "unavailable" => TransportError::Unavailable(self.detail.clone()),
            _ => TransportError::Platform(format!("{}: {}", self.code, self.detail)),
        }
    }

    /// From a service error.
    pub fn service(error: &ServiceError) -> Self {
        match error {
            ServiceError::Unavailable { detail } => Self::new("unavailable", detail.clone()),
            ServiceError::Throttled { retry_after } => Self {
                retry_after_ms: retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(0)),
                ..Self::new("throttled", "throttled")
            },
            ServiceError::Unauthorized => Self::new("unauthorized", "unauthorized"),
            ServiceError::Forbidden => Self::new("forbidden", "forbidden"),
            ServiceError::UnknownRegistration { registration_id } => {
                Self::new("unknown_registration", registration_id.clone())
            }
            ServiceError::Invalid { detail } => Self::new("invalid", detail.clone()),
            ServiceError::ScopeMismatch {
                expected,
                reported,
                view,
            } => Self {
                scope_mismatch: Some(Box::new(WireScopeMismatch {
                    expected_id_scope: expected.id_scope.clone(),
                    expected_dps_instance: expected.dps_instance.clone(),
                    reported_id_scope: reported.id_scope.clone(),
                    reported_dps_instance: reported.dps_instance.clone(),
                    view: WireView::of(view, Some(reported.dps_instance.clone())),
                })),
                ..Self::new("scope_mismatch", error.to_string())
            },
        }
    }

    /// Back to a service error.
    pub fn to_service(&self) -> ServiceError {
        match self.code.as_str() {
            "throttled" => ServiceError::Throttled {
                retry_after: self.retry_after_ms.map(Duration::from_millis),
            },
            "unauthorized" => ServiceError::Unauthorized,
            "forbidden" => ServiceError::Forbidden,
            "unknown_registration" => ServiceError::UnknownRegistration {
                registration_id: self.detail.clone(),
            },
            "invalid" => ServiceError::Invalid {
                detail: self.detail.clone(),
            },
            "scope_mismatch" => match &self.scope_mismatch {
                Some(mismatch) => ServiceError::ScopeMismatch {
                    expected: DpsScope {
                        id_scope: mismatch.expected_id_scope.clone(),
                        dps_instance: mismatch.expected_dps_instance.clone(),
                    },
                    reported: DpsScope {
                        id_scope: mismatch.reported_id_scope.clone(),
                        dps_instance: mismatch.reported_dps_instance.clone(),
                    },
                    view: Box::new(mismatch.view.to_view()),
                },
                None => ServiceError::Invalid {
                    detail: self.detail.clone(),
                },
            },
            _ => ServiceError::Unavailable {
                detail: format!("{}: {}", self.code, self.detail),
            },
        }
    }
}

/// Installer → device, after `connected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "link", rename_all = "snake_case")]
pub enum Uplink {
    /// One ATT write (hex).
    Write {
        /// The frame.
        frame: String,
    },
    /// Close the link.
    Disconnect,
}

/// Device → installer, after `connected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "link", rename_all = "snake_case")]
pub enum Downlink {
    /// The oldest unacknowledged write reached the device.
    Ack,
    /// The oldest unacknowledged write failed.
    Nack {
        /// Why.
        error: WireError,
    },
    /// One notification (hex).
    Notify {
        /// The frame.
        frame: String,
    },
    /// The link is down.
    Disconnected {
        /// `local`, `remote` or `link_loss`.
        reason: String,
    },
}

/// `local`, `remote`, `link_loss`.
pub fn reason_name(reason: DisconnectReason) -> &'static str {
    match reason {
        DisconnectReason::Local => "local",
        DisconnectReason::Remote => "remote",
        DisconnectReason::LinkLoss => "link_loss",
    }
}

/// The inverse of [`reason_name`] (unknown names are a link loss).
pub fn reason_from(name: &str) -> DisconnectReason {
    match name {
        "local" => DisconnectReason::Local,
        "remote" => DisconnectReason::Remote,
        _ => DisconnectReason::LinkLoss,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_is_flat_json() {
        let hello = Hello {
            token: "t".into(),
            request: Request::Scan {
                discriminator: Some(0xabc),
                timeout_ms: 100,
            },
        };
        let text = serde_json::to_string(&hello).unwrap();
        assert_eq!(
            text,
            r#"{"token":"t","op":"scan","discriminator":2748,"timeout_ms":100}"#
        );
        assert_eq!(serde_json::from_str::<Hello>(&text).unwrap(), hello);
    }

    #[test]
    fn devices_and_errors_round_trip() {
        let device = DiscoveredDevice {
            id: PeripheralId("mem:1".into()),
            local_name: Some("FL-abc".into()),
            rssi: Some(-60),
            service_uuids: vec![fieldlink_protocol::gatt::SERVICE_UUID],
            service_data: vec![1, 2, 3, 4],
        };
        assert_eq!(WireDevice::from(&device).to_discovered(), Some(device));
        let throttled = ServiceError::Throttled {
            retry_after: Some(Duration::from_millis(1500)),
        };
        assert_eq!(WireError::service(&throttled).to_service(), throttled);
        assert_eq!(
            WireError::transport(&TransportError::Timeout).to_transport(),
            TransportError::Timeout
        );
        assert_eq!(
            reason_from(reason_name(DisconnectReason::Remote)),
            DisconnectReason::Remote
        );
    }

    #[test]
    fn a_scope_mismatch_crosses_the_socket_typed() {
        let error = ServiceError::ScopeMismatch {
            expected: DpsScope {
                id_scope: "0ne00A".into(),
                dps_instance: "dps-1".into(),
            },
            reported: DpsScope {
                id_scope: "0ne00B".into(),
                dps_instance: "dps-2".into(),
            },
            view: Box::new(RegistrationView {
                status: "assigned".into(),
                assigned_hub: Some("hub-2.example".into()),
                device_id: Some("sensor-1".into()),
                substatus: None,
                error_code: None,
            }),
        };
        let wire = WireError::service(&error);
        let text = serde_json::to_string(&wire).unwrap();
        let back: WireError = serde_json::from_str(&text).unwrap();
        assert_eq!(back.to_service(), error);
        // Other errors keep their shape (no scope_mismatch key).
        let plain = serde_json::to_value(WireError::service(&ServiceError::Forbidden)).unwrap();
        assert!(plain.get("scope_mismatch").is_none(), "{plain}");
    }
}
