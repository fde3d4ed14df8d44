//! The command line (clap derive: these doc comments are the help text).

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// fieldlink: commission IoT devices into Azure IoT Hub through Azure DPS, over Bluetooth LE.
///
/// Scan a device's QR label, and fieldlink finds the device over BLE, opens a PAKE-secured
/// session, fetches a signed ticket from the provisioning API, pushes it (with Wi-Fi settings
/// if needed), follows the device's DPS registration and confirms it with the API.
///
/// Try it with nothing installed: `fieldlink demo`.
#[derive(Debug, Parser)]
#[command(
    name = "fieldlink",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Errors only on stderr, no progress bars, no chatter on stdout.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Machine-readable stdout: NDJSON progress events, then one `result` object.
    #[arg(long, global = true)]
    pub json: bool,
    /// Config file [default: $XDG_CONFIG_HOME/fieldlink/config.toml].
    #[arg(long, global = true, env = "FIELDLINK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Profile to use (an API URL plus an issuer) [default: the config's default_profile].
    #[arg(
        short,
        long,
        global = true,
        env = "FIELDLINK_PROFILE",
        value_name = "NAME"
    )]
    pub profile: Option<String>,
    /// Commissioning journal [default: $XDG_DATA_HOME/fieldlink/journal.sqlite3].
    #[arg(long, global = true, env = "FIELDLINK_JOURNAL", value_name = "FILE")]
    pub journal: Option<PathBuf>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole system in this process and commission a virtual fleet.
    ///
    /// Starts a DPS emulator with K instances, N virtual devices behind an in-memory radio
    /// with a BLE link model, then commissions every device in parallel and prints a summary
    /// and each DPS instance's utilisation. Nothing to install, nothing left behind.
    Demo(DemoArgs),
    /// A long-lived local stack for development and QA.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// List nearby fieldlink devices with their discriminator, RSSI and state.
    Scan(ScanArgs),
    /// Commission one device (QR payload or manual code) or a batch from a file.
    Commission(CommissionArgs),
    /// Show the provisioning service's view of a device's DPS registration.
    Status(StatusArgs),
    /// Print onboarding labels as terminal QR codes, SVG or PNG.
    Label(LabelArgs),
    /// Show the commissioning journal, export it, or sync queued confirmations.
    History(HistoryArgs),
    /// Finish an interrupted batch: only the devices that are not done.
    Resume(ResumeArgs),
    /// Sign in to the active profile's issuer.
    Login(LoginArgs),
    /// Sign out: revoke and forget the active profile's tokens.
    Logout,
    /// Show the active profile and who is signed in.
    Whoami,
    /// List, show, add, select and remove profiles.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
}

/// `demo` options.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Number of virtual devices.
    #[arg(short = 'n', long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub devices: u32,
    /// Number of DPS instances the devices are spread over.
    #[arg(short = 'k', long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub dps_instances: u32,
    /// ATT MTU of the simulated BLE links (23..=517).
    #[arg(long, default_value_t = 247, value_parser = clap::value_parser!(u16).range(23..=517))]
    pub mtu: u16,
    /// BLE connection interval of the simulated links, in milliseconds.
    #[arg(long, default_value_t = 7.5)]
    pub interval_ms: f64,
    /// Devices commissioned at the same time.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub parallel: u32,
    /// Devices join a simulated Wi-Fi site; three of them first get wrong settings (wrong
    /// passphrase, an out-of-range SSID, a captive portal) to show the typed failures and the
    /// corrected retry in the same session.
    #[arg(long)]
    pub network_faults: bool,
    /// Seed for the virtual devices' labels.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Sign tickets in-process instead of running the provisioning API (SQLite).
    #[arg(long)]
    pub local_signer: bool,
}

