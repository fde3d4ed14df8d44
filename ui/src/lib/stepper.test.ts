import { describe, expect, it } from "vitest";
import type { ProgressUpdate } from "../generated/types";
import { applyProgress, finish, formatMs, newStepper, stageDuration, stageOf } from "./stepper";

const ev = (step: ProgressUpdate["step"], detail: ProgressUpdate["detail"], at_ms: number, attempt = 1): ProgressUpdate => ({
  step,
  detail,
  at_ms,
  attempt,
});

describe("stepper", () => {
  it("maps every core step to one of six stages", () => {
    expect(stageOf("scanning")).toBe("connect");
    expect(stageOf("connecting")).toBe("connect");
    expect(stageOf("handshaking")).toBe("secure");
    expect(stageOf("awaiting_assignment")).toBe("assignment");
    expect(stageOf("provisioning")).toBe("push");
    expect(stageOf("joining_network")).toBe("push");
    expect(stageOf("registering")).toBe("registration");
    expect(stageOf("confirming")).toBe("confirmed");
  });

  it("activates, completes and marks skipped earlier stages done", () => {
    let m = newStepper();
    m = applyProgress(m, ev("scanning", { kind: "started" }, 0), 10_000);
    expect(m.stages[0].status).toBe("active");
    expect(m.originWallMs).toBe(10_000);
    m = applyProgress(m, ev("connecting", { kind: "connected", mtu: 247 }, 120));
    expect(m.stages[0].note).toBe("connected, MTU 247");
    m = applyProgress(m, ev("handshaking", { kind: "started" }, 150));
    m = applyProgress(m, ev("handshaking", { kind: "completed" }, 300));
    // The assignment arrived while connecting: the workflow goes straight to provisioning.
    m = applyProgress(m, ev("provisioning", { kind: "started" }, 310));
    expect(m.stages.map((s) => s.status)).toEqual(["done", "done", "done", "active", "pending", "pending"]);
    expect(m.stages[1].finishedMs).toBe(300);
    expect(stageDuration(m, m.stages[1], 0)).toBe(150);
  });

  it("counts reconnects, attempts and status re-asks", () => {
    let m = newStepper();
    m = applyProgress(m, ev("registering", { kind: "started" }, 500));
    m = applyProgress(m, ev("registering", { kind: "link_lost" }, 600));
    m = applyProgress(m, ev("connecting", { kind: "started" }, 700, 2));
    expect(m.reconnects).toBe(1);
    expect(m.stages[0].attempt).toBe(2);
    m = applyProgress(m, ev("confirming", { kind: "status_pending", status: "assigning" }, 900, 3));
    expect(m.statusPolls).toBe(1);
    expect(m.stages[5].note).toContain("assigning");
    expect(m.stages[5].attempt).toBe(3);
  });

  it("shows the service's own retries with their attempt count and wait", () => {
    let m = applyProgress(newStepper(), ev("awaiting_assignment", { kind: "started" }, 100));
    m = applyProgress(
      m,
      ev("awaiting_assignment", { kind: "service_retry", attempt: 2, max_attempts: 5, wait_ms: 1500, retry_after_ms: 1000, reason: "http_503" }, 200),
    );
    const assignment = m.stages.find((s) => s.note !== null);
    expect(assignment?.note).toBe("service http 503; attempt 2 of 5 in 1.5 s");
  });

  it("fails the running stage, or completes all on success", () => {
    let m = applyProgress(newStepper(), ev("handshaking", { kind: "started" }, 40));
    const failed = finish(m, "failed");
    expect(failed.stages.find((s) => s.status === "failed")?.id).toBe("secure");
    m = finish(m, "succeeded");
    expect(m.stages.every((s) => s.status === "done")).toBe(true);
    expect(finish(newStepper(), "failed").stages[0].status).toBe("failed");
  });

  it("shows running stages ticking from the wall clock", () => {
    const m = applyProgress(newStepper(), ev("scanning", { kind: "started" }, 100), 1_000);
    // Clock 0 was at wall 900, so at wall 1450 the clock reads 550: the stage has run 450 ms.
    expect(stageDuration(m, m.stages[0], 1_450)).toBe(450);
  });

  it("formats durations", () => {
    expect(formatMs(null)).toBe("–");
    expect(formatMs(850)).toBe("850 ms");
    expect(formatMs(3_420)).toBe("3.4 s");
    expect(formatMs(125_000)).toBe("2 min 05 s");
  });
});
