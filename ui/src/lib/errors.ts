// Errors as the commands send them, and the way forward from each: no error screen is a dead end.

import type { CommandError } from "../generated/types";

export function isCommandError(value: unknown): value is CommandError {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.code === "string" && typeof v.message === "string" && typeof v.retryable === "boolean";
}

/** Whatever a command rejected with, as a CommandError (IPC failures become `internal`). */
export function toCommandError(error: unknown): CommandError {
  if (isCommandError(error)) {
    return { ...error, details: (error.details ?? {}) as Record<string, unknown> };
  }
  const message = error instanceof Error ? error.message : String(error);
  return {
    code: "internal",
    message: `internal error (${message}): please report it`,
    retryable: false,
    details: {},
  };
}

/** Something the installer can do about an error. */
export type ErrorAction =
  | "retry"
  | "relabel"
  | "scan"
  | "settings"
  | "sign_in"
  | "devices"
  | "history";

export interface NextStep {
  action: ErrorAction;
  label: string;
}

/** Seconds to wait before a retry, when the device or a server said so. */
export function retryAfterSeconds(error: CommandError): number | null {
  const value = error.details?.retry_after_s;
  return typeof value === "number" && value > 0 ? value : null;
}

/** A short headline per code (the message carries the detail and the advice). */
export function headline(error: CommandError): string {
  switch (error.code) {
    case "wrong_pop":
      return "Wrong label or manual code";
    case "device_locked":
      return "Device locked";
    case "device_not_found":
      return "Device not found";
    case "device_busy":
      return "Device busy";
    case "bluetooth_unavailable":
      return "Bluetooth unavailable";
    case "link_lost":
      return "Bluetooth link lost";
    case "timeout":
      return "Timed out";
    case "ticket_rejected":
      return "Ticket rejected by the device";
    case "registration_failed":
      return "DPS registration failed";
    case "confirmation_mismatch":
      return "Confirmation mismatch";
    case "api_unavailable":
      return "Provisioning service unavailable";
    case "throttled":
      return "Service busy";
    case "cancelled":
      return "Cancelled";
    case "invalid_payload":
      return "Label not readable";
    case "network_join_failed":
      return "Device could not join the network";
    case "incompatible_device":
      return "Incompatible device";
    case "unauthorized":
      return "Signed out";
    case "forbidden":
      return "Not allowed";
    case "not_configured":
      return "No provisioning service";
    case "sign_in_unavailable":
      return "Sign-in unavailable";
    case "invalid_setting":
      return "Invalid setting";
    case "no_assignment":
      return "Nothing to check yet";
    case "batch_source_changed":
      return "Different labels";
    case "access_denied":
      return "Sign-in denied";
    case "sign_in_expired":
      return "Sign-in timed out";
    case "session_expired":
    case "not_signed_in":
      return "Signed out";
    case "issuer_unavailable":
      return "Sign-in service unavailable";
    case "keyring_unavailable":
      return "No secure storage";
    case "sandbox_unavailable":
      return "Sandbox not running";
    case "dps_unreachable":
      return "Device cannot reach DPS";
    case "dps_throttled":
      return "DPS busy";
    case "dps_unauthorized":
      return "DPS refused the device";
    case "dps_not_found":
      return "DPS has no enrollment for the device";
    default:
      return "Something went wrong";
  }
}

/** The ways forward from `error`, most useful first. Never empty. */
export function nextSteps(error: CommandError): NextStep[] {
  const steps: NextStep[] = [];
  if (error.retryable) steps.push({ action: "retry", label: "Retry" });
  switch (error.code) {
    case "wrong_pop":
    case "invalid_payload":
    case "ticket_rejected":
      steps.push({ action: "relabel", label: "Re-enter the label" });
      break;
    case "device_not_found":
    case "device_busy":
    case "link_lost":
    case "timeout":
      steps.push({ action: "scan", label: "Scan for devices" });
      break;
    case "bluetooth_unavailable":
    case "not_configured":
    case "invalid_setting":
    case "api_unavailable":
      steps.push({ action: "settings", label: "Open Settings" });
      break;
    case "unauthorized":
    case "forbidden":
    case "sign_in_unavailable":
    case "access_denied":
    case "sign_in_expired":
    case "session_expired":
    case "not_signed_in":
      steps.push({ action: "sign_in", label: "Sign in" });
      break;
    case "issuer_unavailable":
    case "keyring_unavailable":
    case "sandbox_unavailable":
    case "insecure_url":
    case "invalid_profile":
      steps.push({ action: "settings", label: "Open Settings" });
      break;
    case "dps_unreachable":
      steps.push({ action: "scan", label: "Check the device's network, then scan" });
      break;
    case "confirmation_mismatch":
    case "registration_failed":
    case "dps_unauthorized":
    case "dps_not_found":
      steps.push({ action: "history", label: "Open history" });
      break;
  }
  if (!steps.some((s) => s.action === "relabel" || s.action === "scan")) {
    steps.push({ action: "devices", label: "Back to devices" });
  }
  return steps;
}
