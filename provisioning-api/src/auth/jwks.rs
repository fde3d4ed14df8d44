//! Where token verification keys come from: a JSON Web Key Set, either given (tests, an issuer
//! running in this process) or fetched from an issuer's `jwks_uri` and cached.
//!
//! Only asymmetric keys are accepted (RSA, EC P-256/P-384, Ed25519); each key is bound to the
//! algorithms its type allows (or the one its `alg` names), so an HS256 token "signed" with a
//! public key can never verify.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use async_trait::async_trait;
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm},
};
use serde::Deserialize;
use tokio::{sync::Mutex, time::Instant};

/// A verification key and the algorithms it may verify.
#[derive(Clone)]
pub struct VerificationKey {
    /// The key id (`kid`).
    pub key_id: String,
    /// The key.
    pub key: DecodingKey,
    /// Algorithms this key verifies.
    pub algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("key_id", &self.key_id)
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

/// Why a JWK or JWKS was not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// The key has no `kid`.
    #[error("JWK has no kid")]
    MissingKeyId,
    /// Symmetric, encryption-only or otherwise unsupported key.
    #[error("JWK {kid:?} is not an accepted signature key: {reason}")]
    Unsupported {
        /// Key id.
        kid: String,
        /// Why.
        reason: &'static str,
    },
    /// The document is not a JWKS.
    #[error("not a JWKS document: {0}")]
    Malformed(String),
    /// The issuer's JWKS could not be fetched and nothing is cached.
    #[error("JWKS unavailable: {0}")]
    Unavailable(String),
}

fn algorithm_of(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

impl VerificationKey {
    /// Accepts an asymmetric signature JWK.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, JwksError> {
        let kid = jwk.common.key_id.clone().ok_or(JwksError::MissingKeyId)?;
        let unsupported = |reason| JwksError::Unsupported {
            kid: kid.clone(),
            reason,
        };
        let by_type: Vec<Algorithm> = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => vec![
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => return Err(unsupported("unsupported EC curve")),
            },
            AlgorithmParameters::OctetKeyPair(p) => match p.curve {
                EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
                _ => return Err(unsupported("unsupported OKP curve")),
            },
            AlgorithmParameters::OctetKey(_) => {
                return Err(unsupported("symmetric keys are never trusted"));
            }
        };
        let algorithms = match jwk.common.key_algorithm {
            None => by_type,
            Some(declared) => {
                let declared = algorithm_of(declared)
                    .ok_or_else(|| unsupported("alg is not a signature algorithm"))?;
                if !by_type.contains(&declared) {
                    return Err(unsupported("alg does not match the key type"));
                }
                vec![declared]
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|_| unsupported("invalid key material"))?;
        Ok(Self {
            key_id: kid,
            key,
            algorithms,
        })
    }
}

/// Parses a JWKS document, keeping the usable signature keys and skipping the rest (issuers
/// publish encryption keys and exotic curves too).
pub fn parse_jwks(document: &str) -> Result<HashMap<String, Arc<VerificationKey>>, JwksError> {
    #[derive(Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document =
        serde_json::from_str(document).map_err(|e| JwksError::Malformed(e.to_string()))?;
    let mut keys = HashMap::new();
    for value in document.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        if let Ok(key) = VerificationKey::from_jwk(&jwk) {
            keys.insert(key.key_id.clone(), Arc::new(key));
        }
    }
    Ok(keys)
}

/// A source of verification keys by `kid`.
#[async_trait]
pub trait JwksSource: Send + Sync + 'static {
    /// The key with id `kid`, if the issuer publishes one. Remote sources refetch (rate
    /// limited) when the id is unknown, so issuer key rotation is picked up.
    async fn key(&self, kid: &str) -> Result<Option<Arc<VerificationKey>>, JwksError>;
}

/// A key set held in memory: configured for tests, or kept current by an issuer running in this
/// process (which calls [`StaticJwks::replace`] when it rotates).
#[derive(Debug, Default)]
pub struct StaticJwks {
    keys: RwLock<HashMap<String, Arc<VerificationKey>>>,
}

