//! The in-process control surface: instances, enrollments, registration states, metrics.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use crate::config::{AllocationPolicy, InstanceConfig, Knobs, Limits, LinkedHub};
use crate::error::DpsError;
use crate::instance::{Instance, InstanceError, InstanceInfo, Utilisation};
use crate::metrics::HttpMetrics;
use crate::model::{DeviceRegistrationState, EnrollmentGroup, IndividualEnrollment};

#[derive(Default)]
struct Instances {
    by_name: BTreeMap<String, Arc<Instance>>,
    by_scope: HashMap<String, Arc<Instance>>,
}

/// A cheap-to-clone handle on the emulator's state, shared with its HTTP servers. Use it from
/// tests and sandboxes to configure instances and read what devices did.
#[derive(Clone, Default)]
pub struct EmulatorControl {
    instances: Arc<RwLock<Instances>>,
    pub(crate) http_metrics: Arc<HttpMetrics>,
}

impl std::fmt::Debug for EmulatorControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorControl")
            .field("instances", &self.instance_names())
            .finish()
    }
}

impl EmulatorControl {
    /// An empty emulator state (no instances, no listeners).
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates an instance.
    pub fn add_instance(&self, config: InstanceConfig) -> Result<InstanceInfo, InstanceError> {
        let instance = Arc::new(Instance::new(config)?);
        let scope_key = instance.id_scope().to_ascii_uppercase();
        let mut instances = self.write();
        if instances.by_name.contains_key(instance.name()) {
            return Err(InstanceError::DuplicateName(instance.name().to_owned()));
        }
        if instances.by_scope.contains_key(&scope_key) {
            return Err(InstanceError::DuplicateIdScope(
                instance.id_scope().to_owned(),
            ));
        }
        instances
            .by_name
            .insert(instance.name().to_owned(), instance.clone());
        instances.by_scope.insert(scope_key, instance.clone());
        drop(instances);
        Ok(instance.info())
    }

    /// Removes an instance and everything in it.
    pub fn remove_instance(&self, name: &str) -> Result<(), InstanceError> {
        let mut instances = self.write();
        let instance = instances
            .by_name
            .remove(name)
            .ok_or_else(|| InstanceError::NotFound(name.to_owned()))?;
        instances
            .by_scope
            .remove(&instance.id_scope().to_ascii_uppercase());
        Ok(())
    }

    /// Names of all instances, sorted.
    pub fn instance_names(&self) -> Vec<String> {
        self.read().by_name.keys().cloned().collect()
    }

    /// Snapshots of all instances, sorted by name.
    pub fn instances(&self) -> Vec<InstanceInfo> {
        self.all().iter().map(|instance| instance.info()).collect()
    }

    /// Snapshot of one instance.
    pub fn instance(&self, name: &str) -> Option<InstanceInfo> {
        self.by_name(name).ok().map(|instance| instance.info())
    }

    /// The instance object itself (for fine-grained in-process use).
    pub fn instance_handle(&self, name: &str) -> Option<Arc<Instance>> {
        self.by_name(name).ok()
    }

    /// Replaces an instance's linked hubs.
    pub fn set_linked_hubs(&self, name: &str, hubs: Vec<LinkedHub>) -> Result<(), InstanceError> {
        self.named(name)?.set_linked_hubs(hubs);
        Ok(())
    }

    /// Sets an instance's allocation policy.
    pub fn set_allocation_policy(
        &self,
        name: &str,
        policy: AllocationPolicy,
    ) -> Result<(), InstanceError> {
        self.named(name)?.set_allocation_policy(policy);
        Ok(())
    }

    /// Replaces an instance's limits.
    pub fn set_limits(&self, name: &str, limits: Limits) -> Result<(), InstanceError> {
        self.named(name)?.set_limits(limits);
        Ok(())
    }

    /// Replaces an instance's knobs.
    pub fn set_knobs(&self, name: &str, knobs: Knobs) -> Result<(), InstanceError> {
        self.named(name)?.set_knobs(knobs)
    }

    /// Creates or replaces an individual enrollment; returns it with generated keys filled in.
    pub fn put_enrollment(
        &self,
        name: &str,
        enrollment: IndividualEnrollment,
    ) -> Result<IndividualEnrollment, DpsError> {
        self.by_name(name)?.put_enrollment(enrollment, None)
    }

    /// Creates or replaces an enrollment group; returns it with generated keys filled in.
    pub fn put_enrollment_group(
        &self,
        name: &str,
        group: EnrollmentGroup,
    ) -> Result<EnrollmentGroup, DpsError> {
        self.by_name(name)?.put_enrollment_group(group, None)
    }

    /// The registration state of a device in one instance.
    pub fn registration_state(
        &self,
        name: &str,
        registration_id: &str,
    ) -> Option<DeviceRegistrationState> {
        self.by_name(name).ok()?.registration_state(registration_id)
    }

    /// Every registration state of an instance, sorted by registration ID.
    pub fn registration_states(&self, name: &str) -> Vec<DeviceRegistrationState> {
        self.by_name(name)
            .map(|instance| instance.registration_states())
            .unwrap_or_default()
    }

    /// Finds a device's registration in any instance: `(instance name, state)`.
    pub fn find_registration(
        &self,
        registration_id: &str,
    ) -> Option<(String, DeviceRegistrationState)> {
        self.all().into_iter().find_map(|instance| {
            instance
                .registration_state(registration_id)
                .map(|state| (instance.name().to_owned(), state))
        })
    }

    /// An instance's utilisation against its limits.
    pub fn utilisation(&self, name: &str) -> Option<Utilisation> {
        self.by_name(name)
            .ok()
            .map(|instance| instance.utilisation())
    }

    /// The `/metrics` text.
    pub fn metrics_text(&self) -> String {
        crate::metrics::render(&self.all(), &self.http_metrics)
    }

    pub(crate) fn by_scope(&self, id_scope: &str) -> Result<Arc<Instance>, DpsError> {
        self.read()
            .by_scope
            .get(&id_scope.to_ascii_uppercase())
            .cloned()
            .ok_or_else(|| DpsError::InstanceNotFound(format!("with ID scope {id_scope}")))
    }

    pub(crate) fn by_name(&self, name: &str) -> Result<Arc<Instance>, DpsError> {
        self.read()
            .by_name
            .get(name)
            .cloned()
            .ok_or_else(|| DpsError::InstanceNotFound(format!("named {name}")))
    }

    fn named(&self, name: &str) -> Result<Arc<Instance>, InstanceError> {
        self.by_name(name)
            .map_err(|_| InstanceError::NotFound(name.to_owned()))
    }

    pub(crate) fn all(&self) -> Vec<Arc<Instance>> {
        self.read().by_name.values().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Instances> {
        self.instances
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Instances> {
        self.instances
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
