use ed25519_dalek::SigningKey;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

const NOW: i64 = 1_800_000_000;

fn signer(seed: u8) -> TicketSigner {
    TicketSigner::new(format!("key-{seed}"), SigningKey::from_bytes(&[seed; 32]))
}

fn claims() -> TicketClaims {
    TicketClaims {
        key_id: String::new(),
        registration_id: "sensor-0042".into(),
        id_scope: "0ne00ABC123".into(),
        global_endpoint: "global.azure-devices-provisioning.net".into(),
        tenant: "acme".into(),
        dps_instance: "dps-eu-3".into(),
        not_before: NOW - 60,
        expires_at: NOW + 3600,
        nonce: TicketClaims::random_nonce(&mut StdRng::seed_from_u64(7)),
    }
}

fn anchors() -> TrustAnchors {
    TrustAnchors::new().with_key("key-1", signer(1).verifying_key())
}

#[test]
fn valid_ticket_verifies_and_carries_the_signers_key_id() {
    let ticket = signer(1).sign(&claims());
    let verified = anchors()
        .verify(&ticket, NOW, "sensor-0042")
        .expect("valid");
    assert_eq!(verified.key_id, "key-1");
    assert_eq!(verified.id_scope, "0ne00ABC123");
    assert_eq!(verified.nonce, claims().nonce);
    assert_eq!(verified.nonce_hex().len(), 32);
}

#[test]
fn text_and_cbor_forms_round_trip() {
    let ticket = signer(1).sign(&claims());
    let text = ticket.to_base64url();
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(
        SignedTicket::from_base64url(&format!(" {text}\n")).expect("parse"),
        ticket
    );
    assert_eq!(
        SignedTicket::from_cbor(&ticket.to_cbor()).expect("cbor"),
        ticket
    );
}

#[test]
fn garbage_is_malformed() {
    for text in ["", "!!!", "AAAA", &BASE64URL_NOPAD.encode(&[0xa0])] {
        let err = SignedTicket::from_base64url(text).expect_err(text);
        assert_eq!(err.code(), "ticket_malformed", "{text}: {err}");
    }
    let mut bytes = signer(1).sign(&claims()).to_cbor();
    bytes.push(0);
    assert!(matches!(
        SignedTicket::from_cbor(&bytes),
        Err(TicketError::Malformed { .. })
    ));
    let huge = vec![0u8; MAX_TICKET_LEN + 1];
    assert!(matches!(
        SignedTicket::from_cbor(&huge),
        Err(TicketError::Malformed { .. })
    ));
}

#[test]
fn unknown_key_is_named() {
    let ticket = signer(2).sign(&claims());
    assert_eq!(
        anchors().verify(&ticket, NOW, "sensor-0042"),
        Err(TicketError::UnknownKey {
            key_id: "key-2".into()
        })
    );
}

#[test]
fn forged_or_altered_ticket_has_a_bad_signature() {
    // Same key id, different key.
    let forger = TicketSigner::new("key-1", SigningKey::from_bytes(&[9; 32]));
    let forged = forger.sign(&claims());
    assert_eq!(
        anchors().verify(&forged, NOW, "sensor-0042"),
        Err(TicketError::BadSignature)
    );

    // Claims re-encoded with another scope, signature kept.
    let ticket = signer(1).sign(&claims());
    let mut altered_claims = ticket.claims_unverified().expect("claims");
    altered_claims.id_scope = "0ne00EVIL".into();
    let altered = SignedTicket {
        claims: minicbor::to_vec(&altered_claims).expect("encode"),
        signature: ticket.signature,
    };
    assert_eq!(
        anchors().verify(&altered, NOW, "sensor-0042"),
        Err(TicketError::BadSignature)
    );

    // A flipped signature bit.
    let mut flipped = ticket.clone();
    flipped.signature[10] ^= 1;
    assert_eq!(
        anchors().verify(&flipped, NOW, "sensor-0042"),
        Err(TicketError::BadSignature)
    );
}

#[test]
fn validity_window_is_inclusive_start_exclusive_end() {
    let ticket = signer(1).sign(&claims());
    let c = claims();
    assert!(
        anchors()
            .verify(&ticket, c.not_before, "sensor-0042")
            .is_ok()
    );
    assert_eq!(
        anchors().verify(&ticket, c.not_before - 1, "sensor-0042"),
        Err(TicketError::NotYetValid {
            not_before: c.not_before,
            now: c.not_before - 1
        })
    );
    assert!(
        anchors()
            .verify(&ticket, c.expires_at - 1, "sensor-0042")
            .is_ok()
    );
    let err = anchors()
        .verify(&ticket, c.expires_at, "sensor-0042")
        .expect_err("expired");
    assert_eq!(
        err,
        TicketError::Expired {
            expires_at: c.expires_at,
            now: c.expires_at
        }
    );
    assert_eq!(err.code(), "ticket_expired");
    assert!(err.to_string().contains("request a new ticket"));
}

#[test]
fn foreign_ticket_is_refused() {
    let ticket = signer(1).sign(&claims());
    assert_eq!(
        anchors().verify(&ticket, NOW, "sensor-0043"),
        Err(TicketError::WrongDevice {
            ticket_for: "sensor-0042".into(),
            device: "sensor-0043".into()
        })
    );
}

#[test]
fn inverted_window_is_malformed() {
    let mut c = claims();
    c.not_before = c.expires_at;
    let ticket = signer(1).sign(&c);
    assert!(matches!(
        anchors().verify(&ticket, NOW, "sensor-0042"),
        Err(TicketError::Malformed { .. })
    ));
}

#[test]
fn anchors_manage_keys() {
    let mut anchors = anchors();
    assert_eq!(anchors.len(), 1);
    anchors.insert("key-2", signer(2).verifying_key());
    assert_eq!(
        anchors.iter().map(|(id, _)| id).collect::<Vec<_>>(),
        ["key-1", "key-2"]
    );
    assert!(anchors.remove("key-1").is_some());
    let ticket = signer(1).sign(&claims());
    assert!(matches!(
        anchors.verify(&ticket, NOW, "sensor-0042"),
        Err(TicketError::UnknownKey { .. })
    ));
    assert!(!anchors.is_empty());
    assert!(anchors.get("key-2").is_some());
}

#[test]
fn verifying_key_text_form_round_trips() {
    let key = signer(3).verifying_key();
    let text = encode_verifying_key(&key);
    assert_eq!(decode_verifying_key(&text).expect("decode"), key);
    assert!(decode_verifying_key("AAAA").is_err());
    assert!(decode_verifying_key("not base64!").is_err());
}

#[test]
fn signer_debug_hides_the_key() {
    let text = format!("{:?}", signer(1));
    assert!(text.contains("<redacted>") && text.contains("key-1"));
    let ticket_debug = format!("{:?}", signer(1).sign(&claims()));
    assert!(ticket_debug.contains("sensor-0042"));
}
