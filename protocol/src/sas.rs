//! Azure DPS shared-access-signature (SAS) tokens.
//!
//! The format every Azure IoT SDK produces and DPS accepts:
//!
//! ```text
//! SharedAccessSignature sr=<enc(resource)>&sig=<enc(b64(HMAC-SHA256(b64dec(key), enc(resource) + "\n" + se)))>&se=<unix seconds>&skn=<key name>
//! ```
//!
//! where `enc` is strict URI-component percent-encoding (everything but `A-Z a-z 0-9 - _ . ~`).
//! Devices sign `{idScope}/registrations/{registrationId}` with key name `registration`; a
//! device in a symmetric-key enrollment group uses the key derived from the group key with
//! [`derive_group_device_key`]. Services sign the DPS host name (`{dpsName}.azure-devices-provisioning.net`)
//! with a shared-access-policy name and key.
//!
//! Sans-I/O: the current time is always passed in. Depends only on `hmac`, `sha2` and
//! `data-encoding` (standard padded base64).

use data_encoding::BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// The `skn` value devices use in DPS registration tokens.
pub const DEVICE_KEY_NAME: &str = "registration";

/// The scheme word that starts every token.
pub const SAS_SCHEME: &str = "SharedAccessSignature";

/// Why a SAS token or key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SasError {
    /// The token does not have the `SharedAccessSignature sr=…&sig=…&se=…` shape.
    Malformed {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The shared key is not valid base64.
    InvalidKey,
    /// The token's expiry (`se`) is not after the current time.
    Expired {
        /// The token's `se`, unix seconds.
        expired_at: i64,
        /// The time it was checked at, unix seconds.
        now: i64,
    },
    /// The token was issued for another resource (`sr`).
    WrongResource {
        /// The resource the caller needed.
        expected: String,
        /// The resource the token names (decoded).
        actual: String,
    },
    /// The signature does not match the key.
    BadSignature,
}

impl SasError {
    /// Stable snake_case code for logs and public errors.
    pub fn code(&self) -> &'static str {
        match self {
            SasError::Malformed { .. } => "sas_malformed",
            SasError::InvalidKey => "sas_invalid_key",
            SasError::Expired { .. } => "sas_expired",
            SasError::WrongResource { .. } => "sas_wrong_resource",
            SasError::BadSignature => "sas_bad_signature",
        }
    }
}

impl fmt::Display for SasError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SasError::Malformed { reason } => write!(f, "malformed SAS token: {reason}"),
            SasError::InvalidKey => write!(f, "the shared access key is not valid base64"),
            SasError::Expired { expired_at, now } => write!(
                f,
                "SAS token expired at {expired_at} (now {now}); issue a new token"
            ),
            SasError::WrongResource { expected, actual } => {
                write!(f, "SAS token is for resource {actual:?}, not {expected:?}")
            }
            SasError::BadSignature => write!(f, "SAS token signature does not match the key"),
        }
    }
}

impl std::error::Error for SasError {}

/// A parsed SAS token. `Debug` never shows the signature.
#[derive(Clone, PartialEq, Eq)]
pub struct SasToken {
    resource: String,
    resource_as_signed: String,
    signature: Vec<u8>,
    expiry: i64,
    key_name: Option<String>,
}

impl fmt::Debug for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SasToken")
            .field("resource", &self.resource)
            .field("signature", &"<redacted>")
            .field("expiry", &self.expiry)
            .field("key_name", &self.key_name)
            .finish()
    }
}

impl SasToken {
    /// The decoded resource URI (`sr`).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The expiry (`se`), unix seconds.
    pub fn expiry(&self) -> i64 {
        self.expiry
    }

    /// The decoded key name (`skn`), if the token has one.
    pub fn key_name(&self) -> Option<&str> {
        self.key_name.as_deref()
    }

