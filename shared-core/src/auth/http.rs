//! The HTTP client behind every sign-in call: rustls with the system roots plus an optional CA
//! file, no redirects (token endpoints must not be redirected), deadlines on every request, and a
//! URL policy applied to *every* request (discovered endpoints included): HTTPS, or plain HTTP to
//! a loopback address when the profile explicitly allows it.

use std::{future::Future, net::IpAddr, pin::Pin, time::Duration};

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};
use url::{Host, Url};

use super::{AuthError, Profile};

/// Largest response body accepted from an identity provider.
const MAX_BODY: usize = 1024 * 1024;
/// Per-request deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Checks `url` against the transport policy.
pub fn check_url(url: &str, allow_insecure_loopback: bool) -> Result<Url, AuthError> {
    let parsed = Url::parse(url).map_err(|e| AuthError::InvalidProfile {
        reason: format!("{url:?} is not a URL: {e}"),
    })?;
    let refuse = |reason: &str| AuthError::InsecureUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if !allow_insecure_loopback => Err(refuse(
            "plain HTTP is refused; use https, or set allow_insecure_loopback for a local sandbox",
        )),
        "http" => {
            let loopback = match parsed.host() {
                Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
                Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
                Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if loopback {
                Ok(parsed)
            } else {
                Err(refuse("plain HTTP is allowed only to loopback addresses"))
            }
        }
        _ => Err(refuse("only https (or loopback http) URLs are accepted")),
    }
}

/// Builds the reqwest client for `profile`: system roots + the profile's CA file, no
/// redirects, HTTPS only unless loopback HTTP is allowed.
pub fn reqwest_client(profile: &Profile) -> Result<reqwest::Client, AuthError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .https_only(!profile.allow_insecure_loopback)
        .user_agent(concat!("fieldlink/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &profile.ca_file {
        let pem = std::fs::read(path).map_err(|e| AuthError::InvalidProfile {
            reason: format!("CA file {}: {e}", path.display()),
        })?;
        let certificates =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| AuthError::InvalidProfile {
                reason: format!("CA file {}: {e}", path.display()),
            })?;
        if certificates.is_empty() {
            return Err(AuthError::InvalidProfile {
                reason: format!("CA file {} holds no certificate", path.display()),
            });
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| AuthError::InvalidProfile {
        reason: format!("HTTP client: {e}"),
    })
}

/// Why an identity-provider request failed at the transport level.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The URL policy refused the request.
    #[error("{0}")]
    Refused(String),
    /// Network, TLS or protocol failure.
    #[error("{0}")]
    Failed(String),
}

/// The OAuth/OIDC HTTP client: reqwest under the URL policy.
#[derive(Debug, Clone)]
pub struct PolicyHttp {
    inner: reqwest::Client,
    allow_insecure_loopback: bool,
}

impl PolicyHttp {
    /// For `profile`.
    pub fn new(profile: &Profile) -> Result<Self, AuthError> {
        Ok(Self {
            inner: reqwest_client(profile)?,
            allow_insecure_loopback: profile.allow_insecure_loopback,
        })
    }

    /// The underlying client (same TLS configuration), e.g. for the API client.
    pub fn client(&self) -> &reqwest::Client {
        &self.inner
    }

    /// Checks `url` against this client's policy.
    pub fn check(&self, url: &str) -> Result<Url, AuthError> {
        check_url(url, self.allow_insecure_loopback)
    }

    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let url = request.uri().to_string();
        check_url(&url, self.allow_insecure_loopback)
            .map_err(|e| TransportError::Refused(e.to_string()))?;
        let request = reqwest::Request::try_from(request)
            .map_err(|e| TransportError::Failed(format!("{url}: {e}")))?;
        let mut response = self
            .inner
            .execute(request)
            .await
            .map_err(|e| TransportError::Failed(format!("{url}: {e}")))?;
        let mut out = http_response(response.status(), response.headers().clone());
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| TransportError::Failed(format!("{url}: {e}")))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(TransportError::Failed(format!(
                    "{url}: response larger than {MAX_BODY} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        *out.body_mut() = body;
        Ok(out)
    }
}

fn http_response(status: reqwest::StatusCode, headers: reqwest::header::HeaderMap) -> HttpResponse {
    let mut response = HttpResponse::new(Vec::new());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

impl<'c> AsyncHttpClient<'c> for PolicyHttp {
    type Error = TransportError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_policy() {
        assert!(check_url("https://idp.example/x", false).is_ok());
        assert_eq!(
            check_url("http://127.0.0.1:8080", false).map_err(|e| e.code()),
            Err("insecure_url")
        );
        assert!(check_url("http://127.0.0.1:8080", true).is_ok());
        assert!(check_url("http://[::1]:8080", true).is_ok());
        assert!(check_url("http://localhost:8080", true).is_ok());
        assert_eq!(
            check_url("http://10.0.0.1", true).map_err(|e| e.code()),
            Err("insecure_url")
        );
        assert_eq!(
            check_url("http://idp.example", true).map_err(|e| e.code()),
            Err("insecure_url")
        );
        assert_eq!(
            check_url("ftp://idp.example", true).map_err(|e| e.code()),
            Err("insecure_url")
        );
        assert_eq!(
            check_url("not a url", true).map_err(|e| e.code()),
            Err("invalid_profile")
        );
    }

    #[test]
    fn a_bad_ca_file_is_a_profile_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").expect("write");
        let mut profile = Profile::new("p", "https://a.example", "https://i.example", "c");
        profile.ca_file = Some(path);
        assert_eq!(
            reqwest_client(&profile).map(|_| ()).map_err(|e| e.code()),
            Err("invalid_profile")
        );
        profile.ca_file = Some(dir.path().join("missing.pem"));
        assert!(reqwest_client(&profile).is_err());
    }
}
