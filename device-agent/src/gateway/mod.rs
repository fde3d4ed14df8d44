//! The `device-agent` command line: one fieldlink device agent on a Linux gateway, from its
//! files (identity, trust anchors, a state directory), served over BlueZ (`--ble bluez
//! --adapter hciN`, feature `bluez`) and configuring the network through NetworkManager
//! (`--network networkmanager`) or not at all (`--network online`).
//!
//! The `device-agent` binary is [`main`]; test benches run the same code from their own
//! binaries. See `docs/device-agent.md` ("Running it on a Linux gateway").

mod args;
mod networks;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use fieldlink_protocol::payload::{OnboardingPayload, POP_LEN, PopSecret};
use rand::Rng;

use self::args::{Ble, Command, InitArgs, RunArgs};
use crate::agent::{AgentConfig, DeviceAgent};
use crate::clock::{SharedClock, TokioClock};
use crate::secret::{SecretBytes, SecretString};
use crate::store::{DeviceIdentity, DpsCredential, FileStore, PersistedState, TrustAnchorRecord};

/// Runs the command line `argv` (without the program name): logs go to stderr (`RUST_LOG`),
/// the label and state changes to stdout.
pub fn main(argv: &[String]) -> ExitCode {
    // A bench binary may have installed its own subscriber already.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let result = match args::parse(argv) {
        Ok(Command::Help) => say(args::USAGE),
        Ok(Command::Init(init_args)) => init(&init_args),
        Ok(Command::Run(run_args)) => run(&run_args),
        Err(error) => Err(format!("{error}\n\n{}", args::USAGE)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "device-agent: {error}");
            ExitCode::FAILURE
        }
    }
}

fn say(text: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(|error| error.to_string())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {what} {}: {error}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|error| format!("{what} {} is not valid: {error}", path.display()))
}

fn label(identity: &DeviceIdentity) -> Result<OnboardingPayload, String> {
    let pop = <[u8; POP_LEN]>::try_from(identity.pop.expose())
        .map(PopSecret::from_bytes)
        .map_err(|_| format!("the identity's PoP must be {POP_LEN} bytes"))?;
    OnboardingPayload::new(
        identity.registration_id.clone(),
        pop,
        identity.discriminator,
        identity.product_code,
    )
    .map_err(|error| format!("the identity cannot make a label: {error}"))
}

fn run(args: &RunArgs) -> Result<(), String> {
    let identity: DeviceIdentity = read_json(&args.identity, "identity file")?;
    let anchors: Vec<TrustAnchorRecord> = read_json(&args.trust_anchors, "trust anchors file")?;
    if anchors.is_empty() {
        return Err("the trust anchors file lists no key: every ticket would be refused".into());
    }
    let payload = label(&identity)?;
    let mut config = AgentConfig::default();
    if let Some(path) = &args.dps_ca {
        config.dps.extra_ca_pem = Some(
            std::fs::read(path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?,
        );
    }
    if let Some(secs) = args.fail_safe_secs {
        config.machine.fail_safe_window = Duration::from_secs(secs);
    }
    let store = FileStore::open(&args.state_dir).map_err(|error| error.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the runtime: {error}"))?;
    runtime.block_on(async {
        let clock: SharedClock = Arc::new(TokioClock::new());
        let network = networks::configurator(&args.network, clock.clone()).await?;
        let agent = DeviceAgent::start(
            Arc::new(store),
            PersistedState::new(identity, anchors),
            network,
            clock,
            config,
        )
        .map_err(|error| error.to_string())?;
        say(&format!(
            "registration ID: {}\nQR label:        {}\nmanual code:     {}\nBLE name:        {}\nstate:           {}",
            agent.registration_id(),
            payload.encode(),
            payload.manual_code().encode(),
            agent.advertisement().local_name,
            agent.state().map_or("unknown", |state| state.as_str()),
        ))?;
        if args.once {
            agent.shutdown().await;
            return Ok(());
        }
        let radio = match serve_ble(&args.ble, &agent).await {
            Ok(radio) => radio,
            Err(error) => {
                agent.shutdown().await;
                return Err(error);
            }
        };
        let outcome = watch_until_stopped(&agent).await;
        if let Some(radio) = radio {
            radio.abort();
        }
        // Like a power cut: the store keeps whatever was last saved.
        agent.shutdown().await;
        outcome
    })
}

/// Prints state changes until SIGINT or SIGTERM.
async fn watch_until_stopped(agent: &DeviceAgent) -> Result<(), String> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|error| format!("cannot watch SIGTERM: {error}"))?;
    let terminated = async {
        #[cfg(unix)]
        terminate.recv().await;
        #[cfg(not(unix))]
        std::future::pending::<()>().await;
    };
    tokio::pin!(terminated);
    let mut watch = agent.watch_advertisement();
    loop {
        tokio::select! {
            changed = watch.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let state = watch.borrow_and_update().state();
                // Best effort: a closed stdout must not stop the agent.
                let _ = say(&format!("state: {}", state.map_or("unknown", |s| s.as_str())));
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
            () = &mut terminated => return Ok(()),
        }
    }
}

