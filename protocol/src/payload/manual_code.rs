//! The 11-digit manual pairing code, for when the QR label cannot be scanned.
//!
//! Digits (left to right):
//! - `d1`: `discriminator4 >> 2` (0..=3);
//! - `d2..d6`: `((discriminator4 & 3) << 14) | (passcode & 0x3fff)`, 5 digits, zero-padded;
//! - `d7..d10`: `passcode >> 14`, 4 digits, zero-padded (0..=8191);
//! - `d11`: Verhoeff check digit over `d1..d10`.

use std::fmt;

use super::verhoeff;
use super::{MAX_MANUAL_PASSCODE, PayloadError, PayloadField};

/// Number of digits in a manual code.
pub const MANUAL_CODE_DIGITS: usize = 11;

/// Short discriminator (top 4 bits of the 12-bit discriminator) plus the 27-bit passcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManualCode {
    /// Top 4 bits of the BLE discriminator (0..=15).
    pub discriminator4: u8,
    /// The 27-bit manual passcode (1..=2^27-1); see [`super::PopSecret::manual_passcode`].
    pub passcode: u32,
}

fn err(reason: impl Into<String>) -> PayloadError {
    PayloadError::new(PayloadField::ManualCode, reason)
}

impl ManualCode {
    /// Whether a device advertising the 12-bit `discriminator` may be the one this code names.
    pub fn matches_discriminator(&self, discriminator: u16) -> bool {
        (discriminator >> 8) & 0xf == u16::from(self.discriminator4)
    }

    /// The 11 digits, no separators.
    ///
    /// Out-of-range fields (a `discriminator4` above 15 or a passcode above 27 bits) are
    /// masked; [`ManualCode::parse`] rejects a zero passcode.
    pub fn encode(&self) -> String {
        let disc = u32::from(self.discriminator4 & 0xf);
        let passcode = self.passcode & MAX_MANUAL_PASSCODE;
        let body = format!(
            "{}{:05}{:04}",
            disc >> 2,
            ((disc & 3) << 14) | (passcode & 0x3fff),
            passcode >> 14
        );
        let digits: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
        format!("{body}{}", verhoeff::check_digit(&digits))
    }

    /// Parses a code; spaces and `-` are ignored.
    pub fn parse(text: &str) -> Result<Self, PayloadError> {
        let mut digits = Vec::with_capacity(MANUAL_CODE_DIGITS);
        for ch in text.chars() {
            match ch {
                '0'..='9' => digits.push(ch as u8 - b'0'),
                ' ' | '-' => {}
                other => return Err(err(format!("{other:?} is not a digit"))),
            }
        }
        if digits.len() != MANUAL_CODE_DIGITS {
            return Err(err(format!(
                "has {} digits; a manual code has {MANUAL_CODE_DIGITS}",
                digits.len()
            )));
        }
        if !verhoeff::is_valid(&digits) {
            return Err(err("check digit does not match: a digit is mistyped"));
        }
        let number = |range: std::ops::Range<usize>| {
            digits[range]
                .iter()
                .fold(0u32, |acc, &d| acc * 10 + u32::from(d))
        };
        let (d1, middle, high) = (number(0..1), number(1..6), number(6..10));
        if d1 > 3 {
            return Err(err("first digit must be 0-3"));
        }
        if middle > 0xffff {
            return Err(err("digits 2-6 must be at most 65535"));
        }
        if high > 0x1fff {
            return Err(err("digits 7-10 must be at most 8191"));
        }
        let passcode = (high << 14) | (middle & 0x3fff);
        if passcode == 0 {
            return Err(err("passcode must not be zero"));
        }
        let discriminator4 = u8::try_from((d1 << 2) | (middle >> 14)).expect("4 bits fit in u8");
        Ok(Self {
            discriminator4,
            passcode,
        })
    }
}

impl fmt::Display for ManualCode {
    /// Grouped for reading aloud: `DDDD-DDD-DDDD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.encode();
        write!(f, "{}-{}-{}", &code[0..4], &code[4..7], &code[7..11])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_the_edges() {
        for discriminator4 in [0u8, 1, 3, 4, 9, 15] {
            for passcode in [1u32, 0x3fff, 0x4000, 12_345_678, MAX_MANUAL_PASSCODE] {
                let code = ManualCode {
                    discriminator4,
                    passcode,
                };
                let text = code.encode();
                assert_eq!(text.len(), 11, "{text}");
                assert_eq!(ManualCode::parse(&text), Ok(code), "{text}");
                assert_eq!(ManualCode::parse(&code.to_string()), Ok(code));
            }
        }
    }

    #[test]
    fn worked_example() {
        let code = ManualCode {
            discriminator4: 0xa,
            passcode: 20_202_021,
        };
        // d1 = 10 >> 2 = 2; middle = (2 << 14) | (20202021 & 0x3fff) = 32768 + 549 = 33317;
        // high = 20202021 >> 14 = 1233.
        assert!(code.encode().starts_with("2333171233"));
        assert_eq!(code.encode().len(), 11);
        assert!(code.matches_discriminator(0xa42));
        assert!(!code.matches_discriminator(0xb42));
    }

    #[test]
    fn rejects_typos_with_the_field_named() {
        let text = ManualCode {
            discriminator4: 5,
            passcode: 7_654_321,
        }
        .encode();
        let mut typo = text.clone().into_bytes();
        typo[4] = if typo[4] == b'9' { b'0' } else { typo[4] + 1 };
        let typo = String::from_utf8(typo).expect("ascii");
        let error = ManualCode::parse(&typo).expect_err("typo");
        assert_eq!(error.field, PayloadField::ManualCode);
        assert!(error.to_string().contains("manual_code"), "{error}");
        assert!(ManualCode::parse(&text[..10]).is_err());
        assert!(ManualCode::parse(&format!("{text}0")).is_err());
        assert!(ManualCode::parse("1234x678901").is_err());
    }

    #[test]
    fn rejects_out_of_range_digits_even_with_a_valid_check_digit() {
        for body in ["4000010000", "0999990000", "0000019999", "0000000000"] {
            let digits: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
            let text = format!("{body}{}", verhoeff::check_digit(&digits));
            assert!(ManualCode::parse(&text).is_err(), "{text}");
        }
    }
}