impl StaticJwks {
    /// From a JWKS document (JSON).
    pub fn from_json(document: &str) -> Result<Self, JwksError> {
        Ok(Self {
            keys: RwLock::new(parse_jwks(document)?),
        })
    }

    /// Replaces the key set.
    pub fn replace(&self, document: &str) -> Result<(), JwksError> {
        let keys = parse_jwks(document)?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        Ok(())
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the set holds no usable key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl JwksSource for StaticJwks {
    async fn key(&self, kid: &str) -> Result<Option<Arc<VerificationKey>>, JwksError> {
        Ok(self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(kid)
            .cloned())
    }
}

struct Cached {
    keys: HashMap<String, Arc<VerificationKey>>,
    fetched_at: Instant,
}

/// An issuer's JWKS fetched over HTTPS and cached.
pub struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    ttl: Duration,
    min_refetch: Duration,
    cache: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.url)
            .finish()
    }
}

impl RemoteJwks {
    /// Fetches `url` on first use; refreshes after `ttl`, and on an unknown `kid` at most once
    /// per `min_refetch`.
    pub fn new(url: impl Into<String>, client: reqwest::Client, ttl: Duration) -> Self {
        Self {
            url: url.into(),
            client,
            ttl,
            min_refetch: Duration::from_secs(30),
            cache: Mutex::new(None),
        }
    }

    /// Sets how often an unknown `kid` may trigger a refetch (default 30 s).
    pub fn with_min_refetch(mut self, interval: Duration) -> Self {
        self.min_refetch = interval;
        self
    }

