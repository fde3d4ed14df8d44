//! The worked examples in `docs/protocol.md`, checked (values were cross-checked with an
//! independent Python implementation of CRC-16, HMAC, HKDF and ChaCha20-Poly1305).

use crate::message::*;
use crate::payload::*;
use crate::session::keys::{SessionKeys, Transcript};
use crate::session::{Role, SecureChannel};

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

#[test]
fn payload_and_manual_code_example() {
    let payload = OnboardingPayload::new(
        "sensor-0042",
        PopSecret::from_bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
        0xa42,
        0x1234,
    )
    .expect("valid");
    assert_eq!(
        payload.encode(),
        "FL1/SENSOR-0042/AEFEEERUAEBAGBAFAYDQQCIKBOW64"
    );
    assert_eq!(payload.pop.manual_passcode(), 81_299_130);
    assert_eq!(payload.manual_code().encode(), "23449049623");
    assert_eq!(payload.manual_code().to_string(), "2344-904-9623");
}

#[test]
fn cbor_examples() {
    assert_eq!(
        hex(&SecureMessage::Request(Request::GetStatus).encode()),
        "8200a1008202a0"
    );
    let sealed = WireMessage::Sealed(Sealed {
        counter: 1,
        ciphertext: vec![0xaa; 3],
    });
    assert_eq!(hex(&sealed.encode()), "8204a100a200010143aaaaaa");
    let accepted = SecureMessage::Response(Response::ProvisionAccepted {
        state: DeviceState::TicketStaged,
    });
    assert_eq!(hex(&accepted.encode()), "8201a1008200a10002");
    let event = SecureMessage::Event(Event::Network(NetworkProgress {
        stage: JoinStage::GotIp,
    }));
    assert_eq!(hex(&event.encode()), "8202a1008202a100a10002");
}

#[test]
fn key_schedule_and_record_example() {
    let transcript = Transcript {
        version: 1,
        secret_kind: SecretKind::Pop,
        client_spake: &[0x41; 33],
        client_nonce: &[0xc1; 16],
        device_spake: &[0x42; 33],
        device_nonce: &[0xd1; 16],
        attempts_left: 4,
    };
    let th = transcript.hash();
    assert_eq!(
        hex(&th),
        "d83dee2fa642c9bb8226453af43b8a99c80b8c3faece3b0c4348244e1d6d73ae"
    );
    let keys = SessionKeys::derive(&[0x11; 32], &th);
    assert_eq!(
        hex(&keys.device_confirm),
        "b03712c1989f55b3ecc19bbe26ad2da9e2bb89d1c372b3499c964e23749e6a3f"
    );
    assert_eq!(
        hex(&keys.client_confirm),
        "cb858506d4f60b117e05e114cbe069a7e3f03229903f4e38871f80b3840a12ea"
    );
    assert_eq!(
        hex(keys.client_to_device.as_ref()),
        "c1e13798a232ee2dc9ade0de052ff3c476866f2bb13936eed02b02089918419d"
    );
    assert_eq!(
        hex(keys.device_to_client.as_ref()),
        "4c3347143a5dd1256a98e6a8f26b331124278736895d045f535c502413e2c513"
    );
    let mut installer = SecureChannel::new(
        Role::Installer,
        keys.client_to_device,
        keys.device_to_client,
    );
    let record = installer
        .seal(&SecureMessage::Request(Request::GetStatus))
        .expect("seal");
    assert_eq!(record.counter, 0);
    assert_eq!(
        hex(&record.ciphertext),
        "b41942ffd01d66759fac8e4391254924e0205d8ac71bfe"
    );
}
