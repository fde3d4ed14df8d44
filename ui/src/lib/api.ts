// Typed wrappers over the Tauri commands of src-tauri/src/commands. Every command either
// resolves with its result or rejects with a CommandError ({code, message, retryable, details}).

import { Channel, invoke } from "@tauri-apps/api/core";
import type {
  AdapterInfo,
  AppInfo,
  AttemptEntry,
  BatchEntry,
  BatchEvent,
  BatchItemEntry,
  BatchRequest,
  BatchSummary,
  CommissionResult,
  ExportFormat,
  ExportResult,
  HistoryQuery,
  LabelImage,
  LabelInfo,
  ProgressUpdate,
  RegistrationStatus,
  ScanUpdate,
  SessionInfo,
  Settings,
  SignInEvent,
  SignInMethod,
  SiteLabel,
} from "../generated/types";
import { toCommandError } from "./errors";

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (error) {
    throw toCommandError(error);
  }
}

function channel<T>(onMessage: (message: T) => void): Channel<T> {
  const ch = new Channel<T>();
  ch.onmessage = onMessage;
  return ch;
}

let counter = 0;
/** A fresh operation id, chosen before invoking so the operation can be cancelled at once. */
export function operationId(kind: string): string {
  counter += 1;
  return `${kind}-${Date.now().toString(36)}-${counter}`;
}

export const api = {
  appInfo: () => call<AppInfo>("app_info"),
  getSettings: () => call<Settings>("get_settings"),
  saveSettings: (settings: Settings) => call<Settings>("save_settings", { settings }),
  listAdapters: () => call<AdapterInfo[]>("list_adapters"),
  openSandboxManifest: (path: string) => call<Settings>("open_sandbox_manifest", { path }),
  siteLabels: () => call<SiteLabel[]>("site_labels"),
  cancel: (id: string) => call<null>("cancel_operation", { operationId: id }),

  getSession: () => call<SessionInfo | null>("get_session"),
  signIn: (
    profile: string,
    method: SignInMethod,
    id: string,
    onEvent: (event: SignInEvent) => void,
  ) =>
    call<SessionInfo>("sign_in", {
      profile,
      method,
      operationId: id,
      onEvent: channel(onEvent),
    }),
  signOut: () => call<null>("sign_out"),

  parseLabel: (code: string) => call<LabelInfo>("parse_label", { code }),
  renderLabel: (code: string, minPx = 240) => call<LabelImage>("render_label", { code, minPx }),
  scan: (id: string, onUpdate: (update: ScanUpdate) => void, windowMs = 1000) =>
    call<number>("scan", { operationId: id, windowMs, onUpdate: channel(onUpdate) }),

  commission: (label: string, id: string, onProgress: (update: ProgressUpdate) => void) =>
    call<CommissionResult>("commission", {
      label,
      operationId: id,
      onProgress: channel(onProgress),
    }),
  registrationStatus: (registrationId: string) =>
    call<RegistrationStatus>("registration_status", { registrationId }),

  commissionBatch: (request: BatchRequest, id: string, onEvent: (event: BatchEvent) => void) =>
    call<BatchSummary>("commission_batch", {
      request,
      operationId: id,
      onEvent: channel(onEvent),
    }),
  resumeBatch: (
    batchId: string,
    labels: string[],
    retryFailed: boolean,
    concurrency: number,
    id: string,
    onEvent: (event: BatchEvent) => void,
  ) =>
    call<BatchSummary>("resume_batch", {
      batchId,
      labels,
      retryFailed,
      concurrency,
      operationId: id,
      onEvent: channel(onEvent),
    }),

  history: (query: HistoryQuery) => call<AttemptEntry[]>("history", { query }),
  batches: (openOnly: boolean) => call<BatchEntry[]>("batches", { openOnly }),
  batchItems: (batchId: string) => call<BatchItemEntry[]>("batch_items", { batchId }),
  exportHistory: (format: ExportFormat, query: HistoryQuery) =>
    call<ExportResult>("export_history", { format, query }),
};

export type Api = typeof api;
