// Reading QR labels with the laptop camera: getUserMedia frames decoded by jsQR.

import jsQR from "jsqr";

/** The QR text in one RGBA frame, or null. */
export function decodeFrame(data: Uint8ClampedArray, width: number, height: number): string | null {
  const code = jsQR(data, width, height, { inversionAttempts: "attemptBoth" });
  return code && code.data ? code.data : null;
}

/** Why the camera cannot be used, in words an installer can act on. */
export function cameraProblem(error: unknown): string {
  const name = error instanceof Error || error instanceof DOMException ? error.name : "";
  switch (name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Camera access was denied. Allow fieldlink to use the camera in the system settings, or paste the label instead.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera was found. Paste the label or type the manual code instead.";
    case "NotReadableError":
      return "The camera is in use by another application. Close it, or paste the label instead.";
    default:
      return "The camera could not be started. Paste the label or type the manual code instead.";
  }
}

export function cameraSupported(): boolean {
  return typeof navigator !== "undefined" && !!navigator.mediaDevices?.getUserMedia;
}
