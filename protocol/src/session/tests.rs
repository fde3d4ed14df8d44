use ed25519_dalek::SigningKey;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::message::{
    ClientFinish, ClientHello, DeviceHello, DeviceInfo, DeviceState, DpsResult, DpsStatus, Event,
    NetworkCapabilities, Request, Response, SecureMessage,
};
use crate::ticket::{TicketClaims, TicketSigner};

fn pop() -> PopSecret {
    PopSecret::from_bytes(*b"0123456789a")
}

fn info() -> DeviceInfo {
    DeviceInfo {
        registration_id: "sensor-0042".into(),
        product_code: 7,
        firmware_version: "1.0.0".into(),
        state: DeviceState::Commissionable,
        assignment: None,
        network: NetworkCapabilities {
            wifi: true,
            ..Default::default()
        },
        wifi_networks: None,
    }
}

fn provision() -> SecureMessage {
    let ticket = TicketSigner::new("k", SigningKey::from_bytes(&[1; 32])).sign(&TicketClaims {
        key_id: "k".into(),
        registration_id: "sensor-0042".into(),
        id_scope: "0ne00ABC123".into(),
        global_endpoint: "global.azure-devices-provisioning.net".into(),
        tenant: "acme".into(),
        dps_instance: "dps-1".into(),
        not_before: 0,
        expires_at: 10,
        nonce: [3; 16],
    });
    SecureMessage::Request(Request::Provision {
        ticket,
        network: None,
    })
}

/// Runs RT1; returns the client result and the device's pending session.
fn rt1(
    client_secret: &SessionSecret,
    attempts_left: u8,
) -> (
    Result<(SecureChannel, DeviceInfo, ClientConfirm), SessionError>,
    PendingDeviceSession,
    DeviceHello,
) {
    let mut rng = StdRng::seed_from_u64(42);
    let (client, hello) = ClientHandshake::start(client_secret, &mut rng);
    let (pending, reply) =
        DeviceHandshake::respond(&pop(), &hello, &info(), attempts_left, &mut rng)
            .expect("respond");
    (client.finish(&reply), pending, reply)
}

fn established(secret: &SessionSecret) -> (SecureChannel, SecureChannel) {
    let (client, pending, _) = rt1(secret, 5);
    let (mut client_channel, device_info, confirm) = client.expect("client finish");
    assert_eq!(device_info, info());
    let finish = confirm
        .finish(&mut client_channel, &provision())
        .expect("finish");
    let (device_channel, first) = pending.confirm(&finish).expect("device confirm");
    assert_eq!(first, provision());
    (client_channel, device_channel)
}

#[test]
fn happy_path_with_the_pop_in_two_round_trips() {
    let (mut client, mut device) = established(&SessionSecret::Pop(pop()));
    // After RT2 the device answers and then only notifies.
    let accepted = SecureMessage::Response(Response::ProvisionAccepted {
        state: DeviceState::TicketStaged,
    });
    let result = SecureMessage::Event(Event::RegistrationResult(DpsResult {
        status: DpsStatus::Assigned,
        assigned_hub: Some("hub".into()),
        device_id: Some("sensor-0042".into()),
        substatus: None,
        error_code: None,
        error_message: None,
        failure: None,
    }));
    for message in [&accepted, &result] {
        let sealed = device.seal(message).expect("seal");
        assert_eq!(&client.open(&sealed).expect("open"), message);
    }
    assert_eq!((client.send_counter(), client.recv_counter()), (1, 3));
    assert_eq!((device.send_counter(), device.recv_counter()), (3, 1));
    let request = SecureMessage::Request(Request::GetStatus);
    let sealed = client.seal(&request).expect("seal");
    assert_eq!(device.open(&sealed).expect("open"), request);
    assert_eq!(client.role(), Role::Installer);
    assert_eq!(device.role(), Role::Device);
}

#[test]
fn happy_path_with_the_manual_passcode() {
    let (mut client, mut device) =
        established(&SessionSecret::ManualPasscode(pop().manual_passcode()));
    let sealed = device
        .seal(&SecureMessage::Request(Request::ScanNetworks))
        .expect("seal");
    assert!(client.open(&sealed).is_ok());
}

#[test]
fn wrong_secret_is_detected_by_the_installer_with_attempts_left() {
    let wrong = SessionSecret::Pop(PopSecret::from_bytes(*b"0123456789b"));
    let (client, _, _) = rt1(&wrong, 3);
    let error = client.expect_err("wrong pop");
    assert_eq!(error, SessionError::WrongSecret { attempts_left: 3 });
    assert_eq!(error.code(), "wrong_pop");
    assert_eq!(error.error_code(), crate::message::ErrorCode::WrongPop);
    assert!(error.to_string().contains("3 attempts left"));

    let (client, _, _) = rt1(
        &SessionSecret::ManualPasscode(pop().manual_passcode() ^ 1),
        0,
    );
    assert_eq!(
        client.expect_err("wrong passcode"),
        SessionError::WrongSecret { attempts_left: 0 }
    );
}

