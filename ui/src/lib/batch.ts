// The batch screen's rows, folded from the command's BatchEvents.

import type { BatchEvent, CommandError, CommissionResult } from "../generated/types";
import { stageOf, type StageId, STAGES } from "./stepper";

export type RowStatus = "pending" | "running" | "succeeded" | "failed" | "skipped";

export interface BatchRow {
  position: number;
  registrationId: string | null;
  status: RowStatus;
  stage: StageId | null;
  attempt: number;
  /** ms since this device's commissioning started. */
  lastMs: number;
  note: string | null;
  result: CommissionResult | null;
  error: CommandError | null;
}

export interface BatchModel {
  batchId: string | null;
  rows: BatchRow[];
}

export interface BatchCounts {
  total: number;
  pending: number;
  running: number;
  succeeded: number;
  failed: number;
  skipped: number;
}

export function newBatch(): BatchModel {
  return { batchId: null, rows: [] };
}

function update(model: BatchModel, position: number, change: (row: BatchRow) => BatchRow): BatchModel {
  return {
    ...model,
    rows: model.rows.map((row) => (row.position === position ? change(row) : row)),
  };
}

export function applyBatchEvent(model: BatchModel, event: BatchEvent): BatchModel {
  switch (event.kind) {
    case "planned":
      return {
        batchId: event.batch_id,
        rows: event.registration_ids.map((registrationId, position) => ({
          position,
          registrationId,
          status: "pending",
          stage: null,
          attempt: 0,
          lastMs: 0,
          note: null,
          result: null,
          error: null,
        })),
      };
    case "started":
      return update(model, event.position, (row) => ({
        ...row,
        status: "running",
        stage: "connect",
        attempt: 1,
        error: null,
        note: null,
      }));
    case "progress": {
      const progress = event.update;
      return update(model, event.position, (row) => ({
        ...row,
        stage: stageOf(progress.step),
        attempt: Math.max(row.stage === stageOf(progress.step) ? row.attempt : 1, progress.attempt),
        lastMs: Math.max(row.lastMs, progress.at_ms),
        note:
          progress.detail.kind === "link_lost"
            ? "reconnecting"
            : progress.detail.kind === "status_pending"
              ? `service: ${progress.detail.status}`
              : progress.detail.kind === "service_retry"
                ? `service retry ${progress.detail.attempt} of ${progress.detail.max_attempts}`
                : row.note,
      }));
    }
    case "succeeded":
      return update(model, event.position, (row) => ({
        ...row,
        status: "succeeded",
        stage: "confirmed",
        registrationId: event.result.registration_id,
        lastMs: event.result.total_ms,
        result: event.result,
        note: null,
      }));
    case "failed":
      return update(model, event.position, (row) => ({
        ...row,
        status: "failed",
        error: event.error,
        note: null,
      }));
    case "skipped":
      return update(model, event.position, (row) => ({ ...row, status: "skipped" }));
  }
}

export function countRows(rows: BatchRow[]): BatchCounts {
  const counts: BatchCounts = {
    total: rows.length,
    pending: 0,
    running: 0,
    succeeded: 0,
    failed: 0,
    skipped: 0,
  };
  for (const row of rows) counts[row.status] += 1;
  return counts;
}

export function stageLabel(stage: StageId | null): string {
  return STAGES.find((s) => s.id === stage)?.label ?? "–";
}

/** One label or manual code per line; blank lines and `#` comments ignored. */
export function parseLabelList(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith("#"));
}
