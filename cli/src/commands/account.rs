//! `login`, `logout`, `whoami`, `profile`.

use std::path::Path;

use serde_json::json;

use super::Context;
use crate::{
    args::{LoginArgs, ProfileAddArgs, ProfileCommand},
    auth,
    config::Profile,
    exit::{CliError, Exit},
    manifest::Manifest,
};

/// Runs `login`.
pub async fn login(_args: LoginArgs, context: &Context) -> Result<Exit, CliError> {
    let settings = context.settings()?;
    let session = auth::login(&settings, &context.output).await?;
    context.output.line(format!(
        "signed in as {} (profile {})",
        session
            .identity
            .name
            .as_deref()
            .unwrap_or(&session.identity.subject),
        settings.profile_name
    ));
    context.output.result(
        "login",
        Exit::Success,
        json!({"profile": settings.profile_name, "session": session}),
    );
    Ok(Exit::Success)
}

/// Runs `logout`.
pub async fn logout(context: &Context) -> Result<Exit, CliError> {
    let settings = context.settings()?;
    let report = auth::logout(&settings).await?;
    context.output.line(if report.was_signed_in {
        format!(
            "signed out of profile {}{}",
            settings.profile_name,
            if report.revoked {
                " (tokens revoked)"
            } else {
                " (tokens forgotten locally)"
            }
        )
    } else {
        format!(
            "not signed in to profile {}; nothing to forget",
            settings.profile_name
        )
    });
    context.output.result(
        "logout",
        Exit::Success,
        json!({
            "profile": settings.profile_name,
            "was_signed_in": report.was_signed_in,
            "revoked": report.revoked,
            "revocation_note": report.revocation_note,
        }),
    );
    Ok(Exit::Success)
}

/// Runs `whoami`.
pub async fn whoami(context: &Context) -> Result<Exit, CliError> {
    let settings = context.settings()?;
    let session = auth::session(&settings).await;
    let identity = auth::identity(&settings).await;
    let output = &context.output;
    output.line(format!(
        "profile:   {}{}",
        settings.profile_name,
        if settings.profile_exists {
            ""
        } else {
            " (not configured)"
        }
    ));
    output.line(format!("installer: {identity}"));
    output.line(format!(
        "signed in: {}",
        match &session {
            Some(session) => format!(
                "yes, as {}{}",
                session.identity.subject,
                session
                    .identity
                    .tenant
                    .as_deref()
                    .map(|t| format!(" (tenant {t})"))
                    .unwrap_or_default()
            ),
            None => "no".to_owned(),
        }
    ));
    if let Some(api) = &settings.profile.api_url {
        output.line(format!("api:       {api}"));
    }
    if let Some(sandbox) = &settings.profile.sandbox {
        output.line(format!("sandbox:   {}", sandbox.display()));
    }
    if let Some(radio) = &settings.profile.fleet_radio {
        output.line(format!(
            "radio:     the memory fleet of {}",
            radio.display()
        ));
    }
    output.line(format!("journal:   {}", settings.journal_path.display()));
    output.result(
        "whoami",
        Exit::Success,
        json!({
            "profile": settings.profile_name,
            "profile_configured": settings.profile_exists,
            "installer": identity,
            "signed_in": session,
            "journal": settings.journal_path,
        }),
    );
    Ok(Exit::Success)
}

