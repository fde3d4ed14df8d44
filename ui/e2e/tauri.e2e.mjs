// The real app end to end: the desktop binary (built with `--features demo,sandbox`) in a real
// WebKitGTK window under Xvfb, driven by tauri-driver + WebKitWebDriver through webdriverio,
// against `fieldlink sandbox up` running as a separate process. The app opens the sandbox's
// manifest, signs in to the sandbox's real OIDC issuer with the device-code flow (the code is
// approved over HTTPS as the manifest's test user, as a person on another device would), scans
// and finds the sandbox's devices, commissions one and sees it confirmed through the real API,
// then a wrong-PoP manual code shows the right message.
//
//   xvfb-run -a node --test e2e/tauri.e2e.mjs
//
// By default the sandbox runs with `--ble bluez`: its devices are real device agents behind
// BlueZoo on a private D-Bus bus, and the app (started with that bus as DBUS_SYSTEM_BUS_ADDRESS)
// reaches them through btleplug on the sandbox's installer adapter, chosen in Settings, so BLE
// crosses the real D-Bus path between the two processes. FIELDLINK_E2E_BLE=memory runs the
// sandbox's in-memory fleet behind its fleet socket instead.
//
// Environment: FIELDLINK_DESKTOP_BIN (default ../target/debug/fieldlink-desktop),
// FIELDLINK_BIN (default ../target/debug/fieldlink), TAURI_DRIVER (default tauri-driver on PATH),
// FIELDLINK_E2E_BLE (bluez, the default, or memory).

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { remote } from "webdriverio";
import { decideDeviceCode } from "./issuer-browser.mjs";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const APP = process.env.FIELDLINK_DESKTOP_BIN || join(ROOT, "target/debug/fieldlink-desktop");
const CLI = process.env.FIELDLINK_BIN || join(ROOT, "target/debug/fieldlink");
const DRIVER = process.env.TAURI_DRIVER || "tauri-driver";
const SHOTS = join(ROOT, "docs/screenshots");
const PORT = Number(process.env.TAURI_DRIVER_PORT || 4444);
const BLE = process.env.FIELDLINK_E2E_BLE || "bluez";
const DEVICES = BLE === "bluez" ? 2 : 3;

const work = mkdtempSync(join(tmpdir(), "fieldlink-e2e-"));
const manifestPath = join(work, "sandbox", "manifest.json");
let sandbox;
let driver;
let browser;
let manifest;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what, check, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** The 11-digit manual code for a 4-bit discriminator and a 27-bit passcode (Verhoeff check). */
function manualCode(discriminator4, passcode) {
  const D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
  ];
  const P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
  ];
  const INV = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];
  const body =
    String(discriminator4 >> 2) +
    String(((discriminator4 & 3) << 14) | (passcode & 0x3fff)).padStart(5, "0") +
    String(passcode >> 14).padStart(4, "0");
  let c = 0;
  [...body].reverse().forEach((digit, i) => {
    c = D[c][P[(i + 1) % 8][Number(digit)]];
  });
  return body + INV[c];
}

/** The passcode inside a manual code (the inverse of `manualCode`). */
function passcodeOf(code) {
  const middle = Number(code.slice(1, 6));
  const high = Number(code.slice(6, 10));
  return (high << 14) | (middle & 0x3fff);
}

