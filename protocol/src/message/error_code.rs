//! Stable numeric error codes shared by device and installer.

use std::fmt;

use minicbor::{Decode, Decoder, Encode, Encoder};

use crate::ticket::TicketError;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $value:literal, $name:literal, $message:literal; )*) => {
        /// A protocol error code. The numbers and names are stable (see `docs/protocol.md`);
        /// numbers this build does not know decode as [`ErrorCode::Unknown`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
            /// A code from a newer peer.
            Unknown(u16),
        }

        impl ErrorCode {
            /// Every known code, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[$(Self::$variant),*];

            /// The wire number.
            pub fn as_u16(self) -> u16 {
                match self {
                    $( Self::$variant => $value, )*
                    Self::Unknown(value) => value,
                }
            }

            /// From the wire number.
            pub fn from_u16(value: u16) -> Self {
                match value {
                    $( $value => Self::$variant, )*
                    other => Self::Unknown(other),
                }
            }

            /// Stable snake_case name (`"unknown"` for [`ErrorCode::Unknown`]).
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $name, )*
                    Self::Unknown(_) => "unknown",
                }
            }

            /// From the snake_case name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $( $name => Some(Self::$variant), )*
                    _ => None,
                }
            }

            /// What the installer should tell the person, when the peer gave no better message.
            pub fn default_message(self) -> &'static str {
                match self {
                    $( Self::$variant => $message, )*
                    Self::Unknown(_) => "the device reported an error this installer does not know; update the installer",
                }
            }
        }
    };
}

error_codes! {
    /// A message could not be decoded.
    MalformedMessage = 1, "malformed_message", "the device could not read a message; retry, and update the installer or firmware if it persists";
    /// The peer speaks another protocol version.
    UnsupportedVersion = 2, "unsupported_version", "the device speaks another protocol version; update the installer or the firmware";
    /// Wrong proof-of-possession (or manual passcode).
    WrongPop = 3, "wrong_pop", "wrong proof-of-possession: rescan the device's own QR label or retype the manual code";
    /// Too many wrong attempts; wait before retrying.
    DeviceLocked = 4, "device_locked", "too many wrong attempts: wait for the lockout to end, then rescan the label";
    /// Another installer holds the session.
    Busy = 5, "busy", "another installer is connected to this device; try again when it is done";
    /// The request is not valid in the device's current state.
    InvalidState = 6, "invalid_state", "the device cannot do that in its current state; check its status";
    /// The ticket could not be parsed.
    TicketMalformed = 10, "ticket_malformed", "the commissioning ticket is damaged; request a new one";
    /// The ticket signature does not verify.
    TicketBadSignature = 11, "ticket_bad_signature", "the commissioning ticket was altered or not issued by the provisioning API";
    /// The ticket is signed by a key the device does not trust.
    TicketUnknownKey = 12, "ticket_unknown_key", "the device does not trust the key that signed the ticket; update its trust anchors";
    /// The ticket has expired.
    TicketExpired = 13, "ticket_expired", "the commissioning ticket has expired; request a new one (and check the device clock)";
    /// The ticket is not valid yet.
    TicketNotYetValid = 14, "ticket_not_yet_valid", "the commissioning ticket is not valid yet; check the device clock";
    /// The ticket's nonce was already used.
    TicketReplayed = 15, "ticket_replayed", "this commissioning ticket was already used; request a new one";
    /// The ticket names another device.
    TicketWrongDevice = 16, "ticket_wrong_device", "the commissioning ticket is for another device; check that you scanned this device's label";
    /// DPS refused or failed the registration.
    RegistrationFailed = 20, "registration_failed", "DPS did not assign the device; check its enrollment";
    /// DPS cannot be reached.
    DpsUnreachable = 21, "dps_unreachable", "the device cannot reach DPS; check the firewall allows HTTPS (443) to the DPS endpoint";
    /// DPS throttled the device.
    DpsThrottled = 22, "dps_throttled", "DPS is throttling registrations; the device retries after the advised delay";
    /// DPS refused the device's credential (HTTP 401/403).
    DpsUnauthorized = 23, "dps_unauthorized", "DPS refused the device's credential; check its enrollment (group or individual, key, enabled) in the DPS instance the ticket names";
    /// DPS does not know the ID scope or the registration (HTTP 404).
    DpsNotFound = 24, "dps_not_found", "DPS does not know the ID scope or enrollment the ticket names; the provisioning API's DPS instance list may be out of date";
    /// DPS did not assign the device within its fail-safe window; the staging was rolled back.
    FailSafeExpired = 25, "fail_safe_expired", "DPS did not assign the device within its fail-safe window; the ticket was rolled back, retry with a new one";
    /// The Wi-Fi network rejected the passphrase.
    WifiAuthFailed = 30, "wifi_auth_failed", "the Wi-Fi network rejected the passphrase; check it and retry";
    /// The network was not found.
    NetworkNotFound = 31, "network_not_found", "the network was not found; check the SSID and that the device is in range";
    /// No IP address was obtained.
    DhcpFailed = 32, "dhcp_failed", "the device joined the network but got no IP address; check the DHCP server";
    /// Joined, but no internet access.
    NoInternet = 33, "no_internet", "the device is on the network but cannot reach the internet; check the gateway, DNS or captive portal";
    /// The device has no interface for the requested network.
    NetworkUnsupported = 34, "network_unsupported", "the device has no interface for that kind of network; pick one from its capabilities";
    /// An internal device error.
    Internal = 255, "internal", "the device hit an internal error; retry, and report it if it persists";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&TicketError> for ErrorCode {
    fn from(error: &TicketError) -> Self {
        match error {
            TicketError::Malformed { .. } => Self::TicketMalformed,
            TicketError::UnknownKey { .. } => Self::TicketUnknownKey,
            TicketError::BadSignature => Self::TicketBadSignature,
            TicketError::Expired { .. } => Self::TicketExpired,
            TicketError::NotYetValid { .. } => Self::TicketNotYetValid,
            TicketError::WrongDevice { .. } => Self::TicketWrongDevice,
        }
    }
}

impl<C> Encode<C> for ErrorCode {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut Encoder<W>,
        _ctx: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.u16(self.as_u16())?;
        Ok(())
    }
}