    /// Checks the token against `expected_resource` (case-insensitive, a trailing `/` ignored),
    /// its expiry against `now_unix`, and its signature against `key_b64` (constant-time).
    ///
    /// The signature is checked over `sr` exactly as it appears in the token, so tokens from
    /// clients that percent-encode with lower-case hex verify too. The key name is not checked
    /// here: callers pick the key by it and compare it themselves.
    pub fn verify(
        &self,
        expected_resource: &str,
        key_b64: &str,
        now_unix: i64,
    ) -> Result<(), SasError> {
        let key = decode_key(key_b64)?;
        let mut mac = HmacSha256::new_from_slice(&key).map_err(|_| SasError::InvalidKey)?;
        mac.update(string_to_sign(&self.resource_as_signed, self.expiry).as_bytes());
        let signature_ok = mac.verify_slice(&self.signature).is_ok();
        if !resource_matches(&self.resource, expected_resource) {
            return Err(SasError::WrongResource {
                expected: expected_resource.to_owned(),
                actual: self.resource.clone(),
            });
        }
        if !signature_ok {
            return Err(SasError::BadSignature);
        }
        if self.expiry <= now_unix {
            return Err(SasError::Expired {
                expired_at: self.expiry,
                now: now_unix,
            });
        }
        Ok(())
    }
}

/// The key of a device in a symmetric-key enrollment group:
/// `b64(HMAC-SHA256(b64dec(group_key), registration_id))`.
pub fn derive_group_device_key(
    group_key_b64: &str,
    registration_id: &str,
) -> Result<String, SasError> {
    let key = decode_key(group_key_b64)?;
    Ok(BASE64.encode(&hmac_sha256(&key, registration_id.as_bytes())?))
}

/// A device registration token for `{id_scope}/registrations/{registration_id}`, key name
/// `registration`, valid until `expiry_unix`.
pub fn device_sas_token(
    id_scope: &str,
    registration_id: &str,
    key_b64: &str,
    expiry_unix: i64,
) -> Result<String, SasError> {
    sas_token(
        &device_resource(id_scope, registration_id),
        Some(DEVICE_KEY_NAME),
        key_b64,
        expiry_unix,
    )
}

/// A service token for `resource_uri` (a DPS instance host name such as
/// `mydps.azure-devices-provisioning.net`) signed with a shared access policy.
pub fn service_sas_token(
    resource_uri: &str,
    policy_name: &str,
    key_b64: &str,
    expiry_unix: i64,
) -> Result<String, SasError> {
    sas_token(resource_uri, Some(policy_name), key_b64, expiry_unix)
}

/// The resource a device signs: `{id_scope}/registrations/{registration_id}`.
pub fn device_resource(id_scope: &str, registration_id: &str) -> String {
    format!("{id_scope}/registrations/{registration_id}")
}

/// A token for any resource; `key_name` is omitted from the token when `None`.
pub fn sas_token(
    resource_uri: &str,
    key_name: Option<&str>,
    key_b64: &str,
    expiry_unix: i64,
) -> Result<String, SasError> {
    let key = decode_key(key_b64)?;
    let resource = percent_encode(resource_uri);
    let signature = BASE64.encode(&hmac_sha256(
        &key,
        string_to_sign(&resource, expiry_unix).as_bytes(),
    )?);
    let mut token = format!(
        "{SAS_SCHEME} sr={resource}&sig={}&se={expiry_unix}",
        percent_encode(&signature)
    );
    if let Some(name) = key_name {
        token.push_str("&skn=");
        token.push_str(&percent_encode(name));
    }
    Ok(token)
}

