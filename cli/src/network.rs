//! Network settings for `commission` and `resume`: `--wifi-ssid/--wifi-pass`, a network
//! profile (`--network NAME`, or the profile's default), or per-site `network:` lines of a
//! batch file. Passphrases are never stored: they come from `--wifi-pass`,
//! `FIELDLINK_WIFI_PASS`, or a prompt without echo.

use std::{collections::BTreeMap, io::IsTerminal};

use fieldlink_protocol::{message::NetworkConfig, secret::Secret};

use crate::{args::NetworkArgs, config::Settings, exit::CliError};

/// An SSID to configure and whether it is hidden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WifiTarget {
    /// SSID.
    pub ssid: String,
    /// Hidden SSID.
    pub hidden: bool,
    /// The network profile it came from, if any.
    pub profile: Option<String>,
}

/// The Wi-Fi target named by the flags or the profile, if any.
pub fn wifi_target(
    args: &NetworkArgs,
    settings: &Settings,
) -> Result<Option<WifiTarget>, CliError> {
    if let Some(ssid) = &args.wifi_ssid {
        return Ok(Some(WifiTarget {
            ssid: ssid.clone(),
            hidden: args.wifi_hidden,
            profile: None,
        }));
    }
    let name = args
        .network
        .clone()
        .or_else(|| settings.profile.network.clone());
    match name {
        Some(name) => profile_target(settings, &name).map(Some),
        None => Ok(None),
    }
}

/// The Wi-Fi target of network profile `name`.
pub fn profile_target(settings: &Settings, name: &str) -> Result<WifiTarget, CliError> {
    let profile = settings.network(name)?;
    Ok(WifiTarget {
        ssid: profile.ssid.clone(),
        hidden: profile.hidden,
        profile: Some(name.to_owned()),
    })
}

/// Completes `target` with a passphrase: `given` (flag or environment), else a prompt without
/// echo on the terminal. Without a terminal and without `given`, a configuration error.
pub fn with_passphrase(
    target: &WifiTarget,
    given: Option<&str>,
) -> Result<NetworkConfig, CliError> {
    let passphrase = match given {
        Some(passphrase) => passphrase.to_owned(),
        None => {
            if !std::io::stdin().is_terminal() {
                return Err(CliError::config(format!(
                    "no passphrase for Wi-Fi network {:?}: pass --wifi-pass or set \
                     FIELDLINK_WIFI_PASS (there is no terminal to ask on)",
                    target.ssid
                )));
            }
            rpassword::prompt_password(format!(
                "Wi-Fi passphrase for {:?} (not echoed): ",
                target.ssid
            ))
            .map_err(|error| CliError::config(format!("cannot read the passphrase: {error}")))?
        }
    };
    Ok(NetworkConfig::Wifi {
        ssid: target.ssid.clone(),
        passphrase: Secret::new(passphrase),
        hidden: target.hidden,
        bssid: None,
    })
}

/// Network configs for the flags' default target and each network profile a batch names,
/// asking each passphrase once. Key `None` is the default (flags/profile) network.
pub fn batch_networks(
    args: &NetworkArgs,
    settings: &Settings,
    names: &[String],
) -> Result<BTreeMap<Option<String>, Option<NetworkConfig>>, CliError> {
    let mut configs = BTreeMap::new();
    let default = match wifi_target(args, settings)? {
        Some(target) => Some(with_passphrase(&target, args.wifi_pass.as_deref())?),
        None => None,
    };
    configs.insert(None, default);
    for name in names {
        if configs.contains_key(&Some(name.clone())) {
            continue;
        }
        let target = profile_target(settings, name)?;
        // One passphrase from the command line can only belong to the flags' network.
        let given = if args.network.as_deref() == Some(name.as_str()) {
            args.wifi_pass.as_deref()
        } else {
            None
        };
        configs.insert(Some(name.clone()), Some(with_passphrase(&target, given)?));
    }
    Ok(configs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_make_a_wifi_config_with_a_redacted_passphrase() {
        let target = WifiTarget {
            ssid: "site".into(),
            hidden: true,
            profile: None,
        };
        let config = with_passphrase(&target, Some("hunter22")).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter22"), "{debug}");
        match config {
            NetworkConfig::Wifi { ssid, hidden, .. } => {
                assert_eq!(ssid, "site");
                assert!(hidden);
            }
            other => panic!("{other:?}"),
        }
    }
}
