//! [`DpsServiceClient`] over HTTPS with reqwest (rustls) and a service SAS token.

use std::time::Duration;

use async_trait::async_trait;
use fieldlink_protocol::sas::service_sas_token;
use reqwest::{StatusCode, header};

use super::{
    DPS_API_VERSION, DeviceRegistrationState, DpsServiceClient, DpsServiceError, DpsServiceTarget,
    RegistrationLookup,
};

/// How long each service SAS token is valid.
const TOKEN_LIFETIME_S: i64 = 3_600;

/// Talks to real DPS (or the emulator) over HTTP(S).
#[derive(Debug, Clone)]
pub struct HttpDpsServiceClient {
    client: reqwest::Client,
    request_timeout: Duration,
}

impl HttpDpsServiceClient {
    /// Uses `client` (configure its roots for the emulator's CA); each request times out after
    /// `request_timeout`.
    pub fn new(client: reqwest::Client, request_timeout: Duration) -> Self {
        Self {
            client,
            request_timeout,
        }
    }
}

/// The `sr` a service token is signed for: the configured resource URI, else the endpoint's
/// host name (Azure: `{dps}.azure-devices-provisioning.net`).
pub fn service_resource(target: &DpsServiceTarget) -> String {
    if let Some(resource) = &target.credentials.resource_uri {
        return resource.clone();
    }
    url::Url::parse(&target.service_endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| target.service_endpoint.clone())
}

/// Parses a `Retry-After` header given in seconds.
pub fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3_600.0)))
}

#[async_trait]
impl DpsServiceClient for HttpDpsServiceClient {
    async fn registration_state(
        &self,
        target: &DpsServiceTarget,
        registration_id: &str,
        now_unix: i64,
    ) -> Result<RegistrationLookup, DpsServiceError> {
        let token = service_sas_token(
            &service_resource(target),
            &target.credentials.policy_name,
            target.credentials.key.expose(),
            now_unix + TOKEN_LIFETIME_S,
        )
        .map_err(|e| DpsServiceError::Unexpected {
            message: format!("cannot sign a service token: {}", e.code()),
        })?;
        let mut url =
            url::Url::parse(&target.service_endpoint).map_err(|e| DpsServiceError::Unexpected {
                message: format!("bad service endpoint: {e}"),
            })?;
        url.path_segments_mut()
            .map_err(|()| DpsServiceError::Unexpected {
                message: "service endpoint cannot be a base URL".to_owned(),
            })?
            .pop_if_empty()
            .extend(["registrations", registration_id]);
        url.query_pairs_mut()
            .append_pair("api-version", DPS_API_VERSION);
        let response = self
            .client
            .get(url)
            .header(header::AUTHORIZATION, token)
            .header(header::ACCEPT, "application/json")
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(|e| DpsServiceError::Unavailable {
                retry_after: None,
                message: format!("request failed: {e}"),
            })?;
        let status = response.status();
        let wait = retry_after(response.headers());
        match status {
            StatusCode::OK => {
                let state: DeviceRegistrationState =
                    response
                        .json()
                        .await
                        .map_err(|e| DpsServiceError::Unexpected {
                            message: format!("unreadable registration state: {e}"),
                        })?;
                Ok(RegistrationLookup::Found(Box::new(state)))
            }
            StatusCode::NOT_FOUND => Ok(RegistrationLookup::NotFound),
            StatusCode::TOO_MANY_REQUESTS => Err(DpsServiceError::Throttled { retry_after: wait }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(DpsServiceError::CredentialsRejected {
                    status: status.as_u16(),
                })
            }
            s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                Err(DpsServiceError::Unavailable {
                    retry_after: wait,
                    message: format!("HTTP {s}"),
                })
            }
            s => Err(DpsServiceError::Unexpected {
                message: format!("HTTP {s}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::ServiceCredentials, secret::SecretString};

    fn target(endpoint: &str, resource: Option<&str>) -> DpsServiceTarget {
        DpsServiceTarget {
            instance: "dps-1".to_owned(),
            service_endpoint: endpoint.to_owned(),
            credentials: ServiceCredentials {
                policy_name: "owner".to_owned(),
                key: SecretString::new("a2V5"),
                resource_uri: resource.map(str::to_owned),
            },
        }
    }

    #[test]
    fn resource_defaults_to_the_host() {
        assert_eq!(
            service_resource(&target(
                "https://dps-1.azure-devices-provisioning.net/",
                None
            )),
            "dps-1.azure-devices-provisioning.net"
        );
        assert_eq!(
            service_resource(&target("http://127.0.0.1:9/x", Some("dps-1.local"))),
            "dps-1.local"
        );
    }

    #[test]
    fn parses_retry_after_seconds() {
        let mut headers = header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            header::RETRY_AFTER,
            header::HeaderValue::from_static("soon"),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
