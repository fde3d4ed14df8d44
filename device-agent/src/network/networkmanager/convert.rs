//! Conversions between NetworkManager's D-Bus values and the agent's types: access points to
//! scan results, stored network configs to connection settings.

use std::collections::HashMap;

use zbus::zvariant::{OwnedValue, Value};

use super::super::{ScannedNetwork, WifiSecurity};

/// `NM80211ApFlags::PRIVACY`.
const AP_FLAG_PRIVACY: u32 = 0x1;
/// `NM80211ApSecurityFlags` key-management bits.
const KEY_MGMT_PSK: u32 = 0x100;
const KEY_MGMT_802_1X: u32 = 0x200;
const KEY_MGMT_SAE: u32 = 0x400;
const KEY_MGMT_EAP_SUITE_B_192: u32 = 0x2000;

/// The security an access point announces, from its `Flags`, `WpaFlags` and `RsnFlags`.
pub(super) fn security(flags: u32, wpa: u32, rsn: u32) -> WifiSecurity {
    let any = wpa | rsn;
    if any & (KEY_MGMT_802_1X | KEY_MGMT_EAP_SUITE_B_192) != 0 {
        WifiSecurity::Enterprise
    } else if rsn & KEY_MGMT_SAE != 0 && rsn & KEY_MGMT_PSK != 0 {
        WifiSecurity::Wpa2Wpa3Personal
    } else if rsn & KEY_MGMT_SAE != 0 {
        WifiSecurity::Wpa3Personal
    } else if rsn & KEY_MGMT_PSK != 0 {
        WifiSecurity::Wpa2Personal
    } else if wpa & KEY_MGMT_PSK != 0 {
        WifiSecurity::WpaPersonal
    } else if flags & AP_FLAG_PRIVACY != 0 && any == 0 {
        WifiSecurity::Wep
    } else {
        // Open, or OWE ("enhanced open"), which needs no credentials either.
        WifiSecurity::Open
    }
}

/// The channel of a frequency in MHz (2.4, 5 and 6 GHz bands); 0 when unknown.
pub(super) fn channel(frequency_mhz: u32) -> u8 {
    let channel = match frequency_mhz {
        2484 => 14,
        2412..=2472 => (frequency_mhz - 2407) / 5,
        5000..=5900 => (frequency_mhz - 5000) / 5,
        5955..=7115 => (frequency_mhz - 5950) / 5,
        _ => 0,
    };
    u8::try_from(channel).unwrap_or(0)
}

/// dBm from NetworkManager's signal quality (0..=100 %), inverting its own mapping
/// (-100 dBm → 0 %, -40 dBm → 100 %, linear in between).
pub(super) fn rssi_dbm(strength_percent: u8) -> i8 {
    let missing = i32::from(100 - strength_percent.min(100));
    i8::try_from(-40 - (missing * 60 + 50) / 100).unwrap_or(i8::MIN)
}

/// `aa:bb:cc:dd:ee:ff` → bytes.
pub(super) fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut bytes = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut bytes {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(bytes)
}

/// An access point's D-Bus properties as a scan result; `None` for hidden SSIDs.
pub(super) fn scanned(properties: &HashMap<String, OwnedValue>) -> Option<ScannedNetwork> {
    let ssid: Vec<u8> = prop(properties, "Ssid")?;
    if ssid.is_empty() || ssid.iter().all(|b| *b == 0) {
        return None;
    }
    let flags: u32 = prop(properties, "Flags").unwrap_or(0);
    let wpa: u32 = prop(properties, "WpaFlags").unwrap_or(0);
    let rsn: u32 = prop(properties, "RsnFlags").unwrap_or(0);
    let frequency: u32 = prop(properties, "Frequency").unwrap_or(0);
    let strength: u8 = prop(properties, "Strength").unwrap_or(0);
    let bssid = prop::<String>(properties, "HwAddress").and_then(|mac| parse_mac(&mac));
    Some(ScannedNetwork {
        ssid: String::from_utf8_lossy(&ssid).into_owned(),
        rssi: rssi_dbm(strength),
        security: security(flags, wpa, rsn),
        channel: channel(frequency),
        bssid,
    })
}

/// One property, converted; `None` when absent or of another type.
pub(super) fn prop<T>(properties: &HashMap<String, OwnedValue>, name: &str) -> Option<T>
where
    T: TryFrom<OwnedValue>,
{
    let value = properties.get(name)?.try_clone().ok()?;
    T::try_from(value).ok()
}

