//! GATT service, characteristics and advertisement contents.
//!
//! One primary service with two characteristics:
//! - RX (`…0002`): the installer writes frames (write and write-without-response);
//! - TX (`…0003`): the device sends frames as notifications (the installer enables them by
//!   writing `0x0001` to the CCCD).
//!
//! Advertisement (31 bytes max): flags, the complete list of 128-bit service UUIDs
//! ([`SERVICE_UUID`]), and service data for the 16-bit UUID [`SERVICE_DATA_UUID16`] carrying
//! the 4-byte [`ServiceData`]. The scan response carries the complete local name
//! ([`local_name`]).

use minicbor::{Decode, Encode};

/// The fieldlink GATT service.
pub const SERVICE_UUID: u128 = 0x4e44_0001_9ed1_4205_9301_1ce0_dbed_452f;
/// Installer → device characteristic (write, write without response).
pub const RX_CHAR_UUID: u128 = 0x4e44_0002_9ed1_4205_9301_1ce0_dbed_452f;
/// Device → installer characteristic (notify).
pub const TX_CHAR_UUID: u128 = 0x4e44_0003_9ed1_4205_9301_1ce0_dbed_452f;

/// [`SERVICE_UUID`] in text form.
pub const SERVICE_UUID_STR: &str = "4e440001-9ed1-4205-9301-1ce0dbed452f";
/// [`RX_CHAR_UUID`] in text form.
pub const RX_CHAR_UUID_STR: &str = "4e440002-9ed1-4205-9301-1ce0dbed452f";
/// [`TX_CHAR_UUID`] in text form.
pub const TX_CHAR_UUID_STR: &str = "4e440003-9ed1-4205-9301-1ce0dbed452f";

/// 16-bit UUID under which the advertisement carries [`ServiceData`] (AD type 0x16).
///
/// Like Improv's 0x4677 it is not SIG-assigned; "FL" in ASCII.
pub const SERVICE_DATA_UUID16: u16 = 0x464c;

/// [`SERVICE_DATA_UUID16`] expanded with the Bluetooth base UUID, as host stacks report it.
pub const SERVICE_DATA_UUID: u128 = 0x0000_464c_0000_1000_8000_0080_5f9b_34fb;

/// Prefix of the device's local name.
pub const LOCAL_NAME_PREFIX: &str = "FL-";

/// The device's local name: `FL-` and the discriminator as 3 upper-case hex digits.
pub fn local_name(discriminator: u16) -> String {
    format!("{LOCAL_NAME_PREFIX}{:03X}", discriminator & 0x0fff)
}

/// Text form (lower-case, hyphenated) of a 128-bit UUID.
pub fn uuid_string(uuid: u128) -> String {
    let hex = format!("{uuid:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The device's commissioning state, as advertised and as reported in `DeviceInfo`
/// (re-exported as [`crate::message::DeviceState`]). CBOR: the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
#[cbor(index_only)]
pub enum AdvertisedState {
    /// Waiting to be commissioned.
    #[n(0)]
    Commissionable,
    /// An installer is connected with a secure session.
    #[n(1)]
    SessionOpen,
    /// A ticket is staged; the fail-safe is armed.
    #[n(2)]
    TicketStaged,
    /// Joining the network and registering with DPS.
    #[n(3)]
    Registering,
    /// Registered with DPS; the assignment is committed.
    #[n(4)]
    Registered,
    /// The last attempt failed; the device is commissionable again after rollback.
    #[n(5)]
    Failed,
    /// Too many wrong proof-of-possession attempts; try again later.
    #[n(6)]
    Locked,
}

impl AdvertisedState {
    /// The wire value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// From the wire value.
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0 => Self::Commissionable,
            1 => Self::SessionOpen,
            2 => Self::TicketStaged,
            3 => Self::Registering,
            4 => Self::Registered,
            5 => Self::Failed,
            6 => Self::Locked,
            _ => return None,
        })
    }

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Commissionable => "commissionable",
            Self::SessionOpen => "session_open",
            Self::TicketStaged => "ticket_staged",
            Self::Registering => "registering",
            Self::Registered => "registered",
            Self::Failed => "failed",
            Self::Locked => "locked",
        }
    }
}

