//! The provisioning API server.
//!
//! ```text
//! provisioning-api --config api.json      # or FIELDLINK_API_CONFIG=api.json
//! provisioning-api --openapi              # print the OpenAPI document and exit
//! provisioning-api gen-secrets-key FILE   # create a secrets key file (mode 0600)
//! ```
//!
//! It refuses to start without a secrets key (`secrets_key_file` or
//! `FIELDLINK_API_SECRETS_KEY`): the database's secrets are sealed with it.
//!
//! With `tls: {cert_file, key_file}` in the configuration it serves HTTPS; without it, plain
//! HTTP on a loopback `listen` address only (any other address is refused at start).

use std::{path::PathBuf, process::ExitCode};

use fieldlink_provisioning_api::{
    ProvisioningApi,
    http::openapi::ApiDoc,
    issuer::{Issuer, IssuerConfig},
    settings::{FileConfig, SettingsError, write_new_secrets_key_file},
};
use tracing_subscriber::EnvFilter;
use utoipa::OpenApi;

const USAGE: &str = "usage: provisioning-api [--config FILE] | --openapi | gen-secrets-key FILE\n\
    The configuration file may also come from FIELDLINK_API_CONFIG; see docs/provisioning-api.md.";

enum Command {
    Serve(PathBuf),
    OpenApi,
    GenSecretsKey(PathBuf),
}

fn command() -> Result<Command, String> {
    let mut args = std::env::args().skip(1);
    let mut config = std::env::var_os("FIELDLINK_API_CONFIG").map(PathBuf::from);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => config = Some(args.next().ok_or("--config needs a file")?.into()),
            "--openapi" => return Ok(Command::OpenApi),
            "gen-secrets-key" => {
                let file = args.next().ok_or("gen-secrets-key needs a FILE")?;
                return Ok(Command::GenSecretsKey(file.into()));
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    config
        .map(Command::Serve)
        .ok_or_else(|| format!("no configuration file\n{USAGE}"))
}

/// The message, led by its stable code.
fn coded(error: SettingsError) -> String {
    let message = error.to_string();
    if message.starts_with(error.code()) {
        message
    } else {
        format!("{}: {message}", error.code())
    }
}

fn gen_secrets_key(path: PathBuf) -> Result<(), String> {
    let key = write_new_secrets_key_file(&path).map_err(coded)?;
    #[allow(clippy::print_stdout)]
    {
        println!(
            "wrote a new secrets key (id {}) to {} (mode 0600); set \"secrets_key_file\": {:?} \
             in the API configuration and back the file up apart from the database",
            key.id(),
            path.display(),
            path.display().to_string()
        );
    }
    Ok(())
}

async fn serve(path: PathBuf) -> Result<(), String> {
    let file = FileConfig::load(&path).map_err(coded)?;
    // Before anything else: no key, no start (the store is persistent).
    let secrets = file.require_secrets_keyring().map_err(coded)?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if file.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let storage = file.open_storage_sealed(secrets).await.map_err(coded)?;
    let issuers = file.trusted_issuers().await.map_err(|e| e.to_string())?;
    if issuers.is_empty() && file.sandbox_issuer.is_none() {
        tracing::warn!("no trusted issuers configured: every authenticated request will be 401");
    }
    let mut builder = ProvisioningApi::builder(file.api_config(issuers), storage)
        .dps_client(file.dps_client().map_err(|e| e.to_string())?);
    if let Some(path) = &file.sandbox_issuer {
        let config = IssuerConfig::from_file(path).map_err(|e| e.to_string())?;
        builder = builder.issuer(Issuer::new(config).map_err(|e| e.to_string())?);
    }
    let api = builder.build().await.map_err(|e| e.to_string())?;
    let running = match &file.tls {
        Some(tls) => {
            let config = tls.rustls_config().map_err(|e| e.to_string())?;
            api.bind_tls(file.listen, config)
                .await
                .map_err(|e| e.to_string())?
        }
        None => {
            // `FileConfig::load` refused a non-loopback address without TLS.
            tracing::warn!(
                addr = %file.listen,
                "no tls configured: serving plain HTTP on loopback only (local development, or \
                 behind a TLS-terminating proxy on this host)"
            );
            api.bind(file.listen).await.map_err(|e| e.to_string())?
        }
    };
    tracing::info!(url = %running.base_url(), "provisioning API listening");
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    tracing::info!("shutting down");
    running.shutdown().await.map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match command() {
        Ok(Command::OpenApi) => ApiDoc::openapi()
            .to_pretty_json()
            .map(|json| {
                #[allow(clippy::print_stdout)]
                {
                    println!("{json}");
                }
            })
            .map_err(|e| e.to_string()),
        Ok(Command::Serve(path)) => serve(path).await,
        Ok(Command::GenSecretsKey(path)) => gen_secrets_key(path),
        Err(message) => Err(message),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("provisioning-api: {message}");
            ExitCode::FAILURE
        }
    }
}
