//! Command-line arguments (no parser dependency: a handful of flags).

use std::path::PathBuf;

/// What to do.
#[derive(Debug)]
pub(super) enum Command {
    /// Run the agent.
    Run(RunArgs),
    /// Write a new identity file (random PoP and discriminator).
    Init(InitArgs),
    /// Print usage.
    Help,
}

/// Which BLE stack serves the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ble {
    /// No radio: the agent runs (fail-safe, lockout expiry) but nobody can connect.
    None,
    /// BlueZ on the named adapter.
    Bluez {
        /// `hci0`, `hci1`, …
        adapter: String,
    },
}

/// Which network configurator the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Configurator {
    /// The gateway's network is managed outside fieldlink and already online.
    Online,
    /// Simulated access points from a JSON file (none: an Ethernet device that is online).
    Simulated {
        /// The access points, if any.
        access_points: Option<PathBuf>,
    },
    /// NetworkManager over D-Bus.
    NetworkManager {
        /// The Wi-Fi interface (`wlan0`); `None` = the first one.
        wifi_interface: Option<String>,
    },
}

/// `device-agent run`.
#[derive(Debug)]
pub(super) struct RunArgs {
    pub identity: PathBuf,
    pub trust_anchors: PathBuf,
    pub state_dir: PathBuf,
    pub dps_ca: Option<PathBuf>,
    pub fail_safe_secs: Option<u64>,
    pub ble: Ble,
    pub network: Configurator,
    pub once: bool,
}

/// `device-agent init`.
#[derive(Debug)]
pub(super) struct InitArgs {
    pub registration_id: String,
    pub product_code: u16,
    pub dps_key_file: PathBuf,
    pub group_key: bool,
    pub out: PathBuf,
}

pub(super) const USAGE: &str = "\
usage:
  device-agent run --identity FILE --trust-anchors FILE --state-dir DIR
                   [--ble none|bluez --adapter hciN]
                   [--network online|simulated|networkmanager]
                   [--wifi-interface IFACE] [--simulated-networks FILE]
                   [--dps-ca PEM] [--fail-safe-secs N] [--once]
  device-agent init --registration-id ID --dps-key-file FILE [--group-key]
                    [--product-code N] --out FILE
  device-agent help

run     loads the identity and trust anchors, opens (or creates) the atomic state store in
        DIR, prints the QR label and the state, and serves commissioning.
        --ble bluez serves it over BlueZ on --adapter (Linux, feature `bluez`); --ble none
        (the default) runs the agent without a radio.
        --network online (default): the gateway is online and its network is not managed by
        fieldlink; networkmanager: Wi-Fi/cellular configs are applied through NetworkManager
        (--wifi-interface picks the Wi-Fi device); simulated: access points from
        --simulated-networks (JSON), or an online Ethernet device without it.
        --once prints and exits.
init    writes an identity file with a random PoP and discriminator. The DPS key is read from
        FILE (base64); --group-key marks it as an enrollment-group key.";

/// Parses `args` (without the program name).
pub(super) fn parse(args: &[String]) -> Result<Command, String> {
    let Some((command, rest)) = args.split_first() else {
        return Ok(Command::Help);
    };
    let flags = Flags::parse(rest)?;
    match command.as_str() {
        "run" => Ok(Command::Run(RunArgs {
            identity: flags.path("--identity")?,
            trust_anchors: flags.path("--trust-anchors")?,
            state_dir: flags.path("--state-dir")?,
            dps_ca: flags.optional("--dps-ca").map(PathBuf::from),
            fail_safe_secs: flags
                .optional("--fail-safe-secs")
                .map(|text| {
                    text.parse()
                        .map_err(|_| format!("--fail-safe-secs: {text:?} is not a number"))
                })
                .transpose()?,
            ble: ble(&flags)?,
            network: network(&flags)?,
            once: flags.switch("--once"),
        })),
        "init" => Ok(Command::Init(InitArgs {
            registration_id: flags.required("--registration-id")?,
            product_code: flags
                .optional("--product-code")
                .map(|text| {
                    text.parse()
                        .map_err(|_| format!("--product-code: {text:?} is not a u16"))
                })
                .transpose()?
                .unwrap_or(1),
            dps_key_file: flags.path("--dps-key-file")?,
            group_key: flags.switch("--group-key"),
            out: flags.path("--out")?,
        })),
        "help" | "--help" | "-h" => Ok(Command::Help),
        other => Err(format!("unknown command {other:?}")),
    }
}

fn ble(flags: &Flags) -> Result<Ble, String> {
    let adapter = flags.optional("--adapter");
    match flags.optional("--ble").as_deref() {
        None | Some("none") if adapter.is_none() => Ok(Ble::None),
        None | Some("none") => Err("--adapter needs --ble bluez".into()),
        Some("bluez") => adapter
            .map(|adapter| Ble::Bluez { adapter })
            .ok_or_else(|| "--ble bluez needs --adapter (hci0, hci1, …)".into()),
        Some(other) => Err(format!("--ble: {other:?} is not none or bluez")),
    }
}

