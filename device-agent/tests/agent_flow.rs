//! The whole device agent over the link contract, registering with the real DPS emulator:
//! commissioning at MTU 23 and 247, registration surviving a dropped link, no DPS call after a
//! reboot of a registered device, lockout across restarts, the fail-safe (with a hand-moved
//! clock), a wrong Wi-Fi passphrase corrected in the same session, resume after a power cut.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{HandshakeFailure, Installer, anchors, request_count, ticket_at};
use fieldlink_device_agent::agent::AgentConfig;
use fieldlink_device_agent::clock::{ManualClock, SharedClock, TokioClock};
use fieldlink_device_agent::dps::DpsClientConfig;
use fieldlink_device_agent::fleet::{
    FleetConfig, FleetCredential, FleetNetworks, VirtualDevice, VirtualFleet,
};
use fieldlink_device_agent::machine::{LockoutPolicy, MachineConfig};
use fieldlink_device_agent::network::SimulatedNetwork;
use fieldlink_device_agent::store::StoredNetwork;
use fieldlink_dps_emulator::{
    DpsEmulator, EmulatorConfig, EnrollmentGroup, InstanceConfig, RunningEmulator,
};
use fieldlink_protocol::message::{
    DeviceState, ErrorCode, Event, JoinStage, NetworkConfig, NetworkResult, RegistrationStage,
    Request, Response,
};
use fieldlink_protocol::secret::Secret;
use fieldlink_protocol::session::{SessionError, SessionSecret};

const GROUP_KEY: &str = "YWdlbnQtZmxvdy1ncm91cC1rZXktMDAwMDAwMDAwMDA=";
const LONG: Duration = Duration::from_secs(30);

struct Site {
    emulator: RunningEmulator,
    scope: String,
}

async fn site(assignment_delay_ms: u64) -> Site {
    let mut instance = InstanceConfig::new("dps-a", &["hub-a.azure-devices.net"]);
    instance.knobs.retry_after_secs = 1;
    instance.knobs.assignment_delay_ms = assignment_delay_ms;
    let emulator = DpsEmulator::start(EmulatorConfig::with_instances(vec![instance]).with_tls())
        .await
        .unwrap();
    emulator
        .control()
        .put_enrollment_group(
            "dps-a",
            EnrollmentGroup::symmetric_key("fleet", GROUP_KEY, GROUP_KEY),
        )
        .unwrap();
    let scope = emulator
        .control()
        .instance("dps-a")
        .unwrap()
        .id_scope
        .clone();
    Site { emulator, scope }
}

fn fleet_config(site: &Site, clock: SharedClock) -> FleetConfig {
    let mut config = FleetConfig::new(
        FleetCredential::GroupEnrollment {
            group_key: GROUP_KEY.into(),
            derive_at_factory: false,
        },
        anchors(),
    );
    config.clock = clock;
    config.seed = Some(11);
    config.agent = AgentConfig {
        dps: DpsClientConfig {
            extra_ca_pem: Some(site.emulator.ca_pem().unwrap().as_bytes().to_vec()),
            ..DpsClientConfig::default()
        },
        machine: MachineConfig {
            lockout: LockoutPolicy {
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(50),
                ..LockoutPolicy::default()
            },
            ..MachineConfig::default()
        },
        ..AgentConfig::default()
    };
    config
}

fn ticket_for(device: &VirtualDevice, site: &Site, nonce: u8, now_unix: i64) -> Request {
    Request::Provision {
        ticket: ticket_at(
            device.registration_id(),
            &site.scope,
            &site.emulator.global_endpoint(),
            nonce,
            now_unix,
        ),
        network: None,
    }
}

fn is_result(event: &Event) -> bool {
    matches!(event, Event::RegistrationResult(_))
}

