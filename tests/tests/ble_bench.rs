//! Real BLE without a radio: btleplug (installer, hci0) → D-Bus → BlueZoo → bluer (device, hci1)
//! on a private bus. See `docs/ble.md` ("The bench").
//!
//! Every test starts its own bench (dbus-daemon + BlueZoo) and tears it down on drop. When
//! `dbus-daemon` or `bluezoo` is missing, the tests fail in CI and are skipped loudly elsewhere.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

#[path = "ble_bench/bench.rs"]
mod bench;

use std::time::Duration;

use bench::{ADDRESSES, Bench, INSTALLER_ADAPTER, peripheral_id};
use fieldlink_core::transport::{
    BleTransport as _, DisconnectReason, LinkEvent, ScanFilter, TransportError,
    btleplug::{BtleplugConfig, BtleplugTransport, Unavailability},
};
use fieldlink_protocol::gatt::{AdvertisedState, SERVICE_UUID};

const SCAN: Duration = Duration::from_secs(6);
const CONNECT: Duration = Duration::from_secs(10);
const EVENT: Duration = Duration::from_secs(5);

async fn installer() -> BtleplugTransport {
    BtleplugTransport::open(BtleplugConfig::on_adapter(INSTALLER_ADAPTER))
        .await
        .expect("open hci0")
}

fn looking_for(discriminator: Option<u16>) -> ScanFilter {
    ScanFilter {
        service_uuid: SERVICE_UUID,
        discriminator,
    }
}