/// Runs `profile ...`.
pub fn profile(command: ProfileCommand, context: &Context) -> Result<Exit, CliError> {
    let settings = context.settings()?;
    let mut file = settings.file.clone();
    let output = &context.output;
    match command {
        ProfileCommand::List => {
            for (name, profile) in &file.profiles {
                let marker = if *name == settings.profile_name {
                    "*"
                } else {
                    " "
                };
                let place = profile
                    .api_url
                    .clone()
                    .or_else(|| {
                        profile
                            .sandbox
                            .as_ref()
                            .map(|s| format!("sandbox {}", s.display()))
                    })
                    .unwrap_or_else(|| "-".into());
                output.line(format!("{marker} {name:<16} {place}"));
            }
            if file.profiles.is_empty() {
                output.info(format!(
                    "no profiles in {}; add one with `fieldlink profile add NAME --api-url URL`",
                    settings.config_path.display()
                ));
            }
            output.result(
                "profile",
                Exit::Success,
                json!({"active": settings.profile_name, "profiles": file.profiles}),
            );
        }
        ProfileCommand::Show { name } => {
            let name = name.unwrap_or_else(|| settings.profile_name.clone());
            let profile = file.profiles.get(&name).ok_or_else(|| unknown(&name))?;
            let text = toml::to_string_pretty(profile)
                .map_err(|error| CliError::internal(error.to_string()))?;
            output.line(format!("[profiles.{name}]\n{}", text.trim_end()));
            output.result(
                "profile",
                Exit::Success,
                json!({"name": name, "profile": profile}),
            );
        }
        ProfileCommand::Add(args) => {
            let name = args.name.clone();
            let make_default = args.default;
            let base = file.profiles.remove(&name).unwrap_or_default();
            let base = match &args.from_sandbox {
                Some(path) => from_sandbox(base, path)?,
                None => base,
            };
            let profile = merge(base, *args);
            file.profiles.insert(name.clone(), profile);
            if make_default || file.default_profile.is_none() {
                file.default_profile = Some(name.clone());
            }
            file.save(&settings.config_path)?;
            output.info(format!(
                "profile {name} saved in {}",
                settings.config_path.display()
            ));
            output.result(
                "profile",
                Exit::Success,
                json!({"name": name, "saved": settings.config_path}),
            );
        }
        ProfileCommand::Use { name } => {
            if !file.profiles.contains_key(&name) {
                return Err(unknown(&name));
            }
            file.default_profile = Some(name.clone());
            file.save(&settings.config_path)?;
            output.info(format!("default profile: {name}"));
            output.result("profile", Exit::Success, json!({"default": name}));
        }
        ProfileCommand::Remove { name } => {
            if file.profiles.remove(&name).is_none() {
                return Err(unknown(&name));
            }
            if file.default_profile.as_deref() == Some(name.as_str()) {
                file.default_profile = None;
            }
            file.save(&settings.config_path)?;
            output.info(format!("profile {name} removed"));
            output.result("profile", Exit::Success, json!({"removed": name}));
        }
    }
    Ok(Exit::Success)
}

