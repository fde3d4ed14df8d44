use ed25519_dalek::SigningKey;

use super::*;
use crate::secret::Secret;
use crate::ticket::{TicketClaims, TicketSigner};

fn round_trip<T>(value: &T) -> Vec<u8>
where
    T: Encode<()> + for<'b> Decode<'b, ()> + PartialEq + std::fmt::Debug,
{
    let bytes = to_cbor(value);
    let back: T = from_cbor(&bytes).expect("decode");
    assert_eq!(&back, value);
    bytes
}

fn ticket() -> crate::ticket::SignedTicket {
    TicketSigner::new("api-2026", SigningKey::from_bytes(&[5; 32])).sign(&TicketClaims {
        key_id: String::new(),
        registration_id: "sensor-0042".into(),
        id_scope: "0ne00ABC123".into(),
        global_endpoint: "global.azure-devices-provisioning.net".into(),
        tenant: "acme".into(),
        dps_instance: "dps-eu-3".into(),
        not_before: 1_800_000_000,
        expires_at: 1_800_003_600,
        nonce: [7; 16],
    })
}

fn wifi() -> NetworkConfig {
    NetworkConfig::Wifi {
        ssid: "site-7".into(),
        passphrase: Secret::new("correct horse battery"),
        hidden: false,
        bssid: None,
    }
}

fn scan() -> Vec<WifiNetwork> {
    vec![
        WifiNetwork {
            ssid: "site-7".into(),
            rssi: -48,
            security: WifiSecurity::Wpa2Personal,
            channel: 6,
            bssid: Some([0, 1, 2, 3, 4, 5]),
        },
        WifiNetwork {
            ssid: "guest".into(),
            rssi: -81,
            security: WifiSecurity::Open,
            channel: 36,
            bssid: None,
        },
    ]
}

fn assignment() -> Assignment {
    Assignment {
        id_scope: "0ne00ABC123".into(),
        ticket_nonce: [7; 16],
        assigned_hub: Some("hub-1.azure-devices.net".into()),
        device_id: Some("sensor-0042".into()),
    }
}

fn dps_result() -> DpsResult {
    DpsResult {
        status: DpsStatus::Assigned,
        assigned_hub: Some("hub-1.azure-devices.net".into()),
        device_id: Some("sensor-0042".into()),
        substatus: Some("initialAssignment".into()),
        error_code: None,
        error_message: None,
        failure: None,
    }
}

fn device_info() -> DeviceInfo {
    DeviceInfo {
        registration_id: "sensor-0042".into(),
        product_code: 0x1234,
        firmware_version: "1.4.2".into(),
        state: DeviceState::Commissionable,
        assignment: None,
        network: NetworkCapabilities {
            wifi: true,
            ethernet: false,
            cellular: false,
            already_online: false,
        },
        wifi_networks: Some(scan()),
    }
}

fn sealed() -> Sealed {
    Sealed {
        counter: 3,
        ciphertext: vec![0xaa; 40],
    }
}

#[test]
fn every_wire_message_round_trips() {
    let messages = [
        WireMessage::ClientHello(ClientHello {
            version: 1,
            secret_kind: SecretKind::ManualPasscode,
            spake_msg: vec![0x41; SPAKE_MSG_LEN],
            client_nonce: [1; NONCE_LEN],
        }),
        WireMessage::DeviceHello(DeviceHello {
            version: 1,
            spake_msg: vec![0x42; SPAKE_MSG_LEN],
            device_nonce: [2; NONCE_LEN],
            device_confirm: [3; CONFIRM_LEN],
            attempts_left: 4,
            device_info: sealed(),
        }),
        WireMessage::HandshakeRefused(HandshakeRefused {
            code: ErrorCode::DeviceLocked,
            retry_after_s: Some(300),
            supported_version: None,
        }),
        WireMessage::ClientFinish(ClientFinish {
            client_confirm: [4; CONFIRM_LEN],
            request: sealed(),
        }),
        WireMessage::Sealed(sealed()),
    ];
    for message in &messages {
        let bytes = message.encode();
        assert_eq!(
            &WireMessage::decode(&bytes).expect("decode"),
            message,
            "{}",
            message.kind()
        );
    }
}

