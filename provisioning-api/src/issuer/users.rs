//! The user directory: Argon2id password checks (on the blocking pool, with the same work for
//! unknown users so timing does not reveal who exists) and a per-user lockout after repeated
//! failures.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};
use zeroize::Zeroizing;

use super::config::UserConfig;

/// Failed sign-ins before a user is locked out.
pub const MAX_FAILURES: u32 = 5;
/// The window in which failures are counted and the lockout length, seconds.
pub const LOCKOUT_S: i64 = 300;

/// Hashes `password` as an Argon2id PHC string (default parameters: 19 MiB, 2 passes) for the
/// issuer's user file.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2id with default parameters and a fresh salt cannot fail")
        .to_string()
}

/// The hash an unknown username is checked against, so that it costs what a known user's check
/// costs: made with the Argon2 parameters of the costliest configured hash (the defaults when
/// no configured hash parses).
fn decoy_hash(users: &[UserConfig]) -> String {
    const DECOY: &[u8] = b"decoy password for unknown users";
    let params = users
        .iter()
        .filter_map(|user| PasswordHash::new(&user.password_hash).ok())
        .filter_map(|hash| argon2::Params::try_from(&hash).ok())
        .max_by_key(|params| u64::from(params.m_cost()) * u64::from(params.t_cost()));
    let salt = SaltString::generate(&mut OsRng);
    params
        .and_then(|params| {
            Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password(DECOY, &salt)
                .ok()
                .map(|hash| hash.to_string())
        })
        .unwrap_or_else(|| hash_password("decoy password for unknown users"))
}

/// Why a sign-in failed (the page shows one message for all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInError {
    /// Unknown user, wrong password or disabled account.
    BadCredentials,
    /// Too many failures; retry after this many seconds.
    LockedOut(i64),
}

#[derive(Default)]
struct Failures {
    count: u32,
    first_at: i64,
}

/// The configured users.
pub struct UserDirectory {
    users: HashMap<String, Arc<UserConfig>>,
    failures: Mutex<HashMap<String, Failures>>,
    decoy_hash: String,
}

impl std::fmt::Debug for UserDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserDirectory")
            .field("users", &self.users.len())
            .finish()
    }
}

impl UserDirectory {
    /// From the configuration.
    pub fn new(users: &[UserConfig]) -> Self {
        Self {
            users: users
                .iter()
                .map(|u| (u.username.clone(), Arc::new(u.clone())))
                .collect(),
            failures: Mutex::new(HashMap::new()),
            decoy_hash: decoy_hash(users),
        }
    }

    /// The user called `username`, if enabled.
    pub fn user(&self, username: &str) -> Option<Arc<UserConfig>> {
        self.users.get(username).filter(|u| !u.disabled).cloned()
    }

    /// Checks `password` for `username` at `now_unix`.
    pub async fn sign_in(
        &self,
        username: &str,
        password: Zeroizing<String>,
        now_unix: i64,
    ) -> Result<Arc<UserConfig>, SignInError> {
        {
            let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(f) = failures.get(username)
                && f.count >= MAX_FAILURES
                && now_unix - f.first_at < LOCKOUT_S
            {
                return Err(SignInError::LockedOut(LOCKOUT_S - (now_unix - f.first_at)));
            }
        }
        let user = self.users.get(username).cloned();
        let hash = user
            .as_ref()
            .map_or_else(|| self.decoy_hash.clone(), |u| u.password_hash.clone());
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        match user {
            Some(user) if matches && !user.disabled => {
                self.failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(username);
                Ok(user)
            }
            _ => {
                let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
                let entry = failures.entry(username.to_owned()).or_default();
                if now_unix - entry.first_at >= LOCKOUT_S {
                    *entry = Failures {
                        count: 0,
                        first_at: now_unix,
                    };
                }
                entry.count += 1;
                Err(SignInError::BadCredentials)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> UserDirectory {
        UserDirectory::new(&[UserConfig {
            username: "alice".into(),
            subject: None,
            password_hash: hash_password("correct horse"),
            tenant: "acme".into(),
            roles: vec!["installer".into()],
            name: None,
            disabled: false,
        }])
    }

    fn pw(s: &str) -> Zeroizing<String> {
        Zeroizing::new(s.to_owned())
    }

    #[tokio::test]
    async fn checks_passwords_and_locks_out() {
        let users = directory();
        assert!(users.sign_in("alice", pw("correct horse"), 0).await.is_ok());
        assert_eq!(
            users.sign_in("bob", pw("x"), 0).await.err(),
            Some(SignInError::BadCredentials)
        );
        for _ in 0..MAX_FAILURES {
            assert_eq!(
                users.sign_in("alice", pw("wrong"), 10).await.err(),
                Some(SignInError::BadCredentials)
            );
        }
        assert!(matches!(
            users.sign_in("alice", pw("correct horse"), 20).await,
            Err(SignInError::LockedOut(_))
        ));
        assert!(
            users
                .sign_in("alice", pw("correct horse"), 10 + LOCKOUT_S)
                .await
                .is_ok()
        );
    }

    #[test]
    fn an_unknown_user_costs_what_the_costliest_known_user_costs() {
        let cheap = argon2::Params::new(64, 1, 1, None).expect("valid parameters");
        let salt = SaltString::generate(&mut OsRng);
        let cheap_hash = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, cheap)
            .hash_password(b"pw", &salt)
            .expect("hash")
            .to_string();
        let user = |name: &str, password_hash: String| UserConfig {
            username: name.into(),
            subject: None,
            password_hash,
            tenant: "acme".into(),
            roles: vec!["installer".into()],
            name: None,
            disabled: false,
        };
        let params_of = |hash: &str| {
            argon2::Params::try_from(&PasswordHash::new(hash).expect("PHC")).expect("params")
        };

        let only_cheap = decoy_hash(&[user("a", cheap_hash.clone())]);
        assert_eq!(params_of(&only_cheap).m_cost(), 64);
        assert_eq!(params_of(&only_cheap).t_cost(), 1);

        let mixed = decoy_hash(&[user("a", cheap_hash), user("b", hash_password("pw"))]);
        assert_eq!(
            params_of(&mixed).m_cost(),
            argon2::Params::DEFAULT_M_COST,
            "the costliest configured hash sets the decoy's cost"
        );
        assert!(decoy_hash(&[]).starts_with("$argon2id$v=19$"));
    }

    #[test]
    fn hashes_are_argon2id_phc() {
        let hash = hash_password("pw");
        assert!(hash.starts_with("$argon2id$v=19$"));
        assert_ne!(hash, hash_password("pw"), "salted");
    }
}
