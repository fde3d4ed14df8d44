//! Commissioning scenarios: the real installer workflow against real device agents over the
//! in-memory radio, with the devices registering at the DPS emulator over loopback HTTPS.

use std::{sync::Arc, time::Duration};

use fieldlink_core::{
    CommissionError,
    error::TicketRejection,
    transport::memory::{Direction, Fault, FaultAction, FaultPoint, LinkModel},
    workflow::IgnoreProgress,
};
use fieldlink_device_agent::agent::DeviceAgent;
use fieldlink_protocol::{message::DeviceState, payload::PopSecret, session::SessionSecret};
use fieldlink_tests::{
    sources::{TamperedTickets, TicketsFor},
    world::{IOT_HUB, World, WorldConfig},
};
use tokio_util::sync::CancellationToken;

fn config(mtu: u16) -> WorldConfig {
    WorldConfig {
        link: LinkModel {
            mtu,
            connection_interval: Duration::from_millis(2),
            ..LinkModel::default()
        },
        ..WorldConfig::default()
    }
}

async fn state_becomes(agent: &DeviceAgent, expected: DeviceState) -> Option<DeviceState> {
    // The device reacts to the installer's last message or disconnect asynchronously. Its
    // status (the state machine's own state) is authoritative; the advertisement can lag.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let state = agent.status().await.map(|status| status.state);
        if state == Some(expected) || tokio::time::Instant::now() >= deadline {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_at_mtu_23_and_247() {
    for mtu in [23, 247] {
        let world = World::start(config(mtu)).await;
        world.radio.reset_stats();
        let report = world.commission(0, None).await.expect("commissioned");
        assert!(report.agreed);
        assert_eq!(report.mtu, mtu);
        assert_eq!(report.device.status, "assigned");
        assert_eq!(report.device.assigned_hub.as_deref(), Some(IOT_HUB));
        assert_eq!(report.service.assigned_hub.as_deref(), Some(IOT_HUB));
        assert_eq!(report.link.round_trips, 2);
        assert_eq!(world.radio.stats().round_trips, 2);
        let device = &world.devices[0];
        assert_eq!(
            state_becomes(&device.agent, DeviceState::Registered).await,
            Some(DeviceState::Registered)
        );
        let stored = device.store.snapshot().expect("state persisted");
        assert_eq!(stored.assignment.expect("committed").assigned_hub, IOT_HUB);
        assert!(stored.staged.is_none());
        let dps = world
            .emulator
            .control()
            .find_registration(&device.payload.registration_id);
        assert_eq!(
            dps.expect("registered at DPS").1.assigned_hub.as_deref(),
            Some(IOT_HUB)
        );
        world.shutdown().await;
    }
}

async fn commission_with_pop(
    world: &World,
    index: usize,
    pop: PopSecret,
) -> Result<(), CommissionError> {
    let mut request = world.request(index, None);
    request.secret = SessionSecret::Pop(pop);
    world
        .commissioner()
        .commission(request, &IgnoreProgress, CancellationToken::new())
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pop_then_lockout_after_repeated_wrong_pop() {
    let world = World::start(config(185)).await;
    let wrong = PopSecret::from_bytes([0x5a; 11]);
    for attempt in 1..=5 {
        let error = commission_with_pop(&world, 0, wrong.clone())
            .await
            .unwrap_err();
        assert_eq!(error, CommissionError::WrongPop { attempt, max: 5 });
        assert!(
            error
                .to_string()
                .contains(&format!("attempt {attempt} of 5")),
            "{error}"
        );
    }
    let error = commission_with_pop(&world, 0, wrong.clone())
        .await
        .unwrap_err();
    let CommissionError::DeviceLocked { retry_after } = error else {
        panic!("expected device_locked, got {error:?}");
    };
    assert!(retry_after > Duration::from_secs(200), "{retry_after:?}");
    // Locked even for the right PoP, and nothing was staged.
    let error = world.commission(0, None).await.unwrap_err();
    assert_eq!(error.code(), "device_locked");
    let stored = world.devices[0].store.snapshot().expect("persisted");
    assert!(stored.staged.is_none() && stored.assignment.is_none());
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_right_pop_after_a_wrong_one_resets_the_count() {
    let world = World::start(config(247)).await;
    let error = commission_with_pop(&world, 0, PopSecret::from_bytes([1; 11]))
        .await
        .unwrap_err();
    assert_eq!(error, CommissionError::WrongPop { attempt: 1, max: 5 });
    assert_eq!(
        state_becomes(&world.devices[0].agent, DeviceState::Commissionable).await,
        Some(DeviceState::Commissionable)
    );
    world
        .commission(0, None)
        .await
        .expect("the right PoP commissions");
    assert_eq!(
        world.devices[0]
            .store
            .snapshot()
            .unwrap()
            .pop_attempts
            .failures,
        0
    );
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_expired_and_foreign_tickets_are_rejected_and_leave_the_device_commissionable() {
    let world = World::start(WorldConfig {
        devices: 4,
        ..config(247)
    })
    .await;
    let signer: Arc<dyn fieldlink_core::assignment::AssignmentSource> = Arc::new(world.signer());
    let expired = Arc::new(world.signer_with_clock(Arc::new(|| 1_000_000_000)));
    let foreign = Arc::new(TicketsFor {
        inner: signer.clone(),
        registration_id: world.devices[3].payload.registration_id.clone(),
    });
    let cases: [(
        usize,
        Arc<dyn fieldlink_core::assignment::AssignmentSource>,
        TicketRejection,
    ); 3] = [
        (
            0,
            Arc::new(TamperedTickets(signer.clone())),
            TicketRejection::BadSignature,
        ),
        (1, expired, TicketRejection::Expired),
        (2, foreign, TicketRejection::WrongDevice),
    ];
    for (index, source, reason) in cases {
        let error = world
            .commissioner_with(source)
            .commission(
                world.request(index, None),
                &IgnoreProgress,
                CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(error, CommissionError::TicketRejected { reason });
        let device = &world.devices[index];
        assert_eq!(
            state_becomes(&device.agent, DeviceState::Commissionable).await,
            Some(DeviceState::Commissionable)
        );
        let stored = device.store.snapshot().unwrap();
        assert!(stored.staged.is_none() && stored.assignment.is_none());
    }
    // The devices still commission with a good ticket afterwards.
    world
        .commission(0, None)
        .await
        .expect("a good ticket works after a tampered one");
    world.shutdown().await;
}

/// Disconnects at every message in both directions, one device per fault. Each run must end
/// in success (a transparent resume) or a clear retryable `link_lost`, and the device must end
/// either registered with a committed assignment or commissionable with nothing staged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_at_every_step_resumes_or_fails_cleanly() {
    // Baseline: how many messages each way does one commissioning take?
    let baseline = World::start(config(247)).await;
    baseline.radio.reset_stats();
    baseline.commission(0, None).await.expect("baseline");
    let stats = baseline.radio.stats();
    baseline.shutdown().await;
    let mut faults = Vec::new();
    for index in 0..stats.messages_to_peripheral {
        faults.push((Direction::ToPeripheral, index));
    }
    for index in 0..stats.messages_to_central {
        faults.push((Direction::ToCentral, index));
    }
    assert!(faults.len() >= 6, "{stats:?}");

    let world = World::start(WorldConfig {
        devices: faults.len(),
        ..config(247)
    })
    .await;
    let mut resumed = 0;
    for (device_index, (direction, message)) in faults.iter().copied().enumerate() {
        let device = &world.devices[device_index];
        let fault = Fault {
            direction,
            at: FaultPoint::Message(message),
            action: FaultAction::Disconnect,
        };
        assert!(world.radio.arm_fault(&device.peripheral, fault));
        let outcome = world.commission(device_index, None).await;
        let expected = match outcome {
            Ok(_) => DeviceState::Registered,
            Err(_) => DeviceState::Commissionable,
        };
        let state = state_becomes(&device.agent, expected).await;
        let stored = device.store.snapshot().expect("persisted");
        match outcome {
            Ok(report) => {
                assert!(report.agreed);
                assert!(
                    report.resumes >= 1,
                    "{direction:?} {message}: the fault fired"
                );
                assert_eq!(report.link.connections, 2);
                resumed += 1;
                assert_eq!(
                    state,
                    Some(DeviceState::Registered),
                    "{direction:?} {message}"
                );
                assert!(stored.assignment.is_some() && stored.staged.is_none());
            }
            Err(error) => {
                assert_eq!(
                    error.code(),
                    "link_lost",
                    "{direction:?} {message}: {error}"
                );
                assert!(error.retryable());
                assert_eq!(
                    state,
                    Some(DeviceState::Commissionable),
                    "{direction:?} {message}"
                );
                assert!(stored.staged.is_none() && stored.assignment.is_none());
                // Not stuck: a plain retry commissions it.
                world
                    .commission(device_index, None)
                    .await
                    .expect("retry after link_lost");
            }
        }
    }
    // Losses once the ticket is on its way are always resumed.
    assert!(
        resumed >= faults.len() - 3,
        "resumed {resumed} of {}",
        faults.len()
    );
    world.shutdown().await;
}

/// The device's own fail-safe: the installer vanishes after the ticket was accepted and DPS is
/// unreachable; the device rolls the staged ticket back and is commissionable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_safe_rolls_a_stranded_ticket_back() {
    let world = World::start(WorldConfig {
        fail_safe_window: Duration::from_secs(2),
        ..config(247)
    })
    .await;
    // A DPS that accepts connections and never answers: only the fail-safe ends the wait.
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut target = world.target.clone();
    target.global_endpoint = format!("https://{}", black_hole.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = black_hole.accept().await {
            held.push(socket);
        }
    });
    let dead_dps = Arc::new(fieldlink_core::assignment::LocalAssignmentSigner::new(
        fieldlink_protocol::ticket::TicketSigner::new(
            fieldlink_tests::world::KEY_ID,
            world.signing_key(),
        ),
        target,
    ));
    let device = &world.devices[0];
    // Drop the link right after ProvisionAccepted and keep the device out of range.
    world.radio.arm_fault(
        &device.peripheral,
        Fault {
            direction: Direction::ToCentral,
            at: FaultPoint::Message(2),
            action: FaultAction::Disconnect,
        },
    );
    let radio = world.radio.clone();
    let peripheral = device.peripheral.clone();
    let mut watch = device.agent.watch_advertisement();
    tokio::spawn(async move {
        let _ = watch
            .wait_for(|adv| {
                adv.state() == Some(DeviceState::TicketStaged)
                    || adv.state() == Some(DeviceState::Registering)
            })
            .await;
        radio.set_in_range(&peripheral, false);
    });
    let error = world
        .commissioner_with(dead_dps)
        .commission(
            world.request(0, None),
            &IgnoreProgress,
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), "link_lost", "{error}");
    assert!(
        device.store.snapshot().unwrap().staged.is_some(),
        "staged while the fail-safe runs"
    );
    let started = std::time::Instant::now();
    let state = device
        .agent
        .wait_for_state(Duration::from_secs(10), |state| {
            !matches!(state, DeviceState::TicketStaged | DeviceState::Registering)
        })
        .await;
    let waited = started.elapsed();
    // Rolled back: a failed device (DPS never answered) takes a new commissioning like a fresh
    // one.
    assert!(
        matches!(
            state,
            Some(DeviceState::Commissionable | DeviceState::Failed)
        ),
        "{state:?}"
    );
    assert!(
        waited < Duration::from_secs(4),
        "rolled back by the 2 s fail-safe, not later: {waited:?}"
    );
    let stored = device.store.snapshot().unwrap();
    assert!(stored.staged.is_none() && stored.assignment.is_none());
    // Back in range, it commissions normally.
    world.radio.set_in_range(&device.peripheral, true);
    world
        .commission(0, None)
        .await
        .expect("commissionable again");
    world.shutdown().await;
}

/// With the typed manual code the installer knows neither the registration ID nor the whole
/// discriminator: it matches the top 4 bits, keys the PAKE with the passcode, learns the ID in
/// the handshake and only then fetches the ticket (still 2 round trips).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manual_code_commissions_too() {
    let world = World::start(config(185)).await;
    let payload = &world.devices[0].payload;
    let manual = payload.manual_code();
    let request = fieldlink_core::workflow::CommissionRequest {
        registration_id: None,
        discriminator: fieldlink_core::workflow::DiscriminatorMatch::Short(manual.discriminator4),
        secret: SessionSecret::ManualPasscode(manual.passcode),
        network: None,
    };
    world.radio.reset_stats();
    let report = world
        .commissioner()
        .commission(request, &IgnoreProgress, CancellationToken::new())
        .await
        .expect("commissioned with the manual code");
    assert_eq!(report.registration_id, payload.registration_id);
    assert_eq!(report.link.round_trips, 2);
    assert_eq!(world.radio.stats().round_trips, 2);
    world.shutdown().await;
}

/// Cancelling while the device registers sends `Cancel` on the open session: the device rolls
/// the staged ticket back at once instead of waiting for its fail-safe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_during_registration_rolls_the_device_back_at_once() {
    let world = World::start(WorldConfig {
        dps_knobs: fieldlink_dps_emulator::Knobs {
            assignment_delay_ms: 3_000,
            retry_after_secs: 1,
            ..fieldlink_dps_emulator::Knobs::default()
        },
        fail_safe_window: Duration::from_secs(60),
        ..config(247)
    })
    .await;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let on_progress = move |event: fieldlink_core::workflow::ProgressEvent| {
        if event.step == fieldlink_core::Step::Registering
            && event.kind == fieldlink_core::workflow::ProgressKind::Started
        {
            trigger.cancel();
        }
    };
    let error = world
        .commissioner()
        .commission(world.request(0, None), &on_progress, cancel)
        .await
        .unwrap_err();
    assert_eq!(error, CommissionError::Cancelled);
    assert_eq!(world.radio.stats().round_trips, 3, "hello, finish, cancel");
    let device = &world.devices[0];
    let started = std::time::Instant::now();
    assert_eq!(
        state_becomes(&device.agent, DeviceState::Commissionable).await,
        Some(DeviceState::Commissionable)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "well before the 60 s fail-safe"
    );
    assert!(device.store.snapshot().unwrap().staged.is_none());
    world.shutdown().await;
}
