// What the buttons of an error panel do, outside the retry that each screen supplies.

import { app } from "./app.svelte";
import type { ErrorAction } from "./errors";

export function performAction(action: ErrorAction, retry?: () => void): void {
  switch (action) {
    case "retry":
      retry?.();
      return;
    case "relabel":
      app.clearLabel();
      app.go("devices");
      return;
    case "scan":
      app.go("devices");
      void app.startScan();
      return;
    case "settings":
      app.go("settings");
      return;
    case "sign_in":
      void app.signOut();
      return;
    case "devices":
      app.go("devices");
      return;
    case "history":
      app.go("history");
      return;
  }
}
