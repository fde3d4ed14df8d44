//! Commissioning scenarios: the real installer workflow against real device agents over the
//! in-memory radio, with the devices registering at the DPS emulator over loopback HTTPS.

use std::{sync::Arc, time::Duration};

use fieldlink_core::{
    CommissionError, Step,
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

async fn settled_state(agent: &DeviceAgent) -> Option<DeviceState> {
    // Let the device finish reacting to the last disconnect before reading its state.
    tokio::time::sleep(Duration::from_millis(100)).await;
    agent.state()
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
            settled_state(&device.agent).await,
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
        settled_state(&world.devices[0].agent).await,
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
            settled_state(&device.agent).await,
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