fn network(flags: &Flags) -> Result<Configurator, String> {
    let interface = flags.optional("--wifi-interface");
    let access_points = flags.optional("--simulated-networks").map(PathBuf::from);
    let network = match flags.optional("--network").as_deref() {
        None | Some("online") => Configurator::Online,
        Some("simulated") => Configurator::Simulated {
            access_points: access_points.clone(),
        },
        Some("networkmanager") => Configurator::NetworkManager {
            wifi_interface: interface.clone(),
        },
        Some(other) => {
            return Err(format!(
                "--network: {other:?} is not online, simulated or networkmanager"
            ));
        }
    };
    if interface.is_some() && !matches!(network, Configurator::NetworkManager { .. }) {
        return Err("--wifi-interface needs --network networkmanager".into());
    }
    if access_points.is_some() && !matches!(network, Configurator::Simulated { .. }) {
        return Err("--simulated-networks needs --network simulated".into());
    }
    Ok(network)
}

struct Flags {
    values: Vec<(String, Option<String>)>,
}

const SWITCHES: &[&str] = &["--once", "--group-key"];

impl Flags {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut values = Vec::new();
        let mut iter = args.iter();
        while let Some(flag) = iter.next() {
            if !flag.starts_with("--") {
                return Err(format!("unexpected argument {flag:?}"));
            }
            if SWITCHES.contains(&flag.as_str()) {
                values.push((flag.clone(), None));
            } else {
                let value = iter.next().ok_or_else(|| format!("{flag} needs a value"))?;
                values.push((flag.clone(), Some(value.clone())));
            }
        }
        Ok(Self { values })
    }

    fn optional(&self, name: &str) -> Option<String> {
        self.values
            .iter()
            .rev()
            .find(|(flag, _)| flag == name)
            .and_then(|(_, value)| value.clone())
    }

    fn required(&self, name: &str) -> Result<String, String> {
        self.optional(name)
            .ok_or_else(|| format!("{name} is required"))
    }

    fn path(&self, name: &str) -> Result<PathBuf, String> {
        self.required(name).map(PathBuf::from)
    }

    fn switch(&self, name: &str) -> bool {
        self.values.iter().any(|(flag, _)| flag == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    fn run(extra: &[&str]) -> Result<RunArgs, String> {
        let mut args = strings(&[
            "run",
            "--identity",
            "id.json",
            "--trust-anchors",
            "a.json",
            "--state-dir",
            "/var/lib/fl",
        ]);
        args.extend(strings(extra));
        match parse(&args)? {
            Command::Run(run) => Ok(run),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_run_and_init() {
        let args = run(&["--once"]).unwrap();
        assert!(args.once);
        assert_eq!(args.ble, Ble::None);
        assert_eq!(args.network, Configurator::Online);
        let init = parse(&strings(&[
            "init",
            "--registration-id",
            "gw-1",
            "--dps-key-file",
            "k",
            "--out",
            "id.json",
        ]))
        .unwrap();
        assert!(matches!(
            init,
            Command::Init(InitArgs {
                product_code: 1,
                group_key: false,
                ..
            })
        ));
        assert!(parse(&strings(&["run", "--identity"])).is_err());
        assert!(parse(&strings(&["run"])).is_err());
        assert!(parse(&strings(&["fly"])).is_err());
        assert!(matches!(parse(&[]).unwrap(), Command::Help));
    }

    #[test]
    fn parses_the_radio_and_the_network() {
        let args = run(&[
            "--ble",
            "bluez",
            "--adapter",
            "hci1",
            "--network",
            "networkmanager",
        ])
        .unwrap();
        assert_eq!(
            args.ble,
            Ble::Bluez {
                adapter: "hci1".into()
            }
        );
        assert_eq!(
            args.network,
            Configurator::NetworkManager {
                wifi_interface: None
            }
        );
        let args = run(&["--network", "networkmanager", "--wifi-interface", "wlan1"]).unwrap();
        assert_eq!(
            args.network,
            Configurator::NetworkManager {
                wifi_interface: Some("wlan1".into())
            }
        );
        let args = run(&["--network", "simulated", "--simulated-networks", "aps.json"]).unwrap();
        assert!(matches!(
            args.network,
            Configurator::Simulated {
                access_points: Some(_)
            }
        ));
        for bad in [
            &["--ble", "bluez"][..],
            &["--adapter", "hci1"],
            &["--ble", "radio"],
            &["--network", "carrier-pigeon"],
            &["--wifi-interface", "wlan0"],
            &["--network", "online", "--simulated-networks", "x.json"],
        ] {
            assert!(run(bad).is_err(), "{bad:?}");
        }
    }
}
