import { describe, expect, it } from "vitest";
import type { AttemptEntry } from "../generated/types";
import { filterAttempts } from "./history";

const attempt = (id: number, outcome: string | null): AttemptEntry =>
  ({ id, outcome, registration_id: `d${id}`, steps: [] }) as unknown as AttemptEntry;

describe("history filters", () => {
  it("filters by outcome", () => {
    const all = [attempt(1, "succeeded"), attempt(2, "failed"), attempt(3, null), attempt(4, "interrupted")];
    expect(filterAttempts(all, "all")).toHaveLength(4);
    expect(filterAttempts(all, "succeeded").map((a) => a.id)).toEqual([1]);
    expect(filterAttempts(all, "failed").map((a) => a.id)).toEqual([2]);
    expect(filterAttempts(all, "unfinished").map((a) => a.id)).toEqual([3, 4]);
  });
});
