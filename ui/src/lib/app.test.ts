import { beforeEach, describe, expect, it, vi } from "vitest";
import type { CommissionResult, ProgressUpdate } from "../generated/types";

const calls: string[] = [];
let commissionImpl: (label: string, id: string, onProgress: (u: ProgressUpdate) => void) => Promise<CommissionResult>;

vi.mock("./api", () => ({
  operationId: (kind: string) => `${kind}-1`,
  api: {
    appInfo: async () => ({ version: "0.1.0" }),
    getSettings: async () => ({ profiles: [], active_profile: null, ble_adapter: null, theme: "dark", batch_concurrency: 4 }),
    getSession: async () => null,
    parseLabel: async (code: string) => {
      if (code === "bad") throw { code: "invalid_payload", message: "invalid onboarding code", retryable: false, details: {} };
      return { kind: "qr_label", registration_id: "pump-1", discriminator: 1, short_discriminator: 0, product_code: 1, manual_code: "x" };
    },
    commission: (label: string, id: string, onProgress: (u: ProgressUpdate) => void) => commissionImpl(label, id, onProgress),
    cancel: async (id: string) => {
      calls.push(`cancel ${id}`);
      return null;
    },
  },
}));

const { AppStore } = await import("./app.svelte");

describe("AppStore", () => {
  beforeEach(() => {
    calls.length = 0;
  });

  it("starts on sign-in without a session and applies the theme", async () => {
    const app = new AppStore();
    await app.init();
    expect(app.screen).toBe("sign_in");
    expect(document.documentElement.dataset.theme).toBe("dark");
  });

  it("parses labels and keeps the error of a bad one", async () => {
    const app = new AppStore();
    expect(await app.setLabel("  FL1/X/Y ")).toBe(true);
    expect(app.labelText).toBe("FL1/X/Y");
    expect(app.label?.registration_id).toBe("pump-1");
    expect(await app.setLabel("bad")).toBe(false);
    expect(app.labelError?.code).toBe("invalid_payload");
  });

  it("streams progress into the stepper and keeps the result", async () => {
    commissionImpl = async (_label, _id, onProgress) => {
      onProgress({ step: "scanning", detail: { kind: "started" }, at_ms: 0, attempt: 1 });
      onProgress({ step: "handshaking", detail: { kind: "started" }, at_ms: 100, attempt: 1 });
      return { registration_id: "pump-1", agreed: true } as CommissionResult;
    };
    const app = new AppStore();
    await app.commission("FL1/X/Y");
    expect(app.screen).toBe("commission");
    expect(app.result?.agreed).toBe(true);
    expect(app.commissioning).toBe(false);
    expect(app.stepper.stages.every((s) => s.status === "done")).toBe(true);
  });

  it("keeps the error, fails the running stage, and retries the same label", async () => {
    const labels: string[] = [];
    commissionImpl = async (label, _id, onProgress) => {
      labels.push(label);
      onProgress({ step: "handshaking", detail: { kind: "started" }, at_ms: 10, attempt: 1 });
      throw { code: "wrong_pop", message: "wrong proof-of-possession (attempt 1 of 5)", retryable: false, details: { attempt: 1, max: 5 } };
    };
    const app = new AppStore();
    await app.commission("FL1/A/B");
    expect(app.commissionError?.code).toBe("wrong_pop");
    expect(app.stepper.stages.find((s) => s.status === "failed")?.id).toBe("secure");
    await app.retry();
    expect(labels).toEqual(["FL1/A/B", "FL1/A/B"]);
  });

  it("cancels the running commissioning by its operation id", async () => {
    let release: () => void = () => undefined;
    commissionImpl = () =>
      new Promise((_, reject) => {
        release = () => reject({ code: "cancelled", message: "cancelled", retryable: false, details: {} });
      });
    const app = new AppStore();
    const running = app.commission("FL1/A/B");
    await app.cancelCommission();
    expect(calls).toContain("cancel commission-1");
    release();
    await running;
    expect(app.commissionError?.code).toBe("cancelled");
  });
});
