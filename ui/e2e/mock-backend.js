// A scripted stand-in for the Rust commands, installed with @tauri-apps/api/mocks' mockIPC
// before the production bundle runs (see ui.pw.mjs). Shapes follow src/generated/types.ts.
// `window.__FIELDLINK_SCENARIO__` (set by an earlier init script) chooses what happens.

(() => {
  const scenario = Object.assign(
    {
      signedIn: true,
      profiles: "default", // "default" | "none"
      startupError: null, // CommandError for app_info
      signInError: null,
      deviceCode: false,
      scanError: null,
      devices: 4,
      commissionError: null, // CommandError, thrown at `failAt`
      failAt: "handshaking",
      hold: null, // a step name: progress stops there until cancelled
      historyError: null,
      saveError: null,
      adaptersError: null,
      batchFailures: [], // positions that fail in a batch
      stepDelayMs: 25,
      emptyHistory: false,
    },
    window.__FIELDLINK_SCENARIO__ || {},
  );

  const hex = (n, width) => n.toString(16).toUpperCase().padStart(width, "0");
  const registrationId = (i) => `site-7.pump-${String(i + 1).padStart(2, "0")}`;
  const discriminator = (i) => (0xa10 + i * 37) & 0xfff;
  const label = (i) => `FL1/${registrationId(i).toUpperCase()}/${hex(discriminator(i), 3)}AAAQCAIBAEAQCAIBAEAQCAIBA`;
  window.__FIELDLINK_LABELS__ = Array.from({ length: 24 }, (_, i) => label(i));

  const profiles =
    scenario.profiles === "none"
      ? []
      : [
          {
            name: "acme-prod",
            organisation: "Acme Water",
            site: "bluetooth",
            api_url: "https://provisioning.acme.example",
            issuer: "https://login.acme.example",
            client_id: "fieldlink-desktop",
            ca_file: null,
            sandbox_manifest: null,
          },
          {
            name: "simulator",
            organisation: "Simulated site",
            site: "simulator",
            api_url: null,
            issuer: null,
            client_id: null,
            ca_file: null,
            sandbox_manifest: null,
          },
        ];
  let settings = {
    profiles,
    active_profile: profiles.length ? "simulator" : null,
    ble_adapter: null,
    theme: scenario.theme || "light",
    batch_concurrency: 4,
  };
  let session = scenario.signedIn
    ? {
        profile: "simulator",
        organisation: "Simulated site",
        identity: "ann@acme.example",
        method: "local",
        expires_at_ms: null,
      }
    : null;

  const error = (code, message, retryable = false, details = {}) => ({ code, message, retryable, details });
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const running = new Map(); // operation id -> { cancelled: bool, wake: fn }

  function start(id) {
    const op = { cancelled: false, wakers: [] };
    running.set(id, op);
    return op;
  }
  async function pause(op, ms) {
    await Promise.race([sleep(ms), new Promise((resolve) => op.wakers.push(resolve))]);
    if (op.cancelled) throw error("cancelled", "cancelled");
  }
  function holdForever(op) {
    return new Promise((_, reject) =>
      op.wakers.push(() => reject(error("cancelled", "cancelled"))),
    );
  }

  function parseLabel(code) {
    const text = String(code).trim();
    if (/^[0-9 -]+$/.test(text)) {
      const digits = text.replace(/[ -]/g, "");
      if (digits.length !== 11) {
        throw error("invalid_payload", `invalid onboarding code: manual_code has ${digits.length} digits; a manual code has 11; rescan the label`, false, { field: "manual_code", reason: "length" });
      }
      return { kind: "manual_code", registration_id: null, discriminator: null, short_discriminator: Number(digits[0]) * 4 + 2, product_code: null, manual_code: null };
    }
    const match = /^FL1\/([A-Z0-9.*:-]+)\/([0-9A-F]{3})[A-Z0-9]+$/i.exec(text);
    if (!match) {
      throw error("invalid_payload", "invalid onboarding code: checksum checksum mismatch: the label is damaged or was mistyped; rescan the label", false, { field: "checksum", reason: "mismatch" });
    }
    const disc = parseInt(match[2], 16);
    return {
      kind: "qr_label",
      registration_id: match[1].toLowerCase().replace(/\*/g, "_"),
      discriminator: disc,
      short_discriminator: (disc >> 8) & 0xf,
      product_code: 66,
      manual_code: `${(disc >> 10) & 3}${String(((disc >> 8) & 3) * 16384 + 1234).padStart(5, "0")}07315`,
    };
  }

  const nearby = () =>
    Array.from({ length: scenario.devices }, (_, i) => ({
      id: `C0:FF:EE:00:00:${hex(i + 1, 2)}`,
      local_name: `fieldlink ${hex(discriminator(i), 3)}`,
      rssi: -48 - i * 9,
      discriminator: discriminator(i),
      state: i === 3 ? "registered" : "commissionable",
      protocol_version: 1,
    }));

  const STEPS = [
    ["scanning", [{ kind: "started" }, { kind: "device_found", peripheral: "C0:FF:EE:00:00:01", rssi: -48 }, { kind: "completed" }]],
    ["connecting", [{ kind: "started" }, { kind: "connected", mtu: 247 }, { kind: "completed" }]],
    ["handshaking", [{ kind: "started" }, { kind: "completed" }]],
    ["provisioning", [{ kind: "started" }, { kind: "completed" }]],
    ["registering", [{ kind: "started" }, { kind: "registration_stage", stage: "assigning" }, { kind: "registration_stage", stage: "assigned" }, { kind: "completed" }]],
    ["confirming", [{ kind: "started" }, { kind: "status_pending", status: "assigning" }, { kind: "completed" }]],
  ];

  function result(registration, attemptId, totalMs) {
    return {
      attempt_id: attemptId,
      registration_id: registration,
      assignment: { dps_instance: "dps-westeurope-2", id_scope: "0ne00A1B2C3", expires_at: 1893456000 },
      mtu: 247,
      device: { status: "assigned", assigned_hub: "hub-we-07.azure-devices.net", device_id: registration, substatus: "initialAssignment", error_code: null, error_message: null },
      service: { status: "assigned", assigned_hub: "hub-we-07.azure-devices.net", device_id: registration, substatus: "initialAssignment", error_code: null },
      agreed: true,
      network_configured: false,
      steps: STEPS.map(([step], i) => ({ step, started_ms: i * 180, finished_ms: i * 180 + 150, attempts: step === "confirming" ? 2 : 1 })),
      link: { connections: 1, round_trips: 2, frames_sent: 4, frames_received: 9, bytes_sent: 412, bytes_received: 1190 },
      resumes: 0,
      total_ms: totalMs,
    };
  }

  let attemptCounter = 40;
  async function commission(labelText, op, send, failure) {
    const info = parseLabel(labelText);
    const registration = info.registration_id || registrationId(0);
    let at = 0;
    for (const [step, details] of STEPS) {
      for (const detail of details) {
        if (failure && step === (failure.failAt || scenario.failAt) && detail.kind !== "started") {
          throw failure.error;
        }
        await pause(op, scenario.stepDelayMs);
        at += 37;
        send({ step, detail, at_ms: at, attempt: detail.kind === "status_pending" ? 2 : 1 });
        if (scenario.hold === step && detail.kind === "started") {
          await holdForever(op);
        }
      }
    }
    attemptCounter += 1;
    return result(registration, attemptCounter, at + 12);
  }

  const now = Date.UTC(2026, 10, 3, 9, 30);
  const history = scenario.emptyHistory
    ? []
    : [
        { outcome: "succeeded", confirmation: "confirmed", error_code: null, error_message: null },
        { outcome: "failed", confirmation: null, error_code: "wrong_pop", error_message: "wrong proof-of-possession (attempt 1 of 5): rescan the device's QR label or re-enter the manual code" },
        { outcome: "succeeded", confirmation: "queued", error_code: null, error_message: null },
        { outcome: "interrupted", confirmation: null, error_code: null, error_message: null },
        { outcome: "failed", confirmation: null, error_code: "device_not_found", error_message: "device not found: nothing advertised discriminator 0xa35; check that it is powered, in range and not already commissioned" },
      ].map((entry, i) => ({
        id: 30 - i,
        registration_id: registrationId(i),
        installer: "ann@acme.example",
        profile: "acme-prod",
        transport: "bluez",
        batch_id: i === 3 ? "0193ab4c2d100f1e2a3b" : null,
        batch_position: i === 3 ? 4 : null,
        started_at_ms: now - i * 3_600_000,
        finished_at_ms: entry.outcome === "interrupted" ? null : now - i * 3_600_000 + 4_200,
        outcome: entry.outcome,
        confirmation: entry.confirmation,
        dps_instance: entry.outcome === "succeeded" ? "dps-westeurope-2" : null,
        id_scope: entry.outcome === "succeeded" ? "0ne00A1B2C3" : null,
        assigned_hub: entry.outcome === "succeeded" ? "hub-we-07.azure-devices.net" : null,
        device_id: entry.outcome === "succeeded" ? registrationId(i) : null,
        error_code: entry.error_code,
        error_message: entry.error_message,
        retryable: entry.error_code ? entry.error_code !== "wrong_pop" : null,
        total_ms: entry.outcome === "interrupted" ? null : 4_200 - i * 300,
        mtu: 247,
        resumes: 0,
        link: { connections: 1, round_trips: 2, frames_sent: 4, frames_received: 9, bytes_sent: 412, bytes_received: 1190 },
        recheck: null,
        steps: [],
      }));

  const calls = (window.__FIELDLINK_CALLS__ = {});
  window.__mockIPC(async (cmd, args) => {
    calls[cmd] = (calls[cmd] || 0) + 1;
    switch (cmd) {
      case "app_info":
        if (scenario.startupError) throw scenario.startupError;
        return {
          version: "0.1.0",
          simulator_available: true,
          sandbox_available: true,
          sign_in_available: true,
          api_client_available: true,
          journal_path: "/home/ann/.local/share/dev.fieldlink.desktop/journal.sqlite",
          settings_path: "/home/ann/.config/dev.fieldlink.desktop/settings.json",
        };
      case "get_settings":
        return settings;
      case "save_settings":
        if (scenario.saveError) throw scenario.saveError;
        for (const profile of args.settings.profiles) {
          if (profile.api_url && profile.api_url.startsWith("http://") && !/localhost|127\.0\.0\.1/.test(profile.api_url)) {
            throw error("invalid_setting", `invalid setting profiles.api_url: plain http is allowed only to this machine (localhost); use https`, false, { field: "api_url", reason: "http" });
          }
        }
        settings = args.settings;
        return settings;
      case "open_sandbox_manifest": {
        if (!args.path.endsWith("manifest.json")) {
          throw error("sandbox_unavailable", `no sandbox manifest at ${args.path} (No such file or directory (os error 2)); start one with \`fieldlink sandbox up\``);
        }
        const profile = { name: "sandbox", organisation: "fieldlink sandbox (5 devices)", site: "sandbox", api_url: "https://127.0.0.1:41443", issuer: "https://127.0.0.1:41444", client_id: "fieldlink-desktop", ca_file: "/tmp/sandbox/ca.pem", sandbox_manifest: args.path };
        settings = { ...settings, profiles: [...settings.profiles.filter((p) => p.name !== "sandbox"), profile], active_profile: "sandbox" };
        session = null;
        return settings;
      }
      case "list_adapters":
        if (scenario.adaptersError) throw scenario.adaptersError;
        return [
          { name: "hci0", address: "00:1A:7D:DA:71:13", powered: true },
          { name: "hci1", address: "00:1A:7D:DA:71:14", powered: false },
        ];
      case "site_labels":
        return window.__FIELDLINK_LABELS__.slice(0, 6).map((text, i) => ({ registration_id: registrationId(i), label: text }));
      case "cancel_operation": {
        const op = running.get(args.operationId);
        if (!op) throw error("unknown_operation", `no running operation ${args.operationId}; it may already have finished`, false, { operation_id: args.operationId });
        op.cancelled = true;
        op.wakers.splice(0).forEach((wake) => wake());
        return null;
      }
      case "get_session":
        return session;
      case "sign_in": {
        const op = start(args.operationId);
        try {
          if (scenario.deviceCode && args.method === "device_code") {
            args.onEvent.onmessage({ kind: "device_code", user_code: "WDJB-MJHT", verification_uri: "https://login.acme.example/device", verification_uri_complete: null, expires_in_s: 600 });
            await holdForever(op);
          }
          if (scenario.signInError) throw scenario.signInError;
          const profile = settings.profiles.find((p) => p.name === args.profile);
          if (profile.issuer && args.method === "device_code") {
            // Approved on another device a moment later.
            args.onEvent.onmessage({ kind: "device_code", user_code: "QKZT-RWMB", verification_uri: `${profile.issuer}/device`, verification_uri_complete: `${profile.issuer}/device?user_code=QKZT-RWMB`, expires_in_s: 600 });
            await pause(op, 400);
            session = { profile: profile.name, organisation: profile.organisation, identity: "Sandbox installer", method: "device_code", expires_at_ms: Date.now() + 3_600_000 };
            settings = { ...settings, active_profile: profile.name };
            return session;
          }
          session = { profile: profile.name, organisation: profile.organisation, identity: "local:ann", method: "local", expires_at_ms: null };
          settings = { ...settings, active_profile: profile.name };
          return session;
        } finally {
          running.delete(args.operationId);
        }
      }
      case "sign_out":
        session = null;
        return null;
      case "parse_label":
        return parseLabel(args.code);
      case "render_label": {
        const info = parseLabel(args.code);
        if (info.kind !== "qr_label") throw error("invalid_payload", "invalid onboarding code: label a manual code cannot be printed as a QR label (it has no PoP); rescan the label");
        const cells = Array.from({ length: 21 * 21 }, (_, i) => ((i * 7919) % 5 < 2 ? `<rect x="${i % 21}" y="${Math.floor(i / 21)}" width="1" height="1"/>` : "")).join("");
        return { svg: `<svg xmlns="http://www.w3.org/2000/svg" viewBox="-2 -2 25 25" width="200" height="200"><rect x="-2" y="-2" width="25" height="25" fill="#fff"/>${cells}</svg>`, registration_id: info.registration_id, manual_code: info.manual_code };
      }
      case "scan": {
        const op = start(args.operationId);
        try {
          if (scenario.scanError) throw scenario.scanError;
          const all = nearby();
          for (let round = 1; round <= 200; round += 1) {
            args.onUpdate.onmessage({ round, devices: all.slice(0, Math.min(all.length, round + 1)) });
            await pause(op, round === 1 ? 50 : 400);
          }
          return 200;
        } catch (e) {
          if (e.code === "cancelled") return 0;
          throw e;
        } finally {
          running.delete(args.operationId);
        }
      }
      case "commission": {
        const op = start(args.operationId);
        try {
          const failure = scenario.commissionError ? { error: scenario.commissionError } : null;
          return await commission(args.label, op, (u) => args.onProgress.onmessage(u), failure);
        } finally {
          running.delete(args.operationId);
        }
      }
      case "registration_status":
        return { status: "assigned", assigned_hub: "hub-we-07.azure-devices.net", device_id: args.registrationId, substatus: "initialAssignment", error_code: null };
      case "commission_batch":
      case "resume_batch": {
        const op = start(args.operationId);
        const labels = cmd === "commission_batch" ? args.request.labels : args.labels;
        const infos = labels.map((text) => {
          try {
            return parseLabel(text);
          } catch {
            return null;
          }
        });
        const batchId = "0193ab4c2d100f1e2a3b";
        const send = (event) => args.onEvent.onmessage(event);
        send({ kind: "planned", batch_id: batchId, registration_ids: infos.map((i) => (i ? i.registration_id : null)) });
        const concurrency = cmd === "commission_batch" ? args.request.concurrency : args.concurrency;
        const counts = { pending: 0, in_flight: 0, succeeded: 0, failed: 0 };
        let next = 0;
        const worker = async () => {
          while (next < labels.length && !op.cancelled) {
            const position = next++;
            send({ kind: "started", position });
            const failing = !infos[position] || scenario.batchFailures.includes(position);
            try {
              if (!infos[position]) throw error("invalid_payload", "invalid onboarding code: checksum checksum mismatch: the label is damaged or was mistyped; rescan the label");
              const failure = failing ? { error: error("device_not_found", `device not found: nothing advertised discriminator 0x${hex(infos[position].discriminator, 3).toLowerCase()}; check that it is powered, in range and not already commissioned`, true, { discriminator: infos[position].discriminator }), failAt: "scanning" } : null;
              const res = await commission(labels[position], op, (update) => send({ kind: "progress", position, update }), failure);
              counts.succeeded += 1;
              send({ kind: "succeeded", position, result: res });
            } catch (e) {
              counts.failed += 1;
              send({ kind: "failed", position, error: e });
            }
          }
        };
        await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
        running.delete(args.operationId);
        counts.pending = labels.length - counts.succeeded - counts.failed;
        return { batch_id: batchId, counts, cancelled: op.cancelled, total_ms: 1840 };
      }
      case "history":
        if (scenario.historyError) throw scenario.historyError;
        return history.filter((h) => !args.query.registration_id || h.registration_id === args.query.registration_id);
      case "batches":
        if (scenario.historyError) throw scenario.historyError;
        return scenario.emptyHistory
          ? []
          : [{ id: "0193ab4c2d100f1e2a3b", created_at_ms: now - 10_800_000, installer: "ann@acme.example", profile: "acme-prod", source: "desktop:pasted", closed_at_ms: null, counts: { pending: 3, in_flight: 1, succeeded: 14, failed: 2 } }];
      case "batch_items":
        return [];
      case "export_history":
        return { path: `/home/ann/Downloads/fieldlink-history-1793700000000.${args.format}`, count: history.length, bytes: 2048 };
      default:
        throw error("internal", `internal error (unmocked command ${cmd}): please report it`);
    }
  });
})();
