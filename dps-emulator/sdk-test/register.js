'use strict';
// Registers one device against a DPS endpoint with the official Azure IoT Node.js
// provisioning SDK (HTTP transport, symmetric-key attestation), unchanged.
//
// Environment:
//   DPS_PROVISIONING_HOST  provisioning host name given to the SDK (e.g. localhost)
//   DPS_PORT               optional TCP port (see below); default 443
//   DPS_ID_SCOPE           ID scope
//   DPS_REGISTRATION_ID    registration ID
//   DPS_SYMMETRIC_KEY      the device's base64 key (individual, or derived from a group key)
//   DPS_TIMEOUT_MS         overall deadline, default 60000
//   NODE_EXTRA_CA_CERTS    PEM file with the emulator's CA (read by Node itself)
//
// Prints the SDK's registration result as one JSON line on stdout; exits 1 when the SDK
// reports an error, 2 on a usage error, 3 on timeout.

const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Http } = require('azure-iot-provisioning-device-http');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`missing environment variable ${name}`);
    process.exit(2);
  }
  return value;
}

const host = required('DPS_PROVISIONING_HOST');
const idScope = required('DPS_ID_SCOPE');
const registrationId = required('DPS_REGISTRATION_ID');
const symmetricKey = required('DPS_SYMMETRIC_KEY');
const port = Number(process.env.DPS_PORT || 443);
const timeoutMs = Number(process.env.DPS_TIMEOUT_MS || 60000);

if (port !== 443) {
  // The SDK's HTTP transport takes a bare host name and always connects to port 443 (it hands
  // the host to https.request without a port). Devices in the field do the same. To reach an
  // emulator on another loopback port without touching the SDK, route this process's HTTPS
  // connections to that port at the socket layer. TLS still checks the server certificate
  // against `host` and NODE_EXTRA_CA_CERTS, exactly as it would on port 443.
  const https = require('https');
  class PortMappingAgent extends https.Agent {
    createConnection(options, callback) {
      return super.createConnection({ ...options, port }, callback);
    }
  }
  https.globalAgent = new PortMappingAgent({ keepAlive: false });
}

const deadline = setTimeout(() => {
  console.error(`registration did not finish within ${timeoutMs} ms`);
  process.exit(3);
}, timeoutMs);

const client = ProvisioningDeviceClient.create(
  host,
  idScope,
  new Http(),
  new SymmetricKeySecurityClient(registrationId, symmetricKey)
);

client.register((err, result) => {
  clearTimeout(deadline);
  if (err) {
    const detail = err.result ? ` ${JSON.stringify(err.result)}` : '';
    console.error(`registration failed: ${err.name}: ${err.message}${detail}`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
});