#[test]
fn the_secret_kind_cannot_be_downgraded() {
    let mut rng = StdRng::seed_from_u64(1);
    let (client, mut hello) = ClientHandshake::start(&SessionSecret::Pop(pop()), &mut rng);
    hello.secret_kind = crate::message::SecretKind::ManualPasscode;
    let (_, reply) =
        DeviceHandshake::respond(&pop(), &hello, &info(), 4, &mut rng).expect("respond");
    assert_eq!(
        client.finish(&reply).expect_err("downgrade"),
        SessionError::WrongSecret { attempts_left: 4 }
    );
}

#[test]
fn tampered_attempts_left_breaks_the_confirmation() {
    let mut rng = StdRng::seed_from_u64(2);
    let (client, hello) = ClientHandshake::start(&SessionSecret::Pop(pop()), &mut rng);
    let (_, mut reply) =
        DeviceHandshake::respond(&pop(), &hello, &info(), 4, &mut rng).expect("respond");
    reply.attempts_left = 5;
    assert!(matches!(
        client.finish(&reply),
        Err(SessionError::WrongSecret { .. })
    ));
}

#[test]
fn the_device_refuses_a_bad_client_confirmation() {
    let (client, pending, _) = rt1(&SessionSecret::Pop(pop()), 2);
    let (mut channel, _, confirm) = client.expect("client finish");
    let mut finish = confirm.finish(&mut channel, &provision()).expect("finish");
    finish.client_confirm[0] ^= 0x80;
    assert_eq!(
        pending.confirm(&finish).expect_err("bad confirm"),
        SessionError::WrongSecret { attempts_left: 2 }
    );
}

