// A person on another device approving a sign-in at the sandbox issuer: real HTTPS requests
// (trusting the sandbox's CA) that fill in the issuer's HTML forms as a browser would.

import http from "node:http";
import https from "node:https";

const ENTITIES = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'", "&#x27;": "'" };
const unescape = (text) => text.replace(/&(amp|lt|gt|quot|#39|#x27);/g, (entity) => ENTITIES[entity]);

/** One HTTP(S) request: `{status, headers, body}`. `form` is sent url-encoded. */
export function request(url, { method = "GET", form, ca, timeoutMs = 15_000 } = {}) {
  const target = new URL(url);
  const body = form ? new URLSearchParams(form).toString() : undefined;
  const client = target.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      target,
      {
        method,
        ca,
        timeout: timeoutMs,
        headers: body ? { "content-type": "application/x-www-form-urlencoded", "content-length": Buffer.byteLength(body) } : {},
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on("error", reject);
    req.end(body);
  });
}

/** The page's first POST form: its absolute action and its fields' current values. */
export function parseForm(html, pageUrl) {
  const form = /<form[^>]*method="post"[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) throw new Error(`no form on ${pageUrl}: ${html.slice(0, 300)}`);
  const fields = {};
  for (const input of form[2].matchAll(/<input\b[^>]*>/gi)) {
    const name = /\bname="([^"]*)"/.exec(input[0]);
    const value = /\bvalue="([^"]*)"/.exec(input[0]);
    if (name) fields[unescape(name[1])] = value ? unescape(value[1]) : "";
  }
  return { action: new URL(unescape(form[1]), pageUrl).href, fields };
}

/**
 * Approves (or denies) the device code behind `verificationUriComplete` as `username`: open the
 * verification page (code prefilled), sign in, then decide on the consent page. Resolves with
 * the final page's text.
 */
export async function decideDeviceCode(verificationUriComplete, { username, password, ca, decision = "approve" }) {
  const page = await request(verificationUriComplete, { ca });
  if (page.status !== 200) throw new Error(`verification page: HTTP ${page.status}`);
  const signIn = parseForm(page.body, verificationUriComplete);
  if (!signIn.fields.user_code) throw new Error("the verification page did not prefill the code");
  const consentPage = await request(signIn.action, {
    method: "POST",
    ca,
    form: { ...signIn.fields, username, password },
  });
  if (consentPage.status !== 200) throw new Error(`sign-in on the verification page: HTTP ${consentPage.status}: ${consentPage.body.slice(0, 300)}`);
  const consent = parseForm(consentPage.body, signIn.action);
  const done = await request(consent.action, { method: "POST", ca, form: { ...consent.fields, decision } });
  if (done.status !== 200) throw new Error(`consent: HTTP ${done.status}`);
  return done.body;
}