/// Starts the BLE side; `None` without a radio.
async fn serve_ble(
    ble: &Ble,
    agent: &DeviceAgent,
) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
    match ble {
        Ble::None => {
            tracing::warn!(
                "no BLE peripheral (--ble none): the agent runs (fail-safe, lockout expiry) but \
                 no installer can connect"
            );
            Ok(None)
        }
        Ble::Bluez { adapter } => serve_bluez(adapter, agent).await.map(Some),
    }
}

#[cfg(all(target_os = "linux", feature = "bluez"))]
async fn serve_bluez(
    adapter: &str,
    agent: &DeviceAgent,
) -> Result<tokio::task::JoinHandle<()>, String> {
    use crate::bluez::BluezPeripheral;
    use crate::link::BlePeripheral as _;
    let peripheral = BluezPeripheral::start(adapter)
        .await
        .map_err(|error| error.to_string())?;
    let advertisement = agent.advertisement();
    peripheral
        .advertise(&advertisement)
        .await
        .map_err(|error| error.to_string())?;
    say(&format!(
        "ble:             advertising {} on {} ({})",
        advertisement.local_name,
        peripheral.adapter_name(),
        peripheral.address()
    ))?;
    let agent = agent.clone();
    Ok(tokio::spawn(async move {
        agent.run_peripheral(Arc::new(peripheral)).await;
    }))
}

#[cfg(not(all(target_os = "linux", feature = "bluez")))]
async fn serve_bluez(
    _adapter: &str,
    _agent: &DeviceAgent,
) -> Result<tokio::task::JoinHandle<()>, String> {
    Err("this build has no BlueZ support (Linux, build with `--features bluez`)".into())
}

fn init(args: &InitArgs) -> Result<(), String> {
    if args.out.exists() {
        return Err(format!(
            "{} exists; an identity is written once (its PoP is on the printed label)",
            args.out.display()
        ));
    }
    let key = std::fs::read_to_string(&args.dps_key_file)
        .map_err(|error| format!("cannot read {}: {error}", args.dps_key_file.display()))?;
    let key = SecretString::new(key.trim());
    let mut rng = rand::thread_rng();
    let identity = DeviceIdentity {
        registration_id: args.registration_id.clone(),
        pop: SecretBytes::new(PopSecret::generate(&mut rng).expose_bytes().to_vec()),
        discriminator: rng.gen_range(0..=fieldlink_protocol::payload::MAX_DISCRIMINATOR),
        product_code: args.product_code,
        dps_credential: if args.group_key {
            DpsCredential::GroupKey { group_key: key }
        } else {
            DpsCredential::SymmetricKey { key }
        },
    };
    let payload = label(&identity)?;
    let json = serde_json::to_string_pretty(&identity).map_err(|error| error.to_string())?;
    write_private(&args.out, json.as_bytes())?;
    say(&format!(
        "wrote {}\nQR label:    {}\nmanual code: {}",
        args.out.display(),
        payload.encode(),
        payload.manual_code().encode()
    ))
}

/// Writes a file readable by its owner only (it holds the PoP and the DPS key).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|error| format!("cannot create {}: {error}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}
