// History filters.

import type { AttemptEntry } from "../generated/types";

export type OutcomeFilter = "all" | "succeeded" | "failed" | "unfinished";

export function filterAttempts(attempts: AttemptEntry[], outcome: OutcomeFilter): AttemptEntry[] {
  switch (outcome) {
    case "all":
      return attempts;
    case "succeeded":
    case "failed":
      return attempts.filter((a) => a.outcome === outcome);
    case "unfinished":
      return attempts.filter((a) => a.outcome === null || a.outcome === "interrupted");
  }
}
