"""Sign-in through the bindings against the real provisioning API and its sandbox OIDC issuer
(in process, HTTPS with a throw-away CA that the profile trusts through `ca_pem`), with a
Python `SecretStore` standing in for the Keystore/Keychain."""

import asyncio
import threading
import time
import urllib.parse

import pytest

import fieldlink_mobile as fm


class MemorySecretStore(fm.SecretStore):
    """A `SecretStore` in a dict (what Keystore/Keychain do in the apps)."""

    def __init__(self):
        self.entries = {}
        self.lock = threading.Lock()

    def get(self, service, account):
        with self.lock:
            return self.entries.get((service, account))

    def set(self, service, account, value):
        with self.lock:
            self.entries[(service, account)] = bytes(value)

    def delete(self, service, account):
        with self.lock:
            return self.entries.pop((service, account), None) is not None

    def describe(self):
        return "python dict"


class Prompts(fm.SignInListener):
    def __init__(self):
        self.prompts = []

    def on_device_code(self, prompt):
        self.prompts.append(prompt)


def run(body):
    async def main():
        fm.uniffi_set_event_loop(asyncio.get_running_loop())
        return await body()

    return asyncio.run(main())


@pytest.fixture(scope="module")
def identity():
    sandbox = run(fm.start_identity_sandbox)
    yield sandbox
    sandbox.shutdown()
    time.sleep(0.3)  # let the runtime's last callbacks land before the interpreter exits


def test_device_code_sign_in_stores_tokens_only_in_the_secret_store(identity, tmp_path):
    store = MemorySecretStore()
    client = fm.FieldlinkClient(identity.profile("acme"), str(tmp_path), store)
    assert run(client.session) is None
    prompts = Prompts()

    signed_in = run(lambda: client.sign_in_with_device_code(prompts))

    assert len(prompts.prompts) == 1
    prompt = prompts.prompts[0]
    assert prompt.user_code and prompt.verification_uri.startswith(identity.base_url())
    assert signed_in.profile == "acme"
    assert signed_in.tenant == "acme"
    assert signed_in.roles == ["installer"]
    assert signed_in.can_refresh
    assert list(store.entries) == [("fieldlink", "tokens:acme")]
    token_blob = store.entries[("fieldlink", "tokens:acme")]
    assert not any(token_blob in p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert run(client.session).subject == signed_in.subject

    # The API accepts the token: an unknown device is a typed "not known" answer, not 401.
    with pytest.raises(fm.FieldlinkError) as caught:
        run(lambda: client.registration_status("never-seen-device"))
    assert caught.value.code not in ("unauthorized", "forbidden"), caught.value

    report = run(client.sign_out)
    assert report.was_signed_in
    assert store.entries == {}
    assert run(client.session) is None


def test_pkce_with_a_custom_scheme_redirect_that_the_app_completes(identity, tmp_path):
    store = MemorySecretStore()
    client = fm.FieldlinkClient(identity.profile("acme"), str(tmp_path), store)
    pending = run(lambda: client.begin_sign_in(identity.mobile_redirect()))
    query = urllib.parse.parse_qs(urllib.parse.urlparse(pending.authorize_url()).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [identity.mobile_redirect()]

    # The "browser": the auto-approving issuer redirects straight to the app's scheme.
    redirect = run(lambda: _follow_once(pending.authorize_url(), identity))
    assert redirect.startswith(identity.mobile_redirect() + "?")

    signed_in = run(lambda: client.complete_sign_in(pending, redirect))
    assert signed_in.tenant == "acme"
    assert ("fieldlink", "tokens:acme") in store.entries
    with pytest.raises(fm.FieldlinkError.InvalidArgument):
        run(lambda: client.complete_sign_in(pending, redirect))


def test_a_forged_redirect_is_refused(identity, tmp_path):
    client = fm.FieldlinkClient(identity.profile("acme"), str(tmp_path), MemorySecretStore())
    pending = run(lambda: client.begin_sign_in(identity.mobile_redirect()))
    forged = identity.mobile_redirect() + "?code=stolen&state=not-the-state"
    with pytest.raises(fm.FieldlinkError.InvalidRedirect) as caught:
        run(lambda: client.complete_sign_in(pending, forged))
    assert caught.value.code == "invalid_redirect"


def test_bad_profiles_and_a_locked_store_are_typed_errors(identity, tmp_path):
    profile = identity.profile("acme")
    profile.api_url = "http://api.example.com"
    with pytest.raises(fm.FieldlinkError) as caught:
        fm.FieldlinkClient(profile, str(tmp_path), MemorySecretStore())
    assert caught.value.code in ("insecure_url", "insecure_api_url")
    bad_name = identity.profile("not a name!")
    with pytest.raises(fm.FieldlinkError.InvalidProfile):
        fm.FieldlinkClient(bad_name, str(tmp_path), MemorySecretStore())

    class Locked(MemorySecretStore):
        def get(self, service, account):
            raise fm.SecretStoreError.Unavailable("the device is locked")

    client = fm.FieldlinkClient(identity.profile("acme"), str(tmp_path), Locked())
    with pytest.raises(fm.FieldlinkError.KeyringUnavailable) as caught:
        run(client.session)
    assert "the device is locked" in caught.value.reason


async def _follow_once(url, identity):
    """GETs `url` over HTTPS trusting the sandbox CA, without following the redirect."""
    import http.client
    import ssl

    context = ssl.create_default_context(cadata=identity.profile("x").ca_pem)
    parts = urllib.parse.urlparse(url)

    def fetch():
        connection = http.client.HTTPSConnection(parts.hostname, parts.port, context=context, timeout=10)
        connection.request("GET", parts.path + "?" + parts.query)
        response = connection.getresponse()
        assert response.status == 302, response.status
        return response.getheader("Location")

    return await asyncio.get_running_loop().run_in_executor(None, fetch)
