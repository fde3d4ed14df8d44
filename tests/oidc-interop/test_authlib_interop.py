"""Standards compliance against an independent client: Python authlib (not fieldlink's code)
talks to fieldlink's sandbox OIDC issuer, and the provisioning API accepts its tokens.

The Rust launcher `provisioning-api/tests/issuer_interop.rs` starts the API + issuer over HTTPS
on loopback (an rcgen CA) and runs this file with:

  FIELDLINK_INTEROP_ISSUER  issuer URL (also the API's base URL)
  FIELDLINK_INTEROP_CA      PEM of the CA to trust
  FIELDLINK_INTEROP_USER / FIELDLINK_INTEROP_PASSWORD / FIELDLINK_INTEROP_CLIENT

Run alone, without those variables, every test is skipped.
"""

import os
import re
import time

import pytest
import requests
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

ISSUER = os.environ.get("FIELDLINK_INTEROP_ISSUER", "")
CA = os.environ.get("FIELDLINK_INTEROP_CA", "")
USER = os.environ.get("FIELDLINK_INTEROP_USER", "alice")
PASSWORD = os.environ.get("FIELDLINK_INTEROP_PASSWORD", "")
CLIENT = os.environ.get("FIELDLINK_INTEROP_CLIENT", "fieldlink-cli")
AUDIENCE = os.environ.get("FIELDLINK_INTEROP_AUDIENCE", "fieldlink-api")
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEADLINE_S = 60

pytestmark = pytest.mark.skipif(
    not ISSUER,
    reason="started by `cargo test -p fieldlink-provisioning-api --test issuer_interop`",
)


def metadata():
    response = requests.get(
        ISSUER + "/.well-known/openid-configuration", verify=CA, timeout=10
    )
    response.raise_for_status()
    return response.json()


def hidden(html, name):
    match = re.search(r'name="%s"[^>]*value="([^"]*)"' % re.escape(name), html)
    assert match, "no %s field in the page" % name
    return match.group(1)


def approve_on_page(verification_uri_complete):
    """What a person does: open the page, sign in, press Approve."""
    browser = requests.Session()
    browser.verify = CA
    page = browser.get(verification_uri_complete, timeout=10)
    assert page.status_code == 200
    user_code = hidden(page.text, "user_code")
    consent = browser.post(
        ISSUER + "/device",
        data={"user_code": user_code, "username": USER, "password": PASSWORD},
        timeout=30,
    )
    assert consent.status_code == 200, consent.text
    done = browser.post(
        ISSUER + "/device/decision",
        data={"consent": hidden(consent.text, "consent"), "decision": "approve"},
        timeout=10,
    )
    assert done.status_code == 200 and "Device approved" in done.text


def verify_access_token(token):
    """Checks the JWT with authlib.jose against the published JWKS."""
    jwks = requests.get(metadata()["jwks_uri"], verify=CA, timeout=10).json()
    keys = JsonWebKey.import_key_set(jwks)
    claims = JsonWebToken(["EdDSA"]).decode(
        token,
        keys,
        claims_options={
            "iss": {"essential": True, "value": ISSUER},
            "aud": {"essential": True, "value": AUDIENCE},
            "exp": {"essential": True},
        },
    )
    claims.validate()
    return claims


def verify_id_token(token, nonce=None):
    """Checks the ID token with authlib.jose: RS256 (OIDC's mandatory algorithm) only."""
    jwks = requests.get(metadata()["jwks_uri"], verify=CA, timeout=10).json()
    keys = JsonWebKey.import_key_set(jwks)
    options = {
        "iss": {"essential": True, "value": ISSUER},
        "aud": {"essential": True, "value": CLIENT},
        "exp": {"essential": True},
        "sub": {"essential": True, "value": USER},
    }
    if nonce is not None:
        options["nonce"] = {"essential": True, "value": nonce}
    claims = JsonWebToken(["RS256"]).decode(token, keys, claims_options=options)
    claims.validate()
    assert claims.header["alg"] == "RS256"
    return claims


def api_status(token, path="/v1/devices/interop-sensor-1"):
    return requests.get(
        ISSUER + path,
        headers={"Authorization": "Bearer " + token},
        verify=CA,
        timeout=10,
    ).status_code


