//! Where the provisioning API is and how patiently to talk to it: base URL, TLS trust,
//! deadlines, retries and the circuit breaker.

use std::{net::IpAddr, time::Duration};

use url::Url;

use super::breaker::BreakerConfig;
use crate::retry::RetryPolicy;

/// How to reach the provisioning API.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiClientConfig {
    /// Base URL, e.g. `https://api.acme.example` (a path prefix such as `/fieldlink` is kept).
    pub base_url: String,
    /// CA certificates (PEM, one or more) trusted in addition to the system roots: a private
    /// CA of the site or a sandbox.
    pub extra_ca_pem: Option<String>,
    /// Allows `http://` when, and only when, the host is a loopback address or `localhost`
    /// (local sandboxes and tests). Any other `http://` URL is refused.
    pub allow_insecure_loopback: bool,
    /// Deadline of one HTTP exchange (connect, TLS, request, whole answer).
    pub request_timeout: Duration,
    /// Deadline of the TCP connect and TLS handshake alone.
    pub connect_timeout: Duration,
    /// Retries with exponential backoff and full jitter; `deadline` is the overall budget of
    /// one call (all attempts and waits, `Retry-After` included).
    pub retry: RetryPolicy,
    /// When to stop calling an API that keeps failing.
    pub breaker: BreakerConfig,
    /// How long the `Idempotency-Key` of an unfinished assignment attempt is reused by
    /// [`AssignmentSource`](crate::assignment::AssignmentSource) calls for the same device.
    /// Keep it well below the API's own idempotency TTL (24 h by default).
    pub attempt_key_ttl: Duration,
}

impl std::fmt::Debug for ApiClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClientConfig")
            .field("base_url", &self.base_url)
            .field("extra_ca_pem", &self.extra_ca_pem.as_ref().map(|_| "<pem>"))
            .field("allow_insecure_loopback", &self.allow_insecure_loopback)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("attempt_key_ttl", &self.attempt_key_ttl)
            .finish()
    }
}

impl ApiClientConfig {
    /// Defaults for `base_url`: 10 s per request, 5 s to connect, up to 4 attempts within
    /// 30 s (backoff from 250 ms, capped at 5 s), a breaker that opens after 5 consecutive
    /// failures for 15 s, attempt keys reused for 10 minutes.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            extra_ca_pem: None,
            allow_insecure_loopback: false,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy {
                initial_delay: Duration::from_millis(250),
                max_delay: Duration::from_secs(5),
                max_attempts: 4,
                deadline: Duration::from_secs(30),
            },
            breaker: BreakerConfig::default(),
            attempt_key_ttl: Duration::from_secs(600),
        }
    }

    /// Also trusts the CA certificate(s) in `pem`.
    pub fn with_ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.extra_ca_pem = Some(pem.into());
        self
    }

    /// Allows plain `http://` to a loopback host (sandboxes and tests only).
    pub fn allowing_insecure_loopback(mut self) -> Self {
        self.allow_insecure_loopback = true;
        self
    }

    /// Checks the URL against the transport rules and returns it normalised (path ending in
    /// `/`, so endpoint paths join under any prefix).
    pub fn checked_base_url(&self) -> Result<Url, ConfigError> {
        let mut url =
            Url::parse(self.base_url.trim()).map_err(|error| ConfigError::InvalidUrl {
                detail: error.to_string(),
            })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::CredentialsInUrl);
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::InvalidUrl {
                detail: "the base URL must not have a query or fragment".to_owned(),
            });
        }
        let host = url
            .host_str()
            .map(str::to_owned)
            .ok_or_else(|| ConfigError::InvalidUrl {
                detail: "the base URL has no host".to_owned(),
            })?;
        match url.scheme() {
            "https" => {}
            "http" if !self.allow_insecure_loopback => {
                return Err(ConfigError::InsecureUrl { host });
            }
            "http" if !is_loopback_host(&host) => {
                return Err(ConfigError::InsecureNotLoopback { host });
            }
            "http" => {}
            other => {
                return Err(ConfigError::UnsupportedScheme {
                    scheme: other.to_owned(),
                });
            }
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(url)
    }
}

