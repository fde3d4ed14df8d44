//! The onboarding payload: the text of the device's QR label, and the manual code.
//!
//! Text form (QR alphanumeric charset only):
//!
//! ```text
//! FL1/<REGISTRATION-ID>/<BASE32>
//! ```
//!
//! - `FL1` names the payload format (version 1).
//! - `<REGISTRATION-ID>`: the DPS registration ID in upper case, with `_` written as `*`.
//! - `<BASE32>`: RFC 4648 base32, no padding, of 18 bytes: protocol version (1), discriminator
//!   (2, big-endian, top 4 bits zero), product code (2, big-endian), PoP (11), then CRC-16
//!   (2, big-endian; CRC-16/IBM-3740: poly 0x1021, init 0xffff, no reflection, xorout 0) over
//!   the lower-case registration ID's ASCII bytes followed by the first 16 bytes.
//!
//! With a registration ID of up to 80 characters the text is at most 114 characters and fits a
//! version 6, level M QR code in alphanumeric mode (capacity 122).

mod manual_code;
mod pop;
mod verhoeff;

use std::fmt;

use crc::{CRC_16_IBM_3740, Crc};
use data_encoding::BASE32_NOPAD;
use rand_core::CryptoRngCore;

use crate::registration_id::validate_registration_id;

pub use manual_code::{MANUAL_CODE_DIGITS, ManualCode};
pub use pop::{MANUAL_PASSCODE_LABEL, MAX_MANUAL_PASSCODE, POP_LEN, PopSecret};

/// The label prefix, including the payload format version and separator.
pub const PAYLOAD_PREFIX: &str = "FL1/";

/// Largest 12-bit discriminator.
pub const MAX_DISCRIMINATOR: u16 = 0x0fff;

/// Length of the binary block (before base32).
pub const FIXED_FIELDS_LEN: usize = 18;

const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_IBM_3740);

/// Which part of a payload (or manual code) is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadField {
    /// The `FL1/` prefix.
    Prefix,
    /// The protocol version.
    Version,
    /// The DPS registration ID.
    RegistrationId,
    /// The base32 block of fixed fields (encoding or length).
    FixedFields,
    /// The BLE discriminator.
    Discriminator,
    /// The checksum: the label is damaged or mistyped.
    Checksum,
    /// The manual pairing code.
    ManualCode,
}

impl PayloadField {
    /// Stable snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Prefix => "prefix",
            Self::Version => "version",
            Self::RegistrationId => "registration_id",
            Self::FixedFields => "fixed_fields",
            Self::Discriminator => "discriminator",
            Self::Checksum => "checksum",
            Self::ManualCode => "manual_code",
        }
    }
}

impl fmt::Display for PayloadField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A payload or manual code that cannot be used, naming the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid onboarding payload: {field}: {reason}")]
pub struct PayloadError {
    /// The wrong field.
    pub field: PayloadField,
    /// Why, for a person.
    pub reason: String,
}

impl PayloadError {
    /// An error about `field`.
    pub fn new(field: PayloadField, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// What the device's QR label says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnboardingPayload {
    /// Protocol version the device speaks ([`crate::PROTOCOL_VERSION`]).
    pub version: u8,
    /// DPS registration ID.
    pub registration_id: String,
    /// Proof-of-possession secret.
    pub pop: PopSecret,
    /// 12-bit BLE discriminator, also in the advertisement's service data.
    pub discriminator: u16,
    /// Product code.
    pub product_code: u16,
}

impl OnboardingPayload {
    /// A payload for the current protocol version, validated.
    pub fn new(
        registration_id: impl Into<String>,
        pop: PopSecret,
        discriminator: u16,
        product_code: u16,
    ) -> Result<Self, PayloadError> {
        let payload = Self {
            version: crate::PROTOCOL_VERSION,
            registration_id: registration_id.into(),
            pop,
            discriminator,
            product_code,
        };
        payload.validate()?;
        Ok(payload)
    }

    /// A payload with a fresh random PoP and discriminator (device manufacturing, virtual fleet).
    pub fn generate<R: CryptoRngCore + ?Sized>(
        registration_id: impl Into<String>,
        product_code: u16,
        rng: &mut R,
    ) -> Result<Self, PayloadError> {
        let pop = PopSecret::generate(rng);
        let discriminator = (rng.next_u32() & u32::from(MAX_DISCRIMINATOR)) as u16;
        Self::new(registration_id, pop, discriminator, product_code)
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), PayloadError> {
        if self.version == 0 {
            return Err(PayloadError::new(
                PayloadField::Version,
                "version 0 is not valid",
            ));
        }
        validate_registration_id(&self.registration_id)
            .map_err(|e| PayloadError::new(PayloadField::RegistrationId, e.to_string()))?;
        if self.discriminator > MAX_DISCRIMINATOR {
            return Err(PayloadError::new(
                PayloadField::Discriminator,
                format!("{:#x} does not fit 12 bits", self.discriminator),
            ));
        }
        Ok(())
    }

