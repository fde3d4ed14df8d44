//! Onboarding codes (the QR label text or the 11-digit manual code) and label rendering.

use fieldlink_core::{
    CommissionError,
    workflow::{CommissionRequest, DiscriminatorMatch},
};
use fieldlink_protocol::{
    message::NetworkConfig,
    payload::{ManualCode, OnboardingPayload, PayloadError},
    session::SessionSecret,
};
use qrcode::{EcLevel, QrCode, render::svg};

use crate::error::FieldlinkError;

/// Which kind of onboarding code was entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum CodeKind {
    /// The QR label text (`FL1/...`).
    QrLabel,
    /// The 11-digit manual code.
    ManualCode,
}

/// What an onboarding code says, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OnboardingInfo {
    /// QR label or manual code.
    pub kind: CodeKind,
    /// The DPS registration ID (QR label only; a manual code learns it from the device).
    pub registration_id: Option<String>,
    /// The 12-bit BLE discriminator (QR label only).
    pub discriminator: Option<u16>,
    /// The top 4 bits of the discriminator (both kinds).
    pub short_discriminator: u8,
    /// The product code (QR label only).
    pub product_code: Option<u16>,
    /// The device's manual code (QR label only: print it under the QR code).
    pub manual_code: Option<String>,
}

enum Code {
    Label(OnboardingPayload),
    Manual(ManualCode),
}

fn invalid(error: PayloadError) -> FieldlinkError {
    CommissionError::InvalidPayload {
        field: error.field.as_str().to_owned(),
        reason: error.reason,
    }
    .into()
}

fn parse(text: &str) -> Result<Code, FieldlinkError> {
    let looks_manual = text
        .chars()
        .all(|c| c.is_ascii_digit() || c == ' ' || c == '-');
    if looks_manual {
        ManualCode::parse(text).map(Code::Manual).map_err(invalid)
    } else {
        OnboardingPayload::parse(text)
            .map(Code::Label)
            .map_err(invalid)
    }
}

/// Parses an onboarding code (QR label text or manual code) without using its secret: what to
/// show before commissioning. Fails with `InvalidPayload` naming the field at fault.
#[uniffi::export]
pub fn parse_onboarding_code(code: String) -> Result<OnboardingInfo, FieldlinkError> {
    Ok(match parse(&code)? {
        Code::Label(payload) => OnboardingInfo {
            kind: CodeKind::QrLabel,
            short_discriminator: payload.short_discriminator(),
            manual_code: Some(payload.manual_code().encode()),
            registration_id: Some(payload.registration_id),
            discriminator: Some(payload.discriminator),
            product_code: Some(payload.product_code),
        },
        Code::Manual(manual) => OnboardingInfo {
            kind: CodeKind::ManualCode,
            registration_id: None,
            discriminator: None,
            short_discriminator: manual.discriminator4,
            product_code: None,
            manual_code: None,
        },
    })
}

/// The core's request for an onboarding code and optional network settings.
pub(crate) fn commission_request(
    code: &str,
    network: Option<NetworkConfig>,
) -> Result<CommissionRequest, FieldlinkError> {
    Ok(match parse(code)? {
        Code::Label(payload) => CommissionRequest {
            discriminator: DiscriminatorMatch::Full(payload.discriminator),
            secret: SessionSecret::Pop(payload.pop),
            registration_id: Some(payload.registration_id),
            network,
        },
        Code::Manual(manual) => CommissionRequest {
            registration_id: None,
            discriminator: DiscriminatorMatch::Short(manual.discriminator4),
            secret: SessionSecret::ManualPasscode(manual.passcode),
            network,
        },
    })
}

/// Renders a QR label (the `FL1/...` text) as an SVG document: error-correction level M, at
/// least `min_size_px` pixels wide. Fails with `InvalidPayload` for text that is not a valid
/// label, so a damaged label is never printed.
#[uniffi::export]
pub fn render_label_svg(label: String, min_size_px: u32) -> Result<String, FieldlinkError> {
    let payload = OnboardingPayload::parse(&label).map_err(invalid)?;
    let text = payload.encode();
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|e| {
        FieldlinkError::from(CommissionError::Internal {
            detail: format!("QR encoding failed: {e}"),
        })
    })?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(min_size_px, min_size_px)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use fieldlink_protocol::payload::PopSecret;

    use super::*;

    fn label() -> OnboardingPayload {
        OnboardingPayload::new("site-7.pump_3", PopSecret::from_bytes([9; 11]), 0xa5c, 0x42)
            .unwrap()
    }

    #[test]
    fn parses_labels_and_manual_codes_without_exposing_the_secret() {
        let payload = label();
        let info = parse_onboarding_code(payload.encode()).unwrap();
        assert_eq!(info.kind, CodeKind::QrLabel);
        assert_eq!(info.registration_id.as_deref(), Some("site-7.pump_3"));
        assert_eq!(info.discriminator, Some(0xa5c));
        assert_eq!(info.short_discriminator, 0xa);
        assert!(!format!("{info:?}").contains("0909"));
        let manual = info.manual_code.unwrap();
        let from_manual = parse_onboarding_code(manual.clone()).unwrap();
        assert_eq!(from_manual.kind, CodeKind::ManualCode);
        assert_eq!(from_manual.short_discriminator, 0xa);
    }

    #[test]
    fn requests_carry_the_right_secret_and_discriminator() {
        let payload = label();
        let request = commission_request(&payload.encode(), None).unwrap();
        assert_eq!(request.discriminator, DiscriminatorMatch::Full(0xa5c));
        assert!(matches!(request.secret, SessionSecret::Pop(_)));
        let manual = commission_request(&payload.manual_code().encode(), None).unwrap();
        assert_eq!(manual.discriminator, DiscriminatorMatch::Short(0xa));
        assert!(
            matches!(manual.secret, SessionSecret::ManualPasscode(p) if p == payload.pop.manual_passcode())
        );
        assert_eq!(manual.registration_id, None);
    }

    #[test]
    fn bad_codes_name_the_field() {
        let mut text = label().encode();
        text.pop();
        text.push('A');
        let error = parse_onboarding_code(text).unwrap_err();
        assert_eq!(error.code(), "invalid_payload");
        let manual = parse_onboarding_code("1234567890".into()).unwrap_err();
        assert!(manual.reason().contains("manual"), "{}", manual.reason());
    }

    #[test]
    fn renders_an_svg_qr_code() {
        let svg = render_label_svg(label().encode(), 200).unwrap();
        assert!(svg.starts_with("<?xml"), "{}", &svg[..40]);
        assert!(svg.contains("<svg") && svg.contains("width=\""));
        assert!(render_label_svg("FL1/nope".into(), 200).is_err());
    }
}
