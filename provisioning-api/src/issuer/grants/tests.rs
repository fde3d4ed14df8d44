use super::*;

const T0: i64 = 1_800_000_000;

fn request() -> AuthRequest {
    AuthRequest {
        client_id: "cli".into(),
        redirect_uri: "http://127.0.0.1:5000/callback".into(),
        scope: "openid".into(),
        state: Some("st".into()),
        code_challenge: "YaKrNme1esCymlmja7-xTjZBHYmtbs6X2lDS7UIwFeQ".into(),
        nonce: None,
    }
}
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92ZaaaaaaaaaaaaaaaaaaaaaaaaaaaaB";
const GOOD_VERIFIER: &str = "dBjftJeZ4CVP-mJ92ZuOa6Fv7RI1lTFOvdqRGnxHT2e";

#[test]
fn pkce_s256_known_answer() {
    // Challenge computed independently (Python hashlib + base64url).
    assert!(pkce_matches(GOOD_VERIFIER, &request().code_challenge));
    assert!(!pkce_matches(VERIFIER, &request().code_challenge));
    assert!(!pkce_matches("short", &request().code_challenge));
    assert!(!pkce_matches(
        &format!("{GOOD_VERIFIER} "),
        &request().code_challenge
    ));
}

#[test]
fn user_codes_normalise() {
    assert_eq!(normalize_user_code("bcdf ghjk"), "BCDF-GHJK");
    assert_eq!(normalize_user_code("BCDF-GHJK"), "BCDF-GHJK");
    assert_eq!(normalize_user_code("xx"), "XX");
}

#[test]
fn device_flow_pending_slow_down_approve_single_use() {
    let grants = Grants::default();
    let (device, user) = grants
        .start_device("cli", "openid", T0, 600, 5, None)
        .expect("started");
    assert!(user.len() == 9 && user.chars().nth(4) == Some('-'));
    let ms = T0 * 1000;
    assert_eq!(
        grants.poll_device(&device, "cli", ms),
        Err(GrantError::AuthorizationPending)
    );
    assert_eq!(
        grants.poll_device(&device, "cli", ms + 1_000),
        Err(GrantError::SlowDown)
    );
    // The interval is now 10 s, measured from the last poll.
    assert_eq!(
        grants.poll_device(&device, "cli", ms + 6_000),
        Err(GrantError::SlowDown)
    );
    assert_eq!(
        grants.poll_device(&device, "cli", ms + 6_000 + 15_000),
        Err(GrantError::AuthorizationPending)
    );
    assert_eq!(
        grants.poll_device(&device, "other", ms + 60_000),
        Err(GrantError::InvalidGrant(
            "the device code was issued to another client"
        ))
    );

    let view = grants
        .device_request(&user.to_lowercase(), T0 + 30)
        .expect("pending");
    assert_eq!(view.client_id, "cli");
    let consent = grants
        .open_consent(&user, "alice", T0 + 30)
        .expect("consent");
    grants.decide(&consent, true, T0 + 31).expect("approved");
    assert_eq!(
        grants.decide(&consent, true, T0 + 31),
        Err(VerifyError::UnknownConsent),
        "one-time"
    );
    assert_eq!(
        grants.device_request(&user, T0 + 32),
        Err(VerifyError::UnknownCode)
    );
    let approval = grants
        .poll_device(&device, "cli", ms + 120_000)
        .expect("approved");
    assert_eq!(approval.username, "alice");
    assert!(matches!(
        grants.poll_device(&device, "cli", ms + 200_000),
        Err(GrantError::InvalidGrant(_))
    ));
}

#[test]
fn device_flow_denied_and_expired() {
    let grants = Grants::default();
    let (device, user) = grants.start_device("cli", "", T0, 60, 1, None).expect("ok");
    let consent = grants.open_consent(&user, "alice", T0).expect("consent");
    grants.decide(&consent, false, T0).expect("denied");
    assert_eq!(
        grants.poll_device(&device, "cli", T0 * 1000),
        Err(GrantError::AccessDenied)
    );

    let (device, user) = grants.start_device("cli", "", T0, 60, 1, None).expect("ok");
    assert_eq!(
        grants.poll_device(&device, "cli", (T0 + 60) * 1000),
        Err(GrantError::ExpiredToken)
    );
    assert_eq!(
        grants.device_request(&user, T0 + 60),
        Err(VerifyError::UnknownCode)
    );
    assert_eq!(
        grants.open_consent(&user, "alice", T0 + 61),
        Err(VerifyError::UnknownCode)
    );
}

