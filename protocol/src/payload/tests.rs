use proptest::prelude::*;
use qrcode::bits::Bits;
use qrcode::{EcLevel, Version};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

fn sample() -> OnboardingPayload {
    OnboardingPayload::new(
        "sensor_0042.site-7:a",
        PopSecret::from_bytes(*b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b"),
        0xa42,
        0x1234,
    )
    .expect("valid")
}

#[test]
fn encodes_in_the_documented_format() {
    let text = sample().encode();
    assert!(text.starts_with("FL1/SENSOR*0042.SITE-7:A/"), "{text}");
    let fixed = text.rsplit_once('/').expect("separator").1;
    assert_eq!(fixed.len(), 29);
    assert_eq!(OnboardingPayload::parse(&text), Ok(sample()));
    // Case, surrounding whitespace and scanner newlines are tolerated.
    assert_eq!(
        OnboardingPayload::parse(&format!(" {}\r\n", text.to_lowercase())),
        Ok(sample())
    );
}

#[test]
fn eighty_char_ids_fit_qr_version_6_level_m_alphanumeric() {
    let mut rng = StdRng::seed_from_u64(80);
    let id: String = (0..79)
        .map(|i| ['a', 'z', '0', '9', '-', '.', '_', ':'][i % 8])
        .chain(['x'])
        .collect();
    let payload = OnboardingPayload::generate(id, 0xffff, &mut rng).expect("valid");
    let text = payload.encode();
    assert_eq!(text.len(), 114);
    let mut bits = Bits::new(Version::Normal(6));
    bits.push_alphanumeric_data(text.as_bytes())
        .expect("QR alphanumeric charset only");
    bits.push_terminator(EcLevel::M)
        .expect("fits version 6, level M");
    assert_eq!(OnboardingPayload::parse(&text), Ok(payload));
}

#[test]
fn manual_code_comes_from_the_pop_and_discriminator() {
    let code = sample().manual_code();
    assert_eq!(code.discriminator4, 0xa);
    assert_eq!(code.passcode, sample().pop.manual_passcode());
    assert!(code.matches_discriminator(sample().discriminator));
    assert_eq!(ManualCode::parse(&code.encode()), Ok(code));
}

#[test]
fn invalid_fields_are_named() {
    let check = |text: &str, field: PayloadField| {
        let error = OnboardingPayload::parse(text).expect_err(text);
        assert_eq!(error.field, field, "{text}: {error}");
        assert!(error.to_string().contains(field.as_str()), "{error}");
    };
    let good = sample().encode();
    let fixed = good.rsplit_once('/').expect("sep").1;
    check("", PayloadField::Prefix);
    check("MT:Y.K9042C00KA0648G00", PayloadField::Prefix);
    check(&good.replacen("FL1/", "FL2/", 1), PayloadField::Prefix);
    check("FL1/SENSOR", PayloadField::FixedFields);
    check(
        &format!("FL1/SENSOR./{fixed}"),
        PayloadField::RegistrationId,
    );
    check(
        &format!("FL1/SEN SOR/{fixed}"),
        PayloadField::RegistrationId,
    );
    check(&format!("FL1//{fixed}"), PayloadField::RegistrationId);
    check(
        &format!("FL1/SENSOR/{}", &fixed[..20]),
        PayloadField::FixedFields,
    );
    check(&format!("FL1/SENSOR/{fixed}"), PayloadField::Checksum);

    let mut bad = sample();
    bad.discriminator = 0x1000;
    check(&bad.encode(), PayloadField::Discriminator);
    bad = sample();
    bad.version = 0;
    check(&bad.encode(), PayloadField::Version);
    assert_eq!(
        OnboardingPayload::new("UPPER", PopSecret::from_bytes([0; 11]), 1, 1)
            .expect_err("upper case")
            .field,
        PayloadField::RegistrationId
    );
}

#[test]
fn debug_never_shows_the_pop() {
    let text = format!("{:?}", sample());
    assert!(text.contains("<redacted>"), "{text}");
    assert!(!text.contains("[1, 2, 3"), "{text}");
}

fn registration_id() -> impl Strategy<Value = String> {
    ("[a-z0-9._:-]{0,79}", "[a-z0-9-]").prop_map(|(body, last)| body + &last)
}

fn payload() -> impl Strategy<Value = OnboardingPayload> {
    (
        registration_id(),
        any::<[u8; 11]>(),
        0..=MAX_DISCRIMINATOR,
        any::<u16>(),
        1..=u8::MAX,
    )
        .prop_map(
            |(id, pop, discriminator, product_code, version)| OnboardingPayload {
                version,
                registration_id: id,
                pop: PopSecret::from_bytes(pop),
                discriminator,
                product_code,
            },
        )
}

const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

proptest! {
    #[test]
    fn payloads_round_trip(payload in payload()) {
        let text = payload.encode();
        prop_assert!(text.len() <= 114);
        prop_assert!(text.bytes().all(|b| b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:".contains(&b)));
        prop_assert_eq!(OnboardingPayload::parse(&text), Ok(payload));
    }

    #[test]
    fn corrupted_registration_id_is_caught(payload in payload(), pos in any::<prop::sample::Index>(),
                                           bad in prop::sample::select(&b"#$%+ /?!"[..])) {
        let text = payload.encode();
        let id_len = payload.registration_id.len();
        let at = PAYLOAD_PREFIX.len() + pos.index(id_len);
        let mut bytes = text.into_bytes();
        bytes[at] = bad;
        let corrupted = String::from_utf8(bytes).expect("ascii");
        let error = OnboardingPayload::parse(&corrupted).expect_err("corrupted");
        prop_assert_eq!(error.field, PayloadField::RegistrationId, "{}", error);
    }

    #[test]
    fn substituted_id_character_fails_the_checksum(payload in payload(), pos in any::<prop::sample::Index>(),
                                                   sub in prop::sample::select(&b"ABCXYZ0189"[..])) {
        let text = payload.encode();
        let at = PAYLOAD_PREFIX.len() + pos.index(payload.registration_id.len());
        let mut bytes = text.into_bytes();
        prop_assume!(bytes[at] != sub);
        bytes[at] = sub;
        let corrupted = String::from_utf8(bytes).expect("ascii");
        let error = OnboardingPayload::parse(&corrupted).expect_err("corrupted");
        prop_assert_eq!(error.field, PayloadField::Checksum, "{}", error);
    }

    #[test]
    fn corrupted_fixed_fields_are_caught(payload in payload(), pos in 0usize..29,
                                         sub in prop::sample::select(BASE32)) {
        let text = payload.encode();
        let at = text.len() - 29 + pos;
        let mut bytes = text.into_bytes();
        prop_assume!(bytes[at] != sub);
        bytes[at] = sub;
        let corrupted = String::from_utf8(bytes).expect("ascii");
        let error = OnboardingPayload::parse(&corrupted).expect_err("corrupted");
        if pos < 28 {
            prop_assert_eq!(error.field, PayloadField::Checksum, "{}", error);
        } else {
            // The last character also carries 4 padding bits that must be zero.
            prop_assert!(matches!(error.field, PayloadField::Checksum | PayloadField::FixedFields));
        }
    }

    #[test]
    fn non_base32_or_truncated_fixed_fields_are_caught(payload in payload(), pos in 0usize..29,
                                                       bad in prop::sample::select(&b"0189"[..]),
                                                       cut in 1usize..29) {
        let text = payload.encode();
        let at = text.len() - 29 + pos;
        let mut bytes = text.clone().into_bytes();
        bytes[at] = bad;
        let corrupted = String::from_utf8(bytes).expect("ascii");
        prop_assert_eq!(OnboardingPayload::parse(&corrupted).expect_err("bad").field, PayloadField::FixedFields);
        let truncated = &text[..text.len() - cut];
        prop_assert_eq!(OnboardingPayload::parse(truncated).expect_err("short").field, PayloadField::FixedFields);
    }

    #[test]
    fn corrupted_prefix_is_caught(payload in payload(), pos in 0usize..3,
                                  sub in prop::sample::select(&b"AZ09*"[..])) {
        let text = payload.encode();
        let mut bytes = text.into_bytes();
        prop_assume!(bytes[pos] != sub);
        bytes[pos] = sub;
        let corrupted = String::from_utf8(bytes).expect("ascii");
        prop_assert_eq!(OnboardingPayload::parse(&corrupted).expect_err("bad").field, PayloadField::Prefix);
    }

    #[test]
    fn manual_codes_round_trip(discriminator4 in 0u8..16, passcode in 1..=MAX_MANUAL_PASSCODE) {
        let code = ManualCode { discriminator4, passcode };
        prop_assert_eq!(ManualCode::parse(&code.encode()), Ok(code));
    }
}