    /// Top 4 bits of the discriminator (what the manual code carries).
    pub fn short_discriminator(&self) -> u8 {
        ((self.discriminator >> 8) & 0xf) as u8
    }

    /// The manual code for this device.
    pub fn manual_code(&self) -> ManualCode {
        ManualCode {
            discriminator4: self.short_discriminator(),
            passcode: self.pop.manual_passcode(),
        }
    }

    /// The label text. Encode only a [validated](Self::validate) payload: the text of an invalid
    /// one does not parse.
    pub fn encode(&self) -> String {
        let mut fixed = [0u8; FIXED_FIELDS_LEN];
        fixed[0] = self.version;
        fixed[1..3].copy_from_slice(&self.discriminator.to_be_bytes());
        fixed[3..5].copy_from_slice(&self.product_code.to_be_bytes());
        fixed[5..16].copy_from_slice(self.pop.expose_bytes());
        let crc = checksum(&self.registration_id, &fixed[..16]);
        fixed[16..].copy_from_slice(&crc.to_be_bytes());
        let id: String = self
            .registration_id
            .chars()
            .map(|c| {
                if c == '_' {
                    '*'
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect();
        let text = format!("{PAYLOAD_PREFIX}{id}/{}", BASE32_NOPAD.encode(&fixed));
        zeroize::Zeroize::zeroize(&mut fixed);
        text
    }

    /// Parses label text. Surrounding whitespace and lower case are accepted.
    pub fn parse(text: &str) -> Result<Self, PayloadError> {
        let text = text.trim().to_ascii_uppercase();
        let body = parse_prefix(&text)?;
        let (id_text, fixed_text) = body.rsplit_once('/').ok_or_else(|| {
            PayloadError::new(
                PayloadField::FixedFields,
                "missing '/' before the fixed fields",
            )
        })?;
        let registration_id = parse_registration_id(id_text)?;
        let fixed = BASE32_NOPAD.decode(fixed_text.as_bytes()).map_err(|e| {
            PayloadError::new(PayloadField::FixedFields, format!("not valid base32: {e}"))
        })?;
        let fixed: [u8; FIXED_FIELDS_LEN] = fixed.try_into().map_err(|v: Vec<u8>| {
            PayloadError::new(
                PayloadField::FixedFields,
                format!("{} bytes instead of {FIXED_FIELDS_LEN}", v.len()),
            )
        })?;
        let crc = u16::from_be_bytes([fixed[16], fixed[17]]);
        if crc != checksum(&registration_id, &fixed[..16]) {
            return Err(PayloadError::new(
                PayloadField::Checksum,
                "checksum mismatch: the label is damaged or was mistyped",
            ));
        }
        let mut pop = [0u8; POP_LEN];
        pop.copy_from_slice(&fixed[5..16]);
        let payload = Self {
            version: fixed[0],
            registration_id,
            pop: PopSecret::from_bytes(pop),
            discriminator: u16::from_be_bytes([fixed[1], fixed[2]]),
            product_code: u16::from_be_bytes([fixed[3], fixed[4]]),
        };
        zeroize::Zeroize::zeroize(&mut pop);
        payload.validate()?;
        Ok(payload)
    }
}

fn checksum(registration_id: &str, fixed: &[u8]) -> u16 {
    let mut digest = CRC16.digest();
    digest.update(registration_id.as_bytes());
    digest.update(fixed);
    digest.finalize()
}

fn parse_prefix(text: &str) -> Result<&str, PayloadError> {
    if let Some(body) = text.strip_prefix(PAYLOAD_PREFIX) {
        return Ok(body);
    }
    let reason = match text
        .strip_prefix("FL")
        .and_then(|rest| rest.split_once('/'))
    {
        Some((format, _)) if !format.is_empty() && format.bytes().all(|b| b.is_ascii_digit()) => {
            format!("label format FL{format} is not supported (this installer reads FL1)")
        }
        _ => "not a fieldlink label (it must start with FL1/)".to_owned(),
    };
    Err(PayloadError::new(PayloadField::Prefix, reason))
}

fn parse_registration_id(text: &str) -> Result<String, PayloadError> {
    let mut id = String::with_capacity(text.len());
    for (position, ch) in text.chars().enumerate() {
        let mapped = match ch {
            'A'..='Z' => ch.to_ascii_lowercase(),
            '*' => '_',
            '0'..='9' | '-' | '.' | ':' => ch,
            other => {
                return Err(PayloadError::new(
                    PayloadField::RegistrationId,
                    format!("{other:?} at position {position} is not allowed"),
                ));
            }
        };
        id.push(mapped);
    }
    validate_registration_id(&id)
        .map_err(|e| PayloadError::new(PayloadField::RegistrationId, e.to_string()))?;
    Ok(id)
}

#[cfg(test)]
mod tests;
