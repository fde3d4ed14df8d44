//! Spreads devices over DPS instances like the provisioning API does: least-loaded, and
//! sticky (a device asking again gets the same instance, so a resumed commissioning confirms
//! against the instance the device registered with).

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use async_trait::async_trait;
use fieldlink_core::assignment::{
    Assignment, AssignmentSource, LocalAssignmentSigner, ServiceError,
};

#[derive(Default)]
struct Load {
    sticky: HashMap<String, usize>,
    assigned: Vec<u64>,
}

/// One [`LocalAssignmentSigner`] per DPS instance, chosen least-loaded and sticky.
pub struct BalancedSigner {
    signers: Vec<LocalAssignmentSigner>,
    load: Mutex<Load>,
}

impl BalancedSigner {
    /// Balances over `signers` (one per instance, in instance order).
    pub fn new(signers: Vec<LocalAssignmentSigner>) -> Self {
        let assigned = vec![0; signers.len()];
        Self {
            signers,
            load: Mutex::new(Load {
                sticky: HashMap::new(),
                assigned,
            }),
        }
    }

    /// Devices assigned to each instance so far.
    pub fn assigned(&self) -> Vec<u64> {
        self.load
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .assigned
            .clone()
    }

    fn pick(&self, registration_id: &str) -> Option<usize> {
        let mut load = self.load.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(index) = load.sticky.get(registration_id) {
            return Some(*index);
        }
        let index = load
            .assigned
            .iter()
            .enumerate()
            .min_by_key(|(index, count)| (**count, *index))
            .map(|(index, _)| index)?;
        load.assigned[index] += 1;
        load.sticky.insert(registration_id.to_owned(), index);
        Some(index)
    }
}

#[async_trait]
impl AssignmentSource for BalancedSigner {
    async fn assignment(&self, registration_id: String) -> Result<Assignment, ServiceError> {
        let index = self
            .pick(&registration_id)
            .ok_or(ServiceError::Unavailable {
                detail: "no DPS instance configured".into(),
            })?;
        self.signers[index].assignment(registration_id).await
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use fieldlink_core::assignment::DpsTarget;
    use fieldlink_protocol::ticket::TicketSigner;

    use super::*;

    fn signer(instance: &str) -> LocalAssignmentSigner {
        LocalAssignmentSigner::new(
            TicketSigner::new("k", SigningKey::from_bytes(&[1; 32])),
            DpsTarget {
                id_scope: format!("scope-{instance}"),
                global_endpoint: "127.0.0.1:1".into(),
                tenant: "t".into(),
                dps_instance: instance.into(),
            },
        )
    }

    #[tokio::test]
    async fn spreads_evenly_and_sticks() {
        let balanced = BalancedSigner::new(vec![signer("a"), signer("b"), signer("c")]);
        let mut seen = Vec::new();
        for i in 0..9 {
            let assignment = balanced.assignment(format!("dev-{i}")).await.unwrap();
            seen.push(assignment.dps_instance);
        }
        assert_eq!(balanced.assigned(), [3, 3, 3]);
        assert_eq!(&seen[..3], ["a", "b", "c"]);
        let again = balanced.assignment("dev-1".into()).await.unwrap();
        assert_eq!(again.dps_instance, "b", "a device keeps its instance");
        assert_eq!(balanced.assigned(), [3, 3, 3]);
    }

    #[tokio::test]
    async fn no_instance_is_unavailable() {
        let balanced = BalancedSigner::new(Vec::new());
        assert!(matches!(
            balanced.assignment("x".into()).await,
            Err(ServiceError::Unavailable { .. })
        ));
    }
}
