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
        Some(api) => (Some(api.url.clone()), real_issuer(&api.issuer)),
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

/// The manifest's issuer, unless it is the sandbox's auto-approved stand-in: tokens minted
/// inside the sandbox under a name in the reserved `.invalid` domain (RFC 2606), which nothing
/// outside can sign in to. Such a sandbox serves tickets and status through its fleet bridge and
/// needs no sign-in, as `fieldlink --sandbox` does.
pub fn real_issuer(issuer: &str) -> Option<String> {
    let host = url::Url::parse(issuer)
        .ok()?
        .host_str()?
        .to_ascii_lowercase();
    let reserved = host == "invalid" || host.ends_with(".invalid");
    (!reserved).then(|| issuer.to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_stand_in_issuer_is_no_issuer() {
        assert_eq!(
            real_issuer("https://issuer.sandbox.fieldlink.invalid"),
            None
        );
        assert_eq!(real_issuer("not a url"), None);
        assert_eq!(
            real_issuer("https://127.0.0.1:8443").as_deref(),
            Some("https://127.0.0.1:8443")
        );
    }
}