/// `sandbox` subcommands.
#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Start the sandbox and keep it running until Ctrl-C.
    ///
    /// Runs the provisioning API, the sandbox OIDC issuer and the DPS emulator over HTTPS on
    /// loopback (one private CA signs all three certificates) and a virtual fleet whose radio is
    /// reachable from other processes over a loopback socket, and writes a JSON manifest (mode
    /// 0600) with the URLs, the CA certificate, the issuer's clients, the test users and their
    /// passwords, and every device's onboarding payload. Point other commands at it with
    /// `--sandbox MANIFEST` (fleet socket: radio, tickets and status), or sign in to it like a
    /// real organisation: `fieldlink profile add NAME --from-sandbox MANIFEST`, then
    /// `fieldlink --profile NAME login`.
    Up(SandboxUpArgs),
    /// (Re)start one device agent of a `sandbox up --ble bluez` sandbox, in the foreground.
    ///
    /// Runs the `device-agent run --ble bluez` code on the device's adapter from the files and
    /// the persistent state directory the manifest names, on the manifest's D-Bus system bus:
    /// what `sandbox up --ble bluez` runs per device, and how a killed agent is restarted.
    Agent(crate::commands::sandbox_agent::SandboxAgentArgs),
    /// Run the sandbox's DPS emulator alone, over HTTPS, until Ctrl-C.
    ///
    /// Starts K DPS instances behind one global endpoint with a fresh private CA, writes the CA
    /// certificate and the service API's shared access policy (with its key, mode 0600) into
    /// `--dir`, and prints the global endpoint, each instance's ID scope and linked hub, and the
    /// policy file's path (never the key).
    Emulator(crate::commands::sandbox_emulator::SandboxEmulatorArgs),
    /// Show what each device of a running sandbox holds.
    ///
    /// For an in-memory fleet: each virtual device's advertised state, accepted tickets and
    /// hub. For `sandbox up --ble bluez`: each device agent's persisted state (read from its
    /// state directory) and whether its process is alive.
    Devices(SandboxRef),
    /// Switch a fault of a running sandbox on or off.
    Fault(SandboxFaultArgs),
}

/// Where a running sandbox's manifest is.
#[derive(Debug, Clone, Args)]
pub struct SandboxRef {
    /// The sandbox manifest [default: $XDG_STATE_HOME/fieldlink/sandbox/manifest.json].
    #[arg(long, env = "FIELDLINK_SANDBOX", value_name = "FILE")]
    pub manifest: Option<PathBuf>,
}

/// `sandbox up` options.
#[derive(Debug, Clone, Args)]
pub struct SandboxUpArgs {
    /// Number of virtual devices.
    #[arg(short = 'n', long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub devices: u32,
    /// Number of DPS instances.
    #[arg(short = 'k', long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub dps_instances: u32,
    /// Which radio the virtual fleet uses: `memory` (reachable over the loopback socket) or
    /// `bluez` (real advertisements through BlueZ).
    #[arg(long, value_enum, default_value_t = SandboxBle::Memory)]
    pub ble: SandboxBle,
    /// Where to write the manifest [default: $XDG_STATE_HOME/fieldlink/sandbox/manifest.json].
    #[arg(long, env = "FIELDLINK_SANDBOX", value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// ATT MTU of the virtual links.
    #[arg(long, default_value_t = 247, value_parser = clap::value_parser!(u16).range(23..=517))]
    pub mtu: u16,
    /// Do not print the labels as QR codes.
    #[arg(long)]
    pub no_labels: bool,
    /// Seed for the virtual devices' labels.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Sign tickets in-process instead of running the provisioning API (SQLite) and its
    /// issuer.
    #[arg(long)]
    pub local_signer: bool,
    /// With `--ble bluez`: serve the devices on these BlueZ adapters of the existing system bus
    /// (one per device, repeat the flag) instead of a private BlueZoo bench.
    #[arg(long = "adapter", value_name = "NAME", requires = "ble")]
    pub adapter: Vec<String>,
    /// With `--ble bluez --adapter …`: the adapter installers use [default: hci0].
    #[arg(long, value_name = "NAME", requires = "adapter")]
    pub installer_adapter: Option<String>,
    /// DEMO ONLY: the sandbox issuer approves every sign-in as the installer test user, without
    /// its sign-in page. Off by default: sign in with the test user's password from the
    /// manifest.
    #[arg(long)]
    pub auto_approve: bool,
}

/// The sandbox's radio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SandboxBle {
    /// In-memory radio behind a loopback socket.
    Memory,
    /// BlueZ peripherals (needs a Bluetooth adapter or BlueZoo).
    Bluez,
}

/// `sandbox fault` options.
#[derive(Debug, Clone, Args)]
pub struct SandboxFaultArgs {
    /// The fault.
    #[arg(value_enum)]
    pub fault: SandboxFault,
    /// On or off.
    #[arg(value_enum)]
    pub state: Toggle,
    /// The sandbox.
    #[command(flatten)]
    pub sandbox: SandboxRef,
}

