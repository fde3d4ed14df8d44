//! Grant state, sans I/O (time is passed in): device codes (RFC 8628), authorization codes with
//! PKCE (RFC 7636), refresh-token families with rotation and reuse detection, and revocation.
//! Opaque values are random 256-bit strings; only their SHA-256 is kept.

use std::{collections::HashMap, sync::Mutex};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};

/// Pending grants kept at most (bounded memory under abuse).
const MAX_PENDING: usize = 10_000;
/// RFC 8628 §3.5: each `slow_down` adds this many seconds to the interval.
const SLOW_DOWN_STEP_S: u64 = 5;
/// Polls this much early are still accepted (timer jitter).
const POLL_TOLERANCE_MS: i64 = 250;
/// How long a signed-in user has to approve or deny a device on the consent page.
const CONSENT_TTL_S: i64 = 300;
/// How long a pending authorization request (sign-in page) lives.
const AUTH_REQUEST_TTL_S: i64 = 600;
/// User-code alphabet: no vowels (no words), no look-alikes (RFC 8628 §6.1).
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

type Digest32 = [u8; 32];

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(token: &str) -> Digest32 {
    Sha256::digest(token.as_bytes()).into()
}

fn random_user_code() -> String {
    let mut rng = rand::thread_rng();
    let chars: String = (0..8)
        .map(|_| char::from(USER_CODE_ALPHABET[rng.gen_range(0..USER_CODE_ALPHABET.len())]))
        .collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

/// Canonical form of a typed user code: upper case, separators dropped, re-hyphenated.
pub fn normalize_user_code(input: &str) -> String {
    let chars: String = input
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if chars.len() == 8 {
        format!("{}-{}", &chars[..4], &chars[4..])
    } else {
        chars
    }
}

/// Checks a PKCE S256 `verifier` against the `challenge` (RFC 7636 §4.6).
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

/// A token-endpoint (or revocation) failure, as an OAuth error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantError {
    /// RFC 8628 `authorization_pending`.
    AuthorizationPending,
    /// RFC 8628 `slow_down`.
    SlowDown,
    /// The user denied the request.
    AccessDenied,
    /// The device code expired.
    ExpiredToken,
    /// Unknown, used, expired, revoked or mismatched grant.
    InvalidGrant(&'static str),
    /// Malformed request.
    InvalidRequest(&'static str),
    /// Too many pending grants.
    TemporarilyUnavailable,
}

impl GrantError {
    /// The OAuth `error` value.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::AccessDenied => "access_denied",
            Self::ExpiredToken => "expired_token",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::InvalidRequest(_) => "invalid_request",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The `error_description`.
    pub fn description(&self) -> &'static str {
        match self {
            Self::AuthorizationPending => "the user has not approved the request yet",
            Self::SlowDown => "polling too fast; add 5 seconds to the interval",
            Self::AccessDenied => "the user denied the request",
            Self::ExpiredToken => "the device code expired; start again",
            Self::InvalidGrant(why) | Self::InvalidRequest(why) => why,
            Self::TemporarilyUnavailable => "too many pending requests; retry later",
        }
    }
}

/// Who approved what: the input to token minting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// Username.
    pub username: String,
    /// The client the tokens are for.
    pub client_id: String,
    /// Granted scope (space-separated).
    pub scope: String,
    /// When the user signed in (unix seconds).
    pub auth_time: i64,
    /// OIDC nonce from the authorization request.
    pub nonce: Option<String>,
}

/// What the verification page shows about a pending device request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRequestView {
    /// The requesting client.
    pub client_id: String,
    /// Requested scope.
    pub scope: String,
    /// The normalised user code.
    pub user_code: String,
}

/// Why the verification page refuses a code or a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// No pending request with that code (unknown, expired or already decided).
    UnknownCode,
    /// The consent form expired or was already used.
    UnknownConsent,
}