/// Parses `SharedAccessSignature sr=…&sig=…&se=…[&skn=…]` (fields in any order; unknown
/// fields are ignored; a field given twice is refused).
pub fn parse_sas(token: &str) -> Result<SasToken, SasError> {
    let rest = token
        .trim()
        .strip_prefix(SAS_SCHEME)
        .ok_or(SasError::Malformed {
            reason: "does not start with SharedAccessSignature",
        })?;
    let fields = rest
        .strip_prefix(' ')
        .ok_or(SasError::Malformed {
            reason: "no space after SharedAccessSignature",
        })?
        .trim_start();
    let (mut sr, mut sig, mut se, mut skn) = (None, None, None, None);
    for pair in fields.split('&') {
        let (name, value) = pair.split_once('=').ok_or(SasError::Malformed {
            reason: "a field has no '='",
        })?;
        let slot = match name {
            "sr" => &mut sr,
            "sig" => &mut sig,
            "se" => &mut se,
            "skn" => &mut skn,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(SasError::Malformed {
                reason: "a field appears twice",
            });
        }
    }
    let sr = sr.ok_or(SasError::Malformed {
        reason: "missing sr",
    })?;
    let sig = sig.ok_or(SasError::Malformed {
        reason: "missing sig",
    })?;
    let se = se.ok_or(SasError::Malformed {
        reason: "missing se",
    })?;
    let resource = percent_decode(sr).ok_or(SasError::Malformed {
        reason: "bad percent-encoding in sr",
    })?;
    if resource.is_empty() {
        return Err(SasError::Malformed { reason: "empty sr" });
    }
    let signature_b64 = percent_decode(sig).ok_or(SasError::Malformed {
        reason: "bad percent-encoding in sig",
    })?;
    let signature = BASE64
        .decode(signature_b64.as_bytes())
        .map_err(|_| SasError::Malformed {
            reason: "sig is not base64",
        })?;
    if !se.bytes().all(|b| b.is_ascii_digit()) || se.is_empty() || se.len() > 18 {
        return Err(SasError::Malformed {
            reason: "se is not a unix time in seconds",
        });
    }
    let expiry = se.parse::<i64>().map_err(|_| SasError::Malformed {
        reason: "se is not a unix time in seconds",
    })?;
    let key_name = skn
        .map(|name| {
            percent_decode(name).ok_or(SasError::Malformed {
                reason: "bad percent-encoding in skn",
            })
        })
        .transpose()?;
    Ok(SasToken {
        resource,
        resource_as_signed: sr.to_owned(),
        signature,
        expiry,
        key_name,
    })
}

/// Parses `token` and checks it with [`SasToken::verify`].
pub fn verify_sas(
    token: &str,
    expected_resource: &str,
    key_b64: &str,
    now_unix: i64,
) -> Result<(), SasError> {
    parse_sas(token)?.verify(expected_resource, key_b64, now_unix)
}

/// Strict URI-component percent-encoding (upper-case hex); only `A-Z a-z 0-9 - _ . ~` pass.
pub fn percent_encode(input: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(input.len() * 3);
    for &byte in input.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    out
}

/// Decodes `%XX` escapes (either hex case); `None` for a broken escape or invalid UTF-8.
/// `+` stays `+` (base64 signatures are sometimes sent unencoded).
pub fn percent_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

fn decode_key(key_b64: &str) -> Result<Vec<u8>, SasError> {
    let key = BASE64
        .decode(key_b64.trim().as_bytes())
        .map_err(|_| SasError::InvalidKey)?;
    if key.is_empty() {
        return Err(SasError::InvalidKey);
    }
    Ok(key)
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Result<Vec<u8>, SasError> {
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| SasError::InvalidKey)?;
    mac.update(message);
    Ok(mac.finalize().into_bytes().to_vec())
}

fn string_to_sign(encoded_resource: &str, expiry: i64) -> String {
    format!("{encoded_resource}\n{expiry}")
}

