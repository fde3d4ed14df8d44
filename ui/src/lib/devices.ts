// Nearby devices: matching the chosen label by discriminator, and how to show them.

import type { LabelInfo, NearbyDevice } from "../generated/types";

/**
 * Whether `device` may be the one `label` names: a QR label carries all 12 bits of the
 * discriminator, a manual code only the top 4 (the core's `DiscriminatorMatch`).
 */
export function matchesLabel(device: NearbyDevice, label: LabelInfo | null): boolean {
  if (!label || device.discriminator === null) return false;
  if (label.discriminator !== null) {
    return (device.discriminator & 0xfff) === (label.discriminator & 0xfff);
  }
  return ((device.discriminator >> 8) & 0xf) === (label.short_discriminator & 0xf);
}

/** Matching devices first, then by signal strength. */
export function sortForLabel(devices: NearbyDevice[], label: LabelInfo | null): NearbyDevice[] {
  return [...devices].sort((a, b) => {
    const match = Number(matchesLabel(b, label)) - Number(matchesLabel(a, label));
    if (match !== 0) return match;
    return (b.rssi ?? -1000) - (a.rssi ?? -1000);
  });
}

/** `0xA5C`. */
export function hex3(value: number | null | undefined): string {
  if (value === null || value === undefined) return "–";
  return `0x${value.toString(16).toUpperCase().padStart(3, "0")}`;
}

/** Signal bars 0..4 from RSSI in dBm. */
export function signalBars(rssi: number | null | undefined): number {
  if (rssi === null || rssi === undefined) return 0;
  if (rssi >= -55) return 4;
  if (rssi >= -67) return 3;
  if (rssi >= -78) return 2;
  if (rssi >= -90) return 1;
  return 0;
}

export function stateLabel(state: string | null): string {
  return state ? state.replace(/_/g, " ") : "unknown";
}
