//! Network settings for `commission` and `resume`: `--wifi-ssid/--wifi-pass`, a network
//! profile (`--network NAME`, or the profile's default), or per-site `network:` lines of a
//! batch file. Passphrases are never stored: they come from `--wifi-pass`,
//! `FIELDLINK_WIFI_PASS`, or a prompt without echo.

use std::{collections::BTreeMap, io::IsTerminal};

use fieldlink_core::secrets::{KeyringStore, SecretStore};
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

/// The keyring service under which network-profile passphrases are kept.
pub const NETWORK_SECRET_SERVICE: &str = "fieldlink-network";

/// Completes `target` with a passphrase: `given` (flag or environment), else — for a network
/// profile — the passphrase remembered in the OS keyring, else a prompt without echo on the
/// terminal, which a profile then remembers in the keyring (never in a file). Without a
/// terminal and without a passphrase, a configuration error.
pub fn with_passphrase(
    target: &WifiTarget,
    given: Option<&str>,
) -> Result<NetworkConfig, CliError> {
    let keyring = match (&target.profile, given) {
        (Some(_), None) => KeyringStore::open().ok(),
        _ => None,
    };
    let store = keyring.as_ref().map(|store| store as &dyn SecretStore);
    resolve_passphrase(target, given, store, prompt_passphrase)
}

/// [`with_passphrase`] with the store and the prompt injected.
fn resolve_passphrase(
    target: &WifiTarget,
    given: Option<&str>,
    store: Option<&dyn SecretStore>,
    prompt: impl FnOnce(&WifiTarget) -> Result<String, CliError>,
) -> Result<NetworkConfig, CliError> {
    let remembered = match (given, &target.profile, store) {
        (None, Some(profile), Some(store)) => store
            .get(NETWORK_SECRET_SERVICE, profile)
            .ok()
            .and_then(|secret| secret.expose_str().ok().map(str::to_owned)),
        _ => None,
    };
    let passphrase = match (given, remembered) {
        (Some(passphrase), _) => passphrase.to_owned(),
        (None, Some(passphrase)) => passphrase,
        (None, None) => {
            let passphrase = prompt(target)?;
            if let (Some(profile), Some(store)) = (&target.profile, store) {
                let secret = fieldlink_core::secrets::Secret::new(passphrase.clone().into_bytes());
                if let Err(error) = store.set(NETWORK_SECRET_SERVICE, profile, &secret) {
                    tracing::warn!(code = error.code(), "the passphrase was not remembered");
                }
            }
            passphrase
        }
    };
    Ok(NetworkConfig::Wifi {
        ssid: target.ssid.clone(),
        passphrase: Secret::new(passphrase),
        hidden: target.hidden,
        bssid: None,
    })
}

/// Asks for the passphrase on the terminal without echo.
fn prompt_passphrase(target: &WifiTarget) -> Result<String, CliError> {
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
    .map_err(|error| CliError::config(format!("cannot read the passphrase: {error}")))
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

    fn passphrase_of(config: &NetworkConfig) -> String {
        match config {
            NetworkConfig::Wifi { passphrase, .. } => passphrase.expose().to_owned(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_profile_remembers_its_prompted_passphrase_in_the_secret_store() {
        let store = fieldlink_core::secrets::MemoryStore::new();
        let target = WifiTarget {
            ssid: "site".into(),
            hidden: false,
            profile: Some("warehouse".into()),
        };
        let first = resolve_passphrase(&target, None, Some(&store), |_| Ok("correct horse".into()))
            .unwrap();
        assert_eq!(passphrase_of(&first), "correct horse");
        let stored = store.get(NETWORK_SECRET_SERVICE, "warehouse").unwrap();
        assert_eq!(stored.expose_str().unwrap(), "correct horse");
        // The next run takes it from the store without asking.
        let second = resolve_passphrase(&target, None, Some(&store), |_| {
            panic!("must not prompt when the store has the passphrase")
        })
        .unwrap();
        assert_eq!(passphrase_of(&second), "correct horse");
    }

    #[test]
    fn a_given_passphrase_wins_and_no_store_means_a_prompt() {
        let store = fieldlink_core::secrets::MemoryStore::new();
        let target = WifiTarget {
            ssid: "site".into(),
            hidden: false,
            profile: Some("warehouse".into()),
        };
        let given = resolve_passphrase(&target, Some("from flag"), Some(&store), |_| {
            panic!("must not prompt when given")
        })
        .unwrap();
        assert_eq!(passphrase_of(&given), "from flag");
        assert!(store.get(NETWORK_SECRET_SERVICE, "warehouse").is_err());
        let prompted = resolve_passphrase(&target, None, None, |_| Ok("typed".into())).unwrap();
        assert_eq!(passphrase_of(&prompted), "typed");
    }
}