fn resource_matches(actual: &str, expected: &str) -> bool {
    actual
        .trim_end_matches('/')
        .eq_ignore_ascii_case(expected.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known-answer values computed independently with Python's hmac/hashlib/urllib.
    const GROUP_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const REGISTRATION_ID: &str = "sensor-0042";
    const DERIVED_KEY: &str = "uRjTJ5ZkeYXfDyfZuhPgHhbqSDx4m4T3B7VVZRK8SI0=";
    const ID_SCOPE: &str = "0ne000A1B2C";
    const EXPIRY: i64 = 1_900_000_000;
    const DEVICE_TOKEN: &str = "SharedAccessSignature sr=0ne000A1B2C%2Fregistrations%2Fsensor-0042&sig=hntsUMj16OtKyDTxEWlA3RtjyhFOYcGPas1D6ateFms%3D&se=1900000000&skn=registration";

    #[test]
    fn group_key_derivation_matches_known_answer() {
        assert_eq!(
            derive_group_device_key(GROUP_KEY, REGISTRATION_ID).unwrap(),
            DERIVED_KEY
        );
    }

    #[test]
    fn device_token_matches_known_answer() {
        let token = device_sas_token(ID_SCOPE, REGISTRATION_ID, DERIVED_KEY, EXPIRY).unwrap();
        assert_eq!(token, DEVICE_TOKEN);
    }

    /// What the Node.js SDK (azure-iot-common `SharedAccessSignature.create`) sends: `sr` not
    /// percent-encoded, signed as is, `skn` before `se`.
    const NODE_SDK_TOKEN: &str = "SharedAccessSignature sr=0ne000A1B2C/registrations/sensor-0042&sig=hlfsJnCanC0EhJDtOfRNkcseqDAobkC6Bcrg%2BKWCsCc%3D&skn=registration&se=1900000000";

    #[test]
    fn node_sdk_token_verifies() {
        let parsed = parse_sas(NODE_SDK_TOKEN).unwrap();
        assert_eq!(parsed.key_name(), Some(DEVICE_KEY_NAME));
        parsed
            .verify(&device_resource(ID_SCOPE, REGISTRATION_ID), DERIVED_KEY, 0)
            .unwrap();
        assert_eq!(
            parsed.verify(&device_resource(ID_SCOPE, REGISTRATION_ID), GROUP_KEY, 0),
            Err(SasError::BadSignature)
        );
    }

    #[test]
    fn device_token_verifies_and_parses() {
        let token = device_sas_token(ID_SCOPE, REGISTRATION_ID, DERIVED_KEY, EXPIRY).unwrap();
        let parsed = parse_sas(&token).unwrap();
        assert_eq!(parsed.resource(), "0ne000A1B2C/registrations/sensor-0042");
        assert_eq!(parsed.expiry(), EXPIRY);
        assert_eq!(parsed.key_name(), Some(DEVICE_KEY_NAME));
        verify_sas(
            &token,
            &device_resource(ID_SCOPE, REGISTRATION_ID),
            DERIVED_KEY,
            EXPIRY - 1,
        )
        .unwrap();
    }

    #[test]
    fn resource_comparison_ignores_case_and_trailing_slash() {
        let token = device_sas_token(ID_SCOPE, REGISTRATION_ID, DERIVED_KEY, EXPIRY).unwrap();
        verify_sas(
            &token,
            "0NE000a1b2c/registrations/SENSOR-0042/",
            DERIVED_KEY,
            0,
        )
        .unwrap();
    }

    #[test]
    fn rejects_expired_token() {
        let token = device_sas_token(ID_SCOPE, REGISTRATION_ID, DERIVED_KEY, EXPIRY).unwrap();
        let resource = device_resource(ID_SCOPE, REGISTRATION_ID);
        assert_eq!(
            verify_sas(&token, &resource, DERIVED_KEY, EXPIRY),
            Err(SasError::Expired {
                expired_at: EXPIRY,
                now: EXPIRY
            })
        );
    }

    #[test]
    fn rejects_wrong_key() {
        let token = device_sas_token(ID_SCOPE, REGISTRATION_ID, DERIVED_KEY, EXPIRY).unwrap();
        let resource = device_resource(ID_SCOPE, REGISTRATION_ID);
        assert_eq!(
            verify_sas(&token, &resource, GROUP_KEY, 0),
            Err(SasError::BadSignature)
        );
    }

    #[test]
    fn rejects_wrong_resource() {
        let token = device_sas_token(ID_SCOPE, REGISTRATION_ID, DERIVED_KEY, EXPIRY).unwrap();
        let err = verify_sas(
            &token,
            &device_resource(ID_SCOPE, "sensor-0043"),
            DERIVED_KEY,
            0,
        )
        .unwrap_err();
        assert_eq!(err.code(), "sas_wrong_resource");
    }

    #[test]
    fn rejects_tampered_expiry() {
        let token = device_sas_token(ID_SCOPE, REGISTRATION_ID, DERIVED_KEY, EXPIRY).unwrap();
        let tampered = token.replace("se=1900000000", "se=1900000001");
        let resource = device_resource(ID_SCOPE, REGISTRATION_ID);
        assert_eq!(
            verify_sas(&tampered, &resource, DERIVED_KEY, 0),
            Err(SasError::BadSignature)
        );
    }

    #[test]
    fn service_token_round_trips() {
        let host = "fieldlink-dps-1.azure-devices-provisioning.net";
        let token = service_sas_token(host, "provisioningserviceowner", GROUP_KEY, EXPIRY).unwrap();
        assert!(token.starts_with(
            "SharedAccessSignature sr=fieldlink-dps-1.azure-devices-provisioning.net&sig="
        ));
        assert!(token.ends_with("&se=1900000000&skn=provisioningserviceowner"));
        let parsed = parse_sas(&token).unwrap();
        assert_eq!(parsed.key_name(), Some("provisioningserviceowner"));
        parsed.verify(host, GROUP_KEY, 0).unwrap();
    }

    #[test]
    fn accepts_fields_in_any_order_and_lower_case_escapes() {
        let token = device_sas_token(ID_SCOPE, REGISTRATION_ID, DERIVED_KEY, EXPIRY).unwrap();
        let fields = token.strip_prefix("SharedAccessSignature ").unwrap();
        let mut parts: Vec<&str> = fields.split('&').collect();
        parts.reverse();
        let reordered = format!(
            "SharedAccessSignature {}",
            parts.join("&").replace("%2F", "%2f")
        );
        // The signature covers sr as sent, so a lower-cased sr escape changes what was signed.
        assert_eq!(
            verify_sas(
                &reordered,
                &device_resource(ID_SCOPE, REGISTRATION_ID),
                DERIVED_KEY,
                0
            ),
            Err(SasError::BadSignature)
        );
        let sig_only_lower = format!(
            "SharedAccessSignature {}",
            parts
                .iter()
                .map(|p| if p.starts_with("sig=") {
                    p.replace("%2F", "%2f")
                } else {
                    (*p).to_owned()
                })
                .collect::<Vec<_>>()
                .join("&")
        );
        verify_sas(
            &sig_only_lower,
            &device_resource(ID_SCOPE, REGISTRATION_ID),
            DERIVED_KEY,
            0,
        )
        .unwrap();
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        for bad in [
            "",
            "SharedAccessSignature",
            "Bearer abc",
            "SharedAccessSignature sr=a&se=1",
            "SharedAccessSignature sr=a&sig=AAAA&se=soon",
            "SharedAccessSignature sr=a&sig=AAAA&se=1&se=2",
            "SharedAccessSignature sr=%zz&sig=AAAA&se=1",
            "SharedAccessSignature sr=a&sig=!!!&se=1",
            "SharedAccessSignature sr=&sig=AAAA&se=1",
            "SharedAccessSignature sr=a&sig=AAAA&se=-1",
            "SharedAccessSignature sr=a&sig=AAAA&se=99999999999999999999",
            "SharedAccessSignature noequals",
        ] {
            assert_eq!(
                parse_sas(bad).unwrap_err().code(),
                "sas_malformed",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn invalid_keys_are_errors() {
        assert_eq!(
            derive_group_device_key("not base64!", "x"),
            Err(SasError::InvalidKey)
        );
        assert_eq!(device_sas_token("s", "r", "", 1), Err(SasError::InvalidKey));
    }

    #[test]
    fn percent_encoding_round_trips() {
        let raw = "0ne/registrations/a:b.c_d-e~f +=é";
        let encoded = percent_encode(raw);
        assert_eq!(
            encoded,
            "0ne%2Fregistrations%2Fa%3Ab.c_d-e~f%20%2B%3D%C3%A9"
        );
        assert_eq!(percent_decode(&encoded).as_deref(), Some(raw));
        assert_eq!(percent_decode("a+b").as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%4"), None);
    }

    #[test]
    fn debug_redacts_signature() {
        let token = device_sas_token(ID_SCOPE, REGISTRATION_ID, DERIVED_KEY, EXPIRY).unwrap();
        let debug = format!("{:?}", parse_sas(&token).unwrap());
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains("hntsUMj16"));
    }
}
