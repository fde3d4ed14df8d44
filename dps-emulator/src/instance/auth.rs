//! SAS authentication of devices (enrollment keys) and services (shared access policies).

use fieldlink_protocol::sas::{self, DEVICE_KEY_NAME, SasError, SasToken};

use super::Instance;
use crate::error::DpsError;
use crate::model::ProvisioningStatus;

/// How a device proved itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceAuth {
    /// With the key of its individual enrollment.
    Individual,
    /// With a key derived from this enrollment group's key.
    Group(String),
}

impl Instance {
    /// Checks a device's `Authorization` header for `registration_id`: the token must name
    /// `{idScope}/registrations/{registrationId}`, use key name `registration`, be unexpired and
    /// be signed by the individual enrollment's key (primary or secondary) or, when the device
    /// has no individual enrollment, by a key derived from a symmetric-key group's key.
    pub fn authenticate_device(
        &self,
        registration_id: &str,
        authorization: Option<&str>,
        now_unix: i64,
    ) -> Result<DeviceAuth, DpsError> {
        let result = self.check_device(registration_id, authorization, now_unix);
        if result.is_err() {
            self.lock().counters.unauthorized += 1;
        }
        result
    }

    fn check_device(
        &self,
        registration_id: &str,
        authorization: Option<&str>,
        now_unix: i64,
    ) -> Result<DeviceAuth, DpsError> {
        let token = parse_header(authorization)?;
        if token.key_name() != Some(DEVICE_KEY_NAME) {
            return Err(DpsError::Unauthorized(format!(
                "the token's key name (skn) must be '{DEVICE_KEY_NAME}'"
            )));
        }
        let resource = sas::device_resource(&self.id_scope, registration_id);
        let state = self.lock();
        if let Some(enrollment) = state.enrollments.get(registration_id) {
            let keys = enrollment
                .attestation
                .symmetric_key
                .clone()
                .unwrap_or_default();
            drop(state);
            let candidates = [keys.primary_key, keys.secondary_key];
            return match check_keys(
                &token,
                &resource,
                candidates.into_iter().flatten(),
                now_unix,
            ) {
                KeyCheck::Verified => Ok(DeviceAuth::Individual),
                KeyCheck::Rejected(err) => Err(err),
                KeyCheck::NoMatch => Err(DpsError::Unauthorized(
                    "the signature matches neither key of the individual enrollment".to_owned(),
                )),
            };
        }
        let groups: Vec<(String, Vec<String>)> = state
            .groups
            .values()
            .map(|group| {
                let keys = group.attestation.symmetric_key.clone().unwrap_or_default();
                let keys = [keys.primary_key, keys.secondary_key]
                    .into_iter()
                    .flatten()
                    .collect();
                (group.enrollment_group_id.clone(), keys)
            })
            .collect();
        drop(state);
        for (group_id, keys) in groups {
            let derived = keys
                .iter()
                .filter_map(|key| sas::derive_group_device_key(key, registration_id).ok());
            match check_keys(&token, &resource, derived, now_unix) {
                KeyCheck::Verified => return Ok(DeviceAuth::Group(group_id)),
                KeyCheck::Rejected(err) => return Err(err),
                KeyCheck::NoMatch => {}
            }
        }
        Err(DpsError::Unauthorized(
            "the signature matches no enrollment or enrollment group key for this registration ID"
                .to_owned(),
        ))
    }

    /// Checks a service `Authorization` header: the token must name this instance's host, carry
    /// the name of one of its shared access policies in `skn`, be unexpired and be signed by
    /// that policy's primary or secondary key.
    pub fn authenticate_service(
        &self,
        authorization: Option<&str>,
        now_unix: i64,
    ) -> Result<(), DpsError> {
        let token = parse_header(authorization)?;
        let Some(key_name) = token.key_name() else {
            return Err(DpsError::Unauthorized(
                "the token has no key name (skn); use a shared access policy name".to_owned(),
            ));
        };
        let policy = self
            .lock()
            .policies
            .iter()
            .find(|policy| policy.key_name == key_name)
            .cloned()
            .ok_or_else(|| {
                DpsError::Unauthorized(format!("no shared access policy named {key_name:?}"))
            })?;
        let keys = [policy.primary_key, policy.secondary_key].into_iter();
        match check_keys(&token, &self.service_host_name, keys, now_unix) {
            KeyCheck::Verified => Ok(()),
            KeyCheck::Rejected(err) => Err(err),
            KeyCheck::NoMatch => Err(DpsError::Unauthorized(format!(
                "the signature matches neither key of policy {key_name:?}"
            ))),
        }
    }

    /// Whether a device's enrollment is enabled (individual, else its group).
    pub(crate) fn enrollment_enabled(&self, registration_id: &str, auth: &DeviceAuth) -> bool {
        let state = self.lock();
        let status = match auth {
            DeviceAuth::Individual => state
                .enrollments
                .get(registration_id)
                .map(|e| e.provisioning_status),
            DeviceAuth::Group(id) => state.groups.get(id).map(|g| g.provisioning_status),
        };
        status == Some(ProvisioningStatus::Enabled)
    }
}

fn parse_header(authorization: Option<&str>) -> Result<SasToken, DpsError> {
    let header = authorization.ok_or_else(|| {
        DpsError::Unauthorized("missing Authorization header (SharedAccessSignature)".to_owned())
    })?;
    sas::parse_sas(header).map_err(|err| DpsError::Unauthorized(err.to_string()))
}

enum KeyCheck {
    Verified,
    /// No key produced the signature.
    NoMatch,
    /// The token itself is unacceptable (wrong resource, or a key matched but it expired):
    /// trying other keys cannot help.
    Rejected(DpsError),
}

fn check_keys(
    token: &SasToken,
    resource: &str,
    keys: impl Iterator<Item = String>,
    now_unix: i64,
) -> KeyCheck {
    for key in keys {
        match token.verify(resource, &key, now_unix) {
            Ok(()) => return KeyCheck::Verified,
            Err(SasError::BadSignature | SasError::InvalidKey) => {}
            Err(err) => return KeyCheck::Rejected(DpsError::Unauthorized(err.to_string())),
        }
    }
    KeyCheck::NoMatch
}
