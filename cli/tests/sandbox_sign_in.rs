//! `fieldlink sandbox up` is HTTPS throughout with one CA, and a separate process signs in to it
//! like a real organisation: `profile add --from-sandbox`, `login` (device code) approved on the
//! issuer's HTML page as the manifest's test user, then `whoami` and `status` with the stored
//! tokens (OS keyring: keyutils under `keyctl session -` in CI).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;

fn client(ca: Option<&str>) -> reqwest::blocking::Client {
    let mut builder = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_native_certs(false)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10));
    if let Some(path) = ca {
        let pem = std::fs::read(path).unwrap();
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

fn url<'a>(manifest: &'a Value, pointer: &str) -> &'a str {
    manifest.pointer(pointer).and_then(Value::as_str).unwrap()
}

#[test]
fn sandbox_services_are_https_with_the_manifests_ca_only() {
    let env = common::Env::new();
    let sandbox = common::Sandbox::start(&env, 2);
    let manifest = sandbox.manifest_json();
    assert_eq!(manifest["schema"], 2);
    let ca = url(&manifest, "/ca_cert").to_owned();
    let api = url(&manifest, "/api/url");
    let issuer = url(&manifest, "/issuer/url");
    let dps = url(&manifest, "/dps/global_endpoint");
    assert_eq!(url(&manifest, "/api/issuer"), issuer);
    for base in [api, issuer, dps] {
        assert!(base.starts_with("https://"), "{base}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sandbox.manifest).unwrap().permissions();
        assert_eq!(mode.mode() & 0o777, 0o600, "the manifest holds passwords");
    }
    let user = &manifest["users"][0];
    assert_eq!(user["username"], "installer");
    assert_eq!(user["tenant"], "sandbox");
    assert_eq!(user["role"], "installer");
    assert!(user["password"].as_str().unwrap().len() >= 16);
    let clients: Vec<&str> = manifest["issuer"]["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        clients,
        ["fieldlink-cli", "fieldlink-desktop", "fieldlink-mobile"]
    );
    assert_eq!(manifest["issuer"]["auto_approve"], false);

    let endpoints = [
        format!("{api}/healthz"),
        format!("{issuer}/.well-known/openid-configuration"),
        format!("{dps}/emulator/instances"),
    ];
    let trusted = client(Some(&ca));
    for endpoint in &endpoints {
        let response = trusted.get(endpoint).send().unwrap();
        assert!(response.status().is_success(), "{endpoint}: {response:?}");
    }
    let discovery: Value = trusted.get(&endpoints[1]).send().unwrap().json().unwrap();
    assert_eq!(discovery["issuer"], issuer);
    assert!(
        discovery["device_authorization_endpoint"]
            .as_str()
            .unwrap()
            .starts_with(issuer)
    );

    // Without the sandbox CA, every certificate is refused.
    let untrusting = client(None);
    for endpoint in &endpoints {
        let error = untrusting.get(endpoint).send().unwrap_err();
        assert!(error.is_connect(), "{endpoint}: {error:?}");
        let chain = format!("{error:?}");
        assert!(
            chain.contains("certificate") || chain.contains("Certificate"),
            "{endpoint}: a TLS verification failure, not something else: {chain}"
        );
    }
    // Plain HTTP to the same ports gets no HTTP answer.
    let plain = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for endpoint in &endpoints {
        let http = endpoint.replacen("https://", "http://", 1);
        let answer = plain.get(&http).send();
        assert!(
            answer.is_err(),
            "{http} answered plain HTTP: {:?}",
            answer.map(|r| r.status())
        );
    }
}

fn run_json(env: &common::Env, args: &[&str]) -> (i32, Value) {
    let output = env.command().arg("--json").args(args).output().unwrap();
    let code = output.status.code().unwrap();
    (code, common::result(&output.stdout))
}

#[test]
fn a_profile_from_the_manifest_signs_in_with_the_device_code_as_the_test_user() {
    if !common::keyring_usable("the sign-in test") {
        return;
    }
    let env = common::Env::new();
    let sandbox = common::Sandbox::start(&env, 2);
    let manifest = sandbox.manifest_json();
    let manifest_path = sandbox.manifest.to_str().unwrap().to_owned();
    let issuer = url(&manifest, "/issuer/url").to_owned();
    // Unique: the keyring is shared by every test of this session.
    let profile = format!("qa-{}", std::process::id());

    let (code, added) = run_json(
        &env,
        &["profile", "add", &profile, "--from-sandbox", &manifest_path],
    );
    assert_eq!(code, 0, "{added}");
    let (_, shown) = run_json(&env, &["profile", "show", &profile]);
    assert_eq!(shown["profile"]["api_url"], manifest["api"]["url"]);
    assert_eq!(shown["profile"]["issuer_url"], issuer.as_str());
    assert_eq!(shown["profile"]["client_id"], "fieldlink-cli");
    assert_eq!(shown["profile"]["ca_file"], manifest["ca_cert"]);
    assert!(shown["profile"].get("sandbox").is_none(), "{shown}");
    assert_eq!(shown["profile"]["fleet_radio"], manifest_path.as_str());
    assert!(shown["profile"].get("allow_insecure_loopback").is_none());

    // Not signed in yet: the API refuses.
    let registration_id = url(&manifest, "/devices/0/registration_id").to_owned();
    let (code, refused) = run_json(&env, &["--profile", &profile, "status", &registration_id]);
    assert_eq!(code, 5, "{refused}");

    // `login` prints the prompt, then polls while the test user approves on the page.
    let mut login = env
        .std_command()
        .args(["--json", "--profile", &profile, "login"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines_in, lines) = mpsc::channel::<Value>();
    let stdout = login.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line.trim().is_empty() {
                continue;
            }
            let _ = lines_in.send(serde_json::from_str(&line).unwrap());
        }
    });
    let prompt = lines.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(prompt["type"], "sign_in_prompt", "{prompt}");
    let page = prompt["verification_uri_complete"].as_str().unwrap();
    assert!(page.starts_with(&format!("{issuer}/device")), "{page}");
    common::approve_on_page(
        &client(Some(url(&manifest, "/ca_cert"))),
        &issuer,
        page,
        &manifest["users"][0],
    );
    let result = lines.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(login.wait().unwrap().success(), "{result}");
    reader.join().unwrap();
    assert_eq!(result["type"], "result");
    assert_eq!(result["session"]["identity"]["subject"], "installer");
    assert_eq!(result["session"]["identity"]["issuer"], issuer.as_str());

    let (code, whoami) = run_json(&env, &["--profile", &profile, "whoami"]);
    assert_eq!(code, 0);
    assert_eq!(whoami["signed_in"]["identity"]["subject"], "installer");
    assert_eq!(whoami["signed_in"]["identity"]["tenant"], "sandbox");
    assert_eq!(whoami["installer"], "Sandbox installer");

    // Commissioned in the signed-in mode: the memory fleet is only the radio, the ticket and
    // the confirmation come from the API with the stored tokens.
    let payload = url(&manifest, "/devices/0/payload");
    let (code, commissioned) = run_json(&env, &["--profile", &profile, "commission", payload]);
    assert_eq!(code, 0, "{commissioned}");
    assert_eq!(commissioned["device"]["status"], "succeeded");
    assert_eq!(commissioned["device"]["confirmation"], "confirmed");
    let (_, history) = run_json(&env, &["history", "--device", &registration_id]);
    assert_eq!(
        history["attempts"][0]["installer"], "Sandbox installer",
        "{history}"
    );
    let (code, status) = run_json(&env, &["--profile", &profile, "status", &registration_id]);
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["service"]["status"], "assigned");
    assert!(status["service"]["dps_instance"].is_string());
    let (code, unknown) = run_json(
        &env,
        &["--profile", &profile, "status", "not-on-the-allowlist"],
    );
    assert_ne!(code, 0, "{unknown}");

    let (code, logout) = run_json(&env, &["--profile", &profile, "logout"]);
    assert_eq!(code, 0);
    assert_eq!(logout["revoked"], true, "{logout}");
    let (code, _) = run_json(&env, &["--profile", &profile, "status", &registration_id]);
    assert_eq!(code, 5, "signed out: the API refuses again");
}

fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

/// The issuer's answer to an authorization request for `client_id` and `redirect_uri`, after
/// signing in as `user` on its page: the redirect `Location`, or `None` when it refused.
fn authorize(
    http: &reqwest::blocking::Client,
    issuer: &str,
    client_id: &str,
    redirect_uri: &str,
    verifier: &str,
    user: &Value,
) -> Option<String> {
    let page = http
        .get(format!("{issuer}/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", "openid profile offline_access"),
            ("state", "st-1"),
            ("nonce", "n-1"),
            ("code_challenge", &pkce_challenge(verifier)),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .unwrap();
    if !page.status().is_success() {
        assert!(page.headers().get("location").is_none(), "never redirected");
        return None;
    }
    let request = common::hidden_value(&page.text().unwrap(), "request").expect("request id");
    let answer = http
        .post(format!("{issuer}/oauth2/authorize"))
        .form(&[
            ("request", request.as_str()),
            ("username", user["username"].as_str().unwrap()),
            ("password", user["password"].as_str().unwrap()),
            ("decision", "approve"),
        ])
        .send()
        .unwrap();
    assert_eq!(answer.status(), 303);
    Some(answer.headers()["location"].to_str().unwrap().to_owned())
}

#[test]
fn desktop_and_mobile_clients_sign_in_with_pkce_and_the_api_accepts_their_tokens() {
    let env = common::Env::new();
    let sandbox = common::Sandbox::start(&env, 1);
    let manifest = sandbox.manifest_json();
    let issuer = url(&manifest, "/issuer/url");
    let api = url(&manifest, "/api/url");
    let user = &manifest["users"][0];
    let http = client(Some(url(&manifest, "/ca_cert")));
    let verifier = "fieldlink-desktop-verifier-0123456789-abcdefghij";
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let desktop = format!("http://127.0.0.1:{port}/callback");
    let mobile = "io.fieldlink.installer:/oauth2redirect";

    // Unregistered redirects are refused with an error page, never redirected to.
    for (client_id, redirect) in [
        (
            "fieldlink-desktop",
            format!("http://127.0.0.1:{port}/other"),
        ),
        (
            "fieldlink-desktop",
            format!("http://localhost:{port}/callback"),
        ),
        ("fieldlink-desktop", mobile.to_owned()),
        ("fieldlink-mobile", desktop.clone()),
        ("fieldlink-unknown", desktop.clone()),
    ] {
        assert_eq!(
            authorize(&http, issuer, client_id, &redirect, verifier, user),
            None,
            "{client_id} {redirect}"
        );
    }

    let registration_id = url(&manifest, "/devices/0/registration_id");
    for (client_id, redirect) in [
        ("fieldlink-desktop", desktop.as_str()),
        ("fieldlink-mobile", mobile),
    ] {
        let location = authorize(&http, issuer, client_id, redirect, verifier, user)
            .unwrap_or_else(|| panic!("{client_id} is registered for {redirect}"));
        assert!(location.starts_with(&format!("{redirect}?")), "{location}");
        let query = reqwest::Url::parse(&location).unwrap();
        let param = |name: &str| {
            query
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        assert_eq!(param("state").as_deref(), Some("st-1"));
        assert_eq!(param("iss").as_deref(), Some(issuer));
        let code = param("code").unwrap();
        let exchange = |verifier: &str| {
            http.post(format!("{issuer}/oauth2/token"))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", redirect),
                    ("code_verifier", verifier),
                    ("client_id", client_id),
                ])
                .send()
                .unwrap()
        };
        let wrong = exchange("another-verifier-0123456789-abcdefghijklmnop");
        assert_eq!(wrong.status(), 400, "the wrong PKCE verifier is refused");
        // Whatever the issuer does with a code after a failed exchange, a fresh one is clean.
        let location = authorize(&http, issuer, client_id, redirect, verifier, user).unwrap();
        let code = reqwest::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        let tokens: Value = http
            .post(format!("{issuer}/oauth2/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect),
                ("code_verifier", verifier),
                ("client_id", client_id),
            ])
            .send()
            .unwrap()
            .json()
            .unwrap();
        let access = tokens["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{tokens}"));
        let asked = http
            .get(format!("{api}/v1/devices/{registration_id}/registration"))
            .bearer_auth(access)
            .send()
            .unwrap();
        assert!(
            ![401, 403].contains(&asked.status().as_u16()),
            "{client_id}: the API accepts the token ({})",
            asked.status()
        );
        let refused = http
            .get(format!("{api}/v1/devices/{registration_id}/registration"))
            .bearer_auth(format!("{access}x"))
            .send()
            .unwrap();
        assert_eq!(refused.status(), 401, "a tampered token is not");
    }
}

#[test]
fn auto_approve_is_off_unless_asked_and_then_login_needs_no_page() {
    if !common::keyring_usable("the sign-in test") {
        return;
    }
    let env = common::Env::new();
    let sandbox = common::Sandbox::start_with(&env, 1, &["--auto-approve"]);
    let manifest = sandbox.manifest_json();
    assert_eq!(manifest["issuer"]["auto_approve"], true);
    let manifest_path = sandbox.manifest.to_str().unwrap().to_owned();
    let profile = format!("auto-{}", std::process::id());
    let (code, _) = run_json(
        &env,
        &["profile", "add", &profile, "--from-sandbox", &manifest_path],
    );
    assert_eq!(code, 0);
    // Nobody visits the page: the issuer approves as the installer test user by itself.
    let output = env
        .command()
        .args(["--json", "--profile", &profile, "login"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let result = common::result(&output.stdout);
    assert_eq!(result["session"]["identity"]["subject"], "installer");
    let (code, _) = run_json(&env, &["--profile", &profile, "logout"]);
    assert_eq!(code, 0);
}
