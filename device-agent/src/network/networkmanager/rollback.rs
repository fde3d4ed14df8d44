//! Rollback: back to the proven profile (or the one the device ran before fieldlink touched it),
//! and away with every unproven `fieldlink:` profile.

use tokio::time::Instant;
use zbus::zvariant::OwnedObjectPath;

use super::{NetworkManagerConfigurator, Waited, refused};
use crate::network::{JoinFailure, NetworkError};
use crate::store::StoredNetwork;

/// One stored profile, as far as matching goes.
#[derive(Debug)]
struct Profile {
    path: OwnedObjectPath,
    kind: String,
    ssid: Option<Vec<u8>>,
    apn: Option<String>,
    owned: bool,
}

impl NetworkManagerConfigurator {
    /// Back to `previous` (see the module docs): activates its profile, deletes every other
    /// `fieldlink:` profile.
    pub(super) async fn restore_to(
        &self,
        previous: Option<&StoredNetwork>,
    ) -> Result<(), NetworkError> {
        let remembered = self.remembered.lock().await;
        let profiles = self.profiles().await?;
        let displaced = remembered.displaced.as_ref();
        let target = match previous {
            Some(StoredNetwork::Wifi {
                ssid, passphrase, ..
            }) => {
                self.wifi_profile(&profiles, ssid, passphrase.expose(), displaced)
                    .await
            }
            Some(StoredNetwork::Cellular { apn }) => profiles
                .iter()
                .find(|p| p.kind == "gsm" && p.apn.as_deref() == Some(apn.as_str()))
                .map(|p| p.path.clone()),
            // Nothing proven yet: back to what the device ran before, unless that was one of
            // ours (an unproven candidate).
            None => displaced
                .filter(|path| profiles.iter().any(|p| &&p.path == path && !p.owned))
                .cloned(),
        };
        for profile in profiles
            .iter()
            .filter(|p| p.owned && Some(&p.path) != target.as_ref())
        {
            tracing::info!(profile = %profile.path, "deleting an unproven fieldlink profile");
            self.delete(&profile.path).await;
        }
        let kind = target
            .as_ref()
            .and_then(|t| profiles.iter().find(|p| &p.path == t))
            .map(|p| p.kind.as_str());
        let device = match (previous, kind) {
            (Some(StoredNetwork::Cellular { .. }), _) | (None, Some("gsm")) => self.modem.clone(),
            (None, Some("802-3-ethernet")) => self.ethernet.clone(),
            _ => self.wifi.clone(),
        };
        let result = match (target, previous, device) {
            (Some(profile), _, Some(device)) => self.bring_up(&profile, &device).await,
            // The proven profile is gone (deleted by hand?): add it again. A failure keeps it,
            // so NetworkManager reconnects when the network comes back.
            (None, Some(config), Some(device)) => self.recreate(config, &device).await,
            _ => Ok(()),
        };
        drop(remembered);
        self.refresh_capabilities().await;
        result
    }

    async fn profiles(&self) -> Result<Vec<Profile>, NetworkError> {
        let paths = self
            .bus
            .connections()
            .await
            .map_err(|error| NetworkError(error.to_string()))?;
        let mut profiles = Vec::with_capacity(paths.len());
        for path in paths {
            let Ok(settings) = self.bus.settings(&path).await else {
                continue;
            };
            let field = |setting: &str, key: &str| settings.get(setting).and_then(|s| s.get(key));
            let text = |setting: &str, key: &str| {
                field(setting, key)
                    .and_then(|v| v.try_clone().ok())
                    .and_then(|v| String::try_from(v).ok())
            };
            let id = text("connection", "id").unwrap_or_default();
            profiles.push(Profile {
                owned: self.owns(&id),
                kind: text("connection", "type").unwrap_or_default(),
                ssid: field("802-11-wireless", "ssid")
                    .and_then(|v| v.try_clone().ok())
                    .and_then(|v| Vec::<u8>::try_from(v).ok()),
                apn: text("gsm", "apn"),
                path,
            });
        }
        Ok(profiles)
    }

    /// The stored profile for the proven Wi-Fi config: same SSID and, where the secrets can be
    /// read, the same passphrase; the one the device ran before the join wins a tie.
    async fn wifi_profile(
        &self,
        profiles: &[Profile],
        ssid: &str,
        passphrase: &str,
        displaced: Option<&OwnedObjectPath>,
    ) -> Option<OwnedObjectPath> {
        let mut exact = Vec::new();
        let mut unverified = Vec::new();
        for profile in profiles
            .iter()
            .filter(|p| p.kind == "802-11-wireless" && p.ssid.as_deref() == Some(ssid.as_bytes()))
        {
            match self
                .bus
                .secrets(&profile.path, "802-11-wireless-security")
                .await
            {
                Ok(secrets) => {
                    let psk = secrets
                        .get("802-11-wireless-security")
                        .and_then(|s| s.get("psk"))
                        .and_then(|v| v.try_clone().ok())
                        .and_then(|v| String::try_from(v).ok())
                        .unwrap_or_default();
                    if psk == passphrase {
                        exact.push(&profile.path);
                    }
                }
                // Open networks have no security setting; without permission to read secrets
                // the SSID has to do.
                Err(_) => unverified.push(&profile.path),
            }
        }
        let pick = |list: &[&OwnedObjectPath]| {
            list.iter()
                .find(|path| Some(**path) == displaced)
                .or_else(|| list.first())
                .map(|path| (*path).clone())
        };
        pick(&exact).or_else(|| pick(&unverified))
    }

    /// Makes sure `profile` runs on `device`.
    async fn bring_up(&self, profile: &OwnedObjectPath, device: &str) -> Result<(), NetworkError> {
        if self.running_profile(device).await.as_ref() == Some(profile) {
            return Ok(());
        }
        let signals = self.bus.device_state_changes(device).await.ok();
        let active = self
            .bus
            .activate(profile, device)
            .await
            .map_err(|error| NetworkError(error.to_string()))?;
        let until = Instant::now() + self.config.activation_timeout;
        match self
            .follow(device, &active, signals, until, &mut |_| {})
            .await
        {
            (_, Waited::Activated) => Ok(()),
            (tracker, Waited::Failed) => Err(NetworkError(format!(
                "reactivating the previous network failed: {}",
                tracker.failure("previous network")
            ))),
            (_, Waited::TimedOut) => Err(NetworkError(
                "reactivating the previous network timed out".into(),
            )),
        }
    }

    /// Adds and activates a proven config again (no DPS probe; the profile is kept on failure).
    async fn recreate(&self, config: &StoredNetwork, device: &str) -> Result<(), NetworkError> {
        let failed = |failure: JoinFailure| {
            NetworkError(format!("re-adding the proven network failed: {failure}"))
        };
        let (_, settings, specific, name) = self.plan(config).await.map_err(failed)?;
        let signals = self.bus.device_state_changes(device).await.ok();
        let (_, active) = self
            .bus
            .add_and_activate(&settings, device, &specific)
            .await
            .map_err(|error| failed(refused(&error, &name)))?;
        let until = Instant::now() + self.config.activation_timeout;
        match self
            .follow(device, &active, signals, until, &mut |_| {})
            .await
        {
            (_, Waited::Activated) => Ok(()),
            (tracker, Waited::Failed) => Err(failed(tracker.failure(&name))),
            (tracker, Waited::TimedOut) => Err(failed(JoinFailure::Timeout {
                last_stage: tracker.last_stage(),
            })),
        }
    }
}
