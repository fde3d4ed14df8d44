use super::*;

fn kid_of(token: &str) -> (Option<String>, Algorithm) {
    let header = jsonwebtoken::decode_header(token).expect("header");
    (header.kid, header.alg)
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn rotation_keeps_the_old_keys_published_for_a_while() {
    let keys = Arc::new(SigningKeys::new(1_000, 100, 50).expect("keys"));
    let first_ed = keys.current_key_id_for(SigningAlgorithm::EdDsa);
    let first_rsa = keys.current_key_id_for(SigningAlgorithm::Rs256);
    assert_ne!(first_ed, first_rsa);
    let token = keys.sign(
        SigningAlgorithm::EdDsa,
        &json!({"sub": "a"}),
        "at+jwt",
        1_000,
    );
    assert_eq!(kid_of(&token), (Some(first_ed.clone()), Algorithm::EdDSA));
    let token = keys.sign(SigningAlgorithm::Rs256, &json!({"sub": "a"}), "JWT", 1_000);
    assert_eq!(kid_of(&token), (Some(first_rsa.clone()), Algorithm::RS256));

    // Due at +100: the next signatures use new keys, the old ones are still published.
    let token = keys.sign(SigningAlgorithm::Rs256, &json!({"sub": "a"}), "JWT", 1_100);
    let second_rsa = keys.current_key_id_for(SigningAlgorithm::Rs256);
    assert_ne!(first_rsa, second_rsa);
    assert_eq!(kid_of(&token).0, Some(second_rsa.clone()));
    let token = keys.sign(
        SigningAlgorithm::EdDsa,
        &json!({"sub": "a"}),
        "at+jwt",
        1_100,
    );
    let second_ed = keys.current_key_id();
    assert_ne!(first_ed, second_ed);
    assert_eq!(kid_of(&token).0, Some(second_ed.clone()));
    let published = kids(&keys.jwks(1_120));
    assert_eq!(published.len(), 4, "{published:?}");
    let source = IssuerJwks(keys.clone());
    for kid in [&first_ed, &first_rsa, &second_ed, &second_rsa] {
        assert!(source.key(kid).await.expect("ok").is_some(), "{kid}");
    }

    // 50 s after retirement the old keys are gone.
    let published = kids(&keys.jwks(1_150));
    assert_eq!(published, vec![second_rsa.clone(), second_ed.clone()]);
    assert!(source.key(&first_ed).await.expect("ok").is_none());
    assert!(source.key(&first_rsa).await.expect("ok").is_none());
    assert!(source.key(&second_rsa).await.expect("ok").is_some());
    assert!(!format!("{keys:?}").contains("encoding"));
}

#[test]
fn manual_rotation_replaces_both_keys() {
    let keys = SigningKeys::new(0, 1_000_000, 600).expect("keys");
    let before = (
        keys.current_key_id_for(SigningAlgorithm::Rs256),
        keys.current_key_id(),
    );
    let after = keys.rotate(10).expect("rotated");
    assert_ne!(before.0, after.rs256);
    assert_ne!(before.1, after.eddsa);
    assert_eq!(
        keys.current_key_id_for(SigningAlgorithm::Rs256),
        after.rs256
    );
    assert_eq!(keys.current_key_id(), after.eddsa);
    assert_eq!(kids(&keys.jwks(20)).len(), 4);
}

#[tokio::test]
async fn the_rsa_jwk_is_a_2048_bit_rs256_signature_key_that_verifies_its_tokens() {
    let keys = Arc::new(SigningKeys::new(0, 1_000_000, 600).expect("keys"));
    let jwks = keys.jwks(0);
    let rsa = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kty"] == "RSA")
        .expect("an RSA key")
        .clone();
    assert_eq!(rsa["alg"], "RS256");
    assert_eq!(rsa["use"], "sig");
    assert_eq!(rsa["e"], "AQAB");
    let n = URL_SAFE_NO_PAD
        .decode(rsa["n"].as_str().expect("n"))
        .expect("base64url");
    assert_eq!(n.len() * 8, RSA_BITS);
    assert!(
        rsa.get("d").is_none() && rsa.get("p").is_none(),
        "no private parts"
    );

    // The API's key source binds the key to RS256 only, and the signature verifies with it.
    let kid = rsa["kid"].as_str().expect("kid");
    let key = IssuerJwks(keys.clone())
        .key(kid)
        .await
        .expect("ok")
        .expect("published");
    assert_eq!(key.algorithms, vec![Algorithm::RS256]);
    let token = keys.sign(SigningAlgorithm::Rs256, &json!({"sub": "a"}), "JWT", 0);
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let decoded = jsonwebtoken::decode::<Value>(&token, &key.key, &validation).expect("verifies");
    assert_eq!(decoded.claims["sub"], "a");
    // An EdDSA-signed token does not verify under the RSA key.
    let ed = keys.sign(SigningAlgorithm::EdDsa, &json!({"sub": "a"}), "JWT", 0);
    let mut parts: Vec<&str> = ed.split('.').collect();
    let rsa_header = token.split('.').next().expect("header");
    parts[0] = rsa_header;
    assert!(jsonwebtoken::decode::<Value>(&parts.join("."), &key.key, &validation).is_err());
}
