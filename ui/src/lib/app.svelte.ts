// The app's shared state (Svelte 5 runes): where we are, who is signed in, the settings, the
// chosen label, the live scan and the running commissioning.

import type {
  AppInfo,
  CommandError,
  CommissionResult,
  LabelInfo,
  NearbyDevice,
  SessionInfo,
  Settings,
  Theme,
} from "../generated/types";
import { api, operationId } from "./api";
import { toCommandError } from "./errors";
import { applyProgress, finish, newStepper, type StepperModel } from "./stepper";

export type Screen = "sign_in" | "devices" | "commission" | "batch" | "history" | "settings";

export const SCREENS: ReadonlyArray<{ id: Screen; label: string }> = [
  { id: "devices", label: "Devices" },
  { id: "commission", label: "Commission" },
  { id: "batch", label: "Batch" },
  { id: "history", label: "History" },
  { id: "settings", label: "Settings" },
];

export function applyTheme(theme: Theme, root: HTMLElement = document.documentElement): void {
  const dark =
    theme === "dark" ||
    (theme === "system" && typeof matchMedia === "function" && matchMedia("(prefers-color-scheme: dark)").matches);
  root.dataset.theme = dark ? "dark" : "light";
}

export class AppStore {
  screen = $state<Screen>("sign_in");
  info = $state<AppInfo | null>(null);
  settings = $state<Settings | null>(null);
  session = $state<SessionInfo | null>(null);
  startupError = $state<CommandError | null>(null);

  /** The label typed, pasted or scanned on the Devices screen (holds the PoP: never logged). */
  labelText = $state("");
  label = $state<LabelInfo | null>(null);
  labelError = $state<CommandError | null>(null);

  scanning = $state(false);
  scanRound = $state(0);
  devices = $state<NearbyDevice[]>([]);
  scanError = $state<CommandError | null>(null);
  #scanId: string | null = null;

  commissioning = $state(false);
  stepper = $state<StepperModel>(newStepper());
  result = $state<CommissionResult | null>(null);
  commissionError = $state<CommandError | null>(null);
  /** The label of the current or last commissioning, for a retry. */
  commissionedLabel = $state("");
  #commissionId: string | null = null;
  #cancelRequested = false;

  async init(): Promise<void> {
    try {
      const [info, settings, session] = await Promise.all([
        api.appInfo(),
        api.getSettings(),
        api.getSession(),
      ]);
      this.info = info;
      this.settings = settings;
      this.session = session;
      applyTheme(settings.theme);
      this.screen = session ? "devices" : "sign_in";
    } catch (error) {
      this.startupError = toCommandError(error);
    }
  }

  go(screen: Screen): void {
    if (screen !== "devices" && this.scanning) void this.stopScan();
    this.screen = screen;
  }

  async saveSettings(settings: Settings): Promise<void> {
    this.settings = await api.saveSettings(settings);
    applyTheme(this.settings.theme);
    this.session = await api.getSession();
  }

  async signOut(): Promise<void> {
    await api.signOut();
    this.session = null;
    this.screen = "sign_in";
  }

  /** Parses the label text; `label` or `labelError` tells the outcome. */
  async setLabel(text: string): Promise<boolean> {
    this.labelText = text.trim();
    this.label = null;
    this.labelError = null;
    if (!this.labelText) return false;
    try {
      this.label = await api.parseLabel(this.labelText);
      return true;
    } catch (error) {
      this.labelError = toCommandError(error);
      return false;
    }
  }

  clearLabel(): void {
    this.labelText = "";
    this.label = null;
    this.labelError = null;
  }

  async startScan(): Promise<void> {
    if (this.scanning) return;
    const id = operationId("scan");
    this.#scanId = id;
    this.scanning = true;
    this.scanError = null;
    this.scanRound = 0;
    try {
      await api.scan(id, (update) => {
        this.scanRound = update.round;
        this.devices = update.devices;
      });
    } catch (error) {
      this.scanError = toCommandError(error);
    } finally {
      if (this.#scanId === id) {
        this.scanning = false;
        this.#scanId = null;
      }
    }
  }

  async stopScan(): Promise<void> {
    const id = this.#scanId;
    if (!id) return;
    try {
      await api.cancel(id);
    } catch {
      // Already finished.
    }
  }

  /** Commissions `label` (default: the chosen one) and shows the Commission screen. */
  async commission(label: string = this.labelText): Promise<void> {
    if (this.commissioning || !label) return;
    const id = operationId("commission");
    this.#commissionId = id;
    this.#cancelRequested = false;
    this.commissionedLabel = label;
    this.commissioning = true;
    this.stepper = newStepper();
    this.result = null;
    this.commissionError = null;
    this.screen = "commission";
    try {
      // The commissioning scans by itself; a live scan would compete for the radio.
      await this.stopScan();
      if (this.#cancelRequested) {
        throw { code: "cancelled", message: "cancelled", retryable: false, details: {} };
      }
      this.result = await api.commission(label, id, (update) => {
        this.stepper = applyProgress(this.stepper, update);
      });
      this.stepper = finish(this.stepper, "succeeded");
    } catch (error) {
      this.commissionError = toCommandError(error);
      this.stepper = finish(this.stepper, "failed");
    } finally {
      this.commissioning = false;
      this.#commissionId = null;
    }
  }

  async cancelCommission(): Promise<void> {
    const id = this.#commissionId;
    if (!id) return;
    this.#cancelRequested = true;
    try {
      await api.cancel(id);
    } catch {
      // Not started yet (the flag stops it) or already finished.
    }
  }

  retry(): Promise<void> {
    return this.commission(this.commissionedLabel);
  }
}

export const app = new AppStore();
