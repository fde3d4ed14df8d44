//! `fieldlink sandbox up` manifests as profiles (feature `sandbox`).

use crate::{
    dto::settings::{Profile, SiteKind},
    error::CommandError,
};

/// The profile name a sandbox gets.
pub const SANDBOX_PROFILE: &str = "sandbox";

/// The profile for the sandbox whose manifest is at `path`.
#[cfg(feature = "sandbox")]
pub fn profile_from_manifest(path: &str) -> Result<Profile, CommandError> {
    use fieldlink_cli::manifest::Manifest;
    let absolute = std::path::absolute(path).map_err(|error| crate::error::ShellError::File {
        path: path.to_owned(),
        detail: error.to_string(),
    })?;
    let manifest = Manifest::load(&absolute).map_err(|error| CommandError {
        code: error.code,
        message: error.message,
        retryable: false,
        details: error.details,
    })?;
    let (api_url, issuer) = match &manifest.api {
        Some(api) => (Some(api.url.clone()), Some(api.issuer.clone())),
        None => (None, None),
    };
    Ok(Profile {
        name: SANDBOX_PROFILE.to_owned(),
        organisation: format!("fieldlink sandbox ({} devices)", manifest.devices.len()),
        site: SiteKind::Sandbox,
        api_url,
        issuer,
        client_id: None,
        ca_file: Some(manifest.ca_cert.display().to_string()),
        sandbox_manifest: Some(absolute.display().to_string()),
    })
}

/// Without the `sandbox` feature: says how to get it.
#[cfg(not(feature = "sandbox"))]
pub fn profile_from_manifest(path: &str) -> Result<Profile, CommandError> {
    let _ = (path, SiteKind::Sandbox);
    Err(crate::error::ShellError::NotConfigured {
        profile: SANDBOX_PROFILE.to_owned(),
        reason: "this build cannot open sandbox manifests (build with `--features sandbox`)"
            .to_owned(),
    }
    .into())
}