def test_metadata_satisfies_rfc8414():
    meta = metadata()
    AuthorizationServerMetadata(meta).validate()
    # OpenID Connect Discovery 1.0 §3: RS256 must be among the ID-token algorithms.
    assert "RS256" in meta["id_token_signing_alg_values_supported"]
    jwks = requests.get(meta["jwks_uri"], verify=CA, timeout=10).json()
    algs = sorted(key["alg"] for key in jwks["keys"])
    assert algs == ["EdDSA", "RS256"], jwks
    rsa = next(key for key in jwks["keys"] if key["kty"] == "RSA")
    assert rsa["use"] == "sig" and "d" not in rsa
    assert meta["issuer"] == ISSUER
    assert DEVICE_GRANT in meta["grant_types_supported"]
    assert meta["code_challenge_methods_supported"] == ["S256"]


def test_device_code_flow_with_authlib_and_the_api_accepts_the_token():
    meta = metadata()
    session = OAuth2Session(
        client_id=CLIENT, token_endpoint_auth_method="none", scope="openid profile"
    )
    session.verify = CA
    started = session.post(
        meta["device_authorization_endpoint"],
        data={"client_id": CLIENT, "scope": "openid profile"},
        withhold_token=True,
        timeout=10,
    )
    assert started.status_code == 200, started.text
    grant = started.json()
    interval = grant["interval"]

    # Poll like RFC 8628 says: pending until approved, +5 s on slow_down.
    def poll():
        return session.fetch_token(
            meta["token_endpoint"],
            grant_type=DEVICE_GRANT,
            device_code=grant["device_code"],
        )

    with pytest.raises(AuthlibBaseError) as pending:
        poll()
    assert pending.value.error == "authorization_pending"

    approve_on_page(grant["verification_uri_complete"])

    token = None
    deadline = time.monotonic() + min(DEADLINE_S, grant["expires_in"])
    while token is None and time.monotonic() < deadline:
        time.sleep(interval)
        try:
            token = poll()
        except AuthlibBaseError as error:
            if error.error == "slow_down":
                interval += 5
            elif error.error != "authorization_pending":
                raise
    assert token is not None, "the device code was never approved"
    assert token["token_type"].lower() == "bearer"
    assert "refresh_token" in token and "id_token" in token

    claims = verify_access_token(token["access_token"])
    assert claims["sub"] == USER
    verify_id_token(token["id_token"])
    assert claims["tenant"] == "acme"
    assert "installer" in claims["roles"]

    # The provisioning API accepts authlib's token (404: authenticated, unknown device)…
    assert api_status(token["access_token"]) == 404
    # …and refuses a tampered one.
    head, payload, signature = token["access_token"].split(".")
    assert api_status(head + "." + payload + "." + signature[::-1]) == 401

    # A used device code is gone.
    with pytest.raises(AuthlibBaseError) as used:
        poll()
    assert used.value.error == "invalid_grant"


def test_authorization_code_pkce_refresh_and_revocation_with_authlib():
    meta = metadata()
    redirect_uri = "http://127.0.0.1:43210/callback"
    session = OAuth2Session(
        client_id=CLIENT,
        token_endpoint_auth_method="none",
        scope="openid offline_access",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    )
    session.verify = CA
    verifier = generate_token(64)
    nonce = generate_token(20)
    url, state = session.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )

    browser = requests.Session()
    browser.verify = CA
    page = browser.get(url, timeout=10)
    assert page.status_code == 200, page.text
    signed_in = browser.post(
        meta["authorization_endpoint"],
        data={
            "request": hidden(page.text, "request"),
            "username": USER,
            "password": PASSWORD,
            "decision": "approve",
        },
        allow_redirects=False,
        timeout=30,
    )
    assert signed_in.status_code == 303
    location = signed_in.headers["Location"]
    assert location.startswith(redirect_uri)

    token = session.fetch_token(
        meta["token_endpoint"], authorization_response=location, code_verifier=verifier
    )
    assert api_status(token["access_token"]) == 404
    verify_id_token(token["id_token"], nonce=nonce)

    first_refresh = token["refresh_token"]
    refreshed = session.refresh_token(meta["token_endpoint"], refresh_token=first_refresh)
    assert refreshed["refresh_token"] != first_refresh
    assert api_status(refreshed["access_token"]) == 404

    # Reusing the rotated-out refresh token is rejected (and revokes the family).
    with pytest.raises(AuthlibBaseError) as reuse:
        session.refresh_token(meta["token_endpoint"], refresh_token=first_refresh)
    assert reuse.value.error == "invalid_grant"

    # RFC 7009 through authlib.
    revoked = session.revoke_token(
        meta["revocation_endpoint"],
        token=refreshed["refresh_token"],
        token_type_hint="refresh_token",
    )
    assert revoked.status_code == 200
