//! Choosing a linked hub for a registration.

use rand::Rng;
use sha2::{Digest, Sha256};

use crate::config::{AllocationPolicy, LinkedHub};
use crate::model::EnrollmentAllocationPolicy;

/// Why no hub could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    /// The instance has no linked hubs the policy may use.
    #[error("no linked IoT hub is available for allocation")]
    NoHub,
    /// The enrollment names hubs that are not linked to the instance.
    #[error("the enrollment's iotHubs are not linked to this DPS instance: {0}")]
    UnlinkedHub(String),
    /// A static enrollment must name exactly one hub.
    #[error("a static allocation needs exactly one hub in iotHubs")]
    StaticNeedsOneHub,
}

/// The hubs an enrollment restricts itself to, and its own policy, if any.
#[derive(Debug, Clone, Default)]
pub struct EnrollmentScope<'a> {
    /// `iotHubs` (or `iotHubHostName`) of the enrollment.
    pub hubs: Option<&'a [String]>,
    /// `allocationPolicy` of the enrollment.
    pub policy: Option<EnrollmentAllocationPolicy>,
}

/// Picks a hub for `registration_id`. Instance-wide, hubs with `applyAllocationPolicy = false`
/// or weight 0 are skipped; an enrollment's explicit `iotHubs` list is used as given.
pub fn choose_hub(
    hubs: &[LinkedHub],
    instance_policy: AllocationPolicy,
    enrollment: &EnrollmentScope<'_>,
    registration_id: &str,
    rng: &mut impl Rng,
) -> Result<String, AllocationError> {
    let candidates: Vec<(&str, u32)> = match enrollment.hubs {
        Some(names) if !names.is_empty() => {
            let mut chosen = Vec::with_capacity(names.len());
            for name in names {
                let hub = hubs
                    .iter()
                    .find(|hub| hub.name.eq_ignore_ascii_case(name))
                    .ok_or_else(|| AllocationError::UnlinkedHub(name.clone()))?;
                chosen.push((hub.name.as_str(), hub.allocation_weight.max(1)));
            }
            chosen
        }
        _ => hubs
            .iter()
            .filter(|hub| hub.apply_allocation_policy && hub.allocation_weight > 0)
            .map(|hub| (hub.name.as_str(), hub.allocation_weight))
            .collect(),
    };
    if enrollment.policy == Some(EnrollmentAllocationPolicy::Static) {
        return match candidates.as_slice() {
            [(only, _)] => Ok((*only).to_owned()),
            _ => Err(AllocationError::StaticNeedsOneHub),
        };
    }
    let total: u64 = candidates
        .iter()
        .map(|(_, weight)| u64::from(*weight))
        .sum();
    if total == 0 {
        return Err(AllocationError::NoHub);
    }
    let use_hash = enrollment.policy.is_some() || instance_policy == AllocationPolicy::Hashed;
    let ticket = if use_hash {
        let digest = Sha256::digest(registration_id.as_bytes());
        let mut head = [0u8; 8];
        head.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(head) % total
    } else {
        rng.gen_range(0..total)
    };
    let mut remaining = ticket;
    for (name, weight) in &candidates {
        let weight = u64::from(*weight);
        if remaining < weight {
            return Ok((*name).to_owned());
        }
        remaining -= weight;
    }
    Err(AllocationError::NoHub)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn hubs(names: &[&str]) -> Vec<LinkedHub> {
        names.iter().map(|name| LinkedHub::new(name)).collect()
    }

    /// The hub `policy` picks for a device whose enrollment does not restrict hubs or policy.
    fn unscoped(
        linked: &[LinkedHub],
        policy: AllocationPolicy,
        id: &str,
        rng: &mut StdRng,
    ) -> Result<String, AllocationError> {
        choose_hub(linked, policy, &EnrollmentScope::default(), id, rng)
    }

    #[test]
    fn hashed_is_sticky_and_roughly_even() {
        let linked = hubs(&["a", "b", "c"]);
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = std::collections::HashMap::new();
        for i in 0..3000 {
            let id = format!("device-{i}");
            let first = unscoped(&linked, AllocationPolicy::Hashed, &id, &mut rng).unwrap();
            let again = unscoped(&linked, AllocationPolicy::Hashed, &id, &mut rng).unwrap();
            assert_eq!(first, again);
            *counts.entry(first).or_insert(0) += 1;
        }
        for count in counts.values() {
            assert!((900..=1100).contains(count), "{counts:?}");
        }
    }

    #[test]
    fn weights_and_opt_outs_are_honoured() {
        let mut linked = hubs(&["heavy", "light", "off"]);
        linked[0].allocation_weight = 3;
        linked[2].apply_allocation_policy = false;
        let mut rng = StdRng::seed_from_u64(7);
        let mut heavy = 0;
        for i in 0..4000 {
            let id = format!("d{i}");
            let hub = unscoped(&linked, AllocationPolicy::EvenlyWeighted, &id, &mut rng).unwrap();
            assert_ne!(hub, "off");
            heavy += usize::from(hub == "heavy");
        }
        assert!((2800..=3200).contains(&heavy), "{heavy}");
    }

    #[test]
    fn enrollment_hubs_must_be_linked() {
        let linked = hubs(&["a"]);
        let only_b = vec!["b".to_owned()];
        let scope = EnrollmentScope {
            hubs: Some(&only_b),
            policy: None,
        };
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(
            choose_hub(&linked, AllocationPolicy::Hashed, &scope, "x", &mut rng),
            Err(AllocationError::UnlinkedHub("b".to_owned()))
        );
        let none: Vec<LinkedHub> = Vec::new();
        assert_eq!(
            unscoped(&none, AllocationPolicy::Hashed, "x", &mut rng),
            Err(AllocationError::NoHub)
        );
    }

    #[test]
    fn static_uses_the_single_listed_hub() {
        let linked = hubs(&["a", "b"]);
        let only_b = vec!["b".to_owned()];
        let scope = EnrollmentScope {
            hubs: Some(&only_b),
            policy: Some(EnrollmentAllocationPolicy::Static),
        };
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(
            choose_hub(&linked, AllocationPolicy::Hashed, &scope, "x", &mut rng).unwrap(),
            "b"
        );
    }
}
