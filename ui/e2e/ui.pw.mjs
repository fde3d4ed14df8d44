// The UI in a real browser (Debian chromium via playwright-core) with the Tauri IPC mocked by
// @tauri-apps/api/mocks before the app loads: every screen, every error state, the batch screen
// with 20 devices, 360 px and wide viewports, axe-core with 0 violations, and the screenshots
// in docs/screenshots/.
//
//   npm run build && npm run build:mock-ipc && node --test e2e/ui.pw.mjs

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { launch, openApp, startPreview } from "./harness.mjs";

const require = createRequire(import.meta.url);
const AXE = require.resolve("axe-core/axe.min.js");
const SHOTS = fileURLToPath(new URL("../../docs/screenshots/", import.meta.url));
mkdirSync(SHOTS, { recursive: true });

const WIDE = { width: 1280, height: 860 };
const NARROW = { width: 360, height: 780 };

let server;
let browser;
before(async () => {
  server = await startPreview();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  server?.kill();
});

async function axe(page, what) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const run = await axe.run(document, { resultTypes: ["violations"] });
    return run.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
    }));
  });
  assert.deepEqual(result, [], `axe violations on ${what}: ${JSON.stringify(result, null, 2)}`);
}

async function shot(page, name) {
  // Narrow screenshots show the first screenful, as a phone-sized window would.
  const fullPage = !name.endsWith("-360");
  await page.screenshot({ path: `${SHOTS}${name}.png`, fullPage });
}

async function settle(page) {
  await page.evaluate(() => document.fonts.ready);
  await page.waitForTimeout(150);
}

async function closePage(page) {
  assert.deepEqual(page.errors.map(String), [], "no uncaught errors in the page");
  await page.context().close();
}

const labels = (page) => page.evaluate(() => window.__FIELDLINK_LABELS__);

async function chooseLabel(page, index = 0) {
  const all = await labels(page);
  await page.fill("#label-text", all[index]);
  await page.getByRole("button", { name: "Use label" }).click();
  await page.getByTestId("label-chosen").waitFor();
}

