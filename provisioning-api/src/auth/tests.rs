use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::*;
use crate::test_tokens::TokenMinter;

const NOW: i64 = 1_800_000_000;

fn setup() -> (TokenMinter, Authenticator) {
    let minter = TokenMinter::from_seed([1; 32], "https://issuer.test", "fieldlink-api");
    let auth = Authenticator::new(vec![minter.trusted_issuer()], 30);
    (minter, auth)
}

#[tokio::test]
async fn accepts_a_valid_token() {
    let (minter, auth) = setup();
    let token = minter.token("acme", &[Role::Installer, Role::Qa], NOW);
    let principal = auth.authenticate(&token, NOW).await.expect("valid");
    assert_eq!(principal.tenant, "acme");
    assert_eq!(principal.subject, "user@acme");
    assert!(principal.has_any(&[Role::Qa]));
    assert!(!principal.has_any(&[Role::Admin]));
}

#[tokio::test]
async fn rejects_expired_future_and_wrong_audience() {
    let (minter, auth) = setup();
    let mut claims = minter.claims("acme", &[Role::Installer], NOW);
    claims["exp"] = json!(NOW - 31);
    assert_eq!(
        auth.authenticate(&minter.sign(&claims), NOW).await,
        Err(AuthError::Expired)
    );
    claims["exp"] = json!(NOW - 10); // within leeway
    assert!(auth.authenticate(&minter.sign(&claims), NOW).await.is_ok());
    let mut no_exp = minter.claims("acme", &[Role::Installer], NOW);
    no_exp.as_object_mut().expect("object").remove("exp");
    assert_eq!(
        auth.authenticate(&minter.sign(&no_exp), NOW).await,
        Err(AuthError::Expired)
    );
    let mut early = minter.claims("acme", &[Role::Installer], NOW);
    early["nbf"] = json!(NOW + 120);
    assert_eq!(
        auth.authenticate(&minter.sign(&early), NOW).await,
        Err(AuthError::NotYetValid)
    );
    let mut other = minter.claims("acme", &[Role::Installer], NOW);
    other["aud"] = json!(["something-else"]);
    assert_eq!(
        auth.authenticate(&minter.sign(&other), NOW).await,
        Err(AuthError::WrongAudience)
    );
    other["aud"] = json!(["something-else", "fieldlink-api"]);
    assert!(auth.authenticate(&minter.sign(&other), NOW).await.is_ok());
}

#[tokio::test]
async fn rejects_unknown_issuer_key_and_bad_signature() {
    let (minter, auth) = setup();
    let mut claims = minter.claims("acme", &[Role::Admin], NOW);
    claims["iss"] = json!("https://evil.test");
    assert_eq!(
        auth.authenticate(&minter.sign(&claims), NOW).await,
        Err(AuthError::UnknownIssuer)
    );
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("other-kid".to_owned());
    let token = minter.sign_with_header(&header, &minter.claims("acme", &[Role::Admin], NOW));
    assert_eq!(
        auth.authenticate(&token, NOW).await,
        Err(AuthError::UnknownKey)
    );
    header.kid = None;
    let token = minter.sign_with_header(&header, &minter.claims("acme", &[Role::Admin], NOW));
    assert_eq!(
        auth.authenticate(&token, NOW).await,
        Err(AuthError::UnknownKey)
    );
    // Same kid and issuer, different private key.
    let impostor = TokenMinter::from_seed([2; 32], "https://issuer.test", "fieldlink-api");
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(minter.key_id().to_owned());
    let forged = impostor.sign_with_header(&header, &minter.claims("acme", &[Role::Admin], NOW));
    assert_eq!(
        auth.authenticate(&forged, NOW).await,
        Err(AuthError::BadSignature)
    );
    // A tampered payload.
    let good = minter.token("acme", &[Role::Installer], NOW);
    let parts: Vec<&str> = good.split('.').collect();
    let payload = URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&minter.claims("other", &[Role::Admin], NOW)).expect("json"));
    let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);
    assert_eq!(
        auth.authenticate(&tampered, NOW).await,
        Err(AuthError::BadSignature)
    );
}

