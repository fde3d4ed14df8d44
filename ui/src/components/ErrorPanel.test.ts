import { fireEvent, render, screen } from "@testing-library/svelte";
import { describe, expect, it, vi } from "vitest";
import ErrorPanel from "./ErrorPanel.svelte";

describe("ErrorPanel", () => {
  it("shows the headline, the actionable message, the code and the ways forward", async () => {
    const onRetry = vi.fn();
    const onAction = vi.fn(() => true);
    render(ErrorPanel, {
      error: { code: "link_lost", message: "BLE link lost while registering; move closer and retry", retryable: true, details: {} },
      onRetry,
      onAction,
    });
    expect(screen.getByRole("alert")).toBeTruthy();
    expect(screen.getByText("Bluetooth link lost")).toBeTruthy();
    expect(screen.getByText(/move closer and retry/)).toBeTruthy();
    expect(screen.getByText("link_lost")).toBeTruthy();
    await fireEvent.click(screen.getByRole("button", { name: "Retry" }));
    expect(onAction).toHaveBeenCalledWith("retry");
    await fireEvent.click(screen.getByRole("button", { name: "Scan for devices" }));
    expect(onAction).toHaveBeenCalledWith("scan");
  });

  it("offers no retry for a non-retryable error, but still a way forward", () => {
    render(ErrorPanel, {
      error: { code: "wrong_pop", message: "wrong proof-of-possession (attempt 2 of 5)", retryable: false, details: {} },
      onRetry: () => undefined,
    });
    expect(screen.queryByRole("button", { name: "Retry" })).toBeNull();
    expect(screen.getByRole("button", { name: "Re-enter the label" })).toBeTruthy();
  });

  it("holds the retry back while the device is locked", () => {
    render(ErrorPanel, {
      error: { code: "device_locked", message: "device locked: retry in 30 s", retryable: true, details: { retry_after_s: 30 } },
      onRetry: () => undefined,
    });
    const retry = screen.getByRole("button", { name: "Retry" }) as HTMLButtonElement;
    expect(retry.disabled).toBe(true);
    expect(screen.getByText(/You can retry in 30 s/)).toBeTruthy();
  });
});