describe("screens", () => {
  for (const [viewport, suffix] of [
    [WIDE, ""],
    [NARROW, "-360"],
  ]) {
    it(`sign-in ${suffix || "wide"}`, async () => {
      const page = await openApp(browser, { signedIn: false }, viewport);
      await page.getByRole("heading", { name: "Sign in" }).waitFor();
      assert.equal(await page.getByRole("radio").count(), 2);
      await settle(page);
      await axe(page, "sign-in");
      await shot(page, `sign-in${suffix}`);
      await page.getByRole("radio", { name: /Simulated site/ }).check();
      await page.getByRole("button", { name: /Continue to Simulated site/ }).click();
      await page.getByRole("heading", { name: "Devices", exact: true }).waitFor();
      assert.match(await page.getByTestId("session").innerText(), /Simulated site/);
      await closePage(page);
    });

    it(`devices with a live scan and a matched label ${suffix || "wide"}`, async () => {
      const page = await openApp(browser, {}, viewport);
      await page.getByRole("button", { name: "Scan", exact: true }).click();
      await page.locator("[data-testid=device-list] tbody tr").nth(3).waitFor();
      await chooseLabel(page, 1);
      const first = page.locator("[data-testid=device-list] tbody tr").first();
      assert.equal(await first.getAttribute("data-match"), "true", "the labelled device comes first");
      assert.match(await page.getByTestId("match-status").innerText(), /matching device is in range/);
      await settle(page);
      await axe(page, "devices");
      await shot(page, `devices${suffix}`);
      await page.getByRole("button", { name: "Stop scan" }).click();
      await page.getByRole("button", { name: "Scan", exact: true }).waitFor();
      await closePage(page);
    });

    it(`commission: stepper, then the result ${suffix || "wide"}`, async () => {
      const page = await openApp(browser, { hold: "registering" }, viewport);
      await chooseLabel(page, 0);
      await page.getByRole("button", { name: "Commission this device" }).click();
      await page.locator('[data-stage="registration"][data-status="active"]').waitFor();
      assert.equal(await page.locator('[aria-current="step"]').getAttribute("data-stage"), "registration");
      await settle(page);
      await axe(page, "commission running");
      await shot(page, `commission-running${suffix}`);
      await page.getByRole("button", { name: "Cancel" }).click();
      const panel = page.getByTestId("error-panel");
      await panel.waitFor();
      assert.equal(await panel.getAttribute("data-code"), "cancelled");
      await closePage(page);

      const done = await openApp(browser, {}, viewport);
      await chooseLabel(done, 0);
      await done.getByRole("button", { name: "Commission this device" }).click();
      await done.getByTestId("result").waitFor();
      assert.equal(await done.getByTestId("dps-instance").innerText(), "dps-westeurope-2");
      assert.equal(await done.getByTestId("assigned-hub").innerText(), "hub-we-07.azure-devices.net");
      assert.match(await done.getByTestId("agreement").innerText(), /agrees with the device/);
      assert.equal(await done.locator('[data-status="done"]').count(), 6);
      await done.getByRole("button", { name: "Check registration status" }).click();
      await done.getByTestId("status-now").waitFor();
      await settle(done);
      await axe(done, "result");
      await shot(done, `result${suffix}`);
      await done.getByRole("button", { name: "Commission next device" }).click();
      await done.getByRole("heading", { name: "Devices", exact: true }).waitFor();
      await closePage(done);
    });

    it(`batch of 20 devices ${suffix || "wide"}`, async () => {
      const page = await openApp(browser, { batchFailures: [6, 13], stepDelayMs: 5 }, viewport);
      await page.getByRole("button", { name: "Batch" }).click();
      const all = (await labels(page)).slice(0, 20);
      await page.fill("#batch-labels", all.join("\n"));
      await page.getByRole("button", { name: "Commission 20 device(s)" }).click();
      await page.locator("[data-testid=batch-rows] tbody tr").nth(19).waitFor();
      await page.getByText("18 succeeded").waitFor({ timeout: 20_000 });
      assert.equal(await page.locator('[data-testid=batch-rows] tr[data-status="succeeded"]').count(), 18);
      assert.equal(await page.locator('[data-testid=batch-rows] tr[data-status="failed"]').count(), 2);
      await page.getByText("2 failed").waitFor();
      await page.getByRole("button", { name: "Retry failed devices" }).waitFor();
      await settle(page);
      await axe(page, "batch");
      await shot(page, `batch-20${suffix}`);
      await closePage(page);
    });

    it(`history with filters, export and resumable batches ${suffix || "wide"}`, async () => {
      const page = await openApp(browser, {}, viewport);
      await page.getByRole("button", { name: "History" }).click();
      await page.getByTestId("history-table").waitFor();
      assert.equal(await page.locator("[data-testid=history-table] tbody tr").count(), 5);
      await page.selectOption("#filter-outcome", "failed");
      assert.equal(await page.locator("[data-testid=history-table] tbody tr").count(), 2);
      await page.selectOption("#filter-outcome", "all");
      await page.getByRole("button", { name: "Export CSV" }).click();
      assert.match(await page.getByTestId("export-result").innerText(), /5 attempt\(s\) to .*\.csv/);
      await settle(page);
      await axe(page, "history");
      await shot(page, `history${suffix}`);
      await page.getByRole("button", { name: "Resume" }).click();
      await page.getByRole("heading", { name: /Resume batch/ }).waitFor();
      await closePage(page);
    });

    it(`settings ${suffix || "wide"}`, async () => {
      const page = await openApp(browser, {}, viewport);
      await page.getByRole("button", { name: "Settings" }).click();
      await page.getByRole("heading", { name: "Settings", exact: true }).waitFor();
      await page.locator("#adapter option", { hasText: "hci0" }).waitFor({ state: "attached" });
      await settle(page);
      await axe(page, "settings");
      await shot(page, `settings${suffix}`);
      await page.getByLabel("Dark").check();
      await page.getByRole("button", { name: "Save settings" }).click();
      await page.getByText("Saved").waitFor();
      assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
      await closePage(page);
    });
  }

  it("dark mode passes axe on every screen", async () => {
    const page = await openApp(browser, { theme: "dark", batchFailures: [2], stepDelayMs: 5 }, WIDE);
    await page.getByRole("heading", { name: "Devices", exact: true }).waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
    await page.getByRole("button", { name: "Scan", exact: true }).click();
    await chooseLabel(page, 0);
    await settle(page);
    await axe(page, "devices (dark)");
    await page.getByRole("button", { name: "Commission this device" }).click();
    await page.getByTestId("result").waitFor();
    await settle(page);
    await axe(page, "result (dark)");
    await shot(page, "result-dark");
    for (const screen of ["Batch", "History", "Settings"]) {
      await page.getByRole("button", { name: screen, exact: true }).click();
      await page.getByRole("heading", { name: screen, exact: true }).waitFor();
      await settle(page);
      await axe(page, `${screen} (dark)`);
    }
    await closePage(page);
  });
});

