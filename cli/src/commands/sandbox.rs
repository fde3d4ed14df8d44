//! `fieldlink sandbox up | devices | fault`.

use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use fieldlink_core::transport::memory::LinkModel;
use rand::RngCore;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Context, demo::raise_open_file_limit, sandbox_bluez};
use crate::{
    args::{SandboxBle, SandboxFault, SandboxFaultArgs, SandboxRef, SandboxUpArgs, Toggle},
    auth, bluez_sandbox,
    config::default_sandbox_dir,
    exit::{CliError, Exit},
    fleet::server::{FleetState, serve},
    labels,
    manifest::{
        ApiEndpoint, DpsEndpoint, FleetEndpoint, IssuerEndpoint, MANIFEST_SCHEMA, Manifest,
        ManifestClient, ManifestDevice, TestUser, write_private,
    },
    stack::{LocalStack, StackConfig, issuer::AUDIENCE},
};

/// Labels are drawn as QR codes for at most this many devices (the rest as text).
const MAX_QR_LABELS: usize = 20;

fn manifest_path(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| default_sandbox_dir().join("manifest.json"))
}

/// Starts the sandbox and serves until Ctrl-C or SIGTERM.
pub async fn up(args: SandboxUpArgs, context: &Context) -> Result<Exit, CliError> {
    let bluez = (args.ble == SandboxBle::Bluez).then(|| bluez_sandbox::BluezPlan {
        adapters: args.adapter.clone(),
        installer_adapter: args.installer_adapter.clone(),
        fail_safe_secs: 60,
    });
    if bluez.is_some() {
        bluez_sandbox::check_plan(usize::try_from(args.devices).unwrap_or(1), &args.adapter)?;
    }
    raise_open_file_limit();
    let output = &context.output;
    let path = manifest_path(args.manifest);
    let dir = path
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let stack = LocalStack::start(StackConfig {
        devices: usize::try_from(args.devices).unwrap_or(1),
        dps_instances: usize::try_from(args.dps_instances).unwrap_or(1),
        link: LinkModel {
            mtu: args.mtu,
            connection_interval: Duration::from_micros(7_500),
            scan_latency: Duration::from_millis(50),
            rssi: -60,
        },
        networks: Vec::new(),
        prefix: "sandbox-device".into(),
        seed: args.seed,
        fail_safe_window: Duration::from_secs(60),
        api: !args.local_signer,
        auto_approve: args.auto_approve,
    })
    .await?;
    let ca_cert = dir.join("ca.pem");
    write_private(&ca_cert, stack.ca_pem.as_bytes())?;
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|error| {
        CliError::new(
            Exit::Internal,
            "stack_start_failed",
            format!("cannot listen on loopback: {error}"),
        )
    })?;
    let address = listener
        .local_addr()
        .map_err(|error| CliError::internal(error.to_string()))?;
    let mut token = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut token);
    let token = hex::encode(token);
    let state = Arc::new(FleetState {
        token: token.clone(),
        backend: stack.backend(),
        devices: stack.devices.clone(),
        control: stack.emulator.control().clone(),
        status_offline: AtomicBool::new(false),
    });
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve(listener, state, stop.clone()));

    let mut manifest = Manifest {
        bluez: None,
        schema: MANIFEST_SCHEMA,
        pid: std::process::id(),
        started_at: chrono::Utc::now().to_rfc3339(),
        fleet: FleetEndpoint {
            address: address.to_string(),
            token,
        },
        api: stack
            .api
            .as_ref()
            .zip(stack.issuer.as_ref())
            .map(|(api, issuer)| ApiEndpoint {
                url: api.running.base_url(),
                issuer: issuer.url.clone(),
            }),
        issuer: stack.issuer.as_ref().map(|issuer| IssuerEndpoint {
            url: issuer.url.clone(),
            audience: AUDIENCE.to_owned(),
            clients: issuer
                .clients
                .iter()
                .map(|client| ManifestClient {
                    client_id: client.client_id.clone(),
                    grant: client.grant.clone(),
                    redirect_uris: client.redirect_uris.clone(),
                })
                .collect(),
            auto_approve: issuer.auto_approve,
        }),
        dps: DpsEndpoint {
            global_endpoint: stack.emulator.base_url(),
            instances: stack.instances.clone(),
        },
        ca_cert: std::path::absolute(&ca_cert).unwrap_or(ca_cert),
        users: match &stack.issuer {
            Some(issuer) => issuer
                .users
                .iter()
                .map(|user| TestUser {
                    username: user.username.clone(),
                    password: Some(user.password.clone()),
                    tenant: user.tenant.clone(),
                    role: user.role.clone(),
                })
                .collect(),
            None => vec![TestUser {
                username: auth::local_user(),
                password: None,
                tenant: "sandbox".into(),
                role: "installer".into(),
            }],
        },
        devices: stack
            .devices
            .iter()
            .map(|device| ManifestDevice {
                registration_id: device.payload.registration_id.clone(),
                payload: device.payload.encode(),
                manual_code: device.payload.manual_code().encode(),
                discriminator: device.payload.discriminator,
                peripheral: device.peripheral.0.clone(),
            })
            .collect(),
    };
    manifest.save(&path)?;
    // BlueZ mode: the devices become agent processes on BlueZ adapters (stopped on drop).
    let bluez_fleet = match &bluez {
        Some(plan) => Some(
            bluez_sandbox::start_in_sandbox(&stack.devices, &dir, plan, &mut manifest, &path)
                .await?,
        ),
        None => None,
    };

    if !args.no_labels && !output.is_quiet() {
        for (index, device) in stack.devices.iter().enumerate() {
            if index < MAX_QR_LABELS {
                output.line(labels::terminal(&device.payload)?);
            } else {
                output.line(format!(
                    "{}  {}  manual code {}",
                    device.payload.registration_id,
                    device.payload.encode(),
                    device.payload.manual_code().encode()
                ));
            }
        }
    }
    let services = match (&manifest.api, &manifest.issuer) {
        (Some(api), Some(issuer)) => format!(
            "\n  API:          {}\n  issuer:       {}{}\n  test user:    {} (password in the \
             manifest)",
            api.url,
            issuer.url,
            if issuer.auto_approve {
                " (AUTO-APPROVES every sign-in: demo only)"
            } else {
                ""
            },
            manifest
                .users
                .first()
                .map_or("-", |user| user.username.as_str()),
        ),
        _ => "\n  tickets signed in-process (--local-signer); no API, no issuer".to_owned(),
    };
    output.info(format!(
        "sandbox up: {} virtual devices, {} DPS instances, HTTPS with one CA\n  manifest:     {}\n  \
         fleet socket: {}{services}\n  DPS emulator: {}\n  CA:           {}\nUse it from another \
         terminal: fieldlink commission --sandbox {} <payload>\nor sign in to it: fieldlink profile \
         add sandbox --from-sandbox {} && fieldlink --profile sandbox login\nCtrl-C stops it.",
        manifest.devices.len(),
        manifest.dps.instances.len(),
        path.display(),
        manifest.fleet.address,
        manifest.dps.global_endpoint,
        manifest.ca_cert.display(),
        path.display(),
        path.display(),
    ));
    if let Some(fleet) = &bluez_fleet {
        output.info(bluez_sandbox::usage_hint(&fleet.fleet, &path));
    }
    context.output.event(
        "sandbox_ready",
        &json!({
            "manifest": path,
            "fleet": manifest.fleet.address,
            "devices": manifest.devices.len(),
            "api": manifest.api.as_ref().map(|api| &api.url),
            "issuer": manifest.issuer.as_ref().map(|issuer| &issuer.url),
            "ca_cert": manifest.ca_cert,
        }),
    );

    context.cancel.cancelled().await;
    output.info("stopping the sandbox");
    if let Some(fleet) = bluez_fleet {
        fleet.stop();
    }
    stop.cancel();
    let _ = server.await;
    let _ = std::fs::remove_file(&path);
    stack.shutdown().await;
    output.result("sandbox up", Exit::Success, json!({"manifest": path}));
    Ok(Exit::Success)
}

