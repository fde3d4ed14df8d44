//! Configuration: flags > environment > config file (XDG) > defaults.
//!
//! Flags and their `FIELDLINK_*` environment variables are merged by clap; this module reads
//! the TOML config file and fills whatever the command line left unset. The file never holds
//! secrets: Wi-Fi passphrases and tokens belong in the secret store (or are asked for).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::exit::CliError;

/// The profile used when neither `--profile`, `FIELDLINK_PROFILE` nor `default_profile` says.
pub const DEFAULT_PROFILE: &str = "default";
/// Devices commissioned at once in a batch when nothing says otherwise.
pub const DEFAULT_JOBS: usize = 4;

/// The config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Profile used when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_profile: Option<String>,
    /// Journal location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<PathBuf>,
    /// Default batch concurrency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<usize>,
    /// Profiles by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profiles: BTreeMap<String, Profile>,
    /// Network profiles by name (SSID only; passphrases are never stored here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, NetworkProfile>,
}

/// One organisation's settings: where its provisioning API and issuer are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Provisioning API base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// OIDC issuer URL (sign-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_url: Option<String>,
    /// Extra CA certificate (PEM) to trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// A `fieldlink sandbox up` manifest: reach its virtual fleet and services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<PathBuf>,
    /// Bluetooth adapter (`hci0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// A `fieldlink sandbox up` manifest whose memory fleet is the radio instead of Bluetooth,
    /// while tickets and status come from `api_url` with this profile's sign-in (set by
    /// `profile add --from-sandbox`; `--adapter` on a command means real Bluetooth again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_radio: Option<PathBuf>,
    /// Default network profile for `commission`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// OIDC public client id [default: `fieldlink-cli`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// OIDC scopes [default: `openid profile offline_access`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Allow plain `http://` to loopback addresses only (local development).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_loopback: bool,
}

/// A Wi-Fi network devices should join.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkProfile {
    /// SSID.
    pub ssid: String,
    /// The SSID is hidden.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(fallback)))
        .unwrap_or_else(std::env::temp_dir)
        .join("fieldlink")
}

/// `$XDG_CONFIG_HOME/fieldlink/config.toml` (`~/.config/...`).
pub fn default_config_path() -> PathBuf {
    xdg("XDG_CONFIG_HOME", ".config").join("config.toml")
}

/// `$XDG_DATA_HOME/fieldlink/journal.sqlite3` (`~/.local/share/...`).
pub fn default_journal_path() -> PathBuf {
    xdg("XDG_DATA_HOME", ".local/share").join("journal.sqlite3")
}

/// `$XDG_STATE_HOME/fieldlink/sandbox` (`~/.local/state/...`): the sandbox's files.
pub fn default_sandbox_dir() -> PathBuf {
    xdg("XDG_STATE_HOME", ".local/state").join("sandbox")
}

impl ConfigFile {
    /// Reads `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<Self, CliError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(error) => {
                return Err(CliError::config(format!(
                    "cannot read the config file {}: {error}",
                    path.display()
                )));
            }
        };
        toml::from_str(&text).map_err(|error| {
            CliError::config(format!(
                "invalid config file {}: {}",
                path.display(),
                error.message()
            ))
        })
    }

    /// Writes `path` atomically (temporary file + rename), creating its directory.
    pub fn save(&self, path: &Path) -> Result<(), CliError> {
        let text = toml::to_string_pretty(self)
            .map_err(|error| CliError::internal(format!("cannot encode the config: {error}")))?;
        let fail = |error: std::io::Error| {
            CliError::config(format!("cannot write {}: {error}", path.display()))
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        let temporary = path.with_extension("toml.tmp");
        std::fs::write(&temporary, text).map_err(fail)?;
        std::fs::rename(&temporary, path).map_err(fail)
    }
}

/// The resolved configuration of one invocation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config file's path.
    pub config_path: PathBuf,
    /// Its contents.
    pub file: ConfigFile,
    /// The active profile's name.
    pub profile_name: String,
    /// The active profile (empty when not configured).
    pub profile: Profile,
    /// Whether the active profile exists in the file.
    pub profile_exists: bool,
    /// The journal's path.
    pub journal_path: PathBuf,
}