    /// Finds `jwks_uri` through OpenID Connect discovery
    /// (`{issuer}/.well-known/openid-configuration`).
    pub async fn discover(
        issuer: &str,
        client: reqwest::Client,
        ttl: Duration,
    ) -> Result<Self, JwksError> {
        #[derive(Deserialize)]
        struct Discovery {
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let discovery: Discovery = client
            .get(&url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| JwksError::Unavailable(format!("{url}: {e}")))?
            .json()
            .await
            .map_err(|e| JwksError::Malformed(format!("{url}: {e}")))?;
        Ok(Self::new(discovery.jwks_uri, client, ttl))
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<VerificationKey>>, JwksError> {
        let body = self
            .client
            .get(&self.url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| JwksError::Unavailable(format!("{}: {e}", self.url)))?
            .text()
            .await
            .map_err(|e| JwksError::Unavailable(format!("{}: {e}", self.url)))?;
        parse_jwks(&body)
    }
}

#[async_trait]
impl JwksSource for RemoteJwks {
    async fn key(&self, kid: &str) -> Result<Option<Arc<VerificationKey>>, JwksError> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        let (stale, known) = match cache.as_ref() {
            Some(c) => (
                now.duration_since(c.fetched_at) >= self.ttl,
                c.keys.get(kid).cloned(),
            ),
            None => (true, None),
        };
        let may_refetch = cache
            .as_ref()
            .is_none_or(|c| now.duration_since(c.fetched_at) >= self.min_refetch);
        if known.is_some() && !stale {
            return Ok(known);
        }
        if !stale && !may_refetch {
            return Ok(None);
        }
        match self.fetch().await {
            Ok(keys) => {
                let found = keys.get(kid).cloned();
                *cache = Some(Cached {
                    keys,
                    fetched_at: now,
                });
                Ok(found)
            }
            // Keep serving a stale set while the issuer is unreachable.
            Err(error) => match cache.as_ref() {
                Some(_) => Ok(known),
                None => Err(error),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_JWKS: &str = r#"{"keys":[
        {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"ed-1","alg":"EdDSA","use":"sig"},
        {"kty":"oct","k":"c2VjcmV0","kid":"hmac-1"},
        {"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"ec-1"},
        {"kty":"weird","kid":"odd"}
    ]}"#;

    #[tokio::test]
    async fn keeps_only_asymmetric_signature_keys() {
        let jwks = StaticJwks::from_json(ED_JWKS).expect("valid jwks");
        assert_eq!(jwks.len(), 2);
        let ed = jwks.key("ed-1").await.expect("ok").expect("ed key");
        assert_eq!(ed.algorithms, vec![Algorithm::EdDSA]);
        let ec = jwks.key("ec-1").await.expect("ok").expect("ec key");
        assert_eq!(ec.algorithms, vec![Algorithm::ES256]);
        assert!(jwks.key("hmac-1").await.expect("ok").is_none());
        assert!(jwks.key("nope").await.expect("ok").is_none());
    }

    #[test]
    fn refuses_mismatched_alg_and_symmetric_keys() {
        let jwk: Jwk = serde_json::from_str(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k","alg":"RS256"}"#,
        )
        .expect("jwk");
        assert!(matches!(
            VerificationKey::from_jwk(&jwk),
            Err(JwksError::Unsupported { .. })
        ));
        let oct: Jwk =
            serde_json::from_str(r#"{"kty":"oct","k":"c2VjcmV0","kid":"h"}"#).expect("jwk");
        assert!(matches!(
            VerificationKey::from_jwk(&oct),
            Err(JwksError::Unsupported { .. })
        ));
        assert!(matches!(parse_jwks("[]"), Err(JwksError::Malformed(_))));
    }

    /// Serves `document` (swappable) at `/jwks` and an OIDC discovery document.
    async fn jwks_server(
        document: Arc<RwLock<String>>,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use axum::{Router, routing::get};
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (served, counter, jwks_uri) = (document.clone(), hits.clone(), format!("{base}/jwks"));
        let app = Router::new()
            .route(
                "/jwks",
                get(move || {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let body = served.read().expect("lock").clone();
                    async move { body }
                }),
            )
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    let body = serde_json::json!({ "jwks_uri": jwks_uri }).to_string();
                    async move { body }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, hits)
    }

    #[tokio::test]
    async fn remote_jwks_caches_and_refetches_on_unknown_kid() {
        let first = crate::test_tokens::TokenMinter::from_seed([4; 32], "https://i", "a");
        let second = crate::test_tokens::TokenMinter::from_seed([5; 32], "https://i", "a");
        let document = Arc::new(RwLock::new(first.jwks_json()));
        let (base, hits) = jwks_server(document.clone()).await;
        let remote = RemoteJwks::discover(&base, reqwest::Client::new(), Duration::from_secs(3600))
            .await
            .expect("discovery")
            .with_min_refetch(Duration::ZERO);
        assert!(remote.key(first.key_id()).await.expect("fetch").is_some());
        assert!(remote.key(first.key_id()).await.expect("cached").is_some());
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        // The issuer rotates: an unknown kid triggers a refetch.
        *document.write().expect("lock") = second.jwks_json();
        assert!(
            remote
                .key(second.key_id())
                .await
                .expect("refetch")
                .is_some()
        );
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(remote.key("nope").await.expect("refetch").is_none());
        // Within the minimum interval an unknown kid does not hit the issuer again.
        let throttled = RemoteJwks::new(
            format!("{base}/jwks"),
            reqwest::Client::new(),
            Duration::from_secs(3600),
        );
        assert!(
            throttled
                .key(second.key_id())
                .await
                .expect("fetch")
                .is_some()
        );
        let before = hits.load(std::sync::atomic::Ordering::SeqCst);
        assert!(throttled.key("nope").await.expect("no refetch").is_none());
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), before);
        // An unreachable issuer with nothing cached is an error.
        let dead = RemoteJwks::new(
            "http://127.0.0.1:9/jwks",
            reqwest::Client::new(),
            Duration::from_secs(1),
        );
        assert!(matches!(
            dead.key("x").await,
            Err(JwksError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn replace_swaps_the_key_set() {
        let jwks = StaticJwks::from_json(r#"{"keys":[]}"#).expect("empty set");
        assert!(jwks.is_empty());
        jwks.replace(ED_JWKS).expect("valid");
        assert!(jwks.key("ed-1").await.expect("ok").is_some());
    }
}