/// A validated authorization request waiting for sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// Client.
    pub client_id: String,
    /// Registered redirect URI (as requested).
    pub redirect_uri: String,
    /// Requested scope.
    pub scope: String,
    /// Client state, echoed back.
    pub state: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// OIDC nonce.
    pub nonce: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DeviceStatus {
    Pending,
    Approved { username: String, auth_time: i64 },
    Denied,
}

#[derive(Debug)]
struct DeviceGrant {
    client_id: String,
    scope: String,
    user_code: String,
    expires_at: i64,
    interval_s: u64,
    last_poll_ms: Option<i64>,
    status: DeviceStatus,
}

#[derive(Debug)]
struct Consent {
    device: Digest32,
    username: String,
    expires_at: i64,
}

#[derive(Debug)]
struct CodeGrant {
    request: AuthRequest,
    username: String,
    auth_time: i64,
    expires_at: i64,
    redeemed: bool,
    families: Vec<u64>,
}

#[derive(Debug)]
struct Family {
    approval: Approval,
    expires_at: i64,
    revoked: bool,
}

#[derive(Debug)]
struct RefreshRecord {
    family: u64,
    used: bool,
}

#[derive(Debug, Default)]
struct State {
    devices: HashMap<Digest32, DeviceGrant>,
    user_codes: HashMap<String, Digest32>,
    consents: HashMap<String, Consent>,
    requests: HashMap<String, (AuthRequest, i64)>,
    codes: HashMap<Digest32, CodeGrant>,
    families: HashMap<u64, Family>,
    refresh: HashMap<Digest32, RefreshRecord>,
    next_family: u64,
    swept_at: i64,
}

impl State {
    fn sweep(&mut self, now: i64) {
        if now - self.swept_at < 30 {
            return;
        }
        self.swept_at = now;
        self.devices.retain(|_, d| d.expires_at > now - 60);
        let devices = &self.devices;
        self.user_codes.retain(|_, d| devices.contains_key(d));
        self.consents.retain(|_, c| c.expires_at > now);
        self.requests.retain(|_, (_, exp)| *exp > now);
        // Redeemed codes stay until expiry + a margin so reuse is still detected.
        self.codes.retain(|_, c| c.expires_at > now - 600);
        self.families.retain(|_, f| f.expires_at > now);
        let families = &self.families;
        self.refresh.retain(|_, r| families.contains_key(&r.family));
    }

    fn pending(&self) -> usize {
        self.devices.len() + self.requests.len() + self.codes.len()
    }

    fn revoke_family(&mut self, family: u64) {
        if let Some(f) = self.families.get_mut(&family) {
            f.revoked = true;
        }
    }
}

/// All grant state of one issuer (in memory: a sandbox issuer is a single process).
#[derive(Debug, Default)]
pub struct Grants {
    state: Mutex<State>,
}

