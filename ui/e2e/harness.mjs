// Shared Playwright harness: the production build served by `vite preview`, Debian's chromium,
// the IPC mocked before the app loads.

import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const UI_DIR = fileURLToPath(new URL("..", import.meta.url));
export const PORT = Number(process.env.FIELDLINK_PREVIEW_PORT || 4173);
export const BASE = `http://127.0.0.1:${PORT}/`;
const MOCK_IPC = fileURLToPath(new URL("./.out/mock-ipc.js", import.meta.url));
const MOCK_BACKEND = fileURLToPath(new URL("./mock-backend.js", import.meta.url));

export async function startPreview() {
  const server = spawn(
    process.execPath,
    ["node_modules/vite/bin/vite.js", "preview", "--port", String(PORT), "--strictPort", "--host", "127.0.0.1"],
    { cwd: UI_DIR, stdio: ["ignore", "pipe", "inherit"] },
  );
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(BASE);
      if (response.ok) return server;
    } catch {
      // not yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  server.kill();
  throw new Error("vite preview did not start");
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** A page with the app loaded under `scenario` (see mock-backend.js). */
export async function openApp(browser, scenario = {}, viewport = { width: 1280, height: 860 }) {
  const context = await browser.newContext({ viewport, reducedMotion: "reduce" });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error));
  await page.addInitScript({ path: MOCK_IPC });
  await page.addInitScript((s) => {
    window.__FIELDLINK_SCENARIO__ = s;
  }, scenario);
  await page.addInitScript({ path: MOCK_BACKEND });
  await page.goto(BASE);
  page.errors = errors;
  return page;
}