/// Faults a sandbox can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SandboxFault {
    /// The registration-status service is unreachable (confirmations get queued).
    StatusOffline,
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Toggle {
    /// Switch on.
    On,
    /// Switch off.
    Off,
}

/// Where devices and services are reached.
#[derive(Debug, Clone, Default, Args)]
pub struct TargetArgs {
    /// Use a running `fieldlink sandbox up`: its virtual fleet and services (its manifest).
    #[arg(long, env = "FIELDLINK_SANDBOX", value_name = "MANIFEST")]
    pub sandbox: Option<PathBuf>,
    /// Bluetooth adapter for real devices (`hci0`, or its address).
    #[arg(long, env = "FIELDLINK_ADAPTER", value_name = "NAME")]
    pub adapter: Option<String>,
    /// Provisioning API base URL (overrides the profile).
    #[arg(long, env = "FIELDLINK_API_URL", value_name = "URL")]
    pub api_url: Option<String>,
    /// Extra CA certificate (PEM) to trust (overrides the profile).
    #[arg(long, env = "FIELDLINK_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

/// `scan` options.
#[derive(Debug, Clone, Args)]
pub struct ScanArgs {
    /// How long to scan, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
    /// Also list devices that are already commissioned.
    #[arg(long)]
    pub all: bool,
    /// Where devices are.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `commission` options.
#[derive(Debug, Clone, Args)]
pub struct CommissionArgs {
    /// The onboarding payload from the device's QR label (`FL1/...`).
    #[arg(value_name = "PAYLOAD", required_unless_present_any = ["manual_code", "from_file"],
          conflicts_with_all = ["manual_code", "from_file"])]
    pub payload: Option<String>,
    /// The 11-digit manual code printed under the QR code.
    #[arg(long, value_name = "CODE", conflicts_with = "from_file")]
    pub manual_code: Option<String>,
    /// A batch: a file with one onboarding payload per line (`#` comments; `network: NAME`
    /// lines select the network profile for the lines that follow).
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Devices commissioned at once in a batch [default: config `jobs`, else 4].
    #[arg(short, long, env = "FIELDLINK_JOBS", value_name = "N")]
    pub jobs: Option<usize>,
    /// Network settings.
    #[command(flatten)]
    pub network: NetworkArgs,
    /// Where devices and services are.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Overall deadline per device, in seconds.
    #[arg(long, default_value_t = 180)]
    pub timeout: u64,
}

/// Network settings for `commission` and `resume`.
#[derive(Debug, Clone, Default, Args)]
pub struct NetworkArgs {
    /// Wi-Fi SSID the device joins.
    #[arg(long, env = "FIELDLINK_WIFI_SSID", value_name = "SSID")]
    pub wifi_ssid: Option<String>,
    /// Wi-Fi passphrase. Asked without echo when an SSID is given without it; prefer the
    /// prompt or FIELDLINK_WIFI_PASS to the command line, which other users can read.
    #[arg(
        long,
        env = "FIELDLINK_WIFI_PASS",
        hide_env_values = true,
        value_name = "PASSPHRASE"
    )]
    pub wifi_pass: Option<String>,
    /// The SSID is hidden.
    #[arg(long)]
    pub wifi_hidden: bool,
    /// A network profile from the config file (`[networks.NAME]`).
    #[arg(long, value_name = "NAME", conflicts_with = "wifi_ssid")]
    pub network: Option<String>,
}

/// `status` options.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The device's DPS registration ID.
    pub registration_id: String,
    /// Where the service is.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// Label formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabelFormat {
    /// QR codes drawn with Unicode blocks in the terminal.
    Terminal,
    /// One SVG file per label.
    Svg,
    /// One PNG file per label.
    Png,
}

/// `label` options.
#[derive(Debug, Clone, Args)]
pub struct LabelArgs {
    /// Onboarding payloads to render.
    #[arg(value_name = "PAYLOAD")]
    pub payloads: Vec<String>,
    /// Render every payload of this file (same format as `commission --from-file`).
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Render the labels of a running sandbox's devices.
    #[arg(long, value_name = "MANIFEST")]
    pub sandbox: Option<PathBuf>,
    /// Make N new test labels (random PoP and discriminator) and print their payloads.
    #[arg(long, value_name = "N")]
    pub generate: Option<u32>,
    /// Registration ID prefix for `--generate`.
    #[arg(long, default_value = "qa-device")]
    pub prefix: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = LabelFormat::Terminal)]
    pub format: LabelFormat,
    /// Directory for SVG/PNG files (one `<registration-id>.<ext>` per label).
    #[arg(long, short, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// Pixels per QR module for PNG.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub scale: u32,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values, one attempt per row.
    Csv,
    /// One JSON array of attempts.
    Json,
}