async fn next_notification(link: &dyn fieldlink_core::transport::BleConnection) -> Vec<u8> {
    match tokio::time::timeout(EVENT, link.next_event()).await {
        Ok(LinkEvent::Notification(frame)) => frame,
        other => panic!("expected a notification, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_lists_the_peripheral_with_its_advertised_service_data() {
    if !bench::available("scan_lists_the_peripheral_with_its_advertised_service_data") {
        return;
    }
    let bench = Bench::start(2).await;
    let _device = bench.echo_peripheral("hci1", 0xa42).await;
    let transport = installer().await;
    assert_eq!(transport.adapter_name(), "hci0");

    let found = transport
        .scan(looking_for(Some(0xa42)), SCAN)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}\n{}", bench.log());
    let device = &found[0];
    assert_eq!(device.id.0, peripheral_id("hci0", ADDRESSES[1]));
    let adv = device.advertisement().expect("service data decodes");
    assert_eq!(adv.discriminator, 0xa42);
    assert_eq!(adv.state, AdvertisedState::Commissionable);
    assert_eq!(adv.protocol_version, fieldlink_protocol::PROTOCOL_VERSION);
    assert_eq!(device.local_name.as_deref(), Some("FL-A42"));
    assert!(device.service_uuids.contains(&SERVICE_UUID));

    // A label nobody advertises: an empty list after the full timeout, not an error.
    let started = std::time::Instant::now();
    let none = transport
        .scan(looking_for(Some(0x777)), Duration::from_secs(2))
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "scan overran its timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_with_the_labels_discriminator_is_chosen_among_two() {
    if !bench::available("the_device_with_the_labels_discriminator_is_chosen_among_two") {
        return;
    }
    let bench = Bench::start(3).await;
    let _first = bench.echo_peripheral("hci1", 0xa42).await;
    let _second = bench.echo_peripheral("hci2", 0x123).await;
    let transport = installer().await;

    // Wait until both advertise, then check the unfiltered list and the chosen one.
    let mut all = Vec::new();
    for _ in 0..3 {
        all = transport
            .scan(looking_for(None), Duration::from_secs(3))
            .await
            .unwrap();
        if all.len() == 2 {
            break;
        }
    }
    let mut discriminators: Vec<_> = all.iter().filter_map(|d| d.discriminator()).collect();
    discriminators.sort_unstable();
    assert_eq!(discriminators, [0x123, 0xa42], "{all:?}");

    let chosen = transport
        .scan(looking_for(Some(0x123)), SCAN)
        .await
        .unwrap();
    assert_eq!(chosen.len(), 1, "{chosen:?}");
    assert_eq!(chosen[0].id.0, peripheral_id("hci0", ADDRESSES[2]));
    assert_eq!(chosen[0].local_name.as_deref(), Some("FL-123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_cross_the_real_gatt_path_both_ways() {
    if !bench::available("frames_cross_the_real_gatt_path_both_ways") {
        return;
    }
    let bench = Bench::start(2).await;
    let _device = bench.echo_peripheral("hci1", 0xa42).await;
    let transport = installer().await;
    let found = transport
        .scan(looking_for(Some(0xa42)), SCAN)
        .await
        .unwrap();
    let id = found.first().expect("found").id.clone();

    let link = transport.connect(id, CONNECT).await.unwrap();
    // BlueZoo negotiates 512; btleplug only knows it after service discovery.
    assert_eq!(link.mtu(), 512);
    // The device's notification limit is BlueZ's MTU less bluer's 5-byte margin (507 bytes), so
    // echo frames up to that; the installer may write up to mtu - 3 = 509.
    for len in [1_usize, 20, 180, 507] {
        let frame: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        link.write(frame.clone()).await.unwrap();
        assert_eq!(next_notification(link.as_ref()).await, frame, "len {len}");
    }
    assert_eq!(
        link.write(vec![0; 510]).await,
        Err(TransportError::FrameTooLarge {
            len: 510,
            limit: 509
        })
    );

    link.disconnect().await;
    assert_eq!(
        link.next_event().await,
        LinkEvent::Disconnected {
            reason: DisconnectReason::Local
        }
    );
    assert_eq!(link.write(vec![1]).await, Err(TransportError::Disconnected));
    link.disconnect().await; // idempotent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_peripheral_is_a_lost_link_and_a_restarted_one_serves_again() {
    if !bench::available("a_killed_peripheral_is_a_lost_link_and_a_restarted_one_serves_again") {
        return;
    }
    let bench = Bench::start(3).await;
    let device = bench.echo_peripheral("hci1", 0xa42).await;
    let transport = installer().await;
    let id = transport
        .scan(looking_for(Some(0xa42)), SCAN)
        .await
        .unwrap()[0]
        .id
        .clone();
    let link = transport.connect(id.clone(), CONNECT).await.unwrap();
    link.write(vec![7, 7]).await.unwrap();
    assert_eq!(next_notification(link.as_ref()).await, [7, 7]);

    device.kill();
    let started = std::time::Instant::now();
    assert_eq!(link.write(vec![8]).await, Err(TransportError::Disconnected));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        tokio::time::timeout(EVENT, link.next_event())
            .await
            .unwrap(),
        LinkEvent::Disconnected {
            reason: DisconnectReason::LinkLoss
        }
    );
    drop(link);

    // BlueZoo keeps the dead process's GATT objects under hci0's device object, next to the new
    // ones, and btleplug may pick the stale service (real BlueZ drops them on disconnect and
    // re-resolves), so the restarted device is reached from a central adapter that never saw the
    // old database.
    let _restarted = bench.echo_peripheral("hci1", 0xa42).await;
    let second = BtleplugTransport::open(BtleplugConfig::on_adapter("hci2"))
        .await
        .unwrap();
    let again = second.scan(looking_for(Some(0xa42)), SCAN).await.unwrap();
    let id = again
        .first()
        .map(|d| d.id.clone())
        .expect("restarted device advertises");
    assert_eq!(id.0, peripheral_id("hci2", ADDRESSES[1]));
    let link = second.connect(id, CONNECT).await.unwrap();
    link.write(vec![9, 9, 9]).await.unwrap();
    assert_eq!(next_notification(link.as_ref()).await, [9, 9, 9]);
    link.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_link_stays_up_and_a_killed_peer_is_found_by_the_liveness_probe() {
    if !bench::available("a_silent_link_stays_up_and_a_killed_peer_is_found_by_the_liveness_probe")
    {
        return;
    }
    let bench = Bench::start(2).await;
    let device = bench.echo_peripheral("hci1", 0xa42).await;
    let transport = installer().await;
    let id = transport
        .scan(looking_for(Some(0xa42)), SCAN)
        .await
        .unwrap()[0]
        .id
        .clone();
    let link = transport.connect(id, CONNECT).await.unwrap();
    let probe = BtleplugConfig::default().liveness;

    // Idle for longer than the probe's deadline: the reads of TX keep it up.
    let idle = probe.timeout + Duration::from_secs(1);
    assert!(
        tokio::time::timeout(idle, link.next_event()).await.is_err(),
        "an idle link to a live peer went down"
    );
    link.write(vec![5]).await.unwrap();
    assert_eq!(next_notification(link.as_ref()).await, [5]);

    // BlueZoo reports nothing when the peer dies, and the installer writes nothing: only the
    // probe can notice, within its interval + deadline.
    device.kill();
    let killed = std::time::Instant::now();
    let event = tokio::time::timeout(probe.interval + probe.timeout + EVENT, link.next_event())
        .await
        .expect("the probe notices the dead peer");
    let waited = killed.elapsed();
    eprintln!("LIVENESS dead peer noticed after {waited:?}");
    assert_eq!(
        event,
        LinkEvent::Disconnected {
            reason: DisconnectReason::LinkLoss
        }
    );
    assert!(waited <= probe.interval * 2 + probe.timeout, "{waited:?}");
    assert_eq!(link.write(vec![6]).await, Err(TransportError::Disconnected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bluez_missing_adapter_and_adapter_off_are_distinct_errors() {
    if !bench::available("missing_bluez_missing_adapter_and_adapter_off_are_distinct_errors") {
        return;
    }
    {
        let _bus = Bench::bus_only().await;
        let error = BtleplugTransport::open(BtleplugConfig::default())
            .await
            .expect_err("no org.bluez on the bus");
        assert_eq!(
            Unavailability::of(&error),
            Some(Unavailability::NoBluez),
            "{error}"
        );
    }
    let bench = Bench::start(2).await;
    let error = BtleplugTransport::open(BtleplugConfig::on_adapter("hci7"))
        .await
        .expect_err("no hci7");
    assert_eq!(
        Unavailability::of(&error),
        Some(Unavailability::NoAdapter),
        "{error}"
    );
    assert!(error.to_string().contains("hci0, hci1"), "{error}");

    bench.set_powered("hci0", false).await;
    let error = BtleplugTransport::open(BtleplugConfig::on_adapter("hci0"))
        .await
        .expect_err("hci0 is off");
    assert_eq!(
        Unavailability::of(&error),
        Some(Unavailability::BluetoothOff),
        "{error}"
    );
    // Without a name the first powered adapter is taken, whatever btleplug's order.
    let transport = BtleplugTransport::open(BtleplugConfig::default())
        .await
        .unwrap();
    assert_eq!(transport.adapter_name(), "hci1");
}

// ---- Commissioning end to end: Commissioner → btleplug → D-Bus → BlueZoo → bluer → agent ----

mod commissioning {
    use std::sync::Arc;

    use fieldlink_core::{
        CommissionError,
        assignment::AssignmentSource,
        workflow::{Commissioner, IgnoreProgress},
    };
    use fieldlink_device_agent::{
        agent::DeviceAgent, bluez::BluezPeripheral, link::BlePeripheral as _,
    };
    use fieldlink_protocol::{payload::PopSecret, session::SessionSecret};
    use fieldlink_tests::world::{IOT_HUB, World, WorldConfig};
    use tokio::task::JoinHandle;
    use tokio_util::sync::CancellationToken;

    use super::*;

    /// A world agent served over BlueZ on `adapter` (in this process); dropping it takes the
    /// device's BLE stack away (GATT application and advertisement unregistered).
    pub struct BleDevice {
        tasks: Vec<JoinHandle<()>>,
    }

    impl Drop for BleDevice {
        fn drop(&mut self) {
            for task in &self.tasks {
                task.abort();
            }
        }
    }

    pub async fn serve_over_bluez(agent: &DeviceAgent, adapter: &str) -> BleDevice {
        let peripheral = Arc::new(
            BluezPeripheral::start(adapter)
                .await
                .expect("bluer GATT server"),
        );
        let mut advertisement = agent.watch_advertisement();
        let advertiser = {
            let peripheral = Arc::clone(&peripheral);
            tokio::spawn(async move {
                loop {
                    let current = advertisement.borrow_and_update().clone();
                    if let Err(error) = peripheral.advertise(&current).await {
                        eprintln!("advertising failed: {error}");
                    }
                    if advertisement.changed().await.is_err() {
                        return;
                    }
                }
            })
        };
        let server = {
            let agent = agent.clone();
            tokio::spawn(async move {
                while let Ok(Some(connection)) = peripheral.accept().await {
                    agent.serve(connection);
                }
            })
        };
        BleDevice {
            tasks: vec![advertiser, server],
        }
    }

    pub fn world_config(devices: usize) -> WorldConfig {
        WorldConfig {
            devices,
            ..WorldConfig::default()
        }
    }

    pub fn commissioner(
        world: &World,
        transport: &BtleplugTransport,
        source: Arc<dyn AssignmentSource>,
    ) -> Commissioner {
        let mut config = world.commissioning_config();
        // BlueZoo reports advertisers once per scan interval (1 s).
        config.deadlines.scanning = Duration::from_secs(6);
        Commissioner::new(Arc::new(transport.clone()), source, world.status.clone())
            .with_config(config)
    }

    pub async fn wrong_pop(world: &World, transport: &BtleplugTransport) -> CommissionError {
        let mut request = world.request(0, None);
        request.secret = SessionSecret::Pop(PopSecret::from_bytes([0x5a; 11]));
        commissioner(world, transport, Arc::new(world.signer()))
            .commission(request, &IgnoreProgress, CancellationToken::new())
            .await
            .expect_err("wrong PoP")
    }

    pub const HUB: &str = IOT_HUB;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commissioning_over_real_ble_picks_the_labelled_device_and_agrees_with_dps() {
    use commissioning::*;
    use fieldlink_core::workflow::IgnoreProgress;
    use tokio_util::sync::CancellationToken;
    if !bench::available(
        "commissioning_over_real_ble_picks_the_labelled_device_and_agrees_with_dps",
    ) {
        return;
    }
    let bench = Bench::start(3).await;
    let world = fieldlink_tests::world::World::start(world_config(2)).await;
    let _first = serve_over_bluez(&world.devices[0].agent, "hci1").await;
    let _second = serve_over_bluez(&world.devices[1].agent, "hci2").await;
    let transport = installer().await;

    let started = std::time::Instant::now();
    let report = commissioner(&world, &transport, std::sync::Arc::new(world.signer()))
        .commission(
            world.request(1, None),
            &IgnoreProgress,
            CancellationToken::new(),
        )
        .await
        .unwrap_or_else(|error| panic!("{error}\n{}", bench.log()));
    let wall = started.elapsed();
    assert!(report.agreed);
    assert_eq!(
        report.registration_id,
        world.devices[1].payload.registration_id
    );
    assert_eq!(report.device.status, "assigned");
    assert_eq!(report.device.assigned_hub.as_deref(), Some(HUB));
    assert_eq!(report.mtu, 512);
    assert_eq!(report.link.round_trips, 2);
    // Only the labelled device registered at DPS.
    let control = world.emulator.control();
    assert!(
        control
            .find_registration(&world.devices[1].payload.registration_id)
            .is_some()
    );
    assert!(
        control
            .find_registration(&world.devices[0].payload.registration_id)
            .is_none()
    );
    eprintln!(
        "FIGURES bluezoo: wall {wall:?}, workflow {} ms, round trips {}, frames {}/{}, bytes {}/{}",
        report.total_ms,
        report.link.round_trips,
        report.link.frames_sent,
        report.link.frames_received,
        report.link.bytes_sent,
        report.link.bytes_received
    );

    // The same commissioning over the in-memory radio (MTU 247, 2 ms connection interval).
    let started = std::time::Instant::now();
    let memory = world
        .commission(0, None)
        .await
        .expect("in-memory commissioning");
    eprintln!(
        "FIGURES in-memory: wall {:?}, workflow {} ms, round trips {}, frames {}/{}, bytes {}/{}",
        started.elapsed(),
        memory.total_ms,
        memory.link.round_trips,
        memory.link.frames_sent,
        memory.link.frames_received,
        memory.link.bytes_sent,
        memory.link.bytes_received
    );
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pop_over_real_ble_is_reported_with_the_attempt() {
    use commissioning::*;
    if !bench::available("wrong_pop_over_real_ble_is_reported_with_the_attempt") {
        return;
    }
    let _bench = Bench::start(2).await;
    let world = fieldlink_tests::world::World::start(world_config(1)).await;
    let _device = serve_over_bluez(&world.devices[0].agent, "hci1").await;
    let transport = installer().await;
    let error = wrong_pop(&world, &transport).await;
    assert_eq!(error.code(), "wrong_pop", "{error}");
    assert!(error.to_string().contains("attempt 1 of"), "{error}");
    world.shutdown().await;
}

// ---- The agent as its own process, killed mid-session ----------------------------------------

#[path = "ble_bench/agent_process.rs"]
mod agent_process;

mod kill {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use async_trait::async_trait;
    use fieldlink_core::{
        CommissionError, Step,
        assignment::{Assignment, AssignmentSource, ServiceError},
        workflow::{CommissioningReport, ProgressEvent},
    };
    use fieldlink_tests::world::{World, WorldConfig};
    use tokio::sync::watch;
    use tokio_util::sync::CancellationToken;

    use super::agent_process::AgentFiles;
    use super::*;

    /// Hands out tickets only once opened: holds the installer in `awaiting_assignment` with the
    /// session open.
    pub struct GatedTickets {
        inner: Arc<dyn AssignmentSource>,
        open: watch::Receiver<bool>,
    }

    impl GatedTickets {
        pub fn new(inner: Arc<dyn AssignmentSource>) -> (Arc<Self>, watch::Sender<bool>) {
            let (open_tx, open) = watch::channel(false);
            (Arc::new(Self { inner, open }), open_tx)
        }
    }

    #[async_trait]
    impl AssignmentSource for GatedTickets {
        async fn assignment(&self, registration_id: String) -> Result<Assignment, ServiceError> {
            let mut open = self.open.clone();
            let _ = open.wait_for(|open| *open).await;
            self.inner.assignment(registration_id).await
        }
    }

    /// Every progress event so far.
    pub type SeenEvents = Arc<Mutex<Vec<ProgressEvent>>>;

    /// Progress events as they come, and a signal at the first event of `step` (kind `what`).
    pub fn watch_for(
        step: Step,
        what: fn(&ProgressEvent) -> bool,
    ) -> (
        impl Fn(ProgressEvent) + Send + Sync + 'static,
        SeenEvents,
        tokio::sync::oneshot::Receiver<()>,
    ) {
        let events = Arc::new(Mutex::new(Vec::new()));
        let (reached_tx, reached) = tokio::sync::oneshot::channel();
        let reached_tx = Mutex::new(Some(reached_tx));
        let seen = Arc::clone(&events);
        let listener = move |event: ProgressEvent| {
            if event.step == step
                && what(&event)
                && let Some(tx) = reached_tx.lock().unwrap().take()
            {
                let _ = tx.send(());
            }
            seen.lock().unwrap().push(event);
        };
        (listener, events, reached)
    }

    pub fn world_config(knobs: fieldlink_dps_emulator::Knobs) -> WorldConfig {
        WorldConfig {
            devices: 1,
            dps_knobs: knobs,
            ..WorldConfig::default()
        }
    }

    /// A commissioning from a fresh installer adapter (BlueZoo keeps a dead peripheral's GATT
    /// objects under the device object of every central that was connected to it).
    pub async fn commission_from(world: &World, adapter: &str) -> CommissioningReport {
        let transport = BtleplugTransport::open(BtleplugConfig::on_adapter(adapter))
            .await
            .unwrap();
        super::commissioning::commissioner(world, &transport, Arc::new(world.signer()))
            .commission(
                world.request(0, None),
                &fieldlink_core::workflow::IgnoreProgress,
                CancellationToken::new(),
            )
            .await
            .unwrap_or_else(|error| panic!("the next commissioning failed: {error}"))
    }

    pub fn elapsed_since(started: Instant) -> Duration {
        started.elapsed()
    }

    pub fn step_of(error: &CommissionError) -> Option<Step> {
        match error {
            CommissionError::LinkLost { step, .. } | CommissionError::Timeout { step } => {
                Some(*step)
            }
            _ => None,
        }
    }

    pub fn files(world: &World) -> impl std::future::Future<Output = AgentFiles> + '_ {
        AgentFiles::of_world_device(world, 0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_session_is_link_lost_with_its_step_and_the_restarted_agent_commissions()
 {
    use agent_process::AgentProcess;
    use fieldlink_core::{Step, workflow::ProgressKind};
    use kill::*;
    use std::sync::Arc;
    use tokio_util::sync::CancellationToken;
    if !bench::available(
        "an_agent_killed_mid_session_is_link_lost_with_its_step_and_the_restarted_agent_commissions",
    ) {
        return;
    }
    let bench = Bench::start(3).await;
    let world = fieldlink_tests::world::World::start(world_config(fieldlink_dps_emulator::Knobs {
        retry_after_secs: 0,
        ..Default::default()
    }))
    .await;
    let files = files(&world).await;
    let fail_safe = Duration::from_secs(20);
    let agent = AgentProcess::start(bench.dir(), &files, "hci1", fail_safe).await;
    assert_eq!(agent.address, ADDRESSES[1]);

    // The installer opens the session (round trip 1) and then waits for its ticket.
    let transport = installer().await;
    let (tickets, open_tickets) = GatedTickets::new(Arc::new(world.signer()));
    let (listener, events, session_open) = watch_for(Step::Handshaking, |event| {
        event.kind == ProgressKind::Completed
    });
    let commissioner = commissioning::commissioner(&world, &transport, tickets);
    let request = world.request(0, None);
    let running = tokio::spawn(async move {
        commissioner
            .commission(request, &listener, CancellationToken::new())
            .await
    });
    tokio::time::timeout(Duration::from_secs(20), session_open)
        .await
        .expect("the session opens")
        .unwrap();

    agent.kill();
    let killed = std::time::Instant::now();
    open_tickets.send_replace(true);
    let error = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the installer gives up within its deadlines")
        .unwrap()
        .expect_err("the device is gone");
    let waited = elapsed_since(killed);
    eprintln!(
        "KILL mid-session: {error} (code {}, after {waited:?})",
        error.code()
    );
    assert_eq!(error.code(), "link_lost", "{error}");
    let step = step_of(&error).unwrap();
    assert!(
        matches!(step, Step::AwaitingAssignment | Step::Provisioning),
        "{step:?}"
    );
    assert!(error.retryable(), "{error}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .all(|event| event.step != Step::Registering),
        "no ticket reached the device"
    );

    // Never half-configured: nothing staged, nothing committed, the attempt counted.
    let state = files.persisted();
    assert!(state.staged.is_none(), "{:?}", state.staged);
    assert!(state.assignment.is_none());

    let _restarted = AgentProcess::start(bench.dir(), &files, "hci1", fail_safe).await;
    let report = commission_from(&world, "hci2").await;
    assert!(report.agreed);
    assert_eq!(report.device.status, "assigned");
    let state = files.persisted();
    assert!(state.staged.is_none());
    assert!(state.assignment.is_some_and(|a| a.is_valid()));
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_while_registering_is_rolled_back_by_its_fail_safe_and_commissions_after_restart()
 {
    use agent_process::AgentProcess;
    use fieldlink_core::{Step, workflow::ProgressKind};
    use fieldlink_device_agent::clock::{Clock as _, TokioClock};
    use kill::*;
    use std::sync::Arc;
    use tokio_util::sync::CancellationToken;
    if !bench::available(
        "an_agent_killed_while_registering_is_rolled_back_by_its_fail_safe_and_commissions_after_restart",
    ) {
        return;
    }
    let bench = Bench::start(3).await;
    // DPS keeps the registration `assigning` for 4 s: the kill lands mid-registration.
    let world = fieldlink_tests::world::World::start(world_config(fieldlink_dps_emulator::Knobs {
        retry_after_secs: 0,
        assignment_delay_ms: 4_000,
        ..Default::default()
    }))
    .await;
    let files = files(&world).await;
    let fail_safe = Duration::from_secs(6);
    let agent = AgentProcess::start(bench.dir(), &files, "hci1", fail_safe).await;

    let transport = installer().await;
    let (listener, _events, registering) = watch_for(Step::Registering, |event| {
        matches!(
            event.kind,
            ProgressKind::Started | ProgressKind::RegistrationStage { .. }
        )
    });
    let mut commissioner =
        commissioning::commissioner(&world, &transport, Arc::new(world.signer()));
    let mut config = world.commissioning_config();
    config.deadlines.scanning = Duration::from_secs(6);
    config.deadlines.registering = Duration::from_secs(8);
    commissioner = commissioner.with_config(config);
    let request = world.request(0, None);
    let running = tokio::spawn(async move {
        commissioner
            .commission(request, &listener, CancellationToken::new())
            .await
    });
    tokio::time::timeout(Duration::from_secs(20), registering)
        .await
        .expect("the ticket is accepted")
        .unwrap();

    agent.kill();
    let killed = std::time::Instant::now();
    // The device died with the ticket staged under its fail-safe.
    let staged = files.persisted().staged.expect("the ticket was staged");
    let error = tokio::time::timeout(Duration::from_secs(40), running)
        .await
        .expect("the installer gives up within its deadlines")
        .unwrap()
        .expect_err("the device is gone");
    let waited = elapsed_since(killed);
    eprintln!(
        "KILL while registering: {error} (code {}, after {waited:?})",
        error.code()
    );
    // BlueZoo never reports the remote disconnect and the installer writes nothing while the
    // device registers: the transport's liveness probe (a read of TX every second while the
    // device is silent, 3 s deadline) finds the link lost, the workflow's reconnects find no
    // device, and the installer reports `link_lost` with the step, well before its 8 s
    // `registering` deadline would have ended it as `timeout`.
    assert_eq!(error.code(), "link_lost", "{error}");
    assert_eq!(step_of(&error), Some(Step::Registering), "{error}");
    assert!(error.retryable(), "{error}");
    assert!(waited < Duration::from_secs(8), "{waited:?}");

    // Restart past the fail-safe: the boot rolls the staging back before anything else.
    let clock = TokioClock::new();
    while clock.now_ms() <= staged.fail_safe_deadline_ms {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    world
        .emulator
        .control()
        .set_knobs(
            fieldlink_tests::world::DPS_INSTANCE,
            fieldlink_dps_emulator::Knobs {
                retry_after_secs: 0,
                ..Default::default()
            },
        )
        .unwrap();
    let _restarted = AgentProcess::start(bench.dir(), &files, "hci1", fail_safe).await;
    let state = files.persisted();
    assert!(state.staged.is_none(), "a stale staging past the fail-safe");
    assert!(state.assignment.is_none(), "never committed");

    let report = commission_from(&world, "hci2").await;
    assert!(report.agreed);
    let state = files.persisted();
    assert!(state.staged.is_none());
    assert!(state.assignment.is_some_and(|a| a.is_valid()));
    world.shutdown().await;
}
