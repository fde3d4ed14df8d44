//! Emulator and instance configuration (also the JSON accepted by the binary and the admin API).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

use crate::model::{EnrollmentGroup, IndividualEnrollment};
use crate::tls::CA_COMMON_NAME;

/// Host-name suffix of DPS instances; the service API routes on `{name}.{suffix}` hosts.
pub const DPS_HOST_SUFFIX: &str = "azure-devices-provisioning.net";

/// Default shared-access-policy name (Azure's built-in owner policy).
pub const DEFAULT_POLICY_NAME: &str = "provisioningserviceowner";

/// The whole emulator: listeners and the DPS instances to create at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EmulatorConfig {
    /// Plain-HTTP listener (default `127.0.0.1:0`). `None` disables it.
    pub http_bind: Option<SocketAddr>,
    /// HTTPS listener. `None` disables it.
    pub tls: Option<TlsOptions>,
    /// Instances to create at start.
    pub instances: Vec<InstanceConfig>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            http_bind: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            tls: None,
            instances: Vec::new(),
        }
    }
}

impl EmulatorConfig {
    /// Plain HTTP on a free loopback port, with these instances.
    pub fn with_instances(instances: Vec<InstanceConfig>) -> Self {
        Self {
            instances,
            ..Self::default()
        }
    }

    /// Adds an HTTPS listener on a free loopback port with a fresh CA and a certificate for
    /// `localhost` and `127.0.0.1`.
    pub fn with_tls(mut self) -> Self {
        self.tls = Some(TlsOptions::default());
        self
    }
}

/// HTTPS listener options.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TlsOptions {
    /// Where to listen (default `127.0.0.1:0`).
    pub bind: SocketAddr,
    /// DNS names and IP addresses the server certificate is valid for.
    pub names: Vec<String>,
    /// PEM private key of the CA. Given the same key (and [`TlsOptions::ca_common_name`]), the
    /// emulator re-creates the same CA name and key, so clients that trusted an earlier run's
    /// CA certificate keep trusting it.
    pub ca_key_pem: Option<String>,
    /// The CA's common name (default [`CA_COMMON_NAME`]): the name the CA was created with when
    /// `ca_key_pem` is the key of a CA shared with other services.
    pub ca_common_name: String,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("bind", &self.bind)
            .field("names", &self.names)
            .field(
                "ca_key_pem",
                &self.ca_key_pem.as_ref().map(|_| "<redacted>"),
            )
            .field("ca_common_name", &self.ca_common_name)
            .finish()
    }
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            names: vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            ca_key_pem: None,
            ca_common_name: CA_COMMON_NAME.to_owned(),
        }
    }
}

/// How an instance spreads devices over its linked hubs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AllocationPolicy {
    /// Evenly weighted, decided by a hash of the registration ID: a device always lands on the
    /// same hub while the linked hubs stay the same (Azure's `Hashed`).
    #[default]
    Hashed,
    /// Evenly weighted, decided by the instance's seeded random generator.
    EvenlyWeighted,
}

/// A linked IoT hub (`IotHubDefinitionDescription` without the connection string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkedHub {
    /// Host name, e.g. `hub-1.azure-devices.net`.
    pub name: String,
    /// Relative weight (0 = never chosen by the policy).
    #[serde(default = "default_weight")]
    pub allocation_weight: u32,
    /// Whether the instance's allocation policy may choose this hub.
    #[serde(default = "default_true")]
    pub apply_allocation_policy: bool,
}

impl LinkedHub {
    /// A hub with weight 1 that takes part in allocation.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            allocation_weight: 1,
            apply_allocation_policy: true,
        }
    }
}

fn default_weight() -> u32 {
    1
}

fn default_true() -> bool {
    true
}

/// Service limits. `None` removes a limit. Defaults are Azure's documented values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Limits {
    /// Device registrations (`PUT …/register`) per minute per instance. Azure: 1,000.
    pub registrations_per_minute: Option<u32>,
    /// Operation-status polls per device per window. Azure: 5 per 10 s.
    pub device_polls_per_window: Option<u32>,
    /// The poll window in seconds. Azure: 10.
    pub device_poll_window_secs: u64,
    /// Registration records per instance. Azure: 1,000,000.
    pub max_registrations: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            registrations_per_minute: Some(1_000),
            device_polls_per_window: Some(5),
            device_poll_window_secs: 10,
            max_registrations: Some(1_000_000),
        }
    }
}

impl Limits {
    /// No limits at all (for benches).
    pub fn unlimited() -> Self {
        Self {
            registrations_per_minute: None,
            device_polls_per_window: None,
            device_poll_window_secs: 10,
            max_registrations: None,
        }
    }
}

