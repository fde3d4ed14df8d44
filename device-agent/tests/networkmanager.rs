//! `NetworkManagerConfigurator` against python-dbusmock's NetworkManager template (with
//! fieldlink's simulated radio, `tests/nm-mock/fieldlink_nm.py`) on a private `dbus-daemon`.
//! Without the tools the tests fail in CI and are skipped loudly elsewhere; install them with
//! `device-agent/tests/nm-mock/install.sh`.
#![cfg(all(target_os = "linux", feature = "networkmanager"))]
#![allow(clippy::unwrap_used)]

#[path = "nm-mock/harness.rs"]
mod harness;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fieldlink_device_agent::clock::{Clock as _, SharedClock, TokioClock};
use fieldlink_device_agent::network::networkmanager::{
    NetworkManagerConfig, NetworkManagerConfigurator, TcpProbe,
};
use fieldlink_device_agent::network::{
    Capabilities, JoinFailure, JoinStage, NetworkConfigurator, WifiSecurity,
};
use fieldlink_device_agent::secret::SecretString;
use fieldlink_device_agent::store::StoredNetwork;
use harness::NmMock;
use tokio::net::TcpListener;

const ALL_STAGES: [JoinStage; 5] = [
    JoinStage::Associating,
    JoinStage::Authenticated,
    JoinStage::GotIp,
    JoinStage::InternetReachable,
    JoinStage::DpsReachable,
];

fn wifi(ssid: &str, passphrase: &str) -> StoredNetwork {
    StoredNetwork::Wifi {
        ssid: ssid.into(),
        passphrase: SecretString::new(passphrase),
        hidden: false,
        bssid: None,
    }
}

fn clock() -> SharedClock {
    Arc::new(TokioClock::new())
}

async fn configurator(mock: &NmMock, config: NetworkManagerConfig) -> NetworkManagerConfigurator {
    NetworkManagerConfigurator::connect(config, Arc::new(TcpProbe), clock())
        .await
        .unwrap_or_else(|error| panic!("{error}\n{}", mock.log()))
}

/// A DPS stand-in: a real listener on loopback.
async fn dps() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    (listener, host)
}

async fn join(
    net: &NetworkManagerConfigurator,
    config: &StoredNetwork,
    dps_host: &str,
    within: Duration,
) -> (Result<(), JoinFailure>, Vec<JoinStage>) {
    let deadline = TokioClock::new().now_ms() + u64::try_from(within.as_millis()).unwrap();
    let mut stages = Vec::new();
    let result = net
        .join(config, dps_host, deadline, &mut |stage| stages.push(stage))
        .await;
    (result, stages)
}

fn fieldlink_profiles(profiles: &[(String, String)]) -> Vec<&str> {
    profiles
        .iter()
        .filter(|(_, id)| id.starts_with("fieldlink:"))
        .map(|(_, id)| id.as_str())
        .collect()
}

