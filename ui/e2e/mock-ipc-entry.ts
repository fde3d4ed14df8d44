// Bundled as an IIFE (e2e/.out/mock-ipc.js) so a Playwright init script can install the real
// @tauri-apps/api mocks before the production bundle runs.
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";

Object.assign(window, { __mockIPC: mockIPC, __clearMocks: clearMocks });
