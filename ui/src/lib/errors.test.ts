import { describe, expect, it } from "vitest";
import type { CommandError } from "../generated/types";
import { headline, nextSteps, retryAfterSeconds, toCommandError } from "./errors";

const err = (code: string, retryable = false, details: Record<string, unknown> = {}): CommandError => ({
  code,
  message: `${code} message`,
  retryable,
  details,
});

const CODES = [
  "wrong_pop", "device_locked", "device_not_found", "device_busy", "bluetooth_unavailable", "link_lost",
  "timeout", "ticket_rejected", "registration_failed", "confirmation_mismatch", "api_unavailable", "throttled",
  "cancelled", "invalid_payload", "network_join_failed", "incompatible_device", "unauthorized", "forbidden",
  "internal", "not_configured", "sign_in_unavailable", "invalid_setting", "no_assignment", "batch_source_changed",
  "journal_error", "access_denied", "sign_in_expired", "session_expired", "issuer_unavailable",
  "keyring_unavailable", "sandbox_unavailable", "dps_unreachable", "dps_throttled", "dps_unauthorized",
  "dps_not_found", "something_new",
];

describe("errors", () => {
  it("passes command errors through and wraps anything else as internal", () => {
    expect(toCommandError(err("wrong_pop")).code).toBe("wrong_pop");
    const wrapped = toCommandError(new Error("boom"));
    expect(wrapped.code).toBe("internal");
    expect(wrapped.message).toContain("boom");
    expect(toCommandError("text").retryable).toBe(false);
  });

  it("offers a way forward for every code, and Retry only when retryable", () => {
    for (const code of CODES) {
      for (const retryable of [true, false]) {
        const steps = nextSteps(err(code, retryable));
        expect(steps.length, code).toBeGreaterThan(0);
        expect(steps.some((s) => s.action === "retry"), code).toBe(retryable);
        expect(steps.some((s) => s.action !== "retry"), code).toBe(true);
      }
      expect(headline(err(code)).length).toBeGreaterThan(0);
    }
    expect(nextSteps(err("wrong_pop"))[0].action).toBe("relabel");
    expect(nextSteps(err("bluetooth_unavailable")).map((s) => s.action)).toContain("settings");
    expect(nextSteps(err("unauthorized")).map((s) => s.action)).toContain("sign_in");
    for (const code of ["dps_unreachable", "dps_throttled", "dps_unauthorized", "dps_not_found"]) {
      expect(headline(err(code)), code).not.toBe("Something went wrong");
    }
    expect(nextSteps(err("dps_unreachable", true)).map((s) => s.action)).toEqual(["retry", "scan"]);
    expect(nextSteps(err("dps_unauthorized")).map((s) => s.action)).toContain("history");
  });

  it("reads retry-after hints", () => {
    expect(retryAfterSeconds(err("device_locked", true, { retry_after_s: 30 }))).toBe(30);
    expect(retryAfterSeconds(err("throttled", true, { retry_after_s: null }))).toBeNull();
  });
});
