//! Conversions between the protocol's messages and the agent's own types.

use fieldlink_protocol::message::{
    Assignment, DpsResult, DpsStatus, ErrorCode, NetworkConfig, ProtocolError,
};

use crate::dps::{DpsError, RegistrationState};
use crate::network::Capabilities;
use crate::secret::SecretString;
use crate::store::{PersistedState, StoredNetwork};

/// The candidate network a `NetworkConfig` asks for (`None` = keep the current one), or why the
/// device cannot use it.
pub(crate) fn candidate_network(
    config: Option<&NetworkConfig>,
    capabilities: &Capabilities,
) -> Result<Option<StoredNetwork>, ProtocolError> {
    match config {
        None | Some(NetworkConfig::KeepCurrent) => Ok(None),
        Some(NetworkConfig::Wifi {
            ssid,
            passphrase,
            hidden,
            bssid,
        }) => {
            if !capabilities.wifi {
                return Err(ProtocolError::with_message(
                    ErrorCode::NetworkUnsupported,
                    "this device has no Wi-Fi; pick a network kind from its capabilities",
                ));
            }
            if ssid.is_empty() || ssid.len() > 32 {
                return Err(ProtocolError::with_message(
                    ErrorCode::NetworkNotFound,
                    "the SSID must be 1 to 32 bytes long",
                ));
            }
            if passphrase.len() > 64 || (!passphrase.is_empty() && passphrase.len() < 8) {
                return Err(ProtocolError::with_message(
                    ErrorCode::WifiAuthFailed,
                    "a WPA passphrase is 8 to 63 characters (or 64 hex digits); check it",
                ));
            }
            Ok(Some(StoredNetwork::Wifi {
                ssid: ssid.clone(),
                passphrase: SecretString::new(passphrase.expose()),
                hidden: *hidden,
                bssid: bssid.map(|bytes| {
                    bytes
                        .iter()
                        .map(|byte| format!("{byte:02x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                }),
            }))
        }
        Some(NetworkConfig::Cellular { apn }) => {
            if !capabilities.cellular {
                return Err(ProtocolError::with_message(
                    ErrorCode::NetworkUnsupported,
                    "this device has no cellular modem; pick a network kind from its capabilities",
                ));
            }
            Ok(Some(StoredNetwork::Cellular { apn: apn.clone() }))
        }
    }
}

/// A DPS registration state as the protocol's `DpsResult`.
pub(crate) fn dps_result(state: &RegistrationState) -> DpsResult {
    let status = DpsStatus::from_dps(state.status.as_str()).unwrap_or(DpsStatus::Failed);
    let assigned = status == DpsStatus::Assigned && state.assigned_hub.is_some();
    DpsResult {
        status,
        assigned_hub: state.assigned_hub.clone(),
        device_id: state.device_id.clone(),
        substatus: state.substatus.clone(),
        error_code: state.error_code.and_then(|code| u32::try_from(code).ok()),
        error_message: state.error_message.clone(),
        failure: (!assigned).then_some(ErrorCode::RegistrationFailed),
    }
}

/// A registration that never reached a DPS verdict (unreachable, throttled, refused request,
/// fail-safe expiry): reported as `unassigned` with its stable code in `failure` (the message,
/// still prefixed by the code for installers that predate `failure`, is for people only).
pub(crate) fn unassigned_result(code: ErrorCode, reason: &str) -> DpsResult {
    DpsResult {
        status: DpsStatus::Unassigned,
        assigned_hub: None,
        device_id: None,
        substatus: None,
        error_code: None,
        error_message: Some(format!("{}: {reason}", code.as_str())),
        failure: Some(code),
    }
}

/// The stable code for a DPS client error.
pub(crate) fn dps_error_code(error: &DpsError) -> ErrorCode {
    match error {
        DpsError::Unreachable { .. } => ErrorCode::DpsUnreachable,
        DpsError::DeadlineExceeded { .. } => ErrorCode::FailSafeExpired,
        DpsError::Throttled { .. } => ErrorCode::DpsThrottled,
        DpsError::Rejected {
            http_status: 401 | 403,
            ..
        } => ErrorCode::DpsUnauthorized,
        DpsError::Rejected {
            http_status: 404, ..
        } => ErrorCode::DpsNotFound,
        DpsError::Rejected { .. } | DpsError::InvalidResponse { .. } => {
            ErrorCode::RegistrationFailed
        }
        DpsError::Credential(_) | DpsError::InvalidEndpoint { .. } | DpsError::ClientSetup(_) => {
            ErrorCode::Internal
        }
    }
}

/// The staged or committed assignment, as reported to the installer.
pub(crate) fn assignment(state: &PersistedState) -> Option<Assignment> {
    if let Some(staged) = &state.staged {
        return Some(Assignment {
            id_scope: staged.id_scope.clone(),
            ticket_nonce: nonce_bytes(&staged.nonce),
            assigned_hub: None,
            device_id: None,
        });
    }
    state
        .assignment
        .as_ref()
        .filter(|committed| committed.is_valid())
        .map(|committed| Assignment {
            id_scope: committed.id_scope.clone(),
            ticket_nonce: nonce_bytes(&committed.ticket_nonce),
            assigned_hub: Some(committed.assigned_hub.clone()),
            device_id: Some(committed.device_id.clone()),
        })
}

/// Decodes a stored hex nonce (zeros if the record predates nonces).
pub(crate) fn nonce_bytes(hex_nonce: &str) -> [u8; 16] {
    hex::decode(hex_nonce)
        .ok()
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
        .unwrap_or([0; 16])
}

/// The DPS host for reachability checks.
pub(crate) fn endpoint_host(endpoint: &str) -> String {
    let without_scheme = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    without_scheme
        .split('/')
        .next()
        .unwrap_or(without_scheme)
        .to_owned()
}

/// Seconds, rounded up, saturating.
pub(crate) fn ceil_secs(ms: u64) -> u32 {
    u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_protocol::secret::Secret;

    fn wifi(ssid: &str, pass: &str) -> NetworkConfig {
        NetworkConfig::Wifi {
            ssid: ssid.into(),
            passphrase: Secret::new(pass),
            hidden: false,
            bssid: Some([0xaa, 0xbb, 0xcc, 0, 1, 2]),
        }
    }

    #[test]
    fn network_configs_are_checked_against_capabilities() {
        let wifi_only = Capabilities {
            wifi: true,
            ..Capabilities::default()
        };
        let stored = candidate_network(Some(&wifi("site", "longenough")), &wifi_only)
            .unwrap()
            .unwrap();
        match stored {
            StoredNetwork::Wifi { bssid, .. } => {
                assert_eq!(bssid.as_deref(), Some("aa:bb:cc:00:01:02"))
            }
            other => panic!("{other:?}"),
        }
        let cellular = NetworkConfig::Cellular { apn: "iot".into() };
        assert_eq!(
            candidate_network(Some(&cellular), &wifi_only)
                .unwrap_err()
                .code,
            ErrorCode::NetworkUnsupported
        );
        assert_eq!(
            candidate_network(Some(&wifi("site", "short")), &wifi_only)
                .unwrap_err()
                .code,
            ErrorCode::WifiAuthFailed
        );
        assert_eq!(
            candidate_network(Some(&wifi("", "longenough")), &wifi_only)
                .unwrap_err()
                .code,
            ErrorCode::NetworkNotFound
        );
        assert!(
            candidate_network(Some(&NetworkConfig::KeepCurrent), &wifi_only)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn endpoint_hosts() {
        assert_eq!(endpoint_host("https://127.0.0.1:8443/x"), "127.0.0.1:8443");
        assert_eq!(
            endpoint_host("global.azure-devices-provisioning.net"),
            "global.azure-devices-provisioning.net"
        );
    }
}