/// Prints what each virtual device of a running sandbox holds.
pub async fn devices(args: SandboxRef, context: &Context) -> Result<Exit, CliError> {
    let path = manifest_path(args.manifest);
    let manifest = Manifest::load(&path)?;
    if let Some(fleet) = &manifest.bluez {
        return bluez_devices(fleet, &path, context);
    }
    let holdings = manifest
        .client()?
        .devices()
        .await
        .map_err(|error| unreachable(&error))?;
    if !context.output.is_json() {
        context.output.line(format!(
            "{:<24} {:<16} {:>7}  {}",
            "DEVICE", "STATE", "TICKETS", "HUB"
        ));
        for device in &holdings {
            context.output.line(format!(
                "{:<24} {:<16} {:>7}  {}",
                device.registration_id,
                device.state,
                device.tickets_accepted,
                device.assigned_hub.as_deref().unwrap_or("-")
            ));
        }
    }
    context.output.result(
        "sandbox devices",
        Exit::Success,
        json!({ "devices": holdings }),
    );
    Ok(Exit::Success)
}

/// `sandbox devices` of a BlueZ sandbox: each agent's persisted state and process.
fn bluez_devices(
    fleet: &bluez_sandbox::BluezFleet,
    path: &std::path::Path,
    context: &Context,
) -> Result<Exit, CliError> {
    let holdings = sandbox_bluez::holdings(fleet, path);
    if !context.output.is_json() {
        context.output.line(format!(
            "{:<24} {:<16} {:>7}  {:<8} {:<14} {}",
            "DEVICE", "STATE", "TICKETS", "ADAPTER", "AGENT", "HUB"
        ));
        for device in &holdings {
            let agent = match (device.pid, device.alive) {
                (Some(pid), Some(true)) => format!("{pid} alive"),
                (Some(pid), Some(false)) => format!("{pid} dead"),
                (Some(pid), None) => pid.to_string(),
                (None, _) => "not started".to_owned(),
            };
            context.output.line(format!(
                "{:<24} {:<16} {:>7}  {:<8} {:<14} {}",
                device.registration_id,
                device.state,
                device.tickets_accepted,
                device.adapter,
                agent,
                device.assigned_hub.as_deref().unwrap_or("-")
            ));
            if let Some(error) = &device.state_error {
                context.output.line(format!("  state unreadable: {error}"));
            }
        }
    }
    context.output.result(
        "sandbox devices",
        Exit::Success,
        json!({ "ble": "bluez", "devices": holdings }),
    );
    Ok(Exit::Success)
}

/// Switches a fault of a running sandbox.
pub async fn fault(args: SandboxFaultArgs, context: &Context) -> Result<Exit, CliError> {
    let path = manifest_path(args.sandbox.manifest);
    let manifest = Manifest::load(&path)?;
    if manifest.bluez.is_some() {
        return Err(sandbox_bluez::no_faults(&path));
    }
    let on = args.state == Toggle::On;
    match args.fault {
        SandboxFault::StatusOffline => manifest
            .client()?
            .set_status_offline(on)
            .await
            .map_err(|error| unreachable(&error))?,
    }
    context
        .output
        .info(format!("status-offline {}", if on { "on" } else { "off" }));
    context.output.result(
        "sandbox fault",
        Exit::Success,
        json!({"fault": "status_offline", "on": on}),
    );
    Ok(Exit::Success)
}

fn unreachable(error: &impl std::fmt::Display) -> CliError {
    CliError::new(
        Exit::TransportUnavailable,
        "sandbox_unavailable",
        format!("the sandbox did not answer: {error}"),
    )
}
