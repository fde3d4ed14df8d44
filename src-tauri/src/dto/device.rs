//! Nearby devices and onboarding labels.

use fieldlink_core::transport::DiscoveredDevice;
use serde::Serialize;
use ts_rs::TS;

/// One advertising fieldlink device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct NearbyDevice {
    /// Platform handle (a BD address on Linux).
    pub id: String,
    /// Advertised local name.
    pub local_name: Option<String>,
    /// Signal strength, dBm.
    pub rssi: Option<i16>,
    /// The 12-bit discriminator from the service data, when it decodes.
    pub discriminator: Option<u16>,
    /// The advertised state (`commissionable`, `registered`, `locked`, ...).
    pub state: Option<String>,
    /// Protocol version the device speaks.
    pub protocol_version: Option<u8>,
}

impl From<&DiscoveredDevice> for NearbyDevice {
    fn from(device: &DiscoveredDevice) -> Self {
        let advertisement = device.advertisement();
        Self {
            id: device.id.0.clone(),
            local_name: device.local_name.clone(),
            rssi: device.rssi,
            discriminator: advertisement.map(|adv| adv.discriminator),
            state: advertisement.map(|adv| adv.state.as_str().to_owned()),
            protocol_version: advertisement.map(|adv| adv.protocol_version),
        }
    }
}

/// One round of a running scan: every device seen so far, strongest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ScanUpdate {
    /// Scan rounds completed (1, 2, ...).
    pub round: u32,
    /// The devices.
    pub devices: Vec<NearbyDevice>,
}

/// Which kind of onboarding code was entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum LabelKind {
    /// The QR label text (`FL1/...`).
    QrLabel,
    /// The 11-digit manual code.
    ManualCode,
}

/// What an onboarding code says, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct LabelInfo {
    /// QR label or manual code.
    pub kind: LabelKind,
    /// DPS registration ID (QR label only; a manual code learns it from the device).
    pub registration_id: Option<String>,
    /// The full 12-bit discriminator (QR label only).
    pub discriminator: Option<u16>,
    /// Its top 4 bits (both kinds): what a manual code matches on.
    pub short_discriminator: u8,
    /// Product code (QR label only).
    pub product_code: Option<u16>,
    /// The device's manual code (QR label only), to print under the QR code.
    pub manual_code: Option<String>,
}

/// A rendered QR label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct LabelImage {
    /// The QR code as an SVG document (error-correction level M).
    pub svg: String,
    /// The registration ID printed beside it.
    pub registration_id: String,
    /// The manual code printed under it.
    pub manual_code: String,
}