#[tokio::test]
async fn rejects_alg_none_and_hmac_with_the_public_key() {
    let (minter, auth) = setup();
    let claims = minter.claims("acme", &[Role::Admin], NOW);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json"));
    for header in [
        json!({"alg": "none", "typ": "JWT", "kid": minter.key_id()}),
        json!({"alg": "None", "typ": "JWT", "kid": minter.key_id()}),
    ] {
        let head = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("json"));
        for token in [format!("{head}.{body}."), format!("{head}.{body}")] {
            let result = auth.authenticate(&token, NOW).await;
            assert!(
                matches!(
                    result,
                    Err(AuthError::AlgorithmRejected | AuthError::Malformed)
                ),
                "{result:?}"
            );
        }
    }
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(minter.key_id().to_owned());
    for secret in [
        minter.public_key().to_vec(),
        URL_SAFE_NO_PAD.encode(minter.public_key()).into_bytes(),
        minter.jwks_json().into_bytes(),
    ] {
        let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret))
            .expect("hmac");
        assert_eq!(
            auth.authenticate(&token, NOW).await,
            Err(AuthError::AlgorithmRejected)
        );
    }
    // An algorithm the key does not allow (RS256 header on an Ed25519 kid).
    let head = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&json!({"alg": "RS256", "kid": minter.key_id()})).expect("json"),
    );
    let token = format!("{head}.{body}.c2ln");
    assert_eq!(
        auth.authenticate(&token, NOW).await,
        Err(AuthError::AlgorithmRejected)
    );
}

#[tokio::test]
async fn requires_tenant_subject_and_a_known_role() {
    let (minter, auth) = setup();
    let mut claims = minter.claims("acme", &[Role::Installer], NOW);
    claims["roles"] = json!(["superuser"]);
    assert_eq!(
        auth.authenticate(&minter.sign(&claims), NOW).await,
        Err(AuthError::NoRole)
    );
    claims["roles"] = json!("admin");
    let principal = auth
        .authenticate(&minter.sign(&claims), NOW)
        .await
        .expect("string role");
    assert!(principal.has_any(&[Role::Admin]));
    claims.as_object_mut().expect("object").remove("tenant");
    assert_eq!(
        auth.authenticate(&minter.sign(&claims), NOW).await,
        Err(AuthError::MissingClaim("tenant".to_owned()))
    );
    let mut anonymous = minter.claims("acme", &[Role::Installer], NOW);
    anonymous.as_object_mut().expect("object").remove("sub");
    assert_eq!(
        auth.authenticate(&minter.sign(&anonymous), NOW).await,
        Err(AuthError::MissingClaim("sub".to_owned()))
    );
}

#[tokio::test]
async fn claim_names_and_tenant_mapping_are_configurable() {
    let minter = TokenMinter::from_seed([3; 32], "https://login.example/t1/v2.0", "api://fl");
    let mut issuer = minter.trusted_issuer();
    issuer.tenant = TenantSource::Fixed("contoso".to_owned());
    issuer.role_claim = "app_roles".to_owned();
    issuer.role_values = [("Fieldlink.Installer".to_owned(), Role::Installer)]
        .into_iter()
        .collect();
    let auth = Authenticator::new(vec![issuer], 0);
    let mut claims = minter.claims("ignored", &[], NOW);
    claims["app_roles"] = json!(["Fieldlink.Installer", "Other"]);
    let principal = auth
        .authenticate(&minter.sign(&claims), NOW)
        .await
        .expect("valid");
    assert_eq!(principal.tenant, "contoso");
    assert_eq!(principal.roles.len(), 1);
}

#[test]
fn bearer_header_parsing() {
    assert_eq!(Authenticator::bearer(Some("Bearer abc")), Ok("abc"));
    assert_eq!(Authenticator::bearer(Some("bearer  abc ")), Ok("abc"));
    assert_eq!(Authenticator::bearer(None), Err(AuthError::MissingToken));
    assert_eq!(
        Authenticator::bearer(Some("Basic abc")),
        Err(AuthError::MissingToken)
    );
    assert_eq!(
        Authenticator::bearer(Some("Bearer ")),
        Err(AuthError::MissingToken)
    );
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let (_, auth) = setup();
    for token in ["", "abc", "a.b", "a.b.c.d", "!!.??.##"] {
        assert!(auth.authenticate(token, NOW).await.is_err(), "{token}");
    }
}