#[test]
fn every_secure_message_round_trips() {
    let messages = vec![
        SecureMessage::Request(Request::Provision {
            ticket: ticket(),
            network: Some(wifi()),
        }),
        SecureMessage::Request(Request::Provision {
            ticket: ticket(),
            network: None,
        }),
        SecureMessage::Request(Request::Provision {
            ticket: ticket(),
            network: Some(NetworkConfig::Cellular {
                apn: "iot.example".into(),
            }),
        }),
        SecureMessage::Request(Request::Provision {
            ticket: ticket(),
            network: Some(NetworkConfig::KeepCurrent),
        }),
        SecureMessage::Request(Request::ScanNetworks),
        SecureMessage::Request(Request::GetStatus),
        SecureMessage::Request(Request::ConfigureNetwork {
            network: NetworkConfig::Wifi {
                ssid: "hidden-net".into(),
                passphrase: Secret::new("x"),
                hidden: true,
                bssid: Some([9; 6]),
            },
        }),
        SecureMessage::Request(Request::Cancel),
        SecureMessage::Response(Response::ProvisionAccepted {
            state: DeviceState::TicketStaged,
        }),
        SecureMessage::Response(Response::Networks(scan())),
        SecureMessage::Response(Response::Status(DeviceStatus {
            state: DeviceState::Registered,
            assignment: Some(assignment()),
            registration: Some(dps_result()),
            network: Some(NetworkResult::Joined {
                address: Some("192.0.2.10".into()),
            }),
            fail_safe_remaining_s: None,
        })),
        SecureMessage::Response(Response::Error(ProtocolError::new(
            ErrorCode::TicketExpired,
        ))),
        SecureMessage::Response(Response::NetworkAccepted {
            state: DeviceState::Registering,
        }),
        SecureMessage::Response(Response::Cancelled {
            state: DeviceState::Commissionable,
        }),
        SecureMessage::Event(Event::Registration(RegistrationProgress {
            stage: RegistrationStage::WaitingToRetry,
            attempt: 2,
            retry_after_s: Some(3),
        })),
        SecureMessage::Event(Event::RegistrationResult(DpsResult {
            status: DpsStatus::Failed,
            assigned_hub: None,
            device_id: None,
            substatus: None,
            error_code: Some(400_209),
            error_message: Some("Device not found".into()),
            failure: Some(ErrorCode::RegistrationFailed),
        })),
        SecureMessage::Event(Event::Network(NetworkProgress {
            stage: JoinStage::GotIp,
        })),
        SecureMessage::Event(Event::NetworkResult(NetworkResult::Failed {
            kind: JoinFailureKind::WifiAuthFailed,
            detail: Some("4-way handshake timed out".into()),
        })),
    ];
    for message in &messages {
        let bytes = message.encode();
        assert_eq!(&SecureMessage::decode(&bytes).expect("decode"), message);
    }
    round_trip(&device_info());
    round_trip(&DeviceInfo {
        assignment: Some(assignment()),
        wifi_networks: None,
        ..device_info()
    });
}

#[test]
fn encodings_are_compact() {
    // Fixed overheads matter at MTU 23 (16 payload bytes in the first frame).
    let status = SecureMessage::Request(Request::GetStatus).encode();
    assert_eq!(status, [0x82, 0x00, 0xa1, 0x00, 0x82, 0x02, 0xa0]);
    let event = SecureMessage::Event(Event::Network(NetworkProgress {
        stage: JoinStage::GotIp,
    }))
    .encode();
    assert!(event.len() <= 12, "{}", event.len());
    let hello = WireMessage::ClientHello(ClientHello {
        version: 1,
        secret_kind: SecretKind::Pop,
        spake_msg: vec![0x41; SPAKE_MSG_LEN],
        client_nonce: [1; NONCE_LEN],
    })
    .encode();
    assert!(hello.len() <= 64, "{}", hello.len());
    let provision = SecureMessage::Request(Request::Provision {
        ticket: ticket(),
        network: Some(wifi()),
    })
    .encode();
    assert!(provision.len() <= 280, "{}", provision.len());
}

#[test]
fn unknown_fields_are_ignored_and_missing_options_are_none() {
    // {0: 3, 1: "m", 9: "from a newer peer"} decodes as a ProtocolError.
    let mut bytes = vec![0xa3, 0x00, 0x03, 0x01, 0x61, b'm', 0x09, 0x71];
    bytes.extend_from_slice(b"from a newer peer");
    let error: ProtocolError = from_cbor(&bytes).expect("decode");
    assert_eq!(error.code, ErrorCode::WrongPop);
    assert_eq!(error.retry_after_s, None);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let good = WireMessage::Sealed(sealed()).encode();
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        WireMessage::decode(&trailing),
        Err(MessageError::Malformed { .. })
    ));
    for len in 0..good.len() {
        assert!(WireMessage::decode(&good[..len]).is_err(), "prefix {len}");
    }
    assert!(matches!(
        WireMessage::decode(&vec![0; MAX_MESSAGE_LEN + 1]),
        Err(MessageError::TooLarge { .. })
    ));
    assert!(
        WireMessage::decode(&[0x82, 0x09, 0xa0]).is_err(),
        "unknown variant"
    );
    let error = WireMessage::decode(&[0xff]).expect_err("garbage");
    assert_eq!(error.error_code(), ErrorCode::MalformedMessage);
}

