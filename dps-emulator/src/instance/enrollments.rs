//! Individual enrollments and enrollment groups (symmetric keys only).

use fieldlink_protocol::registration_id::validate_registration_id;

use super::{Instance, generate_key};
use crate::error::DpsError;
use crate::model::{AttestationMechanism, EnrollmentGroup, IndividualEnrollment, timestamp_utc};

impl Instance {
    /// Creates or replaces an individual enrollment. Missing keys are generated; `if_match`
    /// (an `If-Match` header) must equal the stored etag unless it is `*`.
    pub fn put_enrollment(
        &self,
        mut enrollment: IndividualEnrollment,
        if_match: Option<&str>,
    ) -> Result<IndividualEnrollment, DpsError> {
        validate_registration_id(&enrollment.registration_id)
            .map_err(|err| DpsError::InvalidRegistrationId(err.to_string()))?;
        let mut state = self.lock();
        let existing = state.enrollments.get(&enrollment.registration_id);
        check_etag(existing.and_then(|e| e.etag.as_deref()), if_match)?;
        let created = existing.and_then(|e| e.created_date_time_utc.clone());
        normalise_attestation(&mut enrollment.attestation, &mut state.rng)?;
        let now = timestamp_utc(chrono::Utc::now());
        enrollment.created_date_time_utc = Some(created.unwrap_or_else(|| now.clone()));
        enrollment.last_updated_date_time_utc = Some(now);
        enrollment.etag = Some(new_etag());
        enrollment.registration_state = None;
        state
            .enrollments
            .insert(enrollment.registration_id.clone(), enrollment.clone());
        Ok(enrollment)
    }

    /// An individual enrollment, with its registration state if the device registered.
    pub fn enrollment(&self, registration_id: &str) -> Option<IndividualEnrollment> {
        let mut enrollment = self.lock().enrollments.get(registration_id).cloned()?;
        enrollment.registration_state = self.registration_state(registration_id);
        Some(enrollment)
    }

    /// Deletes an individual enrollment (its registration record stays, as in Azure).
    pub fn delete_enrollment(
        &self,
        registration_id: &str,
        if_match: Option<&str>,
    ) -> Result<(), DpsError> {
        let mut state = self.lock();
        let existing = state.enrollments.get(registration_id).ok_or_else(|| {
            DpsError::EnrollmentNotFound(format!("individual enrollment {registration_id}"))
        })?;
        check_etag(existing.etag.as_deref(), if_match)?;
        state.enrollments.remove(registration_id);
        Ok(())
    }

    /// Creates or replaces an enrollment group (see [`Instance::put_enrollment`]).
    pub fn put_enrollment_group(
        &self,
        mut group: EnrollmentGroup,
        if_match: Option<&str>,
    ) -> Result<EnrollmentGroup, DpsError> {
        validate_registration_id(&group.enrollment_group_id)
            .map_err(|err| DpsError::BadRequest(format!("invalid enrollmentGroupId: {err}")))?;
        let mut state = self.lock();
        let existing = state.groups.get(&group.enrollment_group_id);
        check_etag(existing.and_then(|g| g.etag.as_deref()), if_match)?;
        let created = existing.and_then(|g| g.created_date_time_utc.clone());
        normalise_attestation(&mut group.attestation, &mut state.rng)?;
        let now = timestamp_utc(chrono::Utc::now());
        group.created_date_time_utc = Some(created.unwrap_or_else(|| now.clone()));
        group.last_updated_date_time_utc = Some(now);
        group.etag = Some(new_etag());
        state
            .groups
            .insert(group.enrollment_group_id.clone(), group.clone());
        Ok(group)
    }

    /// An enrollment group.
    pub fn enrollment_group(&self, enrollment_group_id: &str) -> Option<EnrollmentGroup> {
        self.lock().groups.get(enrollment_group_id).cloned()
    }

    /// Deletes an enrollment group.
    pub fn delete_enrollment_group(
        &self,
        enrollment_group_id: &str,
        if_match: Option<&str>,
    ) -> Result<(), DpsError> {
        let mut state = self.lock();
        let existing = state.groups.get(enrollment_group_id).ok_or_else(|| {
            DpsError::EnrollmentNotFound(format!("enrollment group {enrollment_group_id}"))
        })?;
        check_etag(existing.etag.as_deref(), if_match)?;
        state.groups.remove(enrollment_group_id);
        Ok(())
    }
}

fn check_etag(stored: Option<&str>, if_match: Option<&str>) -> Result<(), DpsError> {
    match (if_match.map(str::trim), stored) {
        (None | Some("*"), _) => Ok(()),
        (Some(wanted), Some(stored)) if wanted.trim_matches('"') == stored.trim_matches('"') => {
            Ok(())
        }
        (Some(wanted), _) => Err(DpsError::PreconditionFailed(format!(
            "If-Match {wanted} does not match the stored etag"
        ))),
    }
}

fn normalise_attestation(
    attestation: &mut AttestationMechanism,
    rng: &mut impl rand::RngCore,
) -> Result<(), DpsError> {
    if attestation.kind != "symmetricKey" {
        return Err(DpsError::BadRequest(format!(
            "attestation type {:?} is not emulated; use symmetricKey",
            attestation.kind
        )));
    }
    let keys = attestation
        .symmetric_key
        .get_or_insert_with(Default::default);
    for key in [&mut keys.primary_key, &mut keys.secondary_key] {
        match key {
            Some(existing) => {
                let decoded = data_encoding::BASE64.decode(existing.trim().as_bytes());
                if !matches!(decoded, Ok(bytes) if (16..=64).contains(&bytes.len())) {
                    return Err(DpsError::BadRequest(
                        "symmetric keys must be base64 of 16 to 64 bytes".to_owned(),
                    ));
                }
            }
            None => *key = Some(generate_key(rng)),
        }
    }
    Ok(())
}

fn new_etag() -> String {
    format!("\"{}\"", uuid::Uuid::new_v4())
}