/// Keeps the strongest access point per SSID, strongest first.
pub(super) fn strongest_per_ssid(mut found: Vec<ScannedNetwork>) -> Vec<ScannedNetwork> {
    found.sort_by(|a, b| b.rssi.cmp(&a.rssi).then_with(|| a.ssid.cmp(&b.ssid)));
    let mut seen = std::collections::HashSet::new();
    found.retain(|network| seen.insert(network.ssid.clone()));
    found
}

/// Connection settings (`a{sa{sv}}`) as NetworkManager takes them.
pub(super) type NewSettings = HashMap<&'static str, HashMap<&'static str, Value<'static>>>;

/// The key management to ask for on an access point with `security`.
pub(super) fn key_mgmt(
    security: Option<WifiSecurity>,
    passphrase_empty: bool,
) -> Option<&'static str> {
    match security {
        _ if passphrase_empty => None,
        Some(WifiSecurity::Wpa3Personal) => Some("sae"),
        Some(WifiSecurity::Wep) => Some("none"),
        _ => Some("wpa-psk"),
    }
}

/// A Wi-Fi station profile. The passphrase goes into the `802-11-wireless-security` setting
/// only; callers never log the settings.
pub(super) fn wifi_settings(
    id: &str,
    ssid: &str,
    passphrase: &str,
    hidden: bool,
    bssid: Option<[u8; 6]>,
    security: Option<WifiSecurity>,
) -> NewSettings {
    let mut wireless: HashMap<&'static str, Value<'static>> = HashMap::from([
        ("ssid", Value::from(ssid.as_bytes().to_vec())),
        ("mode", Value::from("infrastructure")),
    ]);
    if hidden {
        wireless.insert("hidden", Value::from(true));
    }
    if let Some(bssid) = bssid {
        wireless.insert("bssid", Value::from(bssid.to_vec()));
    }
    let mut settings = base_settings(id, "802-11-wireless");
    settings.insert("802-11-wireless", wireless);
    if let Some(key_mgmt) = key_mgmt(security, passphrase.is_empty()) {
        let mut secured = HashMap::from([("key-mgmt", Value::from(key_mgmt))]);
        if key_mgmt == "none" {
            // WEP: a 5/13-character key or 10/26 hex digits is a key, anything else a passphrase.
            let key_type: u32 = if matches!(passphrase.len(), 5 | 10 | 13 | 26) {
                1
            } else {
                2
            };
            secured.insert("wep-key0", Value::from(passphrase.to_owned()));
            secured.insert("wep-key-type", Value::from(key_type));
        } else {
            secured.insert("psk", Value::from(passphrase.to_owned()));
        }
        settings.insert("802-11-wireless-security", secured);
    }
    settings
}

/// A cellular (GSM/LTE) profile for `apn`.
pub(super) fn cellular_settings(id: &str, apn: &str) -> NewSettings {
    let mut settings = base_settings(id, "gsm");
    settings.insert("gsm", HashMap::from([("apn", Value::from(apn.to_owned()))]));
    settings
}