/// `profile` with the API URL, issuer URL, CLI client id and CA file of the sandbox whose
/// manifest is at `path`: a profile that signs in to the sandbox like a real organisation.
fn from_sandbox(mut profile: Profile, path: &Path) -> Result<Profile, CliError> {
    let manifest = Manifest::load(path)?;
    let (Some(api), Some(issuer)) = (&manifest.api, &manifest.issuer) else {
        return Err(CliError::config(format!(
            "the sandbox of {} runs no provisioning API or issuer (started with \
             --local-signer?): use it with `--sandbox {}` instead",
            path.display(),
            path.display()
        )));
    };
    let client = issuer.client_for("device_code").ok_or_else(|| {
        CliError::config(format!(
            "the sandbox issuer of {} registers no device-code client",
            path.display()
        ))
    })?;
    profile.api_url = Some(api.url.clone());
    profile.issuer_url = Some(issuer.url.clone());
    profile.client_id = Some(client.client_id.clone());
    profile.ca_file = Some(manifest.ca_cert.clone());
    match &manifest.bluez {
        // A BlueZ fleet is real Bluetooth: its installer adapter (the bench's bus comes from
        // `DBUS_SYSTEM_BUS_ADDRESS`, see the sandbox's hint).
        Some(bluez) => {
            profile.fleet_radio = None;
            profile.adapter = Some(bluez.installer_adapter.clone());
        }
        None => {
            profile.fleet_radio =
                Some(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
        }
    }
    profile.sandbox = None;
    profile.allow_insecure_loopback = false;
    Ok(profile)
}

fn merge(mut profile: Profile, args: ProfileAddArgs) -> Profile {
    if args.api_url.is_some() {
        profile.api_url = args.api_url;
    }
    if args.issuer_url.is_some() {
        profile.issuer_url = args.issuer_url;
    }
    if let Some(ca) = args.ca_file {
        profile.ca_file = Some(std::path::absolute(&ca).unwrap_or(ca));
    }
    if let Some(sandbox) = args.sandbox {
        profile.sandbox = Some(std::path::absolute(&sandbox).unwrap_or(sandbox));
    }
    if args.adapter.is_some() {
        // A Bluetooth adapter means real Bluetooth, not a sandbox's memory radio.
        profile.fleet_radio = None;
        profile.adapter = args.adapter;
    }
    if args.network.is_some() {
        profile.network = args.network;
    }
    if args.client_id.is_some() {
        profile.client_id = args.client_id;
    }
    if !args.scopes.is_empty() {
        profile.scopes = Some(args.scopes);
    }
    if args.allow_insecure_loopback {
        profile.allow_insecure_loopback = true;
    }
    profile
}

fn unknown(name: &str) -> CliError {
    CliError::config(format!(
        "no profile {name:?}; list them with `fieldlink profile list`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(bluez: &str) -> String {
        format!(
            r#"{{"schema": 2, "pid": 1, "started_at": "x",
            "fleet": {{"address": "127.0.0.1:1", "token": "t"}},
            "api": {{"url": "https://127.0.0.1:2", "issuer": "https://127.0.0.1:3"}},
            "issuer": {{"url": "https://127.0.0.1:3", "audience": "a", "auto_approve": false,
                "clients": [{{"client_id": "fieldlink-cli", "grant": "device_code",
                             "redirect_uris": []}}]}},
            "dps": {{"global_endpoint": "https://localhost:4", "instances": []}},
            "ca_cert": "/tmp/sandbox/ca.pem", "users": [], "devices": []{bluez}}}"#
        )
    }

    #[test]
    fn a_profile_from_a_sandbox_takes_its_services_and_its_radio() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        std::fs::write(&path, manifest("")).unwrap();
        let stale = Profile {
            sandbox: Some("/old.json".into()),
            allow_insecure_loopback: true,
            ..Profile::default()
        };
        let profile = from_sandbox(stale, &path).unwrap();
        assert_eq!(profile.api_url.as_deref(), Some("https://127.0.0.1:2"));
        assert_eq!(profile.issuer_url.as_deref(), Some("https://127.0.0.1:3"));
        assert_eq!(profile.client_id.as_deref(), Some("fieldlink-cli"));
        assert_eq!(profile.ca_file, Some("/tmp/sandbox/ca.pem".into()));
        assert_eq!(profile.fleet_radio.as_deref(), Some(path.as_path()));
        assert_eq!(profile.sandbox, None);
        assert!(!profile.allow_insecure_loopback);

        std::fs::write(
            &path,
            manifest(
                r#", "bluez": {"bus_address": null, "bench": false, "installer_adapter": "hci1",
                   "spare_installer_adapters": [], "devices": []}"#,
            ),
        )
        .unwrap();
        let profile = from_sandbox(Profile::default(), &path).unwrap();
        assert_eq!(profile.fleet_radio, None, "a BlueZ fleet is real Bluetooth");
        assert_eq!(profile.adapter.as_deref(), Some("hci1"));

        std::fs::write(
            &path,
            manifest("").replace(
                r#""api": {"url": "https://127.0.0.1:2", "issuer": "https://127.0.0.1:3"},"#,
                r#""api": null,"#,
            ),
        )
        .unwrap();
        let error = from_sandbox(Profile::default(), &path).unwrap_err();
        assert!(
            error.message.contains("--local-signer"),
            "{}",
            error.message
        );
    }
}
