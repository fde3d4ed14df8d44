import { describe, expect, it } from "vitest";
import type { LabelInfo, NearbyDevice } from "../generated/types";
import { hex3, matchesLabel, signalBars, sortForLabel } from "./devices";

const device = (id: string, discriminator: number | null, rssi: number | null): NearbyDevice => ({
  id,
  local_name: null,
  rssi,
  discriminator,
  state: "commissionable",
  protocol_version: 1,
});
const qr: LabelInfo = {
  kind: "qr_label",
  registration_id: "pump-1",
  discriminator: 0xa5c,
  short_discriminator: 0xa,
  product_code: 1,
  manual_code: "12345678901",
};
const manual: LabelInfo = { ...qr, kind: "manual_code", registration_id: null, discriminator: null, manual_code: null };

describe("matching a label to nearby devices", () => {
  it("needs all 12 bits for a QR label and the top 4 for a manual code", () => {
    expect(matchesLabel(device("a", 0xa5c, -50), qr)).toBe(true);
    expect(matchesLabel(device("b", 0xa5d, -50), qr)).toBe(false);
    expect(matchesLabel(device("b", 0xa5d, -50), manual)).toBe(true);
    expect(matchesLabel(device("c", 0x35c, -50), manual)).toBe(false);
    expect(matchesLabel(device("d", null, -50), manual)).toBe(false);
    expect(matchesLabel(device("a", 0xa5c, -50), null)).toBe(false);
  });

  it("lists matches first, then by signal", () => {
    const sorted = sortForLabel([device("far", 0x111, -80), device("match", 0xa5c, -90), device("near", 0x222, -40)], qr);
    expect(sorted.map((d) => d.id)).toEqual(["match", "near", "far"]);
  });

  it("formats discriminators and signal bars", () => {
    expect(hex3(0xa5)).toBe("0x0A5");
    expect(hex3(null)).toBe("–");
    expect([-40, -60, -70, -85, -95, null].map(signalBars)).toEqual([4, 3, 2, 1, 0, 0]);
  });
});