#[test]
fn credentials_never_show_in_debug() {
    let request = SecureMessage::Request(Request::Provision {
        ticket: ticket(),
        network: Some(wifi()),
    });
    let text = format!("{request:?}");
    assert!(!text.contains("correct horse"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
    assert!(text.contains("site-7"));
}

#[test]
fn dps_status_maps_dps_json_values() {
    for status in [
        DpsStatus::Unassigned,
        DpsStatus::Assigning,
        DpsStatus::Assigned,
        DpsStatus::Failed,
        DpsStatus::Disabled,
    ] {
        assert_eq!(DpsStatus::from_dps(status.as_str()), Some(status));
    }
    assert_eq!(DpsStatus::from_dps("ASSIGNED"), Some(DpsStatus::Assigned));
    assert_eq!(DpsStatus::from_dps("pending"), None);
    assert!(dps_result().is_assigned());
    assert!(
        !DpsResult {
            assigned_hub: None,
            ..dps_result()
        }
        .is_assigned()
    );
    assert_eq!(RegistrationStage::StatusLookup.as_str(), "status_lookup");
}

#[test]
fn join_failures_have_codes_and_actionable_messages() {
    let expected = [
        (
            JoinFailureKind::WifiAuthFailed,
            "wifi_auth_failed",
            "passphrase",
        ),
        (
            JoinFailureKind::NetworkNotFound,
            "network_not_found",
            "SSID",
        ),
        (JoinFailureKind::DhcpFailed, "dhcp_failed", "DHCP"),
        (JoinFailureKind::NoInternet, "no_internet", "captive portal"),
        (
            JoinFailureKind::DpsUnreachable,
            "dps_unreachable",
            "firewall",
        ),
        (
            JoinFailureKind::Unsupported,
            "network_unsupported",
            "capabilities",
        ),
    ];
    for (kind, name, hint) in expected {
        assert_eq!(kind.as_str(), name);
        assert!(kind.actionable_message().contains(hint), "{name}");
    }
    let stages = [
        JoinStage::Associating,
        JoinStage::Authenticated,
        JoinStage::GotIp,
        JoinStage::InternetReachable,
        JoinStage::DpsReachable,
    ];
    assert!(stages.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(JoinStage::InternetReachable.as_str(), "internet_reachable");
}

#[test]
fn protocol_error_display_names_the_code() {
    let error = ProtocolError::with_message(ErrorCode::Busy, "another installer is connected");
    assert_eq!(error.to_string(), "busy: another installer is connected");
}

/// `DpsResult` as protocol 1 devices built it before key 6 (`failure`) existed.
#[derive(Debug, Clone, PartialEq, Eq, minicbor::Encode, minicbor::Decode)]
#[cbor(map)]
struct DpsResultBeforeFailure {
    #[n(0)]
    status: DpsStatus,
    #[n(1)]
    assigned_hub: Option<String>,
    #[n(2)]
    device_id: Option<String>,
    #[n(3)]
    substatus: Option<String>,
    #[n(4)]
    error_code: Option<u32>,
    #[n(5)]
    error_message: Option<String>,
}

#[test]
fn the_dps_failure_code_is_compatible_both_ways() {
    // An older device's result (no key 6) decodes with no failure code.
    let old = DpsResultBeforeFailure {
        status: DpsStatus::Unassigned,
        assigned_hub: None,
        device_id: None,
        substatus: None,
        error_code: None,
        error_message: Some("dps_unreachable: connect failed".into()),
    };
    let decoded: DpsResult = minicbor::decode(&minicbor::to_vec(&old).unwrap()).unwrap();
    assert_eq!(decoded.failure, None);
    assert_eq!(decoded.error_message, old.error_message);
    // A newer device's result decodes on an older installer (key 6 skipped), for every code
    // the device sends, and round-trips here.
    for failure in [
        ErrorCode::RegistrationFailed,
        ErrorCode::DpsUnreachable,
        ErrorCode::DpsThrottled,
        ErrorCode::DpsUnauthorized,
        ErrorCode::DpsNotFound,
        ErrorCode::FailSafeExpired,
        ErrorCode::Unknown(4242),
    ] {
        let new = DpsResult {
            status: DpsStatus::Unassigned,
            assigned_hub: None,
            device_id: None,
            substatus: None,
            error_code: Some(401_002),
            error_message: Some("unauthorized".into()),
            failure: Some(failure),
        };
        let bytes = minicbor::to_vec(&new).unwrap();
        let seen_by_old: DpsResultBeforeFailure = minicbor::decode(&bytes).unwrap();
        assert_eq!(seen_by_old.error_code, Some(401_002));
        assert_eq!(seen_by_old.error_message.as_deref(), Some("unauthorized"));
        assert_eq!(minicbor::decode::<DpsResult>(&bytes).unwrap(), new);
        // Inside the sealed event too.
        let event = SecureMessage::Event(Event::RegistrationResult(new.clone()));
        let bytes = minicbor::to_vec(&event).unwrap();
        assert_eq!(minicbor::decode::<SecureMessage>(&bytes).unwrap(), event);
    }
    assert_eq!(ErrorCode::from_u16(23), ErrorCode::DpsUnauthorized);
    assert_eq!(ErrorCode::from_u16(24).as_str(), "dps_not_found");
}
