//! Validation of the Settings screen's input, field by field.

use std::{collections::HashSet, net::IpAddr};

use url::Url;

use crate::{dto::settings::Settings, error::ShellError};

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ShellError {
    ShellError::InvalidSetting {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Whether `host` is a loopback name or address.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An API or issuer URL: `https://`, or `http://` to loopback only.
fn check_url(field: &str, text: &str) -> Result<(), ShellError> {
    let url = Url::parse(text).map_err(|error| invalid(field, format!("{text:?}: {error}")))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if url.host_str().is_some_and(is_loopback) => Ok(()),
        "http" => Err(invalid(
            field,
            "plain http is allowed only to this machine (localhost); use https",
        )),
        other => Err(invalid(field, format!("unsupported scheme {other:?}"))),
    }
}

/// Checks every field of `settings`.
pub fn validate(settings: &Settings) -> Result<(), ShellError> {
    let mut names = HashSet::new();
    for (index, profile) in settings.profiles.iter().enumerate() {
        let field = |name: &str| format!("profiles[{index}].{name}");
        if profile.name.trim().is_empty() {
            return Err(invalid(field("name"), "a profile needs a name"));
        }
        if !names.insert(profile.name.as_str()) {
            return Err(invalid(
                field("name"),
                format!("two profiles are called {:?}", profile.name),
            ));
        }
        if let Some(url) = &profile.api_url {
            check_url(&field("api_url"), url)?;
        }
        if let Some(url) = &profile.issuer {
            check_url(&field("issuer"), url)?;
        }
        if let Some(path) = &profile.ca_file
            && !std::path::Path::new(path).is_file()
        {
            return Err(invalid(field("ca_file"), format!("{path} is not a file")));
        }
    }
    if let Some(active) = &settings.active_profile
        && !names.contains(active.as_str())
    {
        return Err(invalid(
            "active_profile",
            format!("there is no profile called {active:?}"),
        ));
    }
    if !(1..=32).contains(&settings.batch_concurrency) {
        return Err(invalid("batch_concurrency", "choose between 1 and 32"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto::settings::{Profile, SiteKind};

    fn profile(name: &str, api_url: Option<&str>) -> Profile {
        Profile {
            name: name.into(),
            organisation: "Acme".into(),
            site: SiteKind::Bluetooth,
            api_url: api_url.map(Into::into),
            issuer: None,
            client_id: None,
            ca_file: None,
            sandbox_manifest: None,
        }
    }

    fn with(profiles: Vec<Profile>) -> Settings {
        Settings {
            profiles,
            ..Settings::default()
        }
    }

    #[test]
    fn accepts_https_and_loopback_http() {
        let settings = with(vec![
            profile("a", Some("https://api.example.com")),
            profile("b", Some("http://127.0.0.1:8443")),
            profile("c", Some("http://localhost:1")),
            profile("d", Some("http://[::1]:80")),
        ]);
        validate(&settings).unwrap();
    }

    #[test]
    fn refuses_remote_http_duplicates_and_dangling_choices() {
        let remote = with(vec![profile("a", Some("http://api.example.com"))]);
        assert!(validate(&remote).unwrap_err().to_string().contains("https"));
        let twice = with(vec![profile("a", None), profile("a", None)]);
        assert!(
            validate(&twice)
                .unwrap_err()
                .to_string()
                .contains("two profiles")
        );
        let mut dangling = with(vec![profile("a", None)]);
        dangling.active_profile = Some("b".into());
        assert!(validate(&dangling).is_err());
        let mut zero = with(vec![]);
        zero.batch_concurrency = 0;
        assert!(validate(&zero).is_err());
        let mut missing_ca = with(vec![profile("a", None)]);
        missing_ca.profiles[0].ca_file = Some("/nonexistent/ca.pem".into());
        assert!(
            validate(&missing_ca)
                .unwrap_err()
                .to_string()
                .contains("ca_file")
        );
    }
}
