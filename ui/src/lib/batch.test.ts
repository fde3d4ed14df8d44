import { describe, expect, it } from "vitest";
import { applyBatchEvent, countRows, newBatch, parseLabelList } from "./batch";

describe("batch rows", () => {
  it("folds events into rows and counts them", () => {
    let m = newBatch();
    m = applyBatchEvent(m, { kind: "planned", batch_id: "b1", registration_ids: ["a", null, "c"] });
    expect(countRows(m.rows)).toMatchObject({ total: 3, pending: 3 });
    m = applyBatchEvent(m, { kind: "started", position: 0 });
    m = applyBatchEvent(m, {
      kind: "progress",
      position: 0,
      update: { step: "registering", detail: { kind: "started" }, at_ms: 420, attempt: 1 },
    });
    expect(m.rows[0]).toMatchObject({ status: "running", stage: "registration", lastMs: 420 });
    m = applyBatchEvent(m, {
      kind: "progress",
      position: 0,
      update: { step: "registering", detail: { kind: "link_lost" }, at_ms: 500, attempt: 2 },
    });
    expect(m.rows[0]).toMatchObject({ attempt: 2, note: "reconnecting" });
    m = applyBatchEvent(m, {
      kind: "failed",
      position: 1,
      error: { code: "invalid_payload", message: "bad", retryable: false, details: {} },
    });
    m = applyBatchEvent(m, { kind: "skipped", position: 2 });
    expect(countRows(m.rows)).toMatchObject({ running: 1, failed: 1, skipped: 1, pending: 0 });
    expect(m.batchId).toBe("b1");
  });

  it("reads one label per line, ignoring blanks and comments", () => {
    expect(parseLabelList("FL1/A/B\n\n  # site 7\r\n 123-456 \n")).toEqual(["FL1/A/B", "123-456"]);
  });
});
