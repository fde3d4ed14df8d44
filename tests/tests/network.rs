//! Network step scenarios: Wi-Fi credentials ride with the ticket; typed join failures; a
//! corrected retry without a reboot; rollback to the previous network; a disconnect during the
//! join.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use fieldlink_core::{
    CommissionError,
    error::NetworkFailureKind,
    transport::memory::{Direction, Fault, FaultAction, FaultPoint, LinkModel},
    workflow::{CommissioningConfig, IgnoreProgress, NetworkCorrection},
};
use fieldlink_device_agent::{
    agent::DeviceAgent,
    network::{NetworkFault, SimulatedNetwork},
};
use fieldlink_protocol::message::{DeviceState, NetworkConfig};
use fieldlink_tests::world::{World, WorldConfig};
use tokio_util::sync::CancellationToken;

const SITE: &str = "site-wifi";
const PASS: &str = "correct horse battery";
/// A well-formed but wrong WPA2 passphrase (the device refuses malformed ones up front).
const WRONG: &str = "incorrect horse battery";

fn networks() -> Vec<SimulatedNetwork> {
    vec![
        SimulatedNetwork::wpa2(SITE, PASS),
        SimulatedNetwork::wpa2("no-dhcp", PASS).with_fault(NetworkFault::NoDhcp),
        SimulatedNetwork::wpa2("portal", PASS).with_fault(NetworkFault::CaptivePortal),
        SimulatedNetwork::wpa2("blocked", PASS).with_fault(NetworkFault::DpsUnreachable),
    ]
}

fn config(devices: usize) -> WorldConfig {
    WorldConfig {
        devices,
        networks: networks(),
        link: LinkModel {
            mtu: 185,
            connection_interval: Duration::from_millis(2),
            ..LinkModel::default()
        },
        ..WorldConfig::default()
    }
}

