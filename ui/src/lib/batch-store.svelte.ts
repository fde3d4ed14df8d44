// The Batch screen's state; it lives outside the screen so a batch keeps running (and its rows
// keep filling) while the installer looks at another screen.

import type { BatchSummary, CommandError } from "../generated/types";
import { api, operationId } from "./api";
import { applyBatchEvent, newBatch, parseLabelList, type BatchModel } from "./batch";
import { toCommandError } from "./errors";

export class BatchStore {
  text = $state("");
  concurrency = $state(4);
  running = $state(false);
  model = $state<BatchModel>(newBatch());
  summary = $state<BatchSummary | null>(null);
  error = $state<CommandError | null>(null);
  /** A batch picked in History to resume. */
  resumeId = $state<string | null>(null);
  #op: string | null = null;

  get labels(): string[] {
    return parseLabelList(this.text);
  }

  async #run(start: (id: string) => Promise<BatchSummary>): Promise<void> {
    if (this.running) return;
    const id = operationId("batch");
    this.#op = id;
    this.running = true;
    this.error = null;
    this.summary = null;
    this.model = newBatch();
    try {
      this.summary = await start(id);
      this.resumeId = null;
    } catch (error) {
      this.error = toCommandError(error);
    } finally {
      this.running = false;
      this.#op = null;
    }
  }

  start(): Promise<void> {
    const labels = this.labels;
    return this.#run((id) =>
      api.commissionBatch(
        { labels, concurrency: this.concurrency, source_path: null },
        id,
        (event) => (this.model = applyBatchEvent(this.model, event)),
      ),
    );
  }

  /** Resumes `batchId` (the same labels must be in the text box), optionally retrying failures. */
  resume(batchId: string, retryFailed: boolean): Promise<void> {
    const labels = this.labels;
    return this.#run((id) =>
      api.resumeBatch(batchId, labels, retryFailed, this.concurrency, id, (event) => {
        this.model = applyBatchEvent(this.model, event);
      }),
    );
  }

  async cancel(): Promise<void> {
    if (this.#op) await api.cancel(this.#op).catch(() => undefined);
  }
}

export const batch = new BatchStore();