before(async () => {
  assert.ok(existsSync(APP), `no desktop binary at ${APP}`);
  assert.ok(existsSync(CLI), `no fieldlink binary at ${CLI}`);
  sandbox = spawn(
    CLI,
    ["sandbox", "up", "--devices", String(DEVICES), "--ble", BLE, "--manifest", manifestPath, "--no-labels"],
    { stdio: ["ignore", "inherit", "inherit"] },
  );
  const exited = new Promise((resolve) => sandbox.once("exit", (code) => resolve(code)));
  manifest = await waitFor(
    "the sandbox manifest",
    async () => {
      const code = await Promise.race([exited, sleep(0).then(() => undefined)]);
      if (code !== undefined) throw new Error(`fieldlink sandbox up exited with ${code}`);
      try {
        const read = JSON.parse(readFileSync(manifestPath, "utf8"));
        // A BlueZ sandbox is ready once every device agent runs.
        if (BLE === "bluez" && !(read.bluez && read.bluez.devices.every((device) => device.pid))) return null;
        return read;
      } catch {
        return null;
      }
    },
    120_000,
  );
  if (BLE === "bluez") {
    assert.ok(manifest.bluez, "a --ble bluez sandbox describes its bus in the manifest");
    assert.ok(manifest.bluez.bus_address, "the sandbox runs its own bench bus");
  }
  const env = {
    ...process.env,
    XDG_CONFIG_HOME: join(work, "config"),
    XDG_DATA_HOME: join(work, "data"),
    XDG_DOWNLOAD_DIR: join(work, "downloads"),
    // Xvfb has no GPU, so the app would turn off WebKitGTK's DMA-BUF renderer and GDK's GL
    // (src-tauri/src/software_gl.rs); WebKitWebDriver's screenshots hang in that mode, so the
    // test keeps WebKit's default renderer, the one computers with a GPU use.
    WEBKIT_DISABLE_DMABUF_RENDERER: "0",
    GDK_GL: "",
  };
  // The app's btleplug (libdbus) talks to the bench's bus, as a laptop's talks to its BlueZ.
  if (BLE === "bluez") env.DBUS_SYSTEM_BUS_ADDRESS = manifest.bluez.bus_address;
  else delete env.DBUS_SYSTEM_BUS_ADDRESS;
  // Its own process group, so the app it starts (through WebKitWebDriver) is stopped with it
  // even when a failed test leaves the WebDriver session open.
  driver = spawn(DRIVER, ["--port", String(PORT), "--native-port", String(PORT + 1)], {
    stdio: ["ignore", "inherit", "inherit"],
    env,
    detached: true,
  });
  await waitFor("tauri-driver", async () => {
    try {
      return (await fetch(`http://127.0.0.1:${PORT}/status`)).ok;
    } catch {
      return false;
    }
  });
  browser = await remote({
    hostname: "127.0.0.1",
    port: PORT,
    logLevel: "warn",
    capabilities: {
      browserName: "wry",
      "wdio:enforceWebDriverClassic": true,
      "tauri:options": { application: APP },
    },
  });
});

