//! The stack's own sign-in: the core's real OIDC device-code flow (the code path of
//! `fieldlink login`) against the stack's issuer, tokens in an in-memory secret store. The
//! resulting [`AuthClient`] is the provisioning-API client's token source (refresh before expiry
//! and on a 401 included), so a long-lived sandbox never holds an expired token.
//!
//! With the issuer's auto-approve (the demo) the first poll already succeeds. Without it (a
//! `sandbox up` for QA), the stack approves its own request on the issuer's HTML verification
//! page as the installer test user, exactly as a person would in a browser.

use std::{path::Path, sync::Arc, time::Duration};

use fieldlink_core::{
    auth::{AuthClient, Profile as AuthProfile, Session},
    secrets::{MemoryStore, SecretStore},
};

use super::issuer::{CLI_CLIENT, SandboxUser, StackIssuer};
use crate::{
    auth::auth_error,
    exit::{CliError, Exit},
};

/// How long the stack's own sign-in may take.
const SIGN_IN_DEADLINE: Duration = Duration::from_secs(60);

/// A signed-in client and who it is.
pub struct StackSession {
    /// The token source.
    pub client: Arc<AuthClient>,
    /// Who signed in.
    pub session: Session,
    /// Whether the issuer approved by itself (demo only).
    pub auto_approved: bool,
}

fn failed(what: &str, error: impl std::fmt::Display) -> CliError {
    CliError::new(
        Exit::Auth,
        "stack_sign_in_failed",
        format!("the stack could not sign in to its issuer ({what}): {error}"),
    )
}

/// Signs in to `issuer` for `api_url`, trusting the CA in `ca_file`.
pub async fn sign_in(
    issuer: &StackIssuer,
    api_url: &str,
    ca_file: &Path,
) -> Result<StackSession, CliError> {
    let mut profile = AuthProfile::new("sandbox-stack", api_url, &issuer.url, CLI_CLIENT);
    profile.ca_file = Some(ca_file.to_path_buf());
    let store: Arc<dyn SecretStore> = Arc::new(MemoryStore::new());
    let client = AuthClient::new(profile, store).map_err(|error| auth_error(&error))?;
    let flow = async {
        let started = client
            .start_device_sign_in()
            .await
            .map_err(|error| auth_error(&error))?;
        if !issuer.auto_approve {
            let user = issuer
                .installer()
                .ok_or_else(|| failed("approval", "the issuer has no installer user"))?;
            let page = started
                .prompt()
                .verification_uri_complete
                .clone()
                .unwrap_or_else(|| started.prompt().verification_uri.clone());
            approve_on_page(&client.http_client(), &issuer.url, &page, user).await?;
        }
        client
            .finish_device_sign_in(started)
            .await
            .map_err(|error| auth_error(&error))
    };
    let session = tokio::time::timeout(SIGN_IN_DEADLINE, flow)
        .await
        .map_err(|_| failed("deadline", "no answer within 60 s"))??;
    Ok(StackSession {
        client,
        session,
        auto_approved: issuer.auto_approve,
    })
}

/// Approves a device request on the issuer's verification page (`page`, with the user code
/// filled in) as `user`: sign in with the form, then press "approve".
pub async fn approve_on_page(
    http: &reqwest::Client,
    issuer_url: &str,
    page: &str,
    user: &SandboxUser,
) -> Result<(), CliError> {
    let text = |response: reqwest::Response| async move {
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|error| failed("verification page", error))?;
        Ok::<_, CliError>((status, body))
    };
    let (_, form) = text(
        http.get(page)
            .send()
            .await
            .map_err(|error| failed("verification page", error))?,
    )
    .await?;
    let user_code = hidden_value(&form, "user_code")
        .ok_or_else(|| failed("verification page", "no user code on the page"))?;
    let (_, consent_page) = text(
        http.post(format!("{issuer_url}/device"))
            .form(&[
                ("user_code", user_code.as_str()),
                ("username", user.username.as_str()),
                ("password", user.password.as_str()),
            ])
            .send()
            .await
            .map_err(|error| failed("sign-in form", error))?,
    )
    .await?;
    let consent = hidden_value(&consent_page, "consent")
        .ok_or_else(|| failed("sign-in form", "the issuer did not accept the test user"))?;
    let (status, _) = text(
        http.post(format!("{issuer_url}/device/decision"))
            .form(&[("consent", consent.as_str()), ("decision", "approve")])
            .send()
            .await
            .map_err(|error| failed("approval", error))?,
    )
    .await?;
    if status.is_success() {
        Ok(())
    } else {
        Err(failed("approval", format!("the issuer answered {status}")))
    }
}

/// The `value` of the `<input name="{name}">` tag in `html`.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html.get(..at)?.rfind('<')?;
    let tag_end = at + html.get(at..)?.find('>')?;
    let tag = html.get(tag_start..tag_end)?;
    let value = tag.split("value=\"").nth(1)?;
    Some(value.get(..value.find('"')?)?.replace("&amp;", "&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_values_are_read_from_their_tag() {
        let html = r#"<form><input type="hidden" name="consent" value="a&amp;b">
<input type="text" name="username" value=""><input name="user_code" value="WXYZ-1234"></form>"#;
        assert_eq!(hidden_value(html, "consent").as_deref(), Some("a&b"));
        assert_eq!(
            hidden_value(html, "user_code").as_deref(),
            Some("WXYZ-1234")
        );
        assert_eq!(hidden_value(html, "username").as_deref(), Some(""));
        assert_eq!(hidden_value(html, "missing"), None);
    }
}