async fn commission_at_mtu(mtu: u16) {
    let site = site(300).await;
    let fleet = VirtualFleet::new(2, fleet_config(&site, Arc::new(TokioClock::new()))).unwrap();
    let device = &fleet.devices()[1];
    assert_eq!(device.state(), Some(DeviceState::Commissionable));
    let mut installer = Installer::connect(device, mtu);
    let info = installer
        .open(
            &device.payload().pop,
            ticket_for(device, &site, 1, common::now_unix()),
        )
        .await;
    assert_eq!(info.registration_id, device.registration_id());
    assert_eq!(info.state, DeviceState::Commissionable);
    assert_eq!(
        installer.response().await,
        Response::ProvisionAccepted {
            state: DeviceState::TicketStaged
        }
    );
    let events = installer.events_until(is_result).await;
    let stages: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Registration(p) => Some(p.stage),
            _ => None,
        })
        .collect();
    assert_eq!(stages[0], RegistrationStage::StatusLookup);
    assert!(stages.contains(&RegistrationStage::Registering));
    assert!(stages.contains(&RegistrationStage::Assigning));
    assert_eq!(stages.last(), Some(&RegistrationStage::Committing));
    let Some(Event::RegistrationResult(result)) = events.last() else {
        panic!("{events:?}")
    };
    assert!(result.is_assigned());
    assert_eq!(
        result.assigned_hub.as_deref(),
        Some("hub-a.azure-devices.net")
    );
    assert_eq!(result.device_id.as_deref(), Some(device.registration_id()));
    // The API's view (the emulator's registration state) agrees.
    let dps_view = site
        .emulator
        .control()
        .registration_state("dps-a", device.registration_id())
        .unwrap();
    assert_eq!(
        dps_view.assigned_hub.as_deref(),
        result.assigned_hub.as_deref()
    );
    assert_eq!(
        device
            .wait_for_state(LONG, |s| s == DeviceState::Registered)
            .await,
        Some(DeviceState::Registered)
    );
    assert!(installer.max_frame_received <= usize::from(mtu) - 3);
    let persisted = device.persisted().unwrap();
    assert!(persisted.staged.is_none());
    assert_eq!(
        persisted.assignment.unwrap().assigned_hub,
        "hub-a.azure-devices.net"
    );
    // The other device is untouched.
    assert_eq!(
        fleet.devices()[0].state(),
        Some(DeviceState::Commissionable)
    );
    site.emulator.shutdown().await;
}

#[tokio::test]
async fn commissions_at_mtu_23() {
    commission_at_mtu(23).await;
}

#[tokio::test]
async fn commissions_at_mtu_247() {
    commission_at_mtu(247).await;
}

#[tokio::test]
async fn registration_survives_a_dropped_link_and_a_registered_device_never_calls_dps_again() {
    let site = site(1_500).await;
    let fleet = VirtualFleet::new(1, fleet_config(&site, Arc::new(TokioClock::new()))).unwrap();
    let device = &fleet.devices()[0];
    let mut installer = Installer::connect(device, 185);
    installer
        .open(
            &device.payload().pop,
            ticket_for(device, &site, 2, common::now_unix()),
        )
        .await;
    assert!(matches!(
        installer.response().await,
        Response::ProvisionAccepted { .. }
    ));
    installer.disconnect();
    assert_eq!(
        device
            .wait_for_state(LONG, |s| s == DeviceState::Registered)
            .await,
        Some(DeviceState::Registered)
    );
    // A reconnecting installer learns the state in DeviceInfo and asks for the status.
    let mut installer = Installer::connect(device, 185);
    let info = installer
        .open(&device.payload().pop, Request::GetStatus)
        .await;
    assert_eq!(info.state, DeviceState::Registered);
    assert_eq!(
        info.assignment.as_ref().unwrap().assigned_hub.as_deref(),
        Some("hub-a.azure-devices.net")
    );
    match installer.response().await {
        Response::Status(status) => assert!(status.registration.unwrap().is_assigned()),
        other => panic!("{other:?}"),
    }
    let before = site.emulator.control().metrics_text();
    device.restart().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(device.state(), Some(DeviceState::Registered));
    let after = site.emulator.control().metrics_text();
    for operation in ["status_lookup", "register", "operation_status"] {
        assert_eq!(
            request_count(&before, operation),
            request_count(&after, operation),
            "{operation} after reboot"
        );
    }
    assert_eq!(request_count(&after, "register"), 1);
    site.emulator.shutdown().await;
}

