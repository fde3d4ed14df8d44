// The commissioning stepper: the core's progress events folded into six stages
// (connect → secure session → assignment → push → DPS registration → confirmed).

import type { ProgressUpdate, StepName } from "../generated/types";

export type StageId = "connect" | "secure" | "assignment" | "push" | "registration" | "confirmed";
export type StageStatus = "pending" | "active" | "done" | "failed";

export interface Stage {
  id: StageId;
  label: string;
  status: StageStatus;
  /** ms since the commissioning started. */
  startedMs: number | null;
  finishedMs: number | null;
  /** Highest attempt number seen (reconnects and re-asks raise it). */
  attempt: number;
  /** The latest detail worth showing (device found, MTU, DPS stage, ...). */
  note: string | null;
}

export interface StepperModel {
  stages: Stage[];
  /** Wall-clock ms (Date.now()) at which the commissioning's clock read 0. */
  originWallMs: number | null;
  /** The latest event's time. */
  lastMs: number;
  /** Times the service was asked again while it caught up with the device. */
  statusPolls: number;
  /** Reconnect-and-resume cycles seen. */
  reconnects: number;
  finished: "succeeded" | "failed" | null;
}

export const STAGES: ReadonlyArray<{ id: StageId; label: string }> = [
  { id: "connect", label: "Connect" },
  { id: "secure", label: "Secure session" },
  { id: "assignment", label: "Assignment" },
  { id: "push", label: "Push ticket" },
  { id: "registration", label: "DPS registration" },
  { id: "confirmed", label: "Confirmed" },
];

const STAGE_OF: Record<StepName, StageId> = {
  scanning: "connect",
  connecting: "connect",
  handshaking: "secure",
  awaiting_assignment: "assignment",
  provisioning: "push",
  joining_network: "push",
  registering: "registration",
  confirming: "confirmed",
};

export function stageOf(step: StepName): StageId {
  return STAGE_OF[step];
}

export function newStepper(): StepperModel {
  return {
    stages: STAGES.map(({ id, label }) => ({
      id,
      label,
      status: "pending",
      startedMs: null,
      finishedMs: null,
      attempt: 0,
      note: null,
    })),
    originWallMs: null,
    lastMs: 0,
    statusPolls: 0,
    reconnects: 0,
    finished: null,
  };
}

function words(name: string): string {
  return name.replace(/_/g, " ");
}

/** Folds one progress event into the model (returns a new model). */
export function applyProgress(
  model: StepperModel,
  update: ProgressUpdate,
  nowWallMs: number = Date.now(),
): StepperModel {
  const index = STAGES.findIndex((s) => s.id === stageOf(update.step));
  const stages = model.stages.map((stage, i) => {
    if (i < index && stage.status !== "done" && stage.status !== "failed") {
      // The workflow moved on: an earlier stage (the assignment, fetched in parallel) is done.
      return { ...stage, status: "done" as const, finishedMs: stage.finishedMs ?? update.at_ms };
    }
    return { ...stage };
  });
  const stage = stages[index];
  stage.attempt = Math.max(stage.attempt, update.attempt);
  let { statusPolls, reconnects } = model;
  const detail = update.detail;
  switch (detail.kind) {
    case "started":
      stage.status = "active";
      stage.startedMs ??= update.at_ms;
      stage.finishedMs = null;
      break;
    case "completed":
      stage.status = "done";
      stage.finishedMs = update.at_ms;
      break;
    case "device_found":
      stage.note = `found ${detail.peripheral}${detail.rssi === null ? "" : ` at ${detail.rssi} dBm`}`;
      break;
    case "connected":
      stage.note = `connected, MTU ${detail.mtu}`;
      break;
    case "network_stage":
      stage.note = `network: ${words(detail.stage)}`;
      break;
    case "registration_stage":
      stage.note = `DPS: ${words(detail.stage)}`;
      break;
    case "link_lost":
      stage.note = "link lost, reconnecting";
      reconnects += 1;
      break;
    case "resumed":
      stage.note = `reconnected; device is ${words(detail.device_state)}`;
      break;
    case "status_pending":
      statusPolls += 1;
      stage.note = `service says ${words(detail.status)}; asking again (${statusPolls})`;
      break;
    case "service_retry":
      stage.note = `service ${words(detail.reason)}; attempt ${detail.attempt} of ${detail.max_attempts} in ${(detail.wait_ms / 1000).toFixed(1)} s`;
      break;
  }
  return {
    ...model,
    stages,
    originWallMs: model.originWallMs ?? nowWallMs - update.at_ms,
    lastMs: Math.max(model.lastMs, update.at_ms),
    statusPolls,
    reconnects,
  };
}

/** Marks the commissioning finished: every stage done, or the running stage failed. */
export function finish(model: StepperModel, outcome: "succeeded" | "failed"): StepperModel {
  if (outcome === "succeeded") {
    return {
      ...model,
      finished: outcome,
      stages: model.stages.map((s) => ({
        ...s,
        status: "done",
        finishedMs: s.finishedMs ?? model.lastMs,
      })),
    };
  }
  const failing =
    model.stages.findIndex((s) => s.status === "active") >= 0
      ? model.stages.findIndex((s) => s.status === "active")
      : Math.max(0, model.stages.findIndex((s) => s.status === "pending"));
  return {
    ...model,
    finished: outcome,
    stages: model.stages.map((s, i) =>
      i === failing ? { ...s, status: "failed", finishedMs: s.finishedMs ?? model.lastMs } : { ...s },
    ),
  };
}

/** How long a stage has run (a running one up to `nowWallMs`). */
export function stageDuration(model: StepperModel, stage: Stage, nowWallMs: number): number | null {
  if (stage.startedMs === null) return null;
  if (stage.finishedMs !== null) return Math.max(0, stage.finishedMs - stage.startedMs);
  if (model.originWallMs === null) return null;
  return Math.max(0, nowWallMs - model.originWallMs - stage.startedMs);
}

/** `850 ms`, `3.4 s`, `2 min 05 s`. */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes} min ${seconds.toString().padStart(2, "0")} s`;
}