describe("error states", () => {
  const COMMISSION_ERRORS = [
    ["wrong_pop", "wrong proof-of-possession (attempt 2 of 5): rescan the device's QR label or re-enter the manual code", false, { attempt: 2, max: 5 }, "handshaking", "relabel"],
    ["device_locked", "device locked after too many wrong proof-of-possession attempts: retry in 30 s", true, { retry_after_s: 30 }, "handshaking", "retry"],
    ["device_not_found", "device not found: nothing advertised discriminator 0xa10; check that it is powered, in range and not already commissioned", true, { discriminator: 2576 }, "scanning", "scan"],
    ["device_busy", "device busy with another installer: wait for that session to end, then retry", true, {}, "handshaking", "scan"],
    ["bluetooth_unavailable", "Bluetooth unavailable (bluetooth_off: turn it on): turn Bluetooth on and grant the permission", false, { detail: "bluetooth_off" }, "scanning", "settings"],
    ["link_lost", "BLE link lost while registering; move closer and retry", true, { step: "registering", retryable: true }, "registering", "scan"],
    ["timeout", "timed out while registering: retry; if it persists, power-cycle the device", true, { step: "registering" }, "registering", "scan"],
    ["ticket_rejected", "device rejected the ticket (expired): fetch a fresh ticket and retry", true, { reason: "expired" }, "provisioning", "relabel"],
    ["registration_failed", "DPS registration failed (status failed, error 401002): check the enrollment for this registration ID", false, { dps: {} }, "registering", "history"],
    ["confirmation_mismatch", "confirmation failed: the device reports assigned hub-a/d1 but the provisioning service reports assigned hub-b/d1; do not hand the device over, and contact support", false, {}, "confirming", "history"],
    ["api_unavailable", "provisioning service unavailable (connection refused): check connectivity and retry", true, { detail: "connection refused" }, "handshaking", "settings"],
    ["throttled", "throttled by the service: retry in 5 s", true, { retry_after_s: 5 }, "handshaking", "retry"],
    ["network_join_failed", "network join failed (wifi_auth_failed): Wi-Fi authentication failed: re-enter the passphrase and retry", false, { kind: "wifi_auth_failed" }, "provisioning", "devices"],
    ["incompatible_device", "incompatible device (protocol version 9): update the installer or the device firmware", false, {}, "handshaking", "devices"],
    ["unauthorized", "not signed in or the session expired: sign in again", false, {}, "handshaking", "sign_in"],
    ["forbidden", "not allowed to commission this device: ask an administrator for access", false, {}, "handshaking", "sign_in"],
    ["not_configured", "no provisioning service is configured for profile \"acme-prod\": the profile has no provisioning API URL; open a sandbox manifest or choose another profile in Settings", false, {}, "scanning", "settings"],
    ["internal", "internal error (journal locked): please report it", false, {}, "scanning", "devices"],
  ];

  for (const [code, message, retryable, details, failAt, action] of COMMISSION_ERRORS) {
    it(`commission fails with ${code}`, async () => {
      const page = await openApp(browser, {
        commissionError: { code, message, retryable, details },
        failAt,
      });
      await chooseLabel(page, 0);
      await page.getByRole("button", { name: "Commission this device" }).click();
      const panel = page.getByTestId("error-panel");
      await panel.waitFor();
      assert.equal(await panel.getAttribute("data-code"), code);
      assert.ok((await panel.innerText()).includes(message), "the core's actionable message is shown");
      assert.equal(await page.locator('[data-status="failed"]').count(), 1, "the failing step is marked");
      assert.equal(await panel.locator('[data-action="retry"]').count(), retryable ? 1 : 0);
      assert.ok(
        (await panel.locator(`[data-action="${action}"]`).count()) === 1,
        `${code} offers ${action}`,
      );
      if (code === "wrong_pop") {
        await settle(page);
        await axe(page, "wrong_pop");
        await shot(page, "error-wrong-pop");
      }
      if (code === "device_locked") {
        assert.ok(await panel.locator('[data-action="retry"]').isDisabled(), "retry waits for the lockout");
      }
      // The last way forward leaves the Commission screen.
      await panel.locator("button").last().click();
      await page.getByRole("heading", { name: "Commission", exact: true }).waitFor({ state: "detached" });
      await closePage(page);
    });
  }

  it("a retryable failure can be retried in place", async () => {
    const page = await openApp(browser, {
      commissionError: { code: "timeout", message: "timed out while registering: retry; if it persists, power-cycle the device", retryable: true, details: { step: "registering" } },
      failAt: "registering",
    });
    await chooseLabel(page, 0);
    await page.getByRole("button", { name: "Commission this device" }).click();
    await page.getByTestId("error-panel").waitFor();
    assert.equal(await page.evaluate(() => window.__FIELDLINK_CALLS__.commission), 1);
    await page.getByRole("button", { name: "Retry" }).click();
    await page.waitForFunction(() => window.__FIELDLINK_CALLS__.commission === 2);
    await page.getByTestId("error-panel").waitFor();
    await closePage(page);
  });

  it("an app that cannot start says why and offers a retry", async () => {
    const page = await openApp(browser, {
      startupError: { code: "journal_unavailable", message: "cannot open the journal at /home/ann/.local/share/fieldlink/journal.sqlite: permission denied", retryable: false, details: {} },
    });
    const panel = page.getByTestId("error-panel");
    await panel.waitFor();
    assert.match(await panel.innerText(), /permission denied/);
    assert.ok((await panel.locator("button").count()) >= 1);
    await axe(page, "startup error");
    await closePage(page);
  });

  it("sign-in: no profile, and sign-in unavailable", async () => {
    const none = await openApp(browser, { signedIn: false, profiles: "none" });
    await none.getByText("No organisation is set up").waitFor();
    await none.getByRole("button", { name: "Open Settings" }).click();
    await none.getByRole("heading", { name: "Settings", exact: true }).waitFor();
    await closePage(none);

    const page = await openApp(browser, {
      signedIn: false,
      signInError: { code: "sign_in_unavailable", message: "sign-in is not available: this build of fieldlink has no OIDC client yet", retryable: false, details: {} },
    });
    await page.getByRole("radio", { name: /Acme Water/ }).check();
    await page.getByRole("button", { name: "Sign in with browser" }).click();
    const panel = page.getByTestId("error-panel");
    await panel.waitFor();
    assert.equal(await panel.getAttribute("data-code"), "sign_in_unavailable");
    await settle(page);
    await axe(page, "sign-in error");
    await shot(page, "error-sign-in");
    await closePage(page);
  });

  it("sign-in with a device code shows the code and can be cancelled", async () => {
    const page = await openApp(browser, { signedIn: false, deviceCode: true });
    await page.getByRole("radio", { name: /Acme Water/ }).check();
    await page.getByRole("button", { name: "Sign in with a code" }).click();
    await page.getByTestId("device-code").waitFor();
    assert.match(await page.getByTestId("device-code").innerText(), /WDJB-MJHT/);
    await axe(page, "device code");
    await page.getByRole("button", { name: "Cancel" }).click();
    await page.getByTestId("error-panel").waitFor();
    await closePage(page);
  });

  it("a damaged label names the field and keeps the input", async () => {
    const page = await openApp(browser, {});
    await page.fill("#label-text", "FL1/PUMP-7/!!!");
    await page.getByRole("button", { name: "Use label" }).click();
    await page.getByTestId("label-error").waitFor();
    assert.match(await page.getByTestId("label-error").innerText(), /checksum/);
    assert.equal(await page.inputValue("#label-text"), "FL1/PUMP-7/!!!");
    await page.getByRole("button", { name: "Manual code" }).click();
    await page.fill("#manual-code", "1234");
    await page.getByRole("button", { name: "Use code" }).click();
    await page.getByText(/has 4 digits/).waitFor();
    await closePage(page);
  });

  it("the camera tab explains a missing camera and falls back to typing", async () => {
    const page = await openApp(browser, {});
    await page.getByRole("button", { name: "Camera" }).click();
    await page.getByTestId("camera-problem").waitFor();
    await axe(page, "camera problem");
    await page.getByRole("button", { name: "Type or paste instead" }).click();
    await page.locator("#label-text").waitFor();
    await closePage(page);
  });

  it("a scan without Bluetooth says so and leads to Settings", async () => {
    const page = await openApp(browser, {
      scanError: { code: "bluetooth_unavailable", message: "Bluetooth unavailable (no_bluez: the Bluetooth service is not running): turn Bluetooth on and grant the permission", retryable: false, details: {} },
    });
    await page.getByRole("button", { name: "Scan", exact: true }).click();
    const panel = page.getByTestId("error-panel");
    await panel.waitFor();
    assert.equal(await panel.getAttribute("data-code"), "bluetooth_unavailable");
    await settle(page);
    await axe(page, "scan error");
    await shot(page, "error-bluetooth");
    await panel.getByRole("button", { name: "Open Settings" }).click();
    await page.getByRole("heading", { name: "Settings", exact: true }).waitFor();
    await closePage(page);
  });

  it("history that cannot be read offers a retry; an empty one a way forward", async () => {
    const page = await openApp(browser, {
      historyError: { code: "journal_error", message: "journal database error: database is locked", retryable: false, details: {} },
    });
    await page.getByRole("button", { name: "History" }).click();
    await page.getByTestId("error-panel").waitFor();
    await closePage(page);
    const empty = await openApp(browser, { emptyHistory: true });
    await empty.getByRole("button", { name: "History" }).click();
    await empty.getByText("Nothing commissioned on this computer yet.").waitFor();
    await empty.getByRole("button", { name: "Commission a device" }).click();
    await empty.getByRole("heading", { name: "Devices", exact: true }).waitFor();
    await closePage(empty);
  });

  it("settings refuse plain http to a remote API and say why; no adapters is explained", async () => {
    const page = await openApp(browser, {
      adaptersError: { code: "bluetooth_unavailable", message: "Bluetooth unavailable (no_adapter: no Bluetooth adapter found: plug one in or enable it): turn Bluetooth on and grant the permission", retryable: false, details: {} },
    });
    await page.getByRole("button", { name: "Settings" }).click();
    await page.getByTestId("adapter-error").waitFor();
    await page.fill("#p0-api", "http://provisioning.acme.example");
    await page.getByRole("button", { name: "Save settings" }).click();
    const panel = page.getByTestId("error-panel");
    await panel.waitFor();
    assert.equal(await panel.getAttribute("data-code"), "invalid_setting");
    assert.match(await panel.innerText(), /use https/);
    await settle(page);
    await axe(page, "settings error");
    await closePage(page);
  });
});