impl<'b, C> Decode<'b, C> for ErrorCode {
    fn decode(d: &mut Decoder<'b>, _ctx: &mut C) -> Result<Self, minicbor::decode::Error> {
        Ok(Self::from_u16(d.u16()?))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn numbers_and_names_are_unique_and_round_trip() {
        let mut numbers = HashSet::new();
        let mut names = HashSet::new();
        for &code in ErrorCode::ALL {
            assert!(numbers.insert(code.as_u16()), "{code:?}");
            assert!(names.insert(code.as_str()), "{code:?}");
            assert_eq!(ErrorCode::from_u16(code.as_u16()), code);
            assert_eq!(ErrorCode::from_name(code.as_str()), Some(code));
            assert!(!code.default_message().is_empty());
            let bytes = minicbor::to_vec(code).expect("encode");
            assert_eq!(minicbor::decode::<ErrorCode>(&bytes).expect("decode"), code);
        }
    }

    #[test]
    fn the_brief_codes_have_fixed_numbers() {
        let expected = [
            ("malformed_message", 1),
            ("unsupported_version", 2),
            ("wrong_pop", 3),
            ("device_locked", 4),
            ("busy", 5),
            ("ticket_bad_signature", 11),
            ("ticket_unknown_key", 12),
            ("ticket_expired", 13),
            ("ticket_not_yet_valid", 14),
            ("ticket_replayed", 15),
            ("ticket_wrong_device", 16),
            ("registration_failed", 20),
            ("dps_unreachable", 21),
            ("dps_throttled", 22),
            ("dps_unauthorized", 23),
            ("dps_not_found", 24),
            ("fail_safe_expired", 25),
            ("wifi_auth_failed", 30),
            ("network_not_found", 31),
            ("dhcp_failed", 32),
            ("no_internet", 33),
            ("internal", 255),
        ];
        for (name, number) in expected {
            assert_eq!(
                ErrorCode::from_name(name).map(ErrorCode::as_u16),
                Some(number),
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_numbers_survive() {
        let bytes = minicbor::to_vec(ErrorCode::Unknown(999)).expect("encode");
        let code: ErrorCode = minicbor::decode(&bytes).expect("decode");
        assert_eq!(code, ErrorCode::Unknown(999));
        assert_eq!(code.as_str(), "unknown");
        assert_eq!(code.to_string(), "unknown");
    }

    #[test]
    fn ticket_errors_map_to_their_codes() {
        let error = TicketError::Expired {
            expires_at: 1,
            now: 2,
        };
        assert_eq!(ErrorCode::from(&error).as_str(), error.code());
        assert_eq!(
            ErrorCode::from(&TicketError::BadSignature).as_str(),
            "ticket_bad_signature"
        );
    }
}