impl Grants {
    fn lock(&self, now: i64) -> std::sync::MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.sweep(now);
        state
    }

    /// RFC 8628 §3.1–3.2: a new device request; `auto_approve` (demo only) approves it at once.
    /// Returns `(device_code, user_code)`.
    pub fn start_device(
        &self,
        client_id: &str,
        scope: &str,
        now: i64,
        ttl_s: u64,
        interval_s: u64,
        auto_approve: Option<&str>,
    ) -> Result<(String, String), GrantError> {
        let mut state = self.lock(now);
        if state.pending() >= MAX_PENDING {
            return Err(GrantError::TemporarilyUnavailable);
        }
        let device_code = random_token();
        let mut user_code = random_user_code();
        while state.user_codes.contains_key(&user_code) {
            user_code = random_user_code();
        }
        let key = digest(&device_code);
        state.user_codes.insert(user_code.clone(), key);
        state.devices.insert(
            key,
            DeviceGrant {
                client_id: client_id.to_owned(),
                scope: scope.to_owned(),
                user_code: user_code.clone(),
                expires_at: now + i64::try_from(ttl_s).unwrap_or(i64::MAX / 2),
                interval_s,
                last_poll_ms: None,
                status: match auto_approve {
                    Some(username) => DeviceStatus::Approved {
                        username: username.to_owned(),
                        auth_time: now,
                    },
                    None => DeviceStatus::Pending,
                },
            },
        );
        Ok((device_code, user_code))
    }

    /// The pending device request a typed user code names.
    pub fn device_request(
        &self,
        user_code: &str,
        now: i64,
    ) -> Result<DeviceRequestView, VerifyError> {
        let state = self.lock(now);
        let code = normalize_user_code(user_code);
        let grant = state
            .user_codes
            .get(&code)
            .and_then(|key| state.devices.get(key))
            .filter(|d| d.expires_at > now && d.status == DeviceStatus::Pending)
            .ok_or(VerifyError::UnknownCode)?;
        Ok(DeviceRequestView {
            client_id: grant.client_id.clone(),
            scope: grant.scope.clone(),
            user_code: grant.user_code.clone(),
        })
    }

    /// After `username` signed in on the verification page: a one-time consent id for the
    /// approve/deny form.
    pub fn open_consent(
        &self,
        user_code: &str,
        username: &str,
        now: i64,
    ) -> Result<String, VerifyError> {
        let mut state = self.lock(now);
        let code = normalize_user_code(user_code);
        let key = *state
            .user_codes
            .get(&code)
            .ok_or(VerifyError::UnknownCode)?;
        let pending = state
            .devices
            .get(&key)
            .is_some_and(|d| d.expires_at > now && d.status == DeviceStatus::Pending);
        if !pending {
            return Err(VerifyError::UnknownCode);
        }
        let id = random_token();
        state.consents.insert(
            id.clone(),
            Consent {
                device: key,
                username: username.to_owned(),
                expires_at: now + CONSENT_TTL_S,
            },
        );
        Ok(id)
    }

    /// Applies the user's decision; returns the request it was about.
    pub fn decide(
        &self,
        consent_id: &str,
        approve: bool,
        now: i64,
    ) -> Result<DeviceRequestView, VerifyError> {
        let mut state = self.lock(now);
        let consent = state
            .consents
            .remove(consent_id)
            .filter(|c| c.expires_at > now)
            .ok_or(VerifyError::UnknownConsent)?;
        let grant = state
            .devices
            .get_mut(&consent.device)
            .filter(|d| d.expires_at > now && d.status == DeviceStatus::Pending)
            .ok_or(VerifyError::UnknownCode)?;
        grant.status = if approve {
            DeviceStatus::Approved {
                username: consent.username,
                auth_time: now,
            }
        } else {
            DeviceStatus::Denied
        };
        Ok(DeviceRequestView {
            client_id: grant.client_id.clone(),
            scope: grant.scope.clone(),
            user_code: grant.user_code.clone(),
        })
    }

    /// RFC 8628 §3.4–3.5: one poll of the token endpoint at `now_ms`.
    pub fn poll_device(
        &self,
        device_code: &str,
        client_id: &str,
        now_ms: i64,
    ) -> Result<Approval, GrantError> {
        let now = now_ms.div_euclid(1000);
        let mut state = self.lock(now);
        let key = digest(device_code);
        let grant = state.devices.get_mut(&key).ok_or(GrantError::InvalidGrant(
            "unknown or already used device code",
        ))?;
        if grant.client_id != client_id {
            return Err(GrantError::InvalidGrant(
                "the device code was issued to another client",
            ));
        }
        if grant.expires_at <= now {
            return Err(GrantError::ExpiredToken);
        }
        let interval_ms = i64::try_from(grant.interval_s).unwrap_or(i64::MAX / 2000) * 1000;
        let too_fast = grant
            .last_poll_ms
            .is_some_and(|last| now_ms - last < interval_ms - POLL_TOLERANCE_MS);
        grant.last_poll_ms = Some(now_ms);
        if too_fast {
            grant.interval_s += SLOW_DOWN_STEP_S;
            return Err(GrantError::SlowDown);
        }
        match grant.status.clone() {
            DeviceStatus::Pending => Err(GrantError::AuthorizationPending),
            DeviceStatus::Denied => {
                let code = grant.user_code.clone();
                state.devices.remove(&key);
                state.user_codes.remove(&code);
                Err(GrantError::AccessDenied)
            }
            DeviceStatus::Approved {
                username,
                auth_time,
            } => {
                let approval = Approval {
                    username,
                    client_id: grant.client_id.clone(),
                    scope: grant.scope.clone(),
                    auth_time,
                    nonce: None,
                };
                let code = grant.user_code.clone();
                state.devices.remove(&key);
                state.user_codes.remove(&code);
                Ok(approval)
            }
        }
    }

    /// Keeps a validated authorization request while the user signs in; returns its id.
    pub fn start_authorization(
        &self,
        request: AuthRequest,
        now: i64,
    ) -> Result<String, GrantError> {
        let mut state = self.lock(now);
        if state.pending() >= MAX_PENDING {
            return Err(GrantError::TemporarilyUnavailable);
        }
        let id = random_token();
        state
            .requests
            .insert(id.clone(), (request, now + AUTH_REQUEST_TTL_S));
        Ok(id)
    }

    /// The pending authorization request `id` (it stays until [`Self::finish_authorization`]).
    pub fn authorization(&self, id: &str, now: i64) -> Option<AuthRequest> {
        let state = self.lock(now);
        state
            .requests
            .get(id)
            .filter(|(_, exp)| *exp > now)
            .map(|(r, _)| r.clone())
    }

    /// Ends the pending request `id`: with `Some(username)` issues a code for it.
    pub fn finish_authorization(
        &self,
        id: &str,
        username: Option<&str>,
        now: i64,
        code_ttl_s: u64,
    ) -> Option<(AuthRequest, Option<String>)> {
        let mut state = self.lock(now);
        let (request, exp) = state.requests.remove(id)?;
        if exp <= now {
            return None;
        }
        let code = username.map(|username| {
            let code = random_token();
            state.codes.insert(
                digest(&code),
                CodeGrant {
                    request: request.clone(),
                    username: username.to_owned(),
                    auth_time: now,
                    expires_at: now + i64::try_from(code_ttl_s).unwrap_or(600),
                    redeemed: false,
                    families: Vec::new(),
                },
            );
            code
        });
        Some((request, code))
    }

    /// Issues a code directly (demo auto-approval).
    pub fn issue_code(
        &self,
        request: AuthRequest,
        username: &str,
        now: i64,
        code_ttl_s: u64,
    ) -> Result<String, GrantError> {
        let id = self.start_authorization(request, now)?;
        self.finish_authorization(&id, Some(username), now, code_ttl_s)
            .and_then(|(_, code)| code)
            .ok_or(GrantError::TemporarilyUnavailable)
    }

    /// RFC 6749 §4.1.3 + RFC 7636 §4.6: redeems `code`. A second redemption revokes every
    /// token issued from the first (RFC 6749 §4.1.2).
    pub fn redeem_code(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: &str,
        now: i64,
    ) -> Result<(Approval, CodeHandle), GrantError> {
        let mut state = self.lock(now);
        let key = digest(code);
        let grant = state
            .codes
            .get_mut(&key)
            .ok_or(GrantError::InvalidGrant("unknown authorization code"))?;
        if grant.redeemed {
            let families = std::mem::take(&mut grant.families);
            for family in families {
                state.revoke_family(family);
            }
            return Err(GrantError::InvalidGrant(
                "authorization code already used; tokens issued from it are revoked",
            ));
        }
        if grant.expires_at <= now {
            return Err(GrantError::InvalidGrant("authorization code expired"));
        }
        if grant.request.client_id != client_id {
            return Err(GrantError::InvalidGrant(
                "authorization code issued to another client",
            ));
        }
        if grant.request.redirect_uri != redirect_uri {
            return Err(GrantError::InvalidGrant("redirect_uri does not match"));
        }
        grant.redeemed = true;
        if !pkce_matches(verifier, &grant.request.code_challenge) {
            return Err(GrantError::InvalidGrant("PKCE verification failed"));
        }
        Ok((
            Approval {
                username: grant.username.clone(),
                client_id: client_id.to_owned(),
                scope: grant.request.scope.clone(),
                auth_time: grant.auth_time,
                nonce: grant.request.nonce.clone(),
            },
            CodeHandle(key),
        ))
    }

    /// Starts a refresh-token family for `approval` (lifetime `ttl_s` from now), remembering
    /// the code it came from; returns the first refresh token.
    pub fn start_family(
        &self,
        approval: &Approval,
        from_code: Option<CodeHandle>,
        now: i64,
        ttl_s: u64,
    ) -> String {
        let mut state = self.lock(now);
        state.next_family += 1;
        let family = state.next_family;
        state.families.insert(
            family,
            Family {
                approval: approval.clone(),
                expires_at: now + i64::try_from(ttl_s).unwrap_or(i64::MAX / 2),
                revoked: false,
            },
        );
        if let Some(CodeHandle(key)) = from_code
            && let Some(code) = state.codes.get_mut(&key)
        {
            code.families.push(family);
        }
        let token = random_token();
        state.refresh.insert(
            digest(&token),
            RefreshRecord {
                family,
                used: false,
            },
        );
        token
    }

    /// RFC 6749 §6 with rotation: redeems `refresh_token` for `client_id`, returning the
    /// approval and the next refresh token. Reusing a rotated-out token revokes its family.
    pub fn refresh(
        &self,
        refresh_token: &str,
        client_id: &str,
        now: i64,
    ) -> Result<(Approval, String), GrantError> {
        let mut state = self.lock(now);
        let key = digest(refresh_token);
        let record = state
            .refresh
            .get(&key)
            .ok_or(GrantError::InvalidGrant("unknown refresh token"))?;
        let (family_id, used) = (record.family, record.used);
        let family = state
            .families
            .get(&family_id)
            .ok_or(GrantError::InvalidGrant("refresh token expired"))?;
        if family.approval.client_id != client_id {
            return Err(GrantError::InvalidGrant(
                "refresh token issued to another client",
            ));
        }
        if family.revoked {
            return Err(GrantError::InvalidGrant("refresh token revoked"));
        }
        if used {
            state.revoke_family(family_id);
            tracing::warn!(
                client_id,
                "refresh token reuse detected; the whole session was revoked"
            );
            return Err(GrantError::InvalidGrant(
                "refresh token reuse detected; the session is revoked, sign in again",
            ));
        }
        if family.expires_at <= now {
            return Err(GrantError::InvalidGrant("refresh token expired"));
        }
        let approval = family.approval.clone();
        if let Some(record) = state.refresh.get_mut(&key) {
            record.used = true;
        }
        let next = random_token();
        state.refresh.insert(
            digest(&next),
            RefreshRecord {
                family: family_id,
                used: false,
            },
        );
        Ok((approval, next))
    }

    /// RFC 7009: revokes the refresh-token family `token` belongs to. Unknown tokens (and access
    /// tokens, which are short-lived JWTs) are accepted silently; a token of another client is
    /// refused.
    pub fn revoke(&self, token: &str, client_id: &str, now: i64) -> Result<(), GrantError> {
        let mut state = self.lock(now);
        let Some(record) = state.refresh.get(&digest(token)) else {
            return Ok(());
        };
        let family = record.family;
        match state.families.get(&family) {
            Some(f) if f.approval.client_id != client_id => Err(GrantError::InvalidRequest(
                "the token was issued to another client",
            )),
            _ => {
                state.revoke_family(family);
                Ok(())
            }
        }
    }
}

/// Names a redeemed authorization code (to link the tokens issued from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeHandle(Digest32);

#[cfg(test)]
mod tests;