#[tokio::test]
async fn capabilities_follow_the_devices_and_connectivity() {
    if !harness::available("capabilities_follow_the_devices_and_connectivity") {
        return;
    }
    let mock = NmMock::start().await;
    mock.wifi_device().await;
    let _: String = mock
        .mock("AddEthernetDevice", &("eth0", "eth0", 100i32))
        .await;
    let net = configurator(&mock, mock.config()).await;
    assert_eq!(
        net.capabilities(),
        Capabilities {
            wifi: true,
            ethernet: true,
            cellular: false,
            already_online: true,
        }
    );
    // Connectivity NONE: not online any more.
    mock.mock::<_, ()>("SetConnectivity", &(1u32,)).await;
    assert!(!net.refresh_capabilities().await.already_online);
    assert!(!net.capabilities().already_online);

    // A gateway with Ethernet only: Wi-Fi configs are refused, scans are empty.
    let wired = NmMock::start().await;
    let _: String = wired
        .mock("AddEthernetDevice", &("eth0", "eth0", 100i32))
        .await;
    let net = configurator(&wired, wired.config()).await;
    assert!(!net.capabilities().wifi);
    assert!(net.scan().await.unwrap().is_empty());
    let (result, stages) = join(&net, &wifi("x", "y"), "127.0.0.1:1", Duration::from_secs(5)).await;
    assert_eq!(result.unwrap_err().code(), "network_unsupported");
    assert!(stages.is_empty());
    let (result, _) = join(
        &net,
        &StoredNetwork::Cellular { apn: "iot".into() },
        "127.0.0.1:1",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(result.unwrap_err().code(), "network_unsupported");
    // Naming an interface that does not exist is an error, not a silent fallback.
    let error = NetworkManagerConfigurator::connect(
        NetworkManagerConfig {
            wifi_interface: Some("wlan9".into()),
            ..wired.config()
        },
        Arc::new(TcpProbe),
        clock(),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("wlan9"), "{error}");
}

#[tokio::test]
async fn scan_lists_networks_with_rssi_security_and_channel() {
    if !harness::available("scan_lists_networks_with_rssi_security_and_channel") {
        return;
    }
    let mock = NmMock::start().await;
    let device = mock.wifi_device().await;
    mock.access_point_with(&device, "a1", "site-a", 2437, 70, 0x188)
        .await;
    // The same SSID twice: the stronger one is listed.
    mock.access_point_with(&device, "a2", "site-a", 5180, 90, 0x188)
        .await;
    mock.access_point_with(&device, "b", "cafe", 2412, 40, 0)
        .await;
    mock.access_point_with(&device, "c", "new", 5745, 60, 0x488)
        .await;
    mock.access_point_with(&device, "d", "corp", 2462, 80, 0x288)
        .await;
    mock.access_point_with(&device, "h", "", 2437, 99, 0x188)
        .await;
    let net = configurator(&mock, mock.config()).await;
    let scan = net.scan().await.unwrap();
    let summary: Vec<_> = scan
        .iter()
        .map(|n| (n.ssid.as_str(), n.rssi, n.security, n.channel))
        .collect();
    assert_eq!(
        summary,
        [
            ("site-a", -46, WifiSecurity::Wpa2Personal, 36),
            ("corp", -52, WifiSecurity::Enterprise, 11),
            ("new", -64, WifiSecurity::Wpa3Personal, 149),
            ("cafe", -76, WifiSecurity::Open, 1),
        ]
    );
    assert!(scan[0].bssid.is_some());
    // The scan asked NetworkManager for fresh results first.
    let calls: Vec<(u64, Vec<zbus::zvariant::OwnedValue>)> = mock
        .call(
            &device,
            "org.freedesktop.DBus.Mock",
            "GetMethodCalls",
            &("RequestScan",),
        )
        .await;
    assert_eq!(calls.len(), 1);
}

#[tokio::test]
async fn a_join_reports_every_stage_keeps_the_profile_and_never_logs_the_passphrase() {
    if !harness::available(
        "a_join_reports_every_stage_keeps_the_profile_and_never_logs_the_passphrase",
    ) {
        return;
    }
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = {
        let logs = Arc::clone(&logs);
        move || LogSink(Arc::clone(&logs))
    };
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(writer)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mock = NmMock::start().await;
    let device = mock.wifi_device().await;
    mock.access_point(&device, "a", "site-a", 70).await;
    mock.network("site-a", "correct horse battery", "").await;
    let net = configurator(&mock, mock.config()).await;
    let (_dps, host) = dps().await;
    let started = Instant::now();
    let (result, stages) = join(
        &net,
        &wifi("site-a", "correct horse battery"),
        &host,
        Duration::from_secs(20),
    )
    .await;
    result.unwrap_or_else(|failure| panic!("{failure}\n{}", mock.log()));
    assert_eq!(stages, ALL_STAGES);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let profiles = mock.profiles().await;
    assert_eq!(fieldlink_profiles(&profiles), ["fieldlink: site-a"]);
    let (path, _) = &profiles[0];
    assert_eq!(mock.running(&device).await, (Some(path.clone()), 100));
    // NetworkManager holds the passphrase as a secret of the profile, not in its settings.
    type Settings = std::collections::HashMap<
        String,
        std::collections::HashMap<String, zbus::zvariant::OwnedValue>,
    >;
    let iface = "org.freedesktop.NetworkManager.Settings.Connection";
    let secrets: Settings = mock
        .call(path, iface, "GetSecrets", &("802-11-wireless-security",))
        .await;
    let psk = secrets["802-11-wireless-security"]["psk"]
        .try_clone()
        .unwrap();
    assert_eq!(String::try_from(psk).unwrap(), "correct horse battery");
    let settings: Settings = mock.call(path, iface, "GetSettings", &()).await;
    let key_mgmt = settings["802-11-wireless-security"]["key-mgmt"]
        .try_clone()
        .unwrap();
    assert_eq!(String::try_from(key_mgmt).unwrap(), "wpa-psk");

    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("joining a network"),
        "the log capture works: {text}"
    );
    assert!(!text.contains("correct horse"), "{text}");
}