#[test]
fn auto_approve_is_approved_at_once() {
    let grants = Grants::default();
    let (device, _) = grants
        .start_device("cli", "", T0, 60, 1, Some("demo"))
        .expect("ok");
    let approval = grants
        .poll_device(&device, "cli", T0 * 1000)
        .expect("approved");
    assert_eq!(approval.username, "demo");
}

#[test]
fn authorization_code_pkce_and_reuse() {
    let grants = Grants::default();
    let code = grants.issue_code(request(), "alice", T0, 60).expect("code");
    // Wrong redirect URI, wrong client: refused without burning the code.
    assert!(matches!(
        grants.redeem_code(
            &code,
            "cli",
            "http://127.0.0.1:5001/callback",
            GOOD_VERIFIER,
            T0
        ),
        Err(GrantError::InvalidGrant("redirect_uri does not match"))
    ));
    assert!(matches!(
        grants.redeem_code(&code, "other", &request().redirect_uri, GOOD_VERIFIER, T0),
        Err(GrantError::InvalidGrant(_))
    ));
    let (approval, handle) = grants
        .redeem_code(&code, "cli", &request().redirect_uri, GOOD_VERIFIER, T0 + 1)
        .expect("redeemed");
    assert_eq!(approval.username, "alice");
    let refresh = grants.start_family(&approval, Some(handle), T0 + 1, 3600);
    // Replay of the code revokes what it produced.
    assert!(matches!(
        grants.redeem_code(&code, "cli", &request().redirect_uri, GOOD_VERIFIER, T0 + 2),
        Err(GrantError::InvalidGrant(_))
    ));
    assert_eq!(
        grants.refresh(&refresh, "cli", T0 + 3).map(|_| ()),
        Err(GrantError::InvalidGrant("refresh token revoked"))
    );
}

#[test]
fn wrong_verifier_burns_the_code_and_codes_expire() {
    let grants = Grants::default();
    let code = grants.issue_code(request(), "alice", T0, 60).expect("code");
    assert_eq!(
        grants
            .redeem_code(&code, "cli", &request().redirect_uri, VERIFIER, T0)
            .map(|_| ()),
        Err(GrantError::InvalidGrant("PKCE verification failed"))
    );
    assert!(
        grants
            .redeem_code(&code, "cli", &request().redirect_uri, GOOD_VERIFIER, T0)
            .is_err()
    );
    let code = grants.issue_code(request(), "alice", T0, 60).expect("code");
    assert_eq!(
        grants
            .redeem_code(
                &code,
                "cli",
                &request().redirect_uri,
                GOOD_VERIFIER,
                T0 + 60
            )
            .map(|_| ()),
        Err(GrantError::InvalidGrant("authorization code expired"))
    );
}

#[test]
fn refresh_rotation_reuse_revokes_the_family() {
    let grants = Grants::default();
    let approval = Approval {
        username: "alice".into(),
        client_id: "cli".into(),
        scope: "openid offline_access".into(),
        auth_time: T0,
        nonce: None,
    };
    let first = grants.start_family(&approval, None, T0, 3600);
    let (again, second) = grants.refresh(&first, "cli", T0 + 10).expect("rotated");
    assert_eq!(again, approval);
    assert_ne!(first, second);
    assert!(grants.refresh(&second, "other", T0 + 11).is_err());
    let (_, third) = grants
        .refresh(&second, "cli", T0 + 12)
        .expect("rotated again");
    // The attacker replays the first token: the family dies, including the legitimate one.
    assert_eq!(
        grants.refresh(&first, "cli", T0 + 13).map(|_| ()),
        Err(GrantError::InvalidGrant(
            "refresh token reuse detected; the session is revoked, sign in again"
        ))
    );
    assert_eq!(
        grants.refresh(&third, "cli", T0 + 14).map(|_| ()),
        Err(GrantError::InvalidGrant("refresh token revoked"))
    );
    // Families end at their absolute lifetime.
    let other = grants.start_family(&approval, None, T0, 100);
    assert!(grants.refresh(&other, "cli", T0 + 100).is_err());
}

#[test]
fn revocation() {
    let grants = Grants::default();
    let approval = Approval {
        username: "alice".into(),
        client_id: "cli".into(),
        scope: String::new(),
        auth_time: T0,
        nonce: None,
    };
    let token = grants.start_family(&approval, None, T0, 3600);
    assert!(grants.revoke(&token, "other", T0).is_err());
    assert_eq!(grants.revoke("not-a-token", "cli", T0), Ok(()));
    assert_eq!(grants.revoke(&token, "cli", T0), Ok(()));
    assert!(grants.refresh(&token, "cli", T0 + 1).is_err());
}