after(async () => {
  await browser?.deleteSession().catch(() => undefined);
  if (driver) {
    try {
      process.kill(-driver.pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
  if (sandbox) {
    sandbox.kill("SIGINT");
    await new Promise((resolve) => {
      const timer = setTimeout(() => {
        sandbox.kill("SIGKILL");
        resolve();
      }, 10_000);
      sandbox.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  rmSync(work, { recursive: true, force: true });
});

async function click(selector) {
  const element = await browser.$(selector);
  await element.waitForClickable({ timeout: 20_000 });
  await element.click();
}

/** Invokes a command of the real app over its IPC. */
async function invoke(cmd, args = {}) {
  const answer = await browser.executeAsync(
    (cmd, args, done) => {
      window.__TAURI_INTERNALS__.invoke(cmd, args).then(
        (value) => done({ value }),
        (error) => done({ error }),
      );
    },
    cmd,
    args,
  );
  if (answer.error) throw new Error(`${cmd}: ${JSON.stringify(answer.error)}`);
  return answer.value;
}

async function screen(name) {
  await browser.$(`h1=${name}`).waitForDisplayed({ timeout: 20_000 });
}

describe("the real app against fieldlink sandbox up", () => {
  it("starts, renders and answers over IPC", async () => {
    await screen("Sign in");
    assert.equal(await browser.getTitle(), "fieldlink");
    const info = await browser.executeAsync((done) => {
      window.__TAURI_INTERNALS__.invoke("app_info").then(done, (e) => done({ error: e }));
    });
    assert.equal(info.sandbox_available, true);
    assert.match(info.version, /^\d+\.\d+\.\d+/);
  });

  it("opens the sandbox manifest and signs in with a code approved over HTTPS", async () => {
    assert.ok(manifest.issuer, "the sandbox runs an issuer");
    assert.equal(manifest.issuer.auto_approve, false, "sign-ins wait for a person to approve them");
    const user = manifest.users.find((candidate) => candidate.password);
    assert.ok(user, "the manifest names a test user with a password");
    await click('button[data-screen="settings"]');
    await screen("Settings");
    await (await browser.$("#manifest-path")).setValue(manifestPath);
    await click("button=Open manifest");
    await screen("Sign in");
    const radio = await browser.$('input[value="sandbox"]');
    assert.ok(await radio.isSelected(), "the sandbox profile is chosen");
    const settings = await invoke("get_settings");
    const profile = settings.profiles.find((p) => p.name === "sandbox");
    assert.equal(profile.api_url, manifest.api.url);
    assert.equal(profile.issuer, manifest.issuer.url);
    assert.equal(profile.client_id, "fieldlink-desktop");
    assert.equal(profile.ca_file, manifest.ca_cert);

    await click("button=Sign in with a code");
    const link = await browser.$('[data-testid="verification-uri-complete"]');
    await link.waitForDisplayed({ timeout: 30_000 });
    const userCode = await (await browser.$('[data-testid="user-code"]')).getText();
    const verification = await link.getText();
    assert.ok(verification.startsWith(manifest.issuer.url), `${verification} is on the issuer`);
    mkdirSync(SHOTS, { recursive: true });
    await browser.saveScreenshot(join(SHOTS, "webkit-device-code.png"));
    // Still waiting: nothing is approved until the person does it.
    await sleep(1500);
    assert.ok(await link.isDisplayed(), "the app waits for the approval");
    const done = await decideDeviceCode(verification, {
      username: user.username,
      password: user.password,
      ca: readFileSync(manifest.ca_cert),
    });
    assert.match(done, /approved/i);
    await screen("Devices");
    const session = await (await browser.$('[data-testid="session"]')).getText();
    assert.match(session, /fieldlink sandbox/);
    assert.match(session, new RegExp(user.username));
    const info = await invoke("get_session");
    assert.equal(info.method, "device_code");
    assert.ok(userCode.length >= 4);
  });

  it("uses the sandbox's installer adapter over D-Bus (Settings → BLE adapter)", async (t) => {
    if (BLE !== "bluez") return t.skip("in-memory fleet: no adapter");
    await click('button[data-screen="settings"]');
    await screen("Settings");
    const select = await browser.$("#adapter");
    // The adapters come from BlueZoo over the bench's D-Bus (btleplug in the app's core).
    const listed = () => browser.execute(() => Array.from(document.querySelectorAll("#adapter option"), (o) => o.value));
    const options = await browser.waitUntil(
      async () => {
        const values = await listed();
        return values.length > 1 + manifest.bluez.devices.length && values;
      },
      { timeout: 20_000, timeoutMsg: "the bench's adapters are listed" },
    );
    assert.ok(options.includes(manifest.bluez.installer_adapter), `${options} lists the installer adapter`);
    await select.selectByAttribute("value", manifest.bluez.installer_adapter);
    await click("button=Save settings");
    await browser.$("span=Saved").waitForDisplayed({ timeout: 10_000 });
    const settings = await invoke("get_settings");
    assert.equal(settings.ble_adapter, manifest.bluez.installer_adapter);
    await click('button[data-screen="devices"]');
    await screen("Devices");
  });

  it("scans and finds the sandbox devices", async () => {
    await click("button=Scan");
    await browser.waitUntil(async () => (await browser.$$('[data-testid="device-list"] tbody tr')).length === DEVICES, {
      timeout: 60_000,
      timeoutMsg: `${DEVICES} sandbox devices in the scan list`,
    });
    const text = await (await browser.$('[data-testid="device-list"]')).getText();
    for (const device of manifest.devices) {
      const hex = `0x${device.discriminator.toString(16).toUpperCase().padStart(3, "0")}`;
      assert.ok(text.includes(hex), `${device.registration_id} (${hex}) is listed`);
    }
    assert.match(text, /commissionable/);
  });

  it("commissions a device and sees it confirmed", async () => {
    const device = manifest.devices[0];
    await (await browser.$("#label-text")).setValue(device.payload);
    await click("button=Use label");
    await browser.$('[data-testid="label-chosen"]').waitForDisplayed();
    assert.equal(await (await browser.$('[data-testid="label-registration-id"]')).getText(), device.registration_id);
    await browser.waitUntil(async () => (await browser.$('tr[data-match="true"]')).isExisting(), {
      timeout: 10_000,
      timeoutMsg: "the labelled device is matched in the scan list",
    });
    await click("button=Commission this device");
    await browser.$('[data-testid="result"]').waitForDisplayed({ timeout: 60_000 });
    assert.match(await (await browser.$('[data-testid="agreement"]')).getText(), /agrees with the device/);
    assert.ok((await (await browser.$('[data-testid="assigned-hub"]')).getText()).length > 1);
    assert.equal((await browser.$$('[data-status="done"]')).length, 6);
    mkdirSync(SHOTS, { recursive: true });
    await browser.saveScreenshot(join(SHOTS, "webkit-result.png"));
  });

  it("shows the wrong-PoP message for a wrong manual code", async () => {
    await click("button=Commission next device");
    await screen("Devices");
    const device = manifest.devices[1];
    const right = passcodeOf(device.manual_code);
    const wrong = manualCode((device.discriminator >> 8) & 0xf, right === 1 ? 2 : right ^ 1);
    assert.notEqual(wrong, device.manual_code);
    await click("button=Manual code");
    await (await browser.$("#manual-code")).setValue(wrong);
    await click("button=Use code");
    await browser.$('[data-testid="label-chosen"]').waitForDisplayed();
    await click("button=Commission this device");
    const panel = await browser.$('[data-testid="error-panel"]');
    await panel.waitForDisplayed({ timeout: 60_000 });
    assert.equal(await panel.getAttribute("data-code"), "wrong_pop");
    assert.match(await panel.getText(), /wrong proof-of-possession \(attempt 1 of \d+\)/);
    assert.ok(await (await browser.$("button=Re-enter the label")).isDisplayed(), "a way forward");
    await browser.saveScreenshot(join(SHOTS, "webkit-wrong-pop.png"));
  });
});