fn base_settings(id: &str, kind: &'static str) -> NewSettings {
    HashMap::from([
        (
            "connection",
            HashMap::from([
                ("id", Value::from(id.to_owned())),
                ("type", Value::from(kind)),
            ]),
        ),
        ("ipv4", HashMap::from([("method", Value::from("auto"))])),
        ("ipv6", HashMap::from([("method", Value::from("auto"))])),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_from_flags() {
        assert_eq!(security(0, 0, 0), WifiSecurity::Open);
        assert_eq!(security(1, 0, 0), WifiSecurity::Wep);
        assert_eq!(security(1, 0x148, 0), WifiSecurity::WpaPersonal);
        assert_eq!(security(1, 0, 0x188), WifiSecurity::Wpa2Personal);
        assert_eq!(security(1, 0x100, 0x100), WifiSecurity::Wpa2Personal);
        assert_eq!(security(1, 0, 0x488), WifiSecurity::Wpa3Personal);
        assert_eq!(security(1, 0, 0x588), WifiSecurity::Wpa2Wpa3Personal);
        assert_eq!(security(1, 0, 0x288), WifiSecurity::Enterprise);
    }

    #[test]
    fn channels_of_each_band() {
        assert_eq!(channel(2412), 1);
        assert_eq!(channel(2437), 6);
        assert_eq!(channel(2484), 14);
        assert_eq!(channel(5180), 36);
        assert_eq!(channel(5745), 149);
        assert_eq!(channel(5955), 1);
        assert_eq!(channel(0), 0);
    }

    #[test]
    fn strength_to_dbm_is_monotonic_and_bounded() {
        assert_eq!(rssi_dbm(100), -40);
        assert_eq!(rssi_dbm(0), -100);
        assert_eq!(rssi_dbm(50), -70);
        assert_eq!(rssi_dbm(255), -40);
        for q in 1..=100u8 {
            assert!(rssi_dbm(q) >= rssi_dbm(q - 1));
        }
    }

    #[test]
    fn macs_parse_strictly() {
        assert_eq!(
            parse_mac("0A:1b:2C:3d:4E:5f"),
            Some([0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f])
        );
        assert_eq!(parse_mac("0A:1b:2C:3d:4E"), None);
        assert_eq!(parse_mac("0A:1b:2C:3d:4E:5f:00"), None);
        assert_eq!(parse_mac("zz:1b:2C:3d:4E:5f"), None);
    }

    #[test]
    fn access_points_become_scan_results() {
        let properties: HashMap<String, OwnedValue> = HashMap::from([
            ("Ssid".to_owned(), owned(Value::from(b"site-a".to_vec()))),
            ("Flags".to_owned(), owned(Value::from(1u32))),
            ("RsnFlags".to_owned(), owned(Value::from(0x188u32))),
            ("Frequency".to_owned(), owned(Value::from(2437u32))),
            ("Strength".to_owned(), owned(Value::from(70u8))),
            (
                "HwAddress".to_owned(),
                owned(Value::from("00:11:22:33:44:55")),
            ),
        ]);
        let network = scanned(&properties).expect("visible");
        assert_eq!(network.ssid, "site-a");
        assert_eq!(network.security, WifiSecurity::Wpa2Personal);
        assert_eq!(network.channel, 6);
        assert_eq!(network.rssi, -58);
        assert_eq!(network.bssid, Some([0, 0x11, 0x22, 0x33, 0x44, 0x55]));
        let hidden = HashMap::from([("Ssid".to_owned(), owned(Value::from(Vec::<u8>::new())))]);
        assert!(scanned(&hidden).is_none());
    }

    #[test]
    fn duplicates_keep_the_strongest() {
        let ap = |ssid: &str, rssi| ScannedNetwork {
            ssid: ssid.into(),
            rssi,
            security: WifiSecurity::Open,
            channel: 1,
            bssid: None,
        };
        let kept = strongest_per_ssid(vec![ap("a", -80), ap("b", -60), ap("a", -50)]);
        assert_eq!(kept, [ap("a", -50), ap("b", -60)]);
    }

    #[test]
    fn wifi_settings_carry_the_secret_only_in_the_security_setting() {
        let settings = wifi_settings(
            "fieldlink: site",
            "site",
            "correct horse",
            true,
            Some([1, 2, 3, 4, 5, 6]),
            Some(WifiSecurity::Wpa2Personal),
        );
        assert_eq!(
            settings["802-11-wireless-security"]["key-mgmt"],
            Value::from("wpa-psk")
        );
        assert_eq!(
            settings["802-11-wireless-security"]["psk"],
            Value::from("correct horse")
        );
        assert_eq!(settings["802-11-wireless"]["hidden"], Value::from(true));
        assert_eq!(
            settings["connection"]["type"],
            Value::from("802-11-wireless")
        );
        let open = wifi_settings("x", "cafe", "", false, None, Some(WifiSecurity::Open));
        assert!(!open.contains_key("802-11-wireless-security"));
        let sae = wifi_settings(
            "x",
            "new",
            "pw-12345",
            false,
            None,
            Some(WifiSecurity::Wpa3Personal),
        );
        assert_eq!(
            sae["802-11-wireless-security"]["key-mgmt"],
            Value::from("sae")
        );
        let gsm = cellular_settings("fieldlink: iot", "iot.example");
        assert_eq!(gsm["gsm"]["apn"], Value::from("iot.example"));
    }

    fn owned(value: Value<'static>) -> OwnedValue {
        OwnedValue::try_from(value).expect("no file descriptors")
    }
}