/// `history` options.
#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// Export every matching attempt instead of the table.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub export: Option<ExportFormat>,
    /// Sync queued confirmations with the registration-status service first.
    #[arg(long)]
    pub sync: bool,
    /// List batches instead of attempts.
    #[arg(long)]
    pub batches: bool,
    /// Only this device.
    #[arg(long, value_name = "REGISTRATION_ID")]
    pub device: Option<String>,
    /// Only this batch.
    #[arg(long, value_name = "ID")]
    pub batch: Option<String>,
    /// At most this many rows (0 = all).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Where the status service is (for `--sync`).
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `resume` options.
#[derive(Debug, Clone, Args)]
pub struct ResumeArgs {
    /// The batch [default: the newest unfinished batch].
    #[arg(value_name = "BATCH_ID")]
    pub batch: Option<String>,
    /// Also retry devices whose failure needs a person (wrong PoP, ...).
    #[arg(long)]
    pub retry_failed: bool,
    /// Devices commissioned at once [default: the batch's own setting].
    #[arg(short, long, env = "FIELDLINK_JOBS", value_name = "N")]
    pub jobs: Option<usize>,
    /// Network settings (the passphrase is never stored: it is asked again).
    #[command(flatten)]
    pub network: NetworkArgs,
    /// Where devices and services are.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Overall deadline per device, in seconds.
    #[arg(long, default_value_t = 180)]
    pub timeout: u64,
}

/// `login` options.
#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// Do not open a browser; print the verification URL and code (device-code flow).
    #[arg(long)]
    pub no_browser: bool,
}

/// `profile` subcommands.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List the profiles.
    List,
    /// Show one profile [default: the active one].
    Show {
        /// The profile.
        name: Option<String>,
    },
    /// Add or update a profile.
    Add(Box<ProfileAddArgs>),
    /// Make a profile the default.
    Use {
        /// The profile.
        name: String,
    },
    /// Remove a profile.
    Remove {
        /// The profile.
        name: String,
    },
}

/// `profile add` options.
#[derive(Debug, Clone, Args)]
pub struct ProfileAddArgs {
    /// The profile's name.
    pub name: String,
    /// Provisioning API base URL.
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// OIDC issuer URL.
    #[arg(long, value_name = "URL")]
    pub issuer_url: Option<String>,
    /// Extra CA certificate (PEM) to trust.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// A sandbox manifest: the profile reaches that sandbox.
    #[arg(long, value_name = "MANIFEST")]
    pub sandbox: Option<PathBuf>,
    /// Bluetooth adapter.
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,
    /// Default network profile.
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,
    /// OIDC public client id [default: fieldlink-cli].
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// OIDC scope to request (repeat for several) [default: openid profile offline_access].
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// Allow plain http:// to loopback addresses (local development only).
    #[arg(long)]
    pub allow_insecure_loopback: bool,
    /// Take the API URL, issuer URL, CLI client id and CA file from a running sandbox's
    /// manifest (`fieldlink sandbox up`), and its memory fleet as the radio: sign in to it with
    /// `login` like a real organisation. Other flags given with it win (`--adapter`: real
    /// Bluetooth).
    #[arg(long, value_name = "MANIFEST", conflicts_with = "sandbox")]
    pub from_sandbox: Option<PathBuf>,
    /// Also make it the default profile.
    #[arg(long)]
    pub default: bool,
}

/// `completions` options.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn commission_needs_exactly_one_source() {
        assert!(Cli::try_parse_from(["fieldlink", "commission"]).is_err());
        assert!(
            Cli::try_parse_from(["fieldlink", "commission", "FL1/X", "--manual-code", "1"])
                .is_err()
        );
        let parsed =
            Cli::try_parse_from(["fieldlink", "commission", "--from-file", "p.txt", "-j", "3"])
                .unwrap();
        match parsed.command {
            Command::Commission(args) => assert_eq!(args.jobs, Some(3)),
            other => panic!("parsed as {other:?}"),
        }
    }
}
