import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  build: {
    lib: {
      entry: fileURLToPath(new URL("./mock-ipc-entry.ts", import.meta.url)),
      formats: ["iife"],
      name: "TauriMockIPC",
      fileName: () => "mock-ipc.js",
    },
    outDir: fileURLToPath(new URL("./.out", import.meta.url)),
    emptyOutDir: true,
  },
});
