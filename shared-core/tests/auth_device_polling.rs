//! RFC 8628 §3.5 polling by the core's device-code sign-in, against the real sandbox issuer on
//! loopback, which answers `slow_down` (and adds 5 s to its own interval) when polled faster
//! than its interval. The wait between polls is injected: it records what the client asked for
//! and moves the issuer's clock by that much, so no real seconds pass and the issuer sees
//! exactly the client's polling rhythm.

mod auth_support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use auth_support::Sandbox;
use fieldlink_core::{auth::AuthClient, secrets::MemoryStore};
use fieldlink_provisioning_api::clock::{Clock, ManualClock, SystemClock};
use tokio::sync::Notify;

/// The issuer's advertised interval (not the RFC's 5 s default, so honouring it shows).
const INTERVAL_S: u64 = 3;

/// A poll-wait that records each requested interval and moves `clock` by it — except the
/// waits listed in `early`, which return without moving the clock (a timer that fired early),
/// so the next poll reaches the issuer too soon. At wait number `gate`, it lets the test approve
/// the device and waits for the approval before returning.
struct PollClock {
    clock: ManualClock,
    waits: Mutex<Vec<Duration>>,
    early: Vec<usize>,
    gate: usize,
    at_gate: Notify,
    approved: Notify,
}

impl PollClock {
    fn new(clock: ManualClock, early: Vec<usize>, gate: usize) -> Arc<Self> {
        Arc::new(Self {
            clock,
            waits: Mutex::new(Vec::new()),
            early,
            gate,
            at_gate: Notify::new(),
            approved: Notify::new(),
        })
    }

    async fn wait(self: Arc<Self>, interval: Duration) {
        let n = {
            let mut waits = self.waits.lock().expect("lock");
            waits.push(interval);
            waits.len()
        };
        if !self.early.contains(&n) {
            self.clock
                .advance_ms(i64::try_from(interval.as_millis()).expect("small"));
        }
        if n == self.gate {
            self.at_gate.notify_one();
            self.approved.notified().await;
        }
    }

    fn waits(&self) -> Vec<u64> {
        self.waits
            .lock()
            .expect("lock")
            .iter()
            .map(Duration::as_secs)
            .collect()
    }
}

/// Signs in with `poll` as the wait between polls; approves when the gate is reached.
async fn sign_in(poll: Arc<PollClock>) -> Result<String, String> {
    let sandbox = Sandbox::start_with_clock(false, Arc::new(poll.clock.clone()), |config| {
        config.poll_interval_s = INTERVAL_S;
    })
    .await;
    let client =
        AuthClient::new(sandbox.profile("acme"), Arc::new(MemoryStore::new())).expect("client");
    let sign_in = client.start_device_sign_in().await.expect("device code");
    let complete = sign_in
        .prompt()
        .verification_uri_complete
        .clone()
        .expect("complete uri");
    let approver = async {
        poll.at_gate.notified().await;
        sandbox.approve_device(&complete, "alice", "approve").await;
        poll.approved.notify_one();
    };
    let wait = {
        let poll = poll.clone();
        move |interval| poll.clone().wait(interval)
    };
    let (session, ()) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(
            client.finish_device_sign_in_with_sleep(sign_in, wait),
            approver
        )
    })
    .await
    .expect("the sign-in finishes without real waiting");
    session
        .map(|s| s.identity.subject)
        .map_err(|e| format!("{}: {e}", e.code()))
}

fn issuer_clock() -> ManualClock {
    // A minute in the past, so the simulated polling never puts tokens in the future.
    ManualClock::new(SystemClock.now_ms() - 60_000)
}

#[tokio::test]
async fn polls_at_the_servers_interval() {
    let poll = PollClock::new(issuer_clock(), Vec::new(), 3);
    let subject = sign_in(poll.clone()).await.expect("signed in");
    assert_eq!(subject, "alice");
    // pending, pending, pending (approved meanwhile), tokens: every wait is the server's 3 s,
    // and the issuer never had to slow the client down (that would have grown the waits).
    assert_eq!(poll.waits(), [INTERVAL_S; 3]);
}

#[tokio::test]
async fn slow_down_adds_five_seconds_to_every_later_wait() {
    // The first wait returns early: the second poll is too soon and gets `slow_down`.
    let poll = PollClock::new(issuer_clock(), vec![1], 4);
    let subject = sign_in(poll.clone()).await.expect("signed in");
    assert_eq!(subject, "alice");
    // 3 s (the server's interval, cut short) → slow_down → 8 s from then on. Had the client
    // kept 3 s, the issuer would have answered slow_down again (its interval is 8 s now) and
    // the waits would show it.
    assert_eq!(
        poll.waits(),
        [INTERVAL_S, INTERVAL_S + 5, INTERVAL_S + 5, INTERVAL_S + 5]
    );
}

#[tokio::test]
async fn every_slow_down_adds_another_five_seconds() {
    // Two early waits in a row: two slow_downs, the interval grows twice.
    let poll = PollClock::new(issuer_clock(), vec![1, 2], 3);
    let subject = sign_in(poll.clone()).await.expect("signed in");
    assert_eq!(subject, "alice");
    assert_eq!(poll.waits(), [INTERVAL_S, INTERVAL_S + 5, INTERVAL_S + 10]);
}
