import { render, screen } from "@testing-library/svelte";
import { describe, expect, it } from "vitest";
import DeviceList from "./DeviceList.svelte";

const device = (id: string, discriminator: number, rssi: number) => ({
  id,
  local_name: `fieldlink ${id}`,
  rssi,
  discriminator,
  state: "commissionable",
  protocol_version: 1,
});

describe("DeviceList", () => {
  it("puts the device matching the label first and marks it", () => {
    const { container } = render(DeviceList, {
      devices: [device("near", 0x111, -40), device("mine", 0xa5c, -80)],
      label: { kind: "qr_label", registration_id: "p", discriminator: 0xa5c, short_discriminator: 0xa, product_code: 1, manual_code: null },
      scanning: true,
    });
    const rows = container.querySelectorAll("tbody tr");
    expect(rows[0].getAttribute("data-device")).toBe("mine");
    expect(rows[0].getAttribute("data-match")).toBe("true");
    expect(screen.getAllByText("matches label")).toHaveLength(1);
    expect(screen.getByText("0xA5C")).toBeTruthy();
    expect(screen.getByText("-80 dBm")).toBeTruthy();
  });

  it("says what to do when nothing is seen", () => {
    render(DeviceList, { devices: [], label: null, scanning: false });
    expect(screen.getByTestId("no-devices").textContent).toContain("Start a scan");
  });
});