describe("sandbox", () => {
  it("opening a sandbox manifest adds its profile (API, issuer, desktop client, CA) and signs in with a code; a wrong path says why", async () => {
    const page = await openApp(browser, {});
    await page.getByRole("button", { name: "Settings" }).click();
    await page.fill("#manifest-path", "/tmp/nowhere.json");
    await page.getByRole("button", { name: "Open manifest" }).click();
    const panel = page.getByTestId("error-panel");
    await panel.waitFor();
    assert.equal(await panel.getAttribute("data-code"), "sandbox_unavailable");
    await page.fill("#manifest-path", "/home/ann/.local/state/fieldlink/sandbox/manifest.json");
    await page.getByRole("button", { name: "Open manifest" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    assert.ok(await page.getByRole("radio", { name: /fieldlink sandbox/ }).isChecked());
    assert.match(await page.getByRole("radio", { name: /fieldlink sandbox/ }).locator("..").innerText(), /local sandbox/);
    await page.getByRole("button", { name: "Sign in with a code" }).click();
    await page.getByTestId("verification-uri-complete").waitFor();
    assert.equal(await page.getByTestId("verification-uri-complete").innerText(), "https://127.0.0.1:41444/device?user_code=QKZT-RWMB");
    assert.equal(await page.getByTestId("user-code").innerText(), "QKZT-RWMB");
    await page.getByRole("heading", { name: "Devices", exact: true }).waitFor();
    assert.match(await page.getByTestId("session").innerText(), /Sandbox installer/);
    await closePage(page);
  });
});

describe("field UX", () => {
  it("works from the keyboard alone, with a visible focus ring", async () => {
    const page = await openApp(browser, {});
    await page.getByRole("heading", { name: "Devices", exact: true }).waitFor();
    await page.keyboard.press("Tab"); // skip link
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Skip to content");
    let found = false;
    for (let i = 0; i < 8 && !found; i += 1) {
      await page.keyboard.press("Tab");
      found = await page.evaluate(() => document.activeElement?.textContent === "History");
    }
    assert.ok(found, "the nav is reachable with Tab");
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.equal(outline, "solid", "focus is visible");
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "History", exact: true }).waitFor();
    // Back to Devices, enter a label and commission it, all from the keyboard.
    await page.getByRole("button", { name: "Devices" }).focus();
    await page.keyboard.press("Enter");
    await page.locator("#label-text").focus();
    await page.keyboard.type((await labels(page))[2]);
    await page.keyboard.press("Enter");
    await page.getByTestId("label-chosen").waitFor();
    await page.getByRole("button", { name: "Commission this device" }).focus();
    await page.keyboard.press("Enter");
    await page.getByTestId("result").waitFor();
    await closePage(page);
  });

  it("has large touch targets and no horizontal scrolling at 360 px", async () => {
    const page = await openApp(browser, { stepDelayMs: 5 }, NARROW);
    for (const screen of ["Devices", "Batch", "History", "Settings"]) {
      await page.getByRole("button", { name: screen, exact: true }).click();
      await page.getByRole("heading", { name: screen, exact: true }).waitFor();
      const small = await page.evaluate(() =>
        [...document.querySelectorAll("button, select, input:not([type=radio]):not([type=checkbox]):not([type=file])")]
          .filter((el) => el.offsetParent !== null)
          .map((el) => ({ text: el.textContent || el.id, h: el.getBoundingClientRect().height }))
          .filter((t) => t.h < 44),
      );
      assert.deepEqual(small, [], `${screen}: touch targets under 44 px`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${screen}: ${overflow}px of horizontal scroll at 360 px`);
    }
    await closePage(page);
  });
});
