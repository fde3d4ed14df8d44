//! `fieldlink sandbox emulator`: the sandbox's DPS emulator alone, over HTTPS on its own rcgen
//! CA, until Ctrl-C or SIGTERM. It writes the CA certificate and the service API's shared access
//! policy (its key) into a private directory, and prints the global endpoint, each instance's ID
//! scope and linked hub, and where the policy file is (never the key itself).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
};

use base64::Engine as _;
use clap::Args;
use fieldlink_dps_emulator::{
    DpsEmulator, EmulatorConfig, InstanceConfig, SharedAccessPolicy, TlsOptions,
    tls::CertificateAuthority,
};
use rand::RngCore as _;
use serde::Serialize;
use serde_json::json;

use super::Context;
use crate::{
    config::default_sandbox_dir,
    exit::{CliError, Exit},
    manifest::write_private,
    stack::api::POLICY,
};

/// The name of the CA that signs the emulator's certificate.
pub const EMULATOR_CA_NAME: &str = "fieldlink sandbox CA";
/// The CA certificate's file name in `--dir`.
pub const CA_FILE: &str = "ca.pem";
/// The service policy file's name in `--dir` (mode 0600: it holds the policy key).
pub const POLICY_FILE: &str = "service-policy.json";

/// `sandbox emulator` options.
#[derive(Debug, Clone, Args)]
pub struct SandboxEmulatorArgs {
    /// Number of DPS instances (`dps-1` … `dps-K`, each linked to `hub-k.azure-devices.net`).
    #[arg(short = 'k', long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub dps_instances: u32,
    /// Where the HTTPS listener binds (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR:PORT")]
    pub bind: SocketAddr,
    /// Directory for the CA certificate and the service policy file (created with mode 0700)
    /// [default: $XDG_STATE_HOME/fieldlink/sandbox/emulator].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// One instance as printed and reported.
#[derive(Debug, Clone, Serialize)]
struct EmulatorInstance {
    name: String,
    id_scope: String,
    hub: String,
    service_endpoint: String,
    service_resource_uri: String,
}

/// The policy file's contents. No `Debug`: it holds the key.
#[derive(Serialize)]
struct PolicyFile<'a> {
    policy_name: &'a str,
    primary_key: &'a str,
    global_endpoint: &'a str,
    instances: &'a [EmulatorInstance],
}

fn failed(what: &str, error: impl std::fmt::Display) -> CliError {
    CliError::new(
        Exit::Internal,
        "emulator_start_failed",
        format!("cannot start {what}: {error}"),
    )
}

/// Creates `dir` readable by its owner only.
fn private_dir(dir: &Path) -> Result<(), CliError> {
    let fail =
        |error: std::io::Error| CliError::config(format!("cannot use {}: {error}", dir.display()));
    std::fs::create_dir_all(dir).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    }
    Ok(())
}

/// The certificate names: loopback always, plus the bound address when it is a specific one.
fn certificate_names(bind: SocketAddr) -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let ip = bind.ip();
    if !ip.is_unspecified() && ip != IpAddr::V4(Ipv4Addr::LOCALHOST) {
        names.push(ip.to_string());
    }
    names
}