#[test]
fn the_first_request_rides_with_client_finish_and_is_sealed() {
    let (client, pending, reply) = rt1(&SessionSecret::Pop(pop()), 5);
    assert!(
        !contains(&reply.device_info.ciphertext, b"sensor-0042"),
        "DeviceInfo must be sealed"
    );
    let (mut channel, _, confirm) = client.expect("client finish");
    let finish: ClientFinish = confirm.finish(&mut channel, &provision()).expect("finish");
    assert_eq!(finish.request.counter, 0);
    assert!(
        !contains(&finish.request.ciphertext, b"0ne00ABC123"),
        "the ticket must be sealed"
    );
    let (_, first) = pending.confirm(&finish).expect("confirm");
    assert_eq!(first, provision());
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn tampered_records_are_rejected_without_breaking_the_session() {
    let (mut client, mut device) = established(&SessionSecret::Pop(pop()));
    let message = SecureMessage::Request(Request::GetStatus);
    let sealed = client.seal(&message).expect("seal");
    for i in 0..sealed.ciphertext.len() {
        let mut tampered = sealed.clone();
        tampered.ciphertext[i] ^= 1;
        assert_eq!(
            device.open(&tampered),
            Err(SessionError::Tampered),
            "byte {i}"
        );
    }
    let mut truncated = sealed.clone();
    truncated.ciphertext.truncate(10);
    assert_eq!(device.open(&truncated), Err(SessionError::Tampered));
    assert_eq!(device.open(&sealed), Ok(message));
}

#[test]
fn replayed_records_are_rejected() {
    let (mut client, mut device) = established(&SessionSecret::Pop(pop()));
    let sealed = client
        .seal(&SecureMessage::Request(Request::GetStatus))
        .expect("seal");
    assert!(device.open(&sealed).is_ok());
    assert_eq!(
        device.open(&sealed),
        Err(SessionError::Replayed {
            counter: 1,
            expected: 2
        })
    );
    // The first request (counter 0) replayed later is rejected too.
    let mut old = sealed.clone();
    old.counter = 0;
    assert_eq!(
        device.open(&old),
        Err(SessionError::Replayed {
            counter: 0,
            expected: 2
        })
    );
}

#[test]
fn reordered_records_are_rejected() {
    let (mut client, mut device) = established(&SessionSecret::Pop(pop()));
    let first = device
        .seal(&SecureMessage::Request(Request::GetStatus))
        .expect("seal");
    let second = device
        .seal(&SecureMessage::Request(Request::ScanNetworks))
        .expect("seal");
    assert_eq!(
        client.open(&second),
        Err(SessionError::Reordered {
            counter: 2,
            expected: 1
        })
    );
    // A record relabelled with the expected counter fails authentication.
    let relabelled = crate::message::Sealed {
        counter: 1,
        ciphertext: second.ciphertext.clone(),
    };
    assert_eq!(client.open(&relabelled), Err(SessionError::Tampered));
    assert!(client.open(&first).is_ok());
    assert!(client.open(&second).is_ok());
}

#[test]
fn records_are_bound_to_their_direction() {
    let (mut client, mut device) = established(&SessionSecret::Pop(pop()));
    // A device record reflected back to the device (same counter as expected) fails.
    let reflected = device
        .seal(&SecureMessage::Request(Request::GetStatus))
        .expect("seal");
    let reflected = crate::message::Sealed {
        counter: device.recv_counter(),
        ..reflected
    };
    assert_eq!(device.open(&reflected), Err(SessionError::Tampered));
    let _ = client
        .seal(&SecureMessage::Request(Request::GetStatus))
        .expect("seal");
}

#[test]
fn garbage_inside_a_valid_record_is_malformed_and_consumed() {
    let (mut client, mut device) = established(&SessionSecret::Pop(pop()));
    let sealed = client.seal_bytes(&[0xff, 0x00]).expect("seal");
    assert!(matches!(
        device.open(&sealed),
        Err(SessionError::Malformed { .. })
    ));
    assert_eq!(device.recv_counter(), 2);
}

#[test]
fn bad_handshake_messages_are_rejected() {
    let mut rng = StdRng::seed_from_u64(3);
    let (_, hello) = ClientHandshake::start(&SessionSecret::Pop(pop()), &mut rng);
    let bad_version = ClientHello {
        version: 9,
        ..hello.clone()
    };
    assert_eq!(
        DeviceHandshake::respond(&pop(), &bad_version, &info(), 5, &mut rng).expect_err("version"),
        SessionError::UnsupportedVersion {
            got: 9,
            supported: 1
        }
    );
    let short = ClientHello {
        spake_msg: vec![0x41; 10],
        ..hello.clone()
    };
    assert!(matches!(
        DeviceHandshake::respond(&pop(), &short, &info(), 5, &mut rng),
        Err(SessionError::Malformed { .. })
    ));
    let wrong_side = ClientHello {
        spake_msg: [&[0x42][..], &hello.spake_msg[1..]].concat(),
        ..hello.clone()
    };
    assert!(matches!(
        DeviceHandshake::respond(&pop(), &wrong_side, &info(), 5, &mut rng),
        Err(SessionError::Malformed { .. })
    ));

    let (client, hello) = ClientHandshake::start(&SessionSecret::Pop(pop()), &mut rng);
    let (_, reply) =
        DeviceHandshake::respond(&pop(), &hello, &info(), 5, &mut rng).expect("respond");
    let bad = DeviceHello {
        version: 2,
        ..reply
    };
    assert!(matches!(
        client.finish(&bad),
        Err(SessionError::UnsupportedVersion { got: 2, .. })
    ));
}

#[test]
fn handshakes_are_deterministic_under_a_seeded_rng_and_fresh_otherwise() {
    let a = ClientHandshake::start(&SessionSecret::Pop(pop()), &mut StdRng::seed_from_u64(9)).1;
    let b = ClientHandshake::start(&SessionSecret::Pop(pop()), &mut StdRng::seed_from_u64(9)).1;
    let c = ClientHandshake::start(&SessionSecret::Pop(pop()), &mut StdRng::seed_from_u64(10)).1;
    assert_eq!(a, b);
    assert_ne!(a.spake_msg, c.spake_msg);
    assert_ne!(a.client_nonce, c.client_nonce);
    assert_eq!(a.spake_msg.len(), crate::message::SPAKE_MSG_LEN);
}

#[test]
fn secrets_and_keys_never_show_in_debug() {
    let secret = SessionSecret::Pop(pop());
    assert_eq!(format!("{secret:?}"), "Pop(<redacted>)");
    assert_eq!(
        format!("{:?}", SessionSecret::ManualPasscode(1234)),
        "ManualPasscode(<redacted>)"
    );
    let (client, pending, _) = rt1(&secret, 5);
    let (channel, _, confirm) = client.expect("finish");
    for text in [
        format!("{channel:?}"),
        format!("{confirm:?}"),
        format!("{pending:?}"),
    ] {
        assert!(!text.contains("0123456789"), "{text}");
    }
    assert!(format!("{channel:?}").contains("<redacted>"));
}

#[test]
fn nonce_and_aad_layout() {
    assert_eq!(record_nonce(0x0102), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
    assert_eq!(
        record_aad(DIRECTION_DEVICE_TO_CLIENT, 3),
        [1, 2, 0, 0, 0, 0, 0, 0, 0, 3]
    );
}