#[tokio::test]
async fn a_wrong_passphrase_is_wifi_auth_failed_and_leaves_no_profile() {
    if !harness::available("a_wrong_passphrase_is_wifi_auth_failed_and_leaves_no_profile") {
        return;
    }
    let mock = NmMock::start().await;
    let device = mock.wifi_device().await;
    mock.access_point(&device, "a", "site-a", 70).await;
    mock.network("site-a", "correct horse", "").await;
    let net = configurator(&mock, mock.config()).await;
    let (_dps, host) = dps().await;
    let (result, stages) = join(
        &net,
        &wifi("site-a", "wrong horse"),
        &host,
        Duration::from_secs(20),
    )
    .await;
    let failure = result.unwrap_err();
    assert_eq!(
        failure,
        JoinFailure::WifiAuthFailed {
            ssid: "site-a".into()
        }
    );
    assert!(failure.to_string().contains("check the passphrase"));
    assert_eq!(stages, [JoinStage::Associating]);
    assert!(fieldlink_profiles(&mock.profiles().await).is_empty());
    assert_eq!(mock.running(&device).await.0, None);

    // The corrected retry works without anything else (no reboot, no reset).
    let (result, stages) = join(
        &net,
        &wifi("site-a", "correct horse"),
        &host,
        Duration::from_secs(20),
    )
    .await;
    result.unwrap();
    assert_eq!(stages, ALL_STAGES);
}

