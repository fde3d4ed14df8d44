//! `Idempotency-Key` handling: the first request with a key claims it, runs, and stores its
//! response; repeats (same tenant, same key, same request) get that response back, marked
//! `Idempotent-Replayed: true`. A repeat that arrives while the first is running waits for it
//! (up to the configured wait). The same key with a different request is refused; a failed
//! request releases its key so a retry runs again.

use std::{future::Future, time::Duration};

use axum::{
    Json,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::ApiState;
use crate::{
    error::ApiError,
    storage::{ClaimOutcome, IdempotencyClaim},
};

/// The request header.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Marks a replayed response.
pub const REPLAYED: &str = "idempotent-replayed";

const POLL: Duration = Duration::from_millis(20);
/// A claim whose holder has not finished after this long is taken over.
const STALE_CLAIM_MS: i64 = 60_000;

/// The header's value, validated (1..=255 visible ASCII characters).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::invalid_request("Idempotency-Key must be 1 to 255 visible ASCII characters")
        })?;
    Ok(Some(key.to_owned()))
}

/// A stable hash of what the request asks for.
pub fn fingerprint(operation: &str, request: &impl Serialize) -> String {
    let body = serde_json::to_vec(request).unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(operation.as_bytes());
    hasher.update([0]);
    hasher.update(&body);
    hex::encode(hasher.finalize())
}

fn replay(response: String) -> Response {
    let mut response = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        response,
    )
        .into_response();
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

/// Runs `work` at most once per idempotency key (or always, without a key).
pub async fn run_once<T, F, Fut>(
    state: &ApiState,
    tenant: &str,
    key: Option<String>,
    fingerprint: String,
    work: F,
) -> Result<Response, ApiError>
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let Some(key) = key else {
        return Ok(Json(work().await?).into_response());
    };
    let shared = &state.shared;
    let give_up = Instant::now() + shared.config.idempotency_wait;
    loop {
        let now_ms = shared.clock.now_ms();
        let claim = IdempotencyClaim {
            tenant: tenant.to_owned(),
            key: key.clone(),
            fingerprint: fingerprint.clone(),
            now_ms,
            stale_after_ms: STALE_CLAIM_MS,
            expires_at_ms: now_ms
                + i64::try_from(shared.config.idempotency_ttl.as_millis()).unwrap_or(i64::MAX / 2),
        };
        match shared.storage.claim_idempotency_key(claim).await? {
            ClaimOutcome::Claimed => break,
            ClaimOutcome::Completed { response } => {
                shared.metrics.assignment("replayed");
                return Ok(replay(response));
            }
            ClaimOutcome::Mismatch => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for a different request; use a new key",
                ));
            }
            ClaimOutcome::InProgress if Instant::now() + POLL < give_up => {
                tokio::time::sleep(POLL).await;
            }
            ClaimOutcome::InProgress => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_key_in_progress",
                    "a request with this Idempotency-Key is still running; retry shortly",
                )
                .with_details(json!({}))
                .retry_after(1));
            }
        }
    }
    match work().await {
        Ok(value) => {
            let body = serde_json::to_string(&value)
                .map_err(|e| ApiError::internal(format!("cannot encode the response: {e}")))?;
            if let Err(error) = shared
                .storage
                .complete_idempotency_key(tenant, &key, &body)
                .await
            {
                // The work is done; a retry will find the key pending and, after the stale
                // period, run again against the same sticky assignment.
                tracing::warn!(%error, "could not store an idempotent response");
            }
            Ok((
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response())
        }
        Err(error) => {
            if let Err(release) = shared.storage.release_idempotency_key(tenant, &key).await {
                tracing::warn!(error = %release, "could not release an idempotency key");
            }
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_keys() {
        let mut headers = HeaderMap::new();
        assert_eq!(idempotency_key(&headers).expect("absent is fine"), None);
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("abc-123"));
        assert_eq!(
            idempotency_key(&headers).expect("valid"),
            Some("abc-123".to_owned())
        );
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static(""));
        assert!(idempotency_key(&headers).is_err());
        let long = "k".repeat(256);
        headers.insert(
            IDEMPOTENCY_KEY,
            HeaderValue::from_str(&long).expect("ascii"),
        );
        assert!(idempotency_key(&headers).is_err());
    }

    #[test]
    fn fingerprints_differ_by_operation_and_body() {
        let a = fingerprint("assign", &json!({"registration_id": "a"}));
        assert_eq!(a, fingerprint("assign", &json!({"registration_id": "a"})));
        assert_ne!(a, fingerprint("assign", &json!({"registration_id": "b"})));
        assert_ne!(
            a,
            fingerprint("reprovision", &json!({"registration_id": "a"}))
        );
    }
}
