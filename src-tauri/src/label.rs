//! Onboarding codes: the QR label text or the 11-digit manual code, into what the UI shows and
//! what the core's workflow needs; QR labels rendered as SVG.

use fieldlink_core::{
    CommissionError,
    workflow::{CommissionRequest, DiscriminatorMatch},
};
use fieldlink_protocol::{
    payload::{ManualCode, OnboardingPayload, PayloadError},
    session::SessionSecret,
};
use qrcode::{EcLevel, QrCode, render::svg};

use crate::dto::device::{LabelImage, LabelInfo, LabelKind};

/// A parsed onboarding code (holds the secret; never logged).
pub enum OnboardingCode {
    /// A QR label.
    Label(OnboardingPayload),
    /// A manual code.
    Manual(ManualCode),
}

fn invalid(error: PayloadError) -> CommissionError {
    CommissionError::InvalidPayload {
        field: error.field.as_str().to_owned(),
        reason: error.reason,
    }
}

impl OnboardingCode {
    /// Parses `text`: digits (with spaces or dashes) are a manual code, anything else a label.
    pub fn parse(text: &str) -> Result<Self, CommissionError> {
        let text = text.trim();
        let manual = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_digit() || c == ' ' || c == '-');
        if manual {
            ManualCode::parse(text).map(Self::Manual).map_err(invalid)
        } else {
            OnboardingPayload::parse(text)
                .map(Self::Label)
                .map_err(invalid)
        }
    }

    /// The registration ID, when the code carries it.
    pub fn registration_id(&self) -> Option<&str> {
        match self {
            Self::Label(payload) => Some(&payload.registration_id),
            Self::Manual(_) => None,
        }
    }

    /// What the UI may show: everything but the secret.
    pub fn info(&self) -> LabelInfo {
        match self {
            Self::Label(payload) => LabelInfo {
                kind: LabelKind::QrLabel,
                registration_id: Some(payload.registration_id.clone()),
                discriminator: Some(payload.discriminator),
                short_discriminator: payload.short_discriminator(),
                product_code: Some(payload.product_code),
                manual_code: Some(payload.manual_code().encode()),
            },
            Self::Manual(code) => LabelInfo {
                kind: LabelKind::ManualCode,
                registration_id: None,
                discriminator: None,
                short_discriminator: code.discriminator4,
                product_code: None,
                manual_code: None,
            },
        }
    }

    /// The workflow's request (no network credentials: devices on Ethernet or already online).
    pub fn into_request(self) -> CommissionRequest {
        match self {
            Self::Label(payload) => CommissionRequest {
                discriminator: DiscriminatorMatch::Full(payload.discriminator),
                registration_id: Some(payload.registration_id),
                secret: SessionSecret::Pop(payload.pop),
                network: None,
            },
            Self::Manual(code) => CommissionRequest {
                registration_id: None,
                discriminator: DiscriminatorMatch::Short(code.discriminator4),
                secret: SessionSecret::ManualPasscode(code.passcode),
                network: None,
            },
        }
    }
}

/// Renders a QR label as SVG (level M, at least `min_px` wide). Manual codes cannot be
/// rendered: they lack the PoP.
pub fn render(text: &str, min_px: u32) -> Result<LabelImage, CommissionError> {
    let payload = match OnboardingCode::parse(text)? {
        OnboardingCode::Label(payload) => payload,
        OnboardingCode::Manual(_) => {
            return Err(CommissionError::InvalidPayload {
                field: "label".to_owned(),
                reason: "a manual code cannot be printed as a QR label (it has no PoP)".to_owned(),
            });
        }
    };
    let text = payload.encode();
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|e| {
        CommissionError::Internal {
            detail: format!("QR encoding failed: {e}"),
        }
    })?;
    let svg = code
        .render::<svg::Color<'_>>()
        .min_dimensions(min_px, min_px)
        .quiet_zone(true)
        .build();
    Ok(LabelImage {
        svg,
        registration_id: payload.registration_id.clone(),
        manual_code: payload.manual_code().encode(),
    })
}

#[cfg(test)]
mod tests {
    use fieldlink_protocol::payload::PopSecret;

    use super::*;

    fn payload() -> OnboardingPayload {
        OnboardingPayload::new("site-7.pump_3", PopSecret::from_bytes([9; 11]), 0xa5c, 0x42)
            .unwrap()
    }

    #[test]
    fn labels_and_manual_codes_parse_to_info_without_the_secret() {
        let label = payload();
        let info = OnboardingCode::parse(&label.encode()).unwrap().info();
        assert_eq!(info.kind, LabelKind::QrLabel);
        assert_eq!(info.registration_id.as_deref(), Some("site-7.pump_3"));
        assert_eq!(info.discriminator, Some(0xa5c));
        assert_eq!(info.short_discriminator, 0xa);
        let manual = info.manual_code.unwrap();
        let manual_info = OnboardingCode::parse(&manual).unwrap().info();
        assert_eq!(manual_info.kind, LabelKind::ManualCode);
        assert_eq!(manual_info.short_discriminator, 0xa);
        assert_eq!(manual_info.registration_id, None);
        let request = OnboardingCode::parse(&manual).unwrap().into_request();
        assert_eq!(request.discriminator, DiscriminatorMatch::Short(0xa));
    }

    #[test]
    fn damaged_codes_name_the_field() {
        let mut text = payload().encode();
        text.pop();
        text.push('A');
        let error = OnboardingCode::parse(&text).err().unwrap();
        assert_eq!(error.code(), "invalid_payload");
        let typo = OnboardingCode::parse("1234567890").err().unwrap();
        assert!(typo.to_string().contains("manual"), "{typo}");
        assert!(OnboardingCode::parse("").is_err());
    }

    #[test]
    fn renders_labels_but_not_manual_codes() {
        let label = payload();
        let image = render(&label.encode(), 200).unwrap();
        assert!(image.svg.starts_with("<?xml"));
        assert_eq!(image.manual_code, label.manual_code().encode());
        let manual = render(&label.manual_code().encode(), 200).err().unwrap();
        assert_eq!(manual.code(), "invalid_payload");
    }
}
