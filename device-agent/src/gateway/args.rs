//! Command-line arguments (no parser dependency: a handful of flags).

use std::path::PathBuf;

/// What to do.
#[derive(Debug)]
pub enum Command {
    /// Run the agent.
    Run(RunArgs),
    /// Write a new identity file (random PoP and discriminator).
    Init(InitArgs),
    /// Print usage.
    Help,
}

/// `device-agent run`.
#[derive(Debug)]
pub struct RunArgs {
    pub identity: PathBuf,
    pub trust_anchors: PathBuf,
    pub state_dir: PathBuf,
    pub dps_ca: Option<PathBuf>,
    pub fail_safe_secs: Option<u64>,
    pub once: bool,
}

/// `device-agent init`.
#[derive(Debug)]
pub struct InitArgs {
    pub registration_id: String,
    pub product_code: u16,
    pub dps_key_file: PathBuf,
    pub group_key: bool,
    pub out: PathBuf,
}

pub const USAGE: &str = "\
usage:
  device-agent run --identity FILE --trust-anchors FILE --state-dir DIR
                   [--dps-ca PEM] [--fail-safe-secs N] [--once]
  device-agent init --registration-id ID --dps-key-file FILE [--group-key]
                    [--product-code N] --out FILE
  device-agent help

run     loads the identity and trust anchors, opens (or creates) the atomic state store in
        DIR, prints the QR label and the state, and serves commissioning. --once prints and
        exits.
init    writes an identity file with a random PoP and discriminator. The DPS key is read from
        FILE (base64); --group-key marks it as an enrollment-group key.";

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Command, String> {
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

    #[test]
    fn parses_run_and_init() {
        let run = parse(&strings(&[
            "run",
            "--identity",
            "id.json",
            "--trust-anchors",
            "a.json",
            "--state-dir",
            "/var/lib/fl",
            "--once",
        ]))
        .unwrap();
        assert!(matches!(run, Command::Run(RunArgs { once: true, .. })));
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
}
