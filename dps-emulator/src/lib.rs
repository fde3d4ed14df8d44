//! fieldlink-dps-emulator: an Azure IoT Hub Device Provisioning Service (DPS) emulator.
//!
//! Many DPS instances live in one process behind one listener that plays Azure's global
//! endpoint (`global.azure-devices-provisioning.net`): the device API is routed by ID scope,
//! the service API by instance name. Devices authenticate with symmetric-key SAS tokens
//! (individual enrollments, or enrollment groups with derived keys); services with a shared
//! access policy. Azure's limits (1,000 registrations/min per instance, 5 polls per 10 s per
//! device, 1M registrations per instance) answer 429 with `Retry-After`; knobs add assignment
//! delay, latency and 5xx faults. HTTPS uses rustls (ring) with an rcgen CA.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use fieldlink_dps_emulator::{DpsEmulator, EmulatorConfig, InstanceConfig, IndividualEnrollment};
//! let emulator = DpsEmulator::start(
//!     EmulatorConfig::with_instances(vec![InstanceConfig::new("dps-a", &["hub-a.azure-devices.net"])])
//!         .with_tls(),
//! )
//! .await?;
//! let enrollment = emulator.control().put_enrollment(
//!     "dps-a",
//!     IndividualEnrollment::symmetric_key("sensor-1", "c2Vuc29yLTEtcHJpbWFyeS1rZXk=", "c2Vuc29yLTEtc2Vjb25kYXJ5LWtleQ=="),
//! )?;
//! println!("devices register at {} (trust {:?})", emulator.base_url(), emulator.ca_pem());
//! # let _ = enrollment;
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! See `docs/dps-emulator.md` for the URL conventions, the knobs and where it differs from Azure.

pub mod allocation;
pub mod config;
pub mod control;
pub mod error;
pub mod http;
pub mod instance;
pub mod metrics;
pub mod model;
pub mod server;
pub mod tls;
pub mod window;

pub use config::{
    AllocationPolicy, EmulatorConfig, InstanceConfig, Knobs, Limits, LinkedHub, SharedAccessPolicy,
    TlsOptions,
};
pub use control::EmulatorControl;
pub use error::DpsError;
pub use instance::{InstanceError, InstanceInfo, Utilisation};
pub use model::{
    API_VERSION, DeviceRegistrationResult, DeviceRegistrationState, EnrollmentGroup,
    IndividualEnrollment, ProvisioningStatus, RegistrationOperationStatus, RegistrationStatus,
    Substatus,
};
pub use server::{DpsEmulator, HttpsEndpoint, RunningEmulator, StartError};