/// `localhost`, or a literal loopback address (`127.0.0.0/8`, `::1`).
pub(crate) fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    literal.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Why a client could not be built (a setup problem, not a commissioning failure).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The base URL does not parse or has no host.
    #[error("invalid provisioning API URL: {detail}")]
    InvalidUrl {
        /// What is wrong.
        detail: String,
    },
    /// The base URL embeds a user name or password.
    #[error(
        "the provisioning API URL must not contain credentials; sign in instead of putting them \
         in the URL"
    )]
    CredentialsInUrl,
    /// `http://` without `allow_insecure_loopback`.
    #[error(
        "refusing plain HTTP to {host}: use an https:// URL (plain HTTP is allowed only for a \
         loopback sandbox, and only when explicitly enabled)"
    )]
    InsecureUrl {
        /// The host named.
        host: String,
    },
    /// `http://` to a host that is not loopback, even with `allow_insecure_loopback`.
    #[error("refusing plain HTTP to {host}: it is not a loopback address; use an https:// URL")]
    InsecureNotLoopback {
        /// The host named.
        host: String,
    },
    /// Neither `https` nor `http`.
    #[error("unsupported URL scheme {scheme:?}: use https://")]
    UnsupportedScheme {
        /// The scheme given.
        scheme: String,
    },
    /// The extra CA PEM holds no usable certificate.
    #[error("the CA certificate file is not usable: {detail}")]
    InvalidCaPem {
        /// What is wrong.
        detail: String,
    },
    /// The HTTP stack refused the configuration.
    #[error("cannot set up the HTTP client: {detail}")]
    HttpClient {
        /// What the HTTP stack said.
        detail: String,
    },
}

impl ConfigError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::InvalidUrl { .. } => "invalid_api_url",
            ConfigError::CredentialsInUrl => "credentials_in_api_url",
            ConfigError::InsecureUrl { .. } | ConfigError::InsecureNotLoopback { .. } => {
                "insecure_api_url"
            }
            ConfigError::UnsupportedScheme { .. } => "unsupported_api_url_scheme",
            ConfigError::InvalidCaPem { .. } => "invalid_ca_certificate",
            ConfigError::HttpClient { .. } => "http_client_setup_failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(url: &str, insecure: bool) -> Result<String, ConfigError> {
        let mut config = ApiClientConfig::new(url);
        config.allow_insecure_loopback = insecure;
        config.checked_base_url().map(|u| u.to_string())
    }

    #[test]
    fn https_is_accepted_and_normalised() {
        assert_eq!(
            checked("https://api.acme.example", false).unwrap(),
            "https://api.acme.example/"
        );
        assert_eq!(
            checked("https://api.acme.example/fieldlink", false).unwrap(),
            "https://api.acme.example/fieldlink/"
        );
    }

    #[test]
    fn plain_http_needs_the_flag_and_a_loopback_host() {
        assert!(matches!(
            checked("http://127.0.0.1:8080", false),
            Err(ConfigError::InsecureUrl { .. })
        ));
        assert!(checked("http://127.0.0.1:8080", true).is_ok());
        assert!(checked("http://127.9.9.9", true).is_ok());
        assert!(checked("http://[::1]:9000", true).is_ok());
        assert!(checked("http://LOCALHOST:9000", true).is_ok());
        for remote in [
            "http://api.acme.example",
            "http://10.0.0.1",
            "http://localhost.attacker.example",
            "http://[::2]",
        ] {
            let error = checked(remote, true).unwrap_err();
            assert!(
                matches!(error, ConfigError::InsecureNotLoopback { .. }),
                "{remote}: {error}"
            );
            assert_eq!(error.code(), "insecure_api_url");
        }
    }

    #[test]
    fn other_schemes_credentials_and_garbage_are_refused() {
        assert!(matches!(
            checked("ftp://api.acme.example", true),
            Err(ConfigError::UnsupportedScheme { .. })
        ));
        assert_eq!(
            checked("https://user:pw@api.acme.example", false),
            Err(ConfigError::CredentialsInUrl)
        );
        assert!(matches!(
            checked("not a url", false),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert!(matches!(
            checked("https://api.acme.example/?tenant=x", false),
            Err(ConfigError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn debug_does_not_print_the_ca() {
        let config = ApiClientConfig::new("https://a.example").with_ca_pem("-----BEGIN X");
        assert!(!format!("{config:?}").contains("BEGIN"));
    }
}