/// Runs the emulator until Ctrl-C or SIGTERM.
pub async fn run(args: SandboxEmulatorArgs, context: &Context) -> Result<Exit, CliError> {
    let output = &context.output;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| default_sandbox_dir().join("emulator"));
    private_dir(&dir)?;
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let count = usize::try_from(args.dps_instances).unwrap_or(1).max(1);
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let policy_key = base64::engine::general_purpose::STANDARD.encode(key);
    let ca = CertificateAuthority::generate_named(EMULATOR_CA_NAME)
        .map_err(|error| failed("the CA", error))?;
    let hubs: Vec<(String, String)> = (1..=count)
        .map(|k| (format!("dps-{k}"), format!("hub-{k}.azure-devices.net")))
        .collect();
    let emulator = DpsEmulator::start(EmulatorConfig {
        http_bind: None,
        tls: Some(TlsOptions {
            bind: args.bind,
            names: certificate_names(args.bind),
            ca_key_pem: Some(ca.key_pem()),
            ca_common_name: ca.common_name().to_owned(),
        }),
        instances: hubs
            .iter()
            .map(|(name, hub)| {
                let mut instance = InstanceConfig::new(name, &[hub.as_str()]);
                instance.shared_access_policies = vec![SharedAccessPolicy {
                    key_name: POLICY.to_owned(),
                    primary_key: policy_key.clone(),
                    secondary_key: policy_key.clone(),
                }];
                instance
            })
            .collect(),
    })
    .await
    .map_err(|error| {
        CliError::new(
            Exit::Config,
            "emulator_start_failed",
            format!("cannot start the DPS emulator on {}: {error}", args.bind),
        )
    })?;
    let global_endpoint = emulator
        .https_base_url()
        .ok_or_else(|| failed("the DPS emulator", "HTTPS is off"))?;
    let mut instances = Vec::with_capacity(count);
    for (name, hub) in &hubs {
        let info = emulator
            .control()
            .instance(name)
            .ok_or_else(|| failed("a DPS instance", name))?;
        instances.push(EmulatorInstance {
            name: name.clone(),
            id_scope: info.id_scope,
            hub: hub.clone(),
            service_endpoint: format!("{global_endpoint}/dps/{name}"),
            service_resource_uri: info.service_host_name,
        });
    }
    let ca_file = dir.join(CA_FILE);
    let policy_file = dir.join(POLICY_FILE);
    let written = write_private(&ca_file, ca.cert_pem().as_bytes()).and_then(|()| {
        let text = serde_json::to_vec_pretty(&PolicyFile {
            policy_name: POLICY,
            primary_key: &policy_key,
            global_endpoint: &global_endpoint,
            instances: &instances,
        })
        .map_err(|error| CliError::internal(format!("policy file encoding: {error}")))?;
        write_private(&policy_file, &text)
    });
    if let Err(error) = written {
        emulator.shutdown().await;
        return Err(error);
    }

    let mut table = String::new();
    for instance in &instances {
        table.push_str(&format!(
            "\n  {:<8} ID scope {:<12} hub {}",
            instance.name, instance.id_scope, instance.hub
        ));
    }
    output.info(format!(
        "DPS emulator up: {} instances over HTTPS\n  global endpoint: {global_endpoint}\n  CA:              \
         {}{table}\n  service API:     {global_endpoint}/dps/<instance>/…, policy {POLICY} (key in \
         {})\nCtrl-C stops it.",
        instances.len(),
        ca_file.display(),
        policy_file.display(),
    ));
    let report = json!({
        "global_endpoint": global_endpoint,
        "ca_cert": ca_file,
        "policy_name": POLICY,
        "policy_file": policy_file,
        "instances": instances,
    });
    output.event("emulator_ready", &report);

    context.cancel.cancelled().await;
    output.info("stopping the DPS emulator");
    emulator.shutdown().await;
    // The key dies with this emulator run; the CA certificate is useless after it too.
    let _ = std::fs::remove_file(&policy_file);
    let _ = std::fs::remove_file(&ca_file);
    output.result("sandbox emulator", Exit::Success, report);
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_names_add_a_specific_bind_address_only() {
        let loopback = certificate_names("127.0.0.1:0".parse().unwrap());
        assert_eq!(loopback, ["localhost", "127.0.0.1"]);
        assert_eq!(certificate_names("0.0.0.0:8443".parse().unwrap()), loopback);
        let lan = certificate_names("192.168.1.20:8443".parse().unwrap());
        assert_eq!(lan, ["localhost", "127.0.0.1", "192.168.1.20"]);
    }

    #[cfg(unix)]
    #[test]
    fn the_directory_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
