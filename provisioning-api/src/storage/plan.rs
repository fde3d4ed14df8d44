//! The backend-independent steps of an assignment transaction; both backends call these in the
//! same order between their reads and writes.

use super::{AssignError, AssignKind, AssignMode, AssignRequest};
use crate::{
    allocation::{self, Placement},
    model::{Assignment, AssignmentStatus, DpsInstance, InstanceState},
};

/// Refuses devices owned by another tenant, and unlisted devices when the allowlist is
/// enforced.
pub(crate) fn check_owner(
    request: &AssignRequest,
    allowlist_owner: Option<&str>,
    assigned_elsewhere: bool,
) -> Result<(), AssignError> {
    match allowlist_owner {
        Some(owner) if owner != request.tenant => return Err(AssignError::OtherTenant),
        _ if assigned_elsewhere => return Err(AssignError::OtherTenant),
        None if request.require_allowlisted => return Err(AssignError::NotAllowlisted),
        _ => {}
    }
    Ok(())
}

/// What the transaction has to do, given the device's current record.
pub(crate) enum Decision {
    /// Nothing to write: return this assignment.
    Keep(Assignment),
    /// Choose an instance; `current` is the instance holding the device now.
    Place {
        /// Instance the device currently holds a slot on.
        current: Option<String>,
    },
}

/// Decides between keeping and placing.
pub(crate) fn decide(
    existing: Option<&Assignment>,
    request: &AssignRequest,
) -> Result<Decision, AssignError> {
    let current = existing
        .filter(|a| a.status == AssignmentStatus::Assigned)
        .map(|a| a.dps_instance.clone());
    match (&request.mode, current) {
        (AssignMode::Sticky, Some(_)) => Ok(Decision::Keep(
            existing.cloned().ok_or(AssignError::NotAssigned)?,
        )),
        (AssignMode::MoveToAnother { .. }, None) => Err(AssignError::NotAssigned),
        (_, current) => Ok(Decision::Place { current }),
    }
}

/// The placement constraints for this request.
pub(crate) fn placement<'a>(request: &'a AssignRequest, current: Option<&'a str>) -> Placement<'a> {
    let (exclude, releasing) = match request.mode {
        AssignMode::Sticky => (None, None),
        AssignMode::Rebalance => (None, current),
        AssignMode::MoveToAnother { .. } => (current, None),
    };
    Placement {
        tenant: &request.tenant,
        region: request.region.as_deref(),
        exclude,
        releasing,
    }
}

fn target_refusal(instance: &DpsInstance, placement: &Placement<'_>) -> &'static str {
    if instance.state != InstanceState::Active {
        "the instance is draining"
    } else if !instance.serves_tenant(placement.tenant) {
        "the instance does not serve this tenant"
    } else if !instance.in_region(placement.region) {
        "the instance is in another region"
    } else if instance.registrations >= instance.registration_cap {
        "the instance is at its registration cap"
    } else {
        "the instance is at its per-minute registration limit"
    }
}

/// Instance names to try, best first.
pub(crate) fn candidates(
    instances: &[DpsInstance],
    request: &AssignRequest,
    current: Option<&str>,
) -> Result<Vec<String>, AssignError> {
    let placement = placement(request, current);
    if let AssignMode::MoveToAnother {
        target: Some(target),
    } = &request.mode
    {
        let unavailable = |reason| AssignError::TargetUnavailable {
            name: target.clone(),
            reason,
        };
        let instance = instances
            .iter()
            .find(|i| &i.name == target)
            .ok_or_else(|| unavailable("no such instance"))?;
        if current == Some(target.as_str()) {
            return Err(unavailable("the device is already on this instance"));
        }
        if !allocation::admits(instance, &placement, request.now_ms) {
            return Err(unavailable(target_refusal(instance, &placement)));
        }
        return Ok(vec![target.clone()]);
    }
    allocation::rank(instances, &placement, request.now_ms)
        .map(|ranked| ranked.into_iter().map(|i| i.name.clone()).collect())
        .map_err(AssignError::Refused)
}

/// Whether the freshly read (locked) `instance` still takes the device.
pub(crate) fn still_admits(
    instance: &DpsInstance,
    request: &AssignRequest,
    current: Option<&str>,
) -> bool {
    allocation::admits(instance, &placement(request, current), request.now_ms)
}

/// The record to write once `instance` is chosen, and how to describe it. `None` means the
/// device stays where it is (a rebalance that found nothing better): write nothing.
pub(crate) fn placed(
    existing: Option<&Assignment>,
    instance: &DpsInstance,
    request: &AssignRequest,
) -> (Assignment, AssignKind) {
    let now = request.now_ms;
    let fresh = |generation| Assignment {
        tenant: request.tenant.clone(),
        registration_id: request.registration_id.clone(),
        dps_instance: instance.name.clone(),
        id_scope: instance.id_scope.clone(),
        global_endpoint: instance.global_endpoint.clone(),
        region: instance.region.clone(),
        status: AssignmentStatus::Assigned,
        generation,
        assigned_at_ms: now,
        updated_at_ms: now,
    };
    match existing {
        None => (fresh(1), AssignKind::Created),
        Some(old) if old.status == AssignmentStatus::Deprovisioned => {
            (fresh(old.generation + 1), AssignKind::Created)
        }
        Some(old) if old.dps_instance == instance.name => (old.clone(), AssignKind::Existing),
        Some(old) => (
            fresh(old.generation + 1),
            AssignKind::Moved {
                from: old.dps_instance.clone(),
            },
        ),
    }
}