impl Settings {
    /// Resolves the config file, the profile and the journal path. `config`, `profile` and
    /// `journal` come from flags or the environment (clap merged them).
    pub fn resolve(
        config: Option<PathBuf>,
        profile: Option<String>,
        journal: Option<PathBuf>,
    ) -> Result<Self, CliError> {
        let config_path = config.unwrap_or_else(default_config_path);
        let file = ConfigFile::load(&config_path)?;
        let profile_name = profile
            .or_else(|| file.default_profile.clone())
            .unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
        let (profile, profile_exists) = match file.profiles.get(&profile_name) {
            Some(profile) => (profile.clone(), true),
            None => (Profile::default(), false),
        };
        let journal_path = journal
            .or_else(|| file.journal.clone())
            .unwrap_or_else(default_journal_path);
        Ok(Self {
            config_path,
            file,
            profile_name,
            profile,
            profile_exists,
            journal_path,
        })
    }

    /// Batch concurrency: `flag_or_env` > config file > [`DEFAULT_JOBS`].
    pub fn jobs(&self, flag_or_env: Option<usize>) -> usize {
        flag_or_env
            .or(self.file.jobs)
            .unwrap_or(DEFAULT_JOBS)
            .max(1)
    }

    /// A network profile by name.
    pub fn network(&self, name: &str) -> Result<&NetworkProfile, CliError> {
        self.file.networks.get(name).ok_or_else(|| {
            CliError::config(format!(
                "no network profile {name:?} in {}; add a [networks.{name}] table with its ssid",
                self.config_path.display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_fill_what_flags_leave_unset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            r#"
default_profile = "acme"
jobs = 8
journal = "/var/lib/fieldlink/journal.sqlite3"

[profiles.acme]
api_url = "https://api.acme.example"
issuer_url = "https://login.acme.example"

[networks.site-a]
ssid = "acme-iot"
"#,
        )
        .unwrap();
        let settings = Settings::resolve(Some(path.clone()), None, None).unwrap();
        assert_eq!(settings.profile_name, "acme");
        assert!(settings.profile_exists);
        assert_eq!(
            settings.profile.api_url.as_deref(),
            Some("https://api.acme.example")
        );
        assert_eq!(settings.jobs(None), 8);
        assert_eq!(settings.jobs(Some(2)), 2, "flags win over the file");
        assert_eq!(
            settings.journal_path,
            PathBuf::from("/var/lib/fieldlink/journal.sqlite3")
        );
        assert_eq!(settings.network("site-a").unwrap().ssid, "acme-iot");
        assert_eq!(settings.network("nope").unwrap_err().exit.code(), 8);

        let flagged = Settings::resolve(
            Some(path),
            Some("other".into()),
            Some(PathBuf::from("/tmp/j.sqlite3")),
        )
        .unwrap();
        assert_eq!(flagged.profile_name, "other");
        assert!(!flagged.profile_exists);
        assert_eq!(flagged.journal_path, PathBuf::from("/tmp/j.sqlite3"));
    }

    #[test]
    fn a_missing_file_is_empty_and_a_bad_one_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Settings::resolve(Some(dir.path().join("none.toml")), None, None).unwrap();
        assert_eq!(missing.profile_name, DEFAULT_PROFILE);
        assert_eq!(missing.jobs(None), DEFAULT_JOBS);
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "unknown_key = 1\n").unwrap();
        let error = Settings::resolve(Some(bad), None, None).unwrap_err();
        assert_eq!(error.code, "config_error");
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("config.toml");
        let mut file = ConfigFile::default();
        file.profiles.insert(
            "sandbox".into(),
            Profile {
                sandbox: Some(PathBuf::from("/tmp/sandbox.json")),
                ..Profile::default()
            },
        );
        file.save(&path).unwrap();
        assert_eq!(ConfigFile::load(&path).unwrap(), file);
    }
}