/// The 4 bytes of service data: `[protocol_version, discriminator_hi, discriminator_lo, state]`.
///
/// The discriminator is big-endian; its top 4 bits are reserved (sent as 0, ignored on read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceData {
    /// Protocol version the device speaks.
    pub protocol_version: u8,
    /// 12-bit discriminator from the QR label.
    pub discriminator: u16,
    /// Current state.
    pub state: AdvertisedState,
}

/// Service data that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceDataError {
    /// Fewer than 4 bytes.
    #[error("service data is {len} bytes; expected at least 4")]
    TooShort {
        /// Received length.
        len: usize,
    },
    /// A state this installer does not know (newer firmware).
    #[error("unknown advertised state {value}")]
    UnknownState {
        /// The state byte.
        value: u8,
    },
}

impl ServiceData {
    /// The 4 advertised bytes.
    pub fn encode(&self) -> [u8; 4] {
        let [hi, lo] = (self.discriminator & 0x0fff).to_be_bytes();
        [self.protocol_version, hi, lo, self.state.as_u8()]
    }

    /// Reads service data; bytes after the fourth are ignored (room for later versions).
    pub fn decode(bytes: &[u8]) -> Result<Self, ServiceDataError> {
        let [version, hi, lo, state, ..] = *bytes else {
            return Err(ServiceDataError::TooShort { len: bytes.len() });
        };
        Ok(Self {
            protocol_version: version,
            discriminator: u16::from_be_bytes([hi, lo]) & 0x0fff,
            state: AdvertisedState::from_u8(state)
                .ok_or(ServiceDataError::UnknownState { value: state })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_strings_match_the_constants() {
        assert_eq!(uuid_string(SERVICE_UUID), SERVICE_UUID_STR);
        assert_eq!(uuid_string(RX_CHAR_UUID), RX_CHAR_UUID_STR);
        assert_eq!(uuid_string(TX_CHAR_UUID), TX_CHAR_UUID_STR);
        assert_eq!(
            uuid_string(SERVICE_DATA_UUID),
            "0000464c-0000-1000-8000-00805f9b34fb"
        );
        assert_eq!((SERVICE_DATA_UUID >> 96) as u16, SERVICE_DATA_UUID16);
    }

    #[test]
    fn service_data_round_trips_every_state() {
        for value in 0..=6 {
            let state = AdvertisedState::from_u8(value).expect("known");
            assert_eq!(state.as_u8(), value);
            let data = ServiceData {
                protocol_version: 1,
                discriminator: 0xa42,
                state,
            };
            let bytes = data.encode();
            assert_eq!(bytes, [1, 0x0a, 0x42, value]);
            assert_eq!(ServiceData::decode(&bytes), Ok(data));
        }
    }

    #[test]
    fn service_data_rejects_short_and_unknown() {
        assert_eq!(
            ServiceData::decode(&[1, 2, 3]),
            Err(ServiceDataError::TooShort { len: 3 })
        );
        assert_eq!(
            ServiceData::decode(&[1, 0, 1, 7]),
            Err(ServiceDataError::UnknownState { value: 7 })
        );
        let longer = ServiceData::decode(&[1, 0xfa, 0x42, 4, 9, 9]).expect("extra ignored");
        assert_eq!(longer.discriminator, 0xa42);
        assert_eq!(longer.state, AdvertisedState::Registered);
    }

    #[test]
    fn local_name_is_short_and_names_the_discriminator() {
        assert_eq!(local_name(0xa42), "FL-A42");
        assert_eq!(local_name(0x7), "FL-007");
        assert!(local_name(0xfff).len() <= 8);
        assert_eq!(AdvertisedState::TicketStaged.as_str(), "ticket_staged");
    }

    #[test]
    fn state_cbor_is_the_number() {
        let bytes = minicbor::to_vec(AdvertisedState::Locked).expect("encode");
        assert_eq!(bytes, [6]);
        let back: AdvertisedState = minicbor::decode(&bytes).expect("decode");
        assert_eq!(back, AdvertisedState::Locked);
    }
}
