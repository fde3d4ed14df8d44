import { render, screen } from "@testing-library/svelte";
import { describe, expect, it } from "vitest";
import { applyProgress, newStepper } from "../lib/stepper";
import Stepper from "./Stepper.svelte";

describe("Stepper", () => {
  it("shows six stages, the running one as the current step, and attempt counts", () => {
    let model = newStepper();
    model = applyProgress(model, { step: "scanning", detail: { kind: "started" }, at_ms: 0, attempt: 1 });
    model = applyProgress(model, { step: "handshaking", detail: { kind: "started" }, at_ms: 200, attempt: 1 });
    model = applyProgress(model, { step: "registering", detail: { kind: "started" }, at_ms: 400, attempt: 1 });
    model = applyProgress(model, { step: "registering", detail: { kind: "registration_stage", stage: "assigning" }, at_ms: 450, attempt: 3 });
    const { container } = render(Stepper, { model });
    const items = container.querySelectorAll("li");
    expect(items).toHaveLength(6);
    expect([...items].map((li) => li.dataset.status)).toEqual(["done", "done", "done", "done", "active", "pending"]);
    expect(container.querySelector('[aria-current="step"]')?.getAttribute("data-stage")).toBe("registration");
    expect(screen.getByText("attempt 3")).toBeTruthy();
    expect(screen.getByText("DPS: assigning")).toBeTruthy();
  });
});