/// Behaviour knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Knobs {
    /// How long an operation stays `assigning` after the register request, in ms.
    pub assignment_delay_ms: u64,
    /// `Retry-After` (seconds) on 202 answers. Azure's example says 3.
    pub retry_after_secs: u64,
    /// Fixed latency added to every device and service request, in ms.
    pub latency_ms: u64,
    /// Extra random latency, uniform in `0..latency_jitter_ms`.
    pub latency_jitter_ms: u64,
    /// Probability (0..=1) that a device-API request fails with `error_status`.
    pub device_error_rate: f64,
    /// Probability (0..=1) that a service-API request fails with `error_status`.
    pub service_error_rate: f64,
    /// The injected status (500..=599; 503 also carries `Retry-After: 1`).
    pub error_status: u16,
    /// Seed of the instance's random generator (fault draws, evenly-weighted allocation).
    /// `None` seeds from the OS.
    pub seed: Option<u64>,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            assignment_delay_ms: 0,
            retry_after_secs: 3,
            latency_ms: 0,
            latency_jitter_ms: 0,
            device_error_rate: 0.0,
            service_error_rate: 0.0,
            error_status: 503,
            seed: None,
        }
    }
}

/// A shared access policy for the service API. `Debug` hides the keys.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SharedAccessPolicy {
    /// The policy name (`skn`).
    pub key_name: String,
    /// Base64 primary key.
    pub primary_key: String,
    /// Base64 secondary key.
    pub secondary_key: String,
}

impl fmt::Debug for SharedAccessPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedAccessPolicy")
            .field("key_name", &self.key_name)
            .field("keys", &"<redacted>")
            .finish()
    }
}

/// One DPS instance.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InstanceConfig {
    /// Instance name (the `{dpsName}` of `{dpsName}.azure-devices-provisioning.net`).
    pub name: String,
    /// ID scope; derived from the name when absent (`0ne` + 8 upper-case hex digits).
    pub id_scope: Option<String>,
    /// Linked hubs.
    pub linked_hubs: Vec<LinkedHub>,
    /// Allocation policy over the linked hubs.
    pub allocation_policy: AllocationPolicy,
    /// Limits.
    pub limits: Limits,
    /// Knobs.
    pub knobs: Knobs,
    /// Service-API policies; one `provisioningserviceowner` policy with random keys when empty.
    pub shared_access_policies: Vec<SharedAccessPolicy>,
    /// Individual enrollments to create at start.
    pub individual_enrollments: Vec<IndividualEnrollment>,
    /// Enrollment groups to create at start.
    pub enrollment_groups: Vec<EnrollmentGroup>,
}

impl InstanceConfig {
    /// An instance with default limits and knobs and these linked hubs.
    pub fn new(name: &str, linked_hubs: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            linked_hubs: linked_hubs.iter().map(|hub| LinkedHub::new(hub)).collect(),
            ..Self::default()
        }
    }

    /// Sets the ID scope.
    pub fn with_id_scope(mut self, id_scope: &str) -> Self {
        self.id_scope = Some(id_scope.to_owned());
        self
    }
}

/// The ID scope derived from an instance name: `0ne` + the first 8 hex digits (upper case) of
/// SHA-256(name).
pub fn derived_id_scope(name: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(name.as_bytes());
    format!("0ne{}", data_encoding::HEXUPPER.encode(&digest[..4]))
}

/// Whether `name` can be a DPS instance name (3..=64 of `a-z 0-9 -`, not starting or ending in
/// `-`).
pub fn is_valid_instance_name(name: &str) -> bool {
    (3..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Whether `scope` can be an ID scope (`0ne` + 8 hex digits, as Azure issues them).
pub fn is_valid_id_scope(scope: &str) -> bool {
    scope.len() == 11
        && scope[..3].eq_ignore_ascii_case("0ne")
        && scope[3..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_scope_is_stable_and_valid() {
        let scope = derived_id_scope("fieldlink-dps-1");
        assert_eq!(scope, derived_id_scope("fieldlink-dps-1"));
        assert_ne!(scope, derived_id_scope("fieldlink-dps-2"));
        assert!(is_valid_id_scope(&scope), "{scope}");
    }

    #[test]
    fn instance_names_follow_dps_rules() {
        assert!(is_valid_instance_name("dps-eu-1"));
        assert!(!is_valid_instance_name("Dps"));
        assert!(!is_valid_instance_name("-dps"));
        assert!(!is_valid_instance_name("ab"));
    }

    #[test]
    fn config_json_uses_camel_case_and_defaults() {
        let config: InstanceConfig = serde_json::from_str(
            r#"{"name":"dps-a","linkedHubs":[{"name":"hub-1.azure-devices.net"}],
                "limits":{"registrationsPerMinute":5},"knobs":{"assignmentDelayMs":250}}"#,
        )
        .unwrap();
        assert_eq!(
            config.linked_hubs[0],
            LinkedHub::new("hub-1.azure-devices.net")
        );
        assert_eq!(config.limits.registrations_per_minute, Some(5));
        assert_eq!(config.limits.device_polls_per_window, Some(5));
        assert_eq!(config.knobs.assignment_delay_ms, 250);
        assert_eq!(config.knobs.retry_after_secs, 3);
    }
}