#[tokio::test]
async fn wrong_pop_lockout_survives_a_restart() {
    let site = site(0).await;
    let fleet = VirtualFleet::new(1, fleet_config(&site, Arc::new(TokioClock::new()))).unwrap();
    let device = &fleet.devices()[0];
    let wrong = fieldlink_protocol::payload::PopSecret::from_bytes([0xee; 11]);
    for attempt in 1..=5u8 {
        let mut installer = Installer::connect(device, 23);
        match installer
            .handshake(SessionSecret::Pop(wrong.clone()), Request::GetStatus)
            .await
        {
            Err(HandshakeFailure::Session(SessionError::WrongSecret { attempts_left })) => {
                assert_eq!(attempts_left, 5 - attempt);
            }
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
    assert_eq!(
        device
            .wait_for_state(LONG, |s| s == DeviceState::Locked)
            .await,
        Some(DeviceState::Locked)
    );
    device.restart().await.unwrap();
    assert_eq!(device.state(), Some(DeviceState::Locked));
    let mut installer = Installer::connect(device, 23);
    match installer
        .handshake(
            SessionSecret::Pop(device.payload().pop.clone()),
            Request::GetStatus,
        )
        .await
    {
        Err(HandshakeFailure::Refused(refused)) => {
            assert_eq!(refused.code, ErrorCode::DeviceLocked);
            assert!(refused.retry_after_s.unwrap() > 250);
        }
        other => panic!("{other:?}"),
    }
    site.emulator.shutdown().await;
}

#[tokio::test]
async fn the_fail_safe_rolls_back_when_dps_never_assigns() {
    // DPS keeps the device "assigning" far beyond the 120 s window; time moves by hand.
    let site = site(3_600_000).await;
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let clock = ManualClock::new(start_ms);
    let fleet = VirtualFleet::new(1, fleet_config(&site, Arc::new(clock.clone()))).unwrap();
    let device = &fleet.devices()[0];
    let mut installer = Installer::connect(device, 247);
    installer
        .open(
            &device.payload().pop,
            ticket_for(device, &site, 3, (start_ms / 1000) as i64),
        )
        .await;
    assert!(matches!(
        installer.response().await,
        Response::ProvisionAccepted { .. }
    ));
    let events = installer
        .events_until(
            |e| matches!(e, Event::Registration(p) if p.stage == RegistrationStage::Assigning),
        )
        .await;
    assert!(!events.is_empty());
    assert_eq!(device.state(), Some(DeviceState::Registering));
    assert!(device.persisted().unwrap().staged.is_some());
    // Polls wait on the hand-moved clock; jump past the window.
    clock.advance(Duration::from_secs(121));
    let events = installer.events_until(is_result).await;
    let Some(Event::RegistrationResult(result)) = events.last() else {
        panic!("{events:?}")
    };
    assert!(!result.is_assigned());
    assert!(result.error_message.as_ref().unwrap().contains("fail-safe"));
    assert_eq!(
        device
            .wait_for_state(LONG, |s| s == DeviceState::Failed)
            .await,
        Some(DeviceState::Failed)
    );
    let persisted = device.persisted().unwrap();
    assert!(persisted.staged.is_none());
    assert!(persisted.assignment.is_none());
    // Commissionable again in the same session.
    let response = installer
        .request(ticket_for(device, &site, 4, (start_ms / 1000) as i64 + 121))
        .await;
    assert!(matches!(response, Response::ProvisionAccepted { .. }));
    site.emulator.shutdown().await;
}

#[tokio::test]
async fn a_power_cut_mid_registration_resumes_and_an_expired_staging_rolls_back_at_boot() {
    let site = site(3_600_000).await;
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let clock = ManualClock::new(start_ms);
    let fleet = VirtualFleet::new(1, fleet_config(&site, Arc::new(clock.clone()))).unwrap();
    let device = &fleet.devices()[0];
    let mut installer = Installer::connect(device, 247);
    installer
        .open(
            &device.payload().pop,
            ticket_for(device, &site, 5, (start_ms / 1000) as i64),
        )
        .await;
    installer.response().await;
    assert_eq!(
        device
            .wait_for_state(LONG, |s| s == DeviceState::Registering)
            .await,
        Some(DeviceState::Registering)
    );
    // Power cut within the window: registration resumes (status lookup first).
    clock.advance(Duration::from_secs(30));
    device.restart().await.unwrap();
    assert_eq!(device.state(), Some(DeviceState::Registering));
    // Off past the window: the staging is rolled back at boot, never left half-done.
    clock.advance(Duration::from_secs(200));
    device.restart().await.unwrap();
    assert_eq!(device.state(), Some(DeviceState::Failed));
    assert!(device.persisted().unwrap().staged.is_none());
    site.emulator.shutdown().await;
}

#[tokio::test]
async fn a_wrong_passphrase_is_corrected_in_the_same_session_and_the_old_network_kept() {
    let site = site(0).await;
    let mut config = fleet_config(&site, Arc::new(TokioClock::new()));
    config.networks = Some(FleetNetworks {
        access_points: vec![
            SimulatedNetwork::wpa2("site-wifi", "correct horse battery"),
            SimulatedNetwork::wpa2("hotel", "whatever1")
                .with_fault(fieldlink_device_agent::network::NetworkFault::CaptivePortal),
        ],
        stage_delay: Duration::from_millis(5),
    });
    let fleet = VirtualFleet::new(1, config).unwrap();
    let device = &fleet.devices()[0];
    let mut installer = Installer::connect(device, 185);
    let info = installer
        .open(
            &device.payload().pop,
            Request::Provision {
                ticket: ticket_at(
                    device.registration_id(),
                    &site.scope,
                    &site.emulator.global_endpoint(),
                    6,
                    common::now_unix(),
                ),
                network: Some(NetworkConfig::Wifi {
                    ssid: "site-wifi".into(),
                    passphrase: Secret::new("wrong passphrase"),
                    hidden: false,
                    bssid: None,
                }),
            },
        )
        .await;
    assert!(info.network.wifi);
    let scanned: Vec<_> = info
        .wifi_networks
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.ssid)
        .collect();
    assert!(scanned.contains(&"site-wifi".to_owned()), "{scanned:?}");
    installer.response().await;
    let events = installer
        .events_until(|e| matches!(e, Event::NetworkResult(_)))
        .await;
    match events.last() {
        Some(Event::NetworkResult(NetworkResult::Failed { kind, .. })) => {
            assert_eq!(kind.as_str(), "wifi_auth_failed")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(device.state(), Some(DeviceState::TicketStaged));
    // A captive portal next: typed, and still recoverable.
    let response = installer
        .request(Request::ConfigureNetwork {
            network: NetworkConfig::Wifi {
                ssid: "hotel".into(),
                passphrase: Secret::new("whatever1"),
                hidden: false,
                bssid: None,
            },
        })
        .await;
    assert!(matches!(response, Response::NetworkAccepted { .. }));
    let events = installer
        .events_until(|e| matches!(e, Event::NetworkResult(_)))
        .await;
    assert!(matches!(
        events.last(),
        Some(Event::NetworkResult(NetworkResult::Failed { kind, .. })) if kind.as_str() == "no_internet"
    ));
    // The right passphrase, same session, no reset.
    let response = installer
        .request(Request::ConfigureNetwork {
            network: NetworkConfig::Wifi {
                ssid: "site-wifi".into(),
                passphrase: Secret::new("correct horse battery"),
                hidden: false,
                bssid: None,
            },
        })
        .await;
    assert!(matches!(response, Response::NetworkAccepted { .. }));
    let events = installer.events_until(is_result).await;
    let stages: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Network(p) => Some(p.stage),
            _ => None,
        })
        .collect();
    assert_eq!(
        stages,
        [
            JoinStage::Associating,
            JoinStage::Authenticated,
            JoinStage::GotIp,
            JoinStage::InternetReachable,
            JoinStage::DpsReachable
        ]
    );
    assert!(matches!(events.last(), Some(Event::RegistrationResult(r)) if r.is_assigned()));
    let persisted = device.persisted().unwrap();
    assert!(matches!(
        persisted.network.current,
        Some(StoredNetwork::Wifi { ref ssid, .. }) if ssid == "site-wifi"
    ));
    assert_eq!(device.networks().joined().as_deref(), Some("site-wifi"));
    site.emulator.shutdown().await;
}

#[tokio::test]
async fn a_second_installer_is_busy_while_a_session_is_open_and_takes_over_an_idle_link() {
    let site = site(0).await;
    let fleet = VirtualFleet::new(1, fleet_config(&site, Arc::new(TokioClock::new()))).unwrap();
    let device = &fleet.devices()[0];
    let mut first = Installer::connect(device, 185);
    first.open(&device.payload().pop, Request::GetStatus).await;
    assert!(matches!(first.response().await, Response::Status(_)));
    let mut second = Installer::connect(device, 185);
    match second
        .handshake(
            SessionSecret::Pop(device.payload().pop.clone()),
            Request::GetStatus,
        )
        .await
    {
        Err(HandshakeFailure::Refused(refused)) => assert_eq!(refused.code, ErrorCode::Busy),
        other => panic!("{other:?}"),
    }
    // The first session is unaffected.
    assert!(matches!(
        first.request(Request::GetStatus).await,
        Response::Status(_)
    ));
    // Once the first installer is gone, a new one gets in.
    first.disconnect();
    drop(first);
    let mut third = Installer::connect(device, 185);
    third.open(&device.payload().pop, Request::GetStatus).await;
    assert!(matches!(third.response().await, Response::Status(_)));
    site.emulator.shutdown().await;
}

#[tokio::test]
async fn a_failed_join_keeps_the_device_on_its_previous_network() {
    use fieldlink_device_agent::network::SimulatedNetworks;
    use fieldlink_device_agent::secret::{SecretBytes, SecretString};
    use fieldlink_device_agent::store::{DeviceIdentity, DpsCredential, PersistedState};

    let site = site(0).await;
    let clock: SharedClock = Arc::new(TokioClock::new());
    let networks = SimulatedNetworks::new(
        vec![
            SimulatedNetwork::wpa2("old-ap", "old passphrase"),
            SimulatedNetwork::wpa2("new-ap", "new passphrase")
                .with_fault(fieldlink_device_agent::network::NetworkFault::NoDhcp),
        ],
        Duration::from_millis(2),
        clock.clone(),
    );
    let mut factory = PersistedState::new(
        DeviceIdentity {
            registration_id: "gateway-with-wifi".into(),
            pop: SecretBytes::new(vec![9; 11]),
            discriminator: 0x0ab,
            product_code: 3,
            dps_credential: DpsCredential::GroupKey {
                group_key: GROUP_KEY.into(),
            },
        },
        anchors(),
    );
    let old = StoredNetwork::Wifi {
        ssid: "old-ap".into(),
        passphrase: SecretString::new("old passphrase"),
        hidden: false,
        bssid: None,
    };
    factory.network.current = Some(old.clone());
    let config = fleet_config(&site, clock.clone()).agent;
    let device = VirtualDevice::start(factory, None, networks, config, clock).unwrap();
    // At boot the proven network is brought up.
    tokio::time::timeout(LONG, async {
        while device.networks().joined().as_deref() != Some("old-ap") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let mut installer = Installer::connect(&device, 185);
    installer
        .open(
            &device.payload().pop,
            Request::Provision {
                ticket: ticket_at(
                    device.registration_id(),
                    &site.scope,
                    &site.emulator.global_endpoint(),
                    9,
                    common::now_unix(),
                ),
                network: Some(NetworkConfig::Wifi {
                    ssid: "new-ap".into(),
                    passphrase: Secret::new("new passphrase"),
                    hidden: false,
                    bssid: None,
                }),
            },
        )
        .await;
    installer.response().await;
    let events = installer
        .events_until(|e| matches!(e, Event::NetworkResult(_)))
        .await;
    assert!(matches!(
        events.last(),
        Some(Event::NetworkResult(NetworkResult::Failed { kind, .. })) if kind.as_str() == "dhcp_failed"
    ));
    tokio::time::timeout(LONG, async {
        while device.networks().joined().as_deref() != Some("old-ap") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("rolled back to the previous network");
    let persisted = device.persisted().unwrap();
    assert_eq!(persisted.network.current, Some(old));
    // Keeping the current network now works without a reset.
    let response = installer
        .request(Request::ConfigureNetwork {
            network: NetworkConfig::KeepCurrent,
        })
        .await;
    assert!(matches!(response, Response::NetworkAccepted { .. }));
    let events = installer.events_until(is_result).await;
    assert!(matches!(events.last(), Some(Event::RegistrationResult(r)) if r.is_assigned()));
    assert_eq!(device.networks().joined().as_deref(), Some("old-ap"));
    site.emulator.shutdown().await;
}

/// Cancel, then hang up before the answer goes out: the device finds the link dead while
/// answering, and the advertisement must show the state `status()` reports (not the stale
/// `session_open` queued before the disconnect was noticed).
#[tokio::test]
async fn the_advertisement_agrees_with_status_after_cancel_and_hang_up() {
    let site = site(3_600_000).await;
    let fleet = VirtualFleet::new(1, fleet_config(&site, Arc::new(TokioClock::new()))).unwrap();
    let device = &fleet.devices()[0];
    let mut installer = Installer::connect(device, 247);
    installer
        .open(
            &device.payload().pop,
            ticket_for(device, &site, 30, common::now_unix()),
        )
        .await;
    assert!(matches!(
        installer.response().await,
        Response::ProvisionAccepted { .. }
    ));
    assert!(
        device
            .wait_for_state(LONG, |s| s == DeviceState::Registering)
            .await
            .is_some()
    );
    installer.request_and_hang_up(Request::Cancel).await;
    // The frame reaches the agent through its connection pump; ask until it was handled.
    let status = tokio::time::timeout(LONG, async {
        loop {
            let status = device.status().await.unwrap();
            if status.state != DeviceState::Registering {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(status.state, DeviceState::Commissionable);
    assert!(device.persisted().unwrap().staged.is_none());
    // The fleet copies the agent's advertisement asynchronously: give it a moment, no more.
    assert_eq!(
        device
            .wait_for_state(Duration::from_secs(2), |s| s == status.state)
            .await,
        Some(status.state),
        "advertised {:?} while status() says {:?}",
        device.state(),
        status.state
    );
    // And it stays there.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(device.state(), Some(status.state));
    assert_eq!(device.status().await.unwrap().state, status.state);
    site.emulator.shutdown().await;
}

/// The real DPS emulator refuses a device whose group key is wrong (401) and one whose ticket
/// names an ID scope it does not know (404): the installer gets each as a typed code in
/// `DpsResult.failure`, not only as text.
#[tokio::test]
async fn dps_refusals_reach_the_installer_as_typed_codes() {
    let site = site(300).await;
    let mut config = fleet_config(&site, Arc::new(TokioClock::new()));
    config.credential = FleetCredential::GroupEnrollment {
        group_key: "d3JvbmctZ3JvdXAta2V5LTAwMDAwMDAwMDAwMDAwMDA=".into(),
        derive_at_factory: false,
    };
    let fleet = VirtualFleet::new(1, config).unwrap();
    let device = &fleet.devices()[0];
    let mut installer = Installer::connect(device, 247);
    installer
        .open(
            &device.payload().pop,
            ticket_for(device, &site, 50, common::now_unix()),
        )
        .await;
    assert!(matches!(
        installer.response().await,
        Response::ProvisionAccepted { .. }
    ));
    let events = installer.events_until(is_result).await;
    let Some(Event::RegistrationResult(result)) = events.last() else {
        panic!("{events:?}")
    };
    assert!(!result.is_assigned());
    assert_eq!(
        result.failure,
        Some(ErrorCode::DpsUnauthorized),
        "{result:?}"
    );

    // Same device, a ticket for an ID scope the emulator does not serve.
    let unknown_scope = common::ticket_at(
        device.registration_id(),
        "0ne00NOPE00",
        &site.emulator.global_endpoint(),
        52,
        common::now_unix(),
    );
    let response = installer
        .request(Request::Provision {
            ticket: unknown_scope,
            network: None,
        })
        .await;
    assert!(matches!(response, Response::ProvisionAccepted { .. }));
    let events = installer.events_until(is_result).await;
    let Some(Event::RegistrationResult(result)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(result.failure, Some(ErrorCode::DpsNotFound), "{result:?}");
    site.emulator.shutdown().await;
}
