//! The scanning step has one deadline: a manual code's scan (4-bit discriminator: it cannot stop
//! at the first match, so it listens its whole window) answers before it even when the answer
//! takes a while to arrive (a socket, a platform queue), and a scan that never answers fails
//! with `timeout{scanning}` exactly at it.

use super::*;
use crate::transport::{BleConnection, BleTransport, DiscoveredDevice, PeripheralId, ScanFilter};

/// The radio, with scan answers delayed by `answer_delay` (or never given).
struct SlowScans {
    radio: InMemoryRadio,
    answer_delay: Option<Duration>,
    windows: Mutex<Vec<Duration>>,
}

#[async_trait]
impl BleTransport for SlowScans {
    async fn scan(
        &self,
        filter: ScanFilter,
        timeout: Duration,
    ) -> Result<Vec<DiscoveredDevice>, crate::transport::TransportError> {
        self.windows.lock().unwrap().push(timeout);
        let Some(delay) = self.answer_delay else {
            return futures::future::pending().await;
        };
        let found = self.radio.scan(filter, timeout).await;
        tokio::time::sleep(delay).await;
        found
    }

    async fn connect(
        &self,
        id: PeripheralId,
        timeout: Duration,
    ) -> Result<Arc<dyn BleConnection>, crate::transport::TransportError> {
        self.radio.connect(id, timeout).await
    }
}

fn manual_request(pop: &PopSecret) -> CommissionRequest {
    CommissionRequest {
        registration_id: None,
        discriminator: DiscriminatorMatch::Short(0x5),
        secret: SessionSecret::ManualPasscode(pop.manual_passcode()),
        network: None,
    }
}

fn commissioner_over(transport: Arc<SlowScans>) -> Commissioner {
    let signer = LocalAssignmentSigner::new(
        TicketSigner::new("k1", SigningKey::from_bytes(&[3; 32])),
        DpsTarget {
            id_scope: "0ne000TEST".into(),
            global_endpoint: "127.0.0.1:1".into(),
            tenant: "acme".into(),
            dps_instance: "dps-1".into(),
        },
    );
    Commissioner::new(
        transport,
        Arc::new(signer),
        Arc::new(ScriptedStatus(Mutex::new(vec![assigned_view(
            "hub-a.example",
        )]))),
    )
    .with_config(CommissioningConfig {
        seed: Some(1),
        ..CommissioningConfig::default()
    })
}

#[test]
fn the_scan_window_ends_before_the_scanning_deadline() {
    let deadlines = StepDeadlines::default();
    assert_eq!(deadlines.scanning, Duration::from_secs(10));
    assert_eq!(deadlines.scan_window(), Duration::from_secs(9));
    let short = StepDeadlines {
        scanning: Duration::from_millis(500),
        ..deadlines
    };
    assert_eq!(short.scan_window(), Duration::from_millis(400));

    let mut machine = Commissioning::new(
        manual_request(&PopSecret::from_bytes([9; 11])),
        CommissioningConfig::default(),
    );
    let actions = machine.start(0);
    let window = actions.iter().find_map(|a| match a {
        Action::Scan { filter, timeout } => Some((filter.discriminator, *timeout)),
        _ => None,
    });
    assert_eq!(window, Some((None, Duration::from_secs(9))));
    assert_eq!(
        machine.deadline(),
        Some(10_000),
        "the step deadline governs"
    );
}

#[tokio::test(start_paused = true)]
async fn a_manual_code_scan_that_listens_its_whole_window_answers_in_time() {
    let rig = rig(247, |_| {}, vec![assigned_view("hub-1")]);
    // The answer crosses a socket: 300 ms after the radio's window closes.
    let transport = Arc::new(SlowScans {
        radio: rig.radio.clone(),
        answer_delay: Some(Duration::from_millis(300)),
        windows: Mutex::new(Vec::new()),
    });
    let commissioner = commissioner_over(transport.clone());
    let (listener, mut events) = progress_channel();
    let report = commissioner
        .commission(
            manual_request(&rig.pop),
            &*listener,
            CancellationToken::new(),
        )
        .await
        .expect("commissioned with the manual code");
    drop(listener);
    assert_eq!(report.registration_id, "dev-1", "learnt from the device");
    let scanning = report.step(Step::Scanning).expect("scanned");
    assert!(
        scanning.finished_ms >= 9_000 && scanning.finished_ms < 10_000,
        "listened the whole window and answered before the deadline: {scanning:?}"
    );
    assert_eq!(*transport.windows.lock().unwrap(), [Duration::from_secs(9)]);
    let mut found = false;
    while let Some(event) = events.recv().await {
        found |= matches!(event.kind, ProgressKind::DeviceFound { .. });
    }
    assert!(found);
}

#[tokio::test(start_paused = true)]
async fn a_scan_that_never_answers_is_timeout_scanning_at_the_step_deadline() {
    let rig = rig(247, |_| {}, vec![assigned_view("hub-1")]);
    let transport = Arc::new(SlowScans {
        radio: rig.radio.clone(),
        answer_delay: None,
        windows: Mutex::new(Vec::new()),
    });
    let commissioner = commissioner_over(transport);
    let (listener, _events) = progress_channel();
    let started = tokio::time::Instant::now();
    let error = commissioner
        .commission(
            manual_request(&rig.pop),
            &*listener,
            CancellationToken::new(),
        )
        .await
        .expect_err("nothing answers");
    assert_eq!(
        error,
        CommissionError::Timeout {
            step: Step::Scanning
        }
    );
    assert_eq!(error.code(), "timeout");
    assert!(error.to_string().contains("scanning"), "{error}");
    assert_eq!(started.elapsed(), StepDeadlines::default().scanning);
}
