//! Azure DPS registration IDs.
//!
//! DPS accepts 1..=128 characters of `a-z 0-9 - . _ :`, ending in an alphanumeric character or
//! `-` (lower case only).

/// The longest registration ID DPS accepts.
pub const MAX_REGISTRATION_ID_LEN: usize = 128;

/// Why a registration ID is not acceptable to DPS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationIdError {
    /// The ID is empty.
    #[error("registration ID is empty")]
    Empty,
    /// The ID is longer than [`MAX_REGISTRATION_ID_LEN`].
    #[error("registration ID is {len} characters long; DPS allows at most 128")]
    TooLong {
        /// Length in characters.
        len: usize,
    },
    /// The ID contains a character outside `a-z 0-9 - . _ :`.
    #[error(
        "registration ID has {ch:?} at position {position}; only a-z, 0-9, '-', '.', '_' and ':' \
         are allowed"
    )]
    InvalidChar {
        /// The offending character.
        ch: char,
        /// Zero-based character position.
        position: usize,
    },
    /// The last character is not alphanumeric or `-`.
    #[error("registration ID ends in {ch:?}; it must end in a-z, 0-9 or '-'")]
    BadLastChar {
        /// The offending last character.
        ch: char,
    },
}

impl RegistrationIdError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong { .. } => "too_long",
            Self::InvalidChar { .. } => "invalid_char",
            Self::BadLastChar { .. } => "bad_last_char",
        }
    }
}

/// Whether `c` may appear in a registration ID.
pub fn is_registration_id_char(c: char) -> bool {
    matches!(c, 'a'..='z' | '0'..='9' | '-' | '.' | '_' | ':')
}

/// Checks `id` against the DPS rules.
pub fn validate_registration_id(id: &str) -> Result<(), RegistrationIdError> {
    let mut len = 0;
    let mut last = None;
    for (position, ch) in id.chars().enumerate() {
        if !is_registration_id_char(ch) {
            return Err(RegistrationIdError::InvalidChar { ch, position });
        }
        len = position + 1;
        last = Some(ch);
    }
    let Some(last) = last else {
        return Err(RegistrationIdError::Empty);
    };
    if len > MAX_REGISTRATION_ID_LEN {
        return Err(RegistrationIdError::TooLong { len });
    }
    if !(last.is_ascii_alphanumeric() || last == '-') {
        return Err(RegistrationIdError::BadLastChar { ch: last });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dps_ids() {
        for id in ["a", "sensor-0042", "site:7.gw_1", "x-", &"a".repeat(128)] {
            assert_eq!(validate_registration_id(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn rejects_bad_ids_with_the_reason() {
        assert_eq!(
            validate_registration_id(""),
            Err(RegistrationIdError::Empty)
        );
        assert_eq!(
            validate_registration_id(&"a".repeat(129)),
            Err(RegistrationIdError::TooLong { len: 129 })
        );
        assert_eq!(
            validate_registration_id("Sensor"),
            Err(RegistrationIdError::InvalidChar {
                ch: 'S',
                position: 0
            })
        );
        assert_eq!(
            validate_registration_id("a b"),
            Err(RegistrationIdError::InvalidChar {
                ch: ' ',
                position: 1
            })
        );
        assert_eq!(
            validate_registration_id("abc."),
            Err(RegistrationIdError::BadLastChar { ch: '.' })
        );
        assert_eq!(
            validate_registration_id("abc_"),
            Err(RegistrationIdError::BadLastChar { ch: '_' })
        );
        assert_eq!(
            validate_registration_id("é"),
            Err(RegistrationIdError::InvalidChar {
                ch: 'é',
                position: 0
            })
        );
    }

    #[test]
    fn messages_are_actionable() {
        let err = validate_registration_id("abc:").expect_err("bad last char");
        assert_eq!(err.code(), "bad_last_char");
        assert!(err.to_string().contains("must end in"));
    }
}
