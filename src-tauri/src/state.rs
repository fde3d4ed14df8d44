//! The app's state, managed by Tauri: settings, the journal, the signed-in session, the active
//! profile's [`Site`] and the running [`Operations`].

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use fieldlink_core::{
    journal::{Installer, Journal},
    secrets::SecretStore,
};

use crate::{
    auth::AuthClients,
    dto::settings::{Profile, SessionInfo, Settings, SiteKind},
    error::{CommandError, ShellError},
    operations::Operations,
    site::Site,
};

/// Where the app keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatePaths {
    /// `settings.json`.
    pub settings: PathBuf,
    /// The commissioning journal (SQLite).
    pub journal: PathBuf,
    /// Where exports go.
    pub exports: PathBuf,
}

impl StatePaths {
    /// The standard layout: settings in `config_dir`, the journal in `data_dir`.
    pub fn new(config_dir: &Path, data_dir: &Path, exports: &Path) -> Self {
        Self {
            settings: config_dir.join("settings.json"),
            journal: data_dir.join("journal.sqlite"),
            exports: exports.to_path_buf(),
        }
    }
}

/// Everything the commands share.
pub struct DesktopState {
    paths: StatePaths,
    settings: Mutex<Settings>,
    journal: Arc<Journal>,
    session: Mutex<Option<SessionInfo>>,
    site: tokio::sync::Mutex<Option<Arc<Site>>>,
    operations: Operations,
    auth: AuthClients,
    browser: Mutex<Browser>,
}

/// Opens a URL in the system browser (the sign-in's authorization page).
pub type Browser = Arc<dyn Fn(String) -> Result<(), String> + Send + Sync>;

impl std::fmt::Debug for DesktopState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesktopState")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

fn file_error(path: &Path, error: impl std::fmt::Display) -> ShellError {
    ShellError::File {
        path: path.display().to_string(),
        detail: error.to_string(),
    }
}

/// The settings of a first start: the simulator, when this build has it.
pub fn first_start_settings() -> Settings {
    let mut settings = Settings::default();
    if cfg!(feature = "demo") {
        settings.profiles.push(Profile {
            name: "simulator".to_owned(),
            organisation: "Simulated site".to_owned(),
            site: SiteKind::Simulator,
            api_url: None,
            issuer: None,
            client_id: None,
            ca_file: None,
            sandbox_manifest: None,
        });
        settings.active_profile = Some("simulator".to_owned());
    }
    settings
}

impl DesktopState {
    /// Opens the settings (or starts from [`first_start_settings`]) and the journal; sign-in
    /// tokens go to `secrets` (the OS keyring in the app).
    pub fn open(paths: StatePaths, secrets: Arc<dyn SecretStore>) -> Result<Self, CommandError> {
        let settings = match std::fs::read(&paths.settings) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|error| ShellError::InvalidSetting {
                    field: "settings.json".to_owned(),
                    reason: format!("{} is unreadable: {error}", paths.settings.display()),
                })?
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => first_start_settings(),
            Err(error) => return Err(file_error(&paths.settings, error).into()),
        };
        let journal = Journal::open(&paths.journal)?;
        Ok(Self {
            paths,
            settings: Mutex::new(settings),
            journal: Arc::new(journal),
            session: Mutex::new(None),
            site: tokio::sync::Mutex::new(None),
            operations: Operations::default(),
            auth: AuthClients::new(secrets),
            browser: Mutex::new(Arc::new(|_| Err("no browser is configured".to_owned()))),
        })
    }

    /// The app's file locations.
    pub fn paths(&self) -> &StatePaths {
        &self.paths
    }

    /// The journal.
    pub fn journal(&self) -> Arc<Journal> {
        Arc::clone(&self.journal)
    }

    /// The running operations.
    pub fn operations(&self) -> &Operations {
        &self.operations
    }

    /// The current settings.
    pub fn settings(&self) -> Settings {
        self.settings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Validates and stores `settings`. Changing the active profile or the adapter closes the
    /// current site; changing the active profile also signs out.
    pub async fn save_settings(&self, settings: Settings) -> Result<(), CommandError> {
        crate::settings_check::validate(&settings)?;
        let bytes =
            serde_json::to_vec_pretty(&settings).map_err(|error| ShellError::InvalidSetting {
                field: "settings".to_owned(),
                reason: error.to_string(),
            })?;
        let path = &self.paths.settings;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| file_error(parent, error))?;
        }
        let staging = path.with_extension("json.new");
        std::fs::write(&staging, bytes).map_err(|error| file_error(&staging, error))?;
        std::fs::rename(&staging, path).map_err(|error| file_error(path, error))?;
        let previous = {
            let mut current = self.settings.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *current, settings.clone())
        };
        if previous.active() != settings.active() || previous.ble_adapter != settings.ble_adapter {
            *self.site.lock().await = None;
        }
        if previous.active_profile != settings.active_profile {
            self.set_session(None);
        }
        Ok(())
    }

    /// The active profile, or `not_configured`.
    pub fn active_profile(&self) -> Result<Profile, CommandError> {
        let settings = self.settings();
        settings.active().cloned().ok_or_else(|| {
            ShellError::NotConfigured {
                profile: settings.active_profile.clone().unwrap_or_default(),
                reason: "no profile is selected".to_owned(),
            }
            .into()
        })
    }

    /// The active profile's site, opened on first use.
    pub async fn site(&self) -> Result<Arc<Site>, CommandError> {
        let mut site = self.site.lock().await;
        if let Some(site) = site.as_ref() {
            return Ok(Arc::clone(site));
        }
        let profile = self.active_profile()?;
        let auth = self.auth.client(&profile)?;
        let opened = Arc::new(Site::open(&profile, self.settings().ble_adapter, auth).await?);
        *site = Some(Arc::clone(&opened));
        Ok(opened)
    }

    /// The sign-in clients.
    pub fn auth(&self) -> &AuthClients {
        &self.auth
    }

    /// How URLs are opened in the system browser.
    pub fn browser(&self) -> Browser {
        Arc::clone(&self.browser.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Sets how URLs are opened (the app: Tauri's opener plugin; tests: a scripted browser).
    pub fn set_browser(&self, browser: Browser) {
        *self.browser.lock().unwrap_or_else(PoisonError::into_inner) = browser;
    }

    /// Replaces the site (tests).
    pub async fn install_site(&self, site: Site) {
        *self.site.lock().await = Some(Arc::new(site));
    }

    /// The signed-in session.
    pub fn session(&self) -> Option<SessionInfo> {
        self.session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sets or clears the session.
    pub fn set_session(&self, session: Option<SessionInfo>) {
        *self.session.lock().unwrap_or_else(PoisonError::into_inner) = session;
    }

    /// Who the journal records: the signed-in identity, or `local:<user>`.
    pub fn installer(&self) -> Installer {
        let session = self.session();
        let profile = session
            .as_ref()
            .map(|session| session.profile.clone())
            .or_else(|| self.settings().active_profile)
            .unwrap_or_default();
        let identity = session
            .map(|session| session.identity)
            .unwrap_or_else(local_identity);
        Installer { identity, profile }
    }
}

/// `local:<user>`, the journal's identity before sign-in.
pub fn local_identity() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "installer".to_owned());
    format!("local:{user}")
}
