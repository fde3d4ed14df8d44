import { defineConfig } from "vitest/config";
import { svelte } from "@sveltejs/vite-plugin-svelte";
import { svelteTesting } from "@testing-library/svelte/vite";

// The Tauri CLI sets TAURI_ENV_DEBUG for debug builds.
const debug = !!process.env.TAURI_ENV_DEBUG;

export default defineConfig({
  plugins: [svelte(), svelteTesting()],
  clearScreen: false,
  server: { port: 1420, strictPort: true },
  envPrefix: ["VITE_", "TAURI_ENV_*"],
  build: {
    // WebKitGTK / WKWebView / WebView2 all run ES2020+.
    target: "safari13",
    minify: !debug,
    sourcemap: debug,
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "happy-dom",
  },
});
