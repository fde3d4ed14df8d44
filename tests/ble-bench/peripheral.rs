//! `fieldlink-ble-peripheral`: one BlueZ GATT peripheral for the BLE bench, as its own process so
//! the bench can kill it mid-session.
//!
//! ```text
//! fieldlink-ble-peripheral --adapter hci1 --discriminator 0xA42 --echo
//! ```
//!
//! `--echo` serves fieldlink's GATT service and advertisement (the device agent's
//! [`BluezPeripheral`](bluez::BluezPeripheral)) and notifies every written frame straight back:
//! the transport-level bench. Prints `ready <address>` on stdout once advertising. Needs
//! `DBUS_SYSTEM_BUS_ADDRESS` pointing at the bench's bus.
//!
//! ```text
//! fieldlink-ble-peripheral device-agent run --identity … --ble bluez --adapter hci1 …
//! ```
//!
//! runs the real `device-agent` command line ([`fieldlink_device_agent::gateway::main`], the same
//! code as the `device-agent` binary), so the bench can start and `SIGKILL` a whole agent
//! process. (The `device-agent` binary itself belongs to another package, which this crate's
//! tests cannot have cargo build for them.)

#[cfg(target_os = "linux")]
use fieldlink_device_agent::bluez;

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("device-agent") {
        return fieldlink_device_agent::gateway::main(&argv[1..]);
    }
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(echo(argv)),
        Err(error) => {
            eprintln!("fieldlink-ble-peripheral: cannot start the runtime: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(target_os = "linux")]
async fn echo(argv: Vec<String>) -> std::process::ExitCode {
    use std::io::Write as _;

    use fieldlink_device_agent::link::{Advertisement, BlePeripheral as _};
    use fieldlink_protocol::gatt::AdvertisedState;

    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let args = match Args::parse(argv.into_iter()) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("fieldlink-ble-peripheral: {message}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let peripheral = match bluez::BluezPeripheral::start(&args.adapter).await {
        Ok(peripheral) => peripheral,
        Err(error) => {
            eprintln!("fieldlink-ble-peripheral: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let advertisement = Advertisement::new(args.discriminator, AdvertisedState::Commissionable);
    if let Err(error) = peripheral.advertise(&advertisement).await {
        eprintln!("fieldlink-ble-peripheral: {error}");
        return std::process::ExitCode::FAILURE;
    }
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "ready {}", peripheral.address());
    let _ = stdout.flush();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return std::process::ExitCode::SUCCESS,
            accepted = peripheral.accept() => match accepted {
                Ok(Some(mut connection)) => {
                    tokio::spawn(async move {
                        while let Some(frame) = connection.from_central.recv().await {
                            if connection.to_central.send(frame).await.is_err() {
                                break;
                            }
                        }
                    });
                }
                Ok(None) => return std::process::ExitCode::FAILURE,
                Err(error) => {
                    eprintln!("fieldlink-ble-peripheral: {error}");
                    return std::process::ExitCode::FAILURE;
                }
            },
        }
    }
}

#[cfg(target_os = "linux")]
const USAGE: &str = "usage: fieldlink-ble-peripheral --adapter hci1 --discriminator 0xA42 --echo\n       \
     fieldlink-ble-peripheral device-agent run … (the device-agent command line)";

#[cfg(target_os = "linux")]
struct Args {
    adapter: String,
    discriminator: u16,
}

#[cfg(target_os = "linux")]
impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut adapter = None;
        let mut discriminator = None;
        let mut echo = false;
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--adapter" => adapter = args.next(),
                "--discriminator" => {
                    let text = args.next().ok_or("--discriminator needs a value")?;
                    let digits = text.trim_start_matches("0x").trim_start_matches("0X");
                    let value = u16::from_str_radix(digits, 16)
                        .map_err(|_| format!("bad discriminator {text}"))?;
                    discriminator = Some(value & 0x0fff);
                }
                "--echo" => echo = true,
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if !echo {
            return Err("only --echo is supported".into());
        }
        Ok(Self {
            adapter: adapter.ok_or("--adapter is required")?,
            discriminator: discriminator.ok_or("--discriminator is required")?,
        })
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("fieldlink-ble-peripheral needs Linux (BlueZ)");
}