fn wifi(ssid: &str, passphrase: &str) -> Option<NetworkConfig> {
    Some(NetworkConfig::Wifi {
        ssid: ssid.into(),
        passphrase: passphrase.into(),
        hidden: false,
        bssid: None,
    })
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
async fn join_success_in_two_round_trips() {
    let world = World::start(config(1)).await;
    world.radio.reset_stats();
    let report = world
        .commission(0, wifi(SITE, PASS))
        .await
        .expect("commissioned");
    assert!(report.network_configured);
    assert_eq!(
        report.link.round_trips, 2,
        "the network rides with the ticket"
    );
    assert_eq!(world.radio.stats().round_trips, 2);
    let device = &world.devices[0];
    assert_eq!(device.networks.joined().as_deref(), Some(SITE));
    assert_eq!(
        state_becomes(&device.agent, DeviceState::Registered).await,
        Some(DeviceState::Registered)
    );
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_typed_join_failure_leaves_the_device_commissionable() {
    let cases = [
        (SITE, WRONG, NetworkFailureKind::WifiAuthFailed),
        ("nowhere", PASS, NetworkFailureKind::NetworkNotFound),
        ("no-dhcp", PASS, NetworkFailureKind::DhcpFailed),
        ("portal", PASS, NetworkFailureKind::NoInternet),
        ("blocked", PASS, NetworkFailureKind::DpsUnreachable),
    ];
    let world = World::start(config(cases.len())).await;
    for (index, (ssid, passphrase, kind)) in cases.into_iter().enumerate() {
        let error = world
            .commission(index, wifi(ssid, passphrase))
            .await
            .unwrap_err();
        assert_eq!(error, CommissionError::NetworkJoinFailed { kind }, "{ssid}");
        assert!(
            !error.to_string().contains(passphrase),
            "no secrets in messages"
        );
        let device = &world.devices[index];
        assert_eq!(
            state_becomes(&device.agent, DeviceState::Commissionable).await,
            Some(DeviceState::Commissionable),
            "{ssid}"
        );
        let stored = device.store.snapshot().unwrap();
        assert!(
            stored.staged.is_none() && stored.assignment.is_none(),
            "{ssid}"
        );
        assert_eq!(
            device.networks.joined(),
            None,
            "{ssid}: left off the failed network"
        );
    }
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_a_wrong_passphrase_without_reboot() {
    let world = World::start(config(1)).await;
    let error = world.commission(0, wifi(SITE, WRONG)).await.unwrap_err();
    assert_eq!(error.code(), "network_join_failed");
    assert!(!error.retryable(), "a wrong passphrase needs a person");
    // Same agent, no restart, no reset.
    let report = world
        .commission(0, wifi(SITE, PASS))
        .await
        .expect("corrected retry");
    assert!(report.network_configured);
    assert_eq!(world.devices[0].networks.joined().as_deref(), Some(SITE));
    world.shutdown().await;
}

struct Prompt(Mutex<Vec<NetworkFailureKind>>);

#[async_trait]
impl NetworkCorrection for Prompt {
    async fn corrected_network(
        &self,
        kind: NetworkFailureKind,
        _attempt: u32,
    ) -> Option<NetworkConfig> {
        self.0.lock().expect("prompt log").push(kind);
        wifi(SITE, PASS)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrected_passphrase_in_the_same_session_costs_one_round_trip() {
    let world = World::start(config(1)).await;
    let prompt = Arc::new(Prompt(Mutex::new(Vec::new())));
    let commissioner = world
        .commissioner()
        .with_config(CommissioningConfig {
            network_corrections: 2,
            ..world.commissioning_config()
        })
        .with_network_correction(prompt.clone());
    world.radio.reset_stats();
    let report = commissioner
        .commission(
            world.request(0, wifi(SITE, WRONG)),
            &IgnoreProgress,
            CancellationToken::new(),
        )
        .await
        .expect("corrected in the same session");
    assert_eq!(
        *prompt.0.lock().unwrap(),
        [NetworkFailureKind::WifiAuthFailed]
    );
    assert_eq!(report.link.round_trips, 3);
    assert_eq!(report.link.connections, 1);
    assert_eq!(world.devices[0].networks.joined().as_deref(), Some(SITE));
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_join_rolls_back_to_the_previous_network() {
    let world = World::start(WorldConfig {
        initial_network: Some((SITE.into(), PASS.into())),
        ..config(1)
    })
    .await;
    let device = &world.devices[0];
    let error = world
        .commission(0, wifi("no-dhcp", PASS))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        CommissionError::NetworkJoinFailed {
            kind: NetworkFailureKind::DhcpFailed
        }
    );
    assert_eq!(
        state_becomes(&device.agent, DeviceState::Commissionable).await,
        Some(DeviceState::Commissionable)
    );
    assert_eq!(
        device.networks.joined().as_deref(),
        Some(SITE),
        "back on the proven network"
    );
    let stored = device.store.snapshot().unwrap();
    assert!(
        matches!(&stored.network.current, Some(fieldlink_device_agent::store::StoredNetwork::Wifi { ssid, .. }) if ssid == SITE),
        "the proven config is kept"
    );
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_during_the_join_resumes() {
    let world = World::start(WorldConfig {
        network_stage_delay: Duration::from_millis(40),
        ..config(1)
    })
    .await;
    let device = &world.devices[0];
    // Device messages: 0 DeviceHello, 1 ProvisionAccepted, 2 the first join stage.
    world.radio.arm_fault(
        &device.peripheral,
        Fault {
            direction: Direction::ToCentral,
            at: FaultPoint::Message(2),
            action: FaultAction::Disconnect,
        },
    );
    let report = world
        .commission(0, wifi(SITE, PASS))
        .await
        .expect("resumed");
    assert_eq!(report.resumes, 1);
    assert!(report.network_configured);
    assert_eq!(device.networks.joined().as_deref(), Some(SITE));
    assert_eq!(
        state_becomes(&device.agent, DeviceState::Registered).await,
        Some(DeviceState::Registered)
    );
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_passphrase_is_refused_before_anything_is_staged() {
    let world = World::start(config(1)).await;
    let error = world.commission(0, wifi(SITE, "short")).await.unwrap_err();
    assert_eq!(
        error,
        CommissionError::NetworkJoinFailed {
            kind: NetworkFailureKind::WifiAuthFailed
        }
    );
    let device = &world.devices[0];
    assert_eq!(
        state_becomes(&device.agent, DeviceState::Commissionable).await,
        Some(DeviceState::Commissionable)
    );
    assert!(device.store.snapshot().unwrap().staged.is_none());
    assert_eq!(
        device.networks.join_attempts(),
        0,
        "refused before any join"
    );
    world
        .commission(0, wifi(SITE, PASS))
        .await
        .expect("then the right one works");
    world.shutdown().await;
}