#[tokio::test]
async fn an_absent_network_is_network_not_found() {
    if !harness::available("an_absent_network_is_network_not_found") {
        return;
    }
    let mock = NmMock::start().await;
    let device = mock.wifi_device().await;
    mock.access_point(&device, "a", "site-a", 70).await;
    let net = configurator(&mock, mock.config()).await;
    let (_dps, host) = dps().await;
    let (result, stages) = join(
        &net,
        &wifi("elsewhere", "whatever1"),
        &host,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(result.unwrap_err().code(), "network_not_found");
    assert_eq!(stages, [JoinStage::Associating]);
    // A hidden network is tried without a scan match, and joins when it is there.
    mock.network("hidden-lab", "lab-pass-1", "").await;
    let hidden = StoredNetwork::Wifi {
        ssid: "hidden-lab".into(),
        passphrase: SecretString::new("lab-pass-1"),
        hidden: true,
        bssid: None,
    };
    let (result, _) = join(&net, &hidden, &host, Duration::from_secs(20)).await;
    result.unwrap();
    assert!(fieldlink_profiles(&mock.profiles().await).contains(&"fieldlink: hidden-lab"));
    assert!(!fieldlink_profiles(&mock.profiles().await).contains(&"fieldlink: elsewhere"));
}

#[tokio::test]
async fn dhcp_portal_limited_and_dps_failures_are_typed() {
    if !harness::available("dhcp_portal_limited_and_dps_failures_are_typed") {
        return;
    }
    let mock = NmMock::start().await;
    let device = mock.wifi_device().await;
    for (name, ssid, fault) in [
        ("n", "lab-nodhcp", "no_dhcp"),
        ("p", "hotel", "portal"),
        ("l", "limited", "limited"),
        ("f", "firewalled", ""),
    ] {
        mock.access_point(&device, name, ssid, 60).await;
        mock.network(ssid, "pass-1234", fault).await;
    }
    let net = configurator(&mock, mock.config()).await;
    let (_dps, host) = dps().await;
    let closed = {
        let (listener, host) = dps().await;
        drop(listener);
        host
    };
    let cases = [
        ("lab-nodhcp", &host, "dhcp_failed", 2),
        ("hotel", &host, "no_internet", 3),
        ("limited", &host, "no_internet", 3),
        ("firewalled", &closed, "dps_unreachable", 4),
    ];
    for (ssid, dps_host, code, reached) in cases {
        let (result, stages) = join(
            &net,
            &wifi(ssid, "pass-1234"),
            dps_host,
            Duration::from_secs(20),
        )
        .await;
        let failure = result.unwrap_err();
        assert_eq!(failure.code(), code, "{ssid}: {failure}");
        assert_eq!(stages, ALL_STAGES[..reached], "{ssid}");
        assert!(
            fieldlink_profiles(&mock.profiles().await).is_empty(),
            "{ssid}"
        );
    }
}

#[tokio::test]
async fn a_stalled_join_ends_at_its_deadline_and_removes_its_profile() {
    if !harness::available("a_stalled_join_ends_at_its_deadline_and_removes_its_profile") {
        return;
    }
    let mock = NmMock::start().await;
    let device = mock.wifi_device().await;
    mock.access_point(&device, "s", "stuck", 60).await;
    mock.network("stuck", "pass-1234", "stall").await;
    let net = configurator(&mock, mock.config()).await;
    let started = Instant::now();
    let (result, stages) = join(
        &net,
        &wifi("stuck", "pass-1234"),
        "127.0.0.1:1",
        Duration::from_millis(1500),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(
        result.unwrap_err(),
        JoinFailure::Timeout {
            last_stage: Some(JoinStage::Associating)
        }
    );
    assert_eq!(stages, [JoinStage::Associating]);
    assert!(
        elapsed >= Duration::from_millis(1400) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    assert!(fieldlink_profiles(&mock.profiles().await).is_empty());

    // The activation timeout bounds a join whose deadline is far away.
    let net = configurator(
        &mock,
        NetworkManagerConfig {
            activation_timeout: Duration::from_millis(700),
            ..mock.config()
        },
    )
    .await;
    let started = Instant::now();
    let (result, _) = join(
        &net,
        &wifi("stuck", "pass-1234"),
        "127.0.0.1:1",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(result.unwrap_err().code(), "network_not_found");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_failed_join_restores_the_network_the_device_had() {
    if !harness::available("a_failed_join_restores_the_network_the_device_had") {
        return;
    }
    let mock = NmMock::start().await;
    let device = mock.wifi_device().await;
    // (The upstream AddWiFiConnection knows the plain PSK flag only.)
    mock.access_point_with(&device, "h", "home", 2437, 80, 0x100)
        .await;
    mock.access_point(&device, "s", "site", 60).await;
    mock.network("site", "site-pass", "").await;
    // The administrator's own profile, running.
    let home: String = mock
        .mock(
            "AddWiFiConnection",
            &(device.as_str(), "home_profile", "home", "wpa-psk"),
        )
        .await;
    let home_path = zbus::zvariant::ObjectPath::try_from(home.as_str()).unwrap();
    let device_path = zbus::zvariant::ObjectPath::try_from(device.as_str()).unwrap();
    let root = zbus::zvariant::ObjectPath::try_from("/").unwrap();
    let _: zbus::zvariant::OwnedObjectPath = mock
        .call(
            "/org/freedesktop/NetworkManager",
            "org.freedesktop.NetworkManager",
            "ActivateConnection",
            &(home_path, device_path, root),
        )
        .await;
    mock.wait_running(&device, &home).await;

    let net = configurator(&mock, mock.config()).await;
    let (_dps, host) = dps().await;
    let (result, _) = join(
        &net,
        &wifi("site", "not-the-pass"),
        &host,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(result.unwrap_err().code(), "wifi_auth_failed");
    // Nothing proven through fieldlink yet: back to the administrator's profile.
    net.restore(None).await.unwrap();
    mock.wait_running(&device, &home).await;
    let profiles = mock.profiles().await;
    assert!(fieldlink_profiles(&profiles).is_empty(), "{profiles:?}");
    assert!(
        profiles.iter().any(|(path, _)| *path == home),
        "never deleted"
    );

    // A join that works, then a DPS failure: restore(None) drops the unproven candidate too.
    let (result, _) = join(
        &net,
        &wifi("site", "site-pass"),
        &host,
        Duration::from_secs(20),
    )
    .await;
    result.unwrap();
    assert_eq!(
        fieldlink_profiles(&mock.profiles().await),
        ["fieldlink: site"]
    );
    net.restore(None).await.unwrap();
    mock.wait_running(&device, &home).await;
    assert!(fieldlink_profiles(&mock.profiles().await).is_empty());
}

#[tokio::test]
async fn after_a_restart_restore_brings_back_the_proven_profile_and_drops_stale_candidates() {
    if !harness::available(
        "after_a_restart_restore_brings_back_the_proven_profile_and_drops_stale_candidates",
    ) {
        return;
    }
    let mock = NmMock::start().await;
    let device = mock.wifi_device().await;
    mock.access_point(&device, "a", "site-a", 80).await;
    mock.access_point(&device, "b", "site-b", 70).await;
    mock.network("site-a", "pass-a-123", "").await;
    mock.network("site-b", "pass-b-123", "").await;
    let (_dps, host) = dps().await;
    let proven = wifi("site-a", "pass-a-123");
    {
        let first = configurator(&mock, mock.config()).await;
        join(&first, &proven, &host, Duration::from_secs(20))
            .await
            .0
            .unwrap();
        // A candidate that joined, then the agent died before DPS said anything.
        join(
            &first,
            &wifi("site-b", "pass-b-123"),
            &host,
            Duration::from_secs(20),
        )
        .await
        .0
        .unwrap();
    }
    assert_eq!(
        fieldlink_profiles(&mock.profiles().await),
        ["fieldlink: site-a", "fieldlink: site-b"]
    );
    // The restarted agent knows only its proven config.
    let restarted = configurator(&mock, mock.config()).await;
    restarted.restore(Some(&proven)).await.unwrap();
    let profiles = mock.profiles().await;
    assert_eq!(fieldlink_profiles(&profiles), ["fieldlink: site-a"]);
    let site_a = profiles
        .iter()
        .find(|(_, id)| id == "fieldlink: site-a")
        .map(|(path, _)| path.clone())
        .unwrap();
    mock.wait_running(&device, &site_a).await;
    assert!(restarted.capabilities().already_online);

    // The proven profile deleted by hand: restore adds it again.
    let _: () = mock
        .call(
            &site_a,
            "org.freedesktop.NetworkManager.Settings.Connection",
            "Delete",
            &(),
        )
        .await;
    restarted.restore(Some(&proven)).await.unwrap();
    let profiles = mock.profiles().await;
    assert_eq!(fieldlink_profiles(&profiles), ["fieldlink: site-a"]);
    let (running, state) = mock.running(&device).await;
    assert_eq!(state, 100);
    assert_eq!(running.as_deref(), Some(profiles[0].0.as_str()));
}

/// Collects log output.
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
