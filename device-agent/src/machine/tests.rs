//! State-machine transitions, driven by a real installer-side handshake.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use fieldlink_protocol::message::{
    ClientHello, DeviceInfo, DeviceState, ErrorCode, Event, HandshakeRefused, NetworkConfig,
    NetworkResult, Request, Response, SecureMessage, WireMessage,
};
use fieldlink_protocol::payload::PopSecret;
use fieldlink_protocol::secret::Secret;
use fieldlink_protocol::session::{ClientHandshake, SecureChannel, SessionError, SessionSecret};
use fieldlink_protocol::ticket::{SignedTicket, TicketClaims, TicketSigner};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::dps::{OutcomeSource, RegistrationState, RegistrationStatus};
use crate::secret::{SecretBytes, SecretString};
use crate::store::{DeviceIdentity, DpsCredential, TrustAnchorRecord};

const POP: [u8; 11] = [7; 11];
const START_MS: u64 = 1_700_000_000_000;
const REG_ID: &str = "sensor-0001";

fn signer() -> TicketSigner {
    TicketSigner::new("api-1", SigningKey::from_bytes(&[9; 32]))
}

fn factory_state() -> PersistedState {
    PersistedState::new(
        DeviceIdentity {
            registration_id: REG_ID.into(),
            pop: SecretBytes::new(POP.to_vec()),
            discriminator: 0x123,
            product_code: 7,
            dps_credential: DpsCredential::SymmetricKey {
                key: SecretString::new("a2V5"),
            },
        },
        vec![TrustAnchorRecord {
            key_id: "api-1".into(),
            public_key: hex::encode(signer().verifying_key().to_bytes()),
        }],
    )
}

fn claims(registration_id: &str, nonce: u8, now_ms: u64) -> TicketClaims {
    let now = (now_ms / 1000) as i64;
    TicketClaims {
        key_id: "api-1".into(),
        registration_id: registration_id.into(),
        id_scope: "0ne00AAA".into(),
        global_endpoint: "https://127.0.0.1:9".into(),
        tenant: "acme".into(),
        dps_instance: "dps-1".into(),
        not_before: now - 60,
        expires_at: now + 600,
        nonce: [nonce; 16],
    }
}

fn ticket(nonce: u8) -> SignedTicket {
    signer().sign(&claims(REG_ID, nonce, START_MS))
}

fn wifi(ssid: &str, pass: &str) -> NetworkConfig {
    NetworkConfig::Wifi {
        ssid: ssid.into(),
        passphrase: Secret::new(pass),
        hidden: false,
        bssid: None,
    }
}

/// A device machine plus everything it asked to persist, and a clock.
struct Rig {
    machine: DeviceMachine,
    saved: Option<PersistedState>,
    now: u64,
    rng: StdRng,
    boot_outputs: Vec<Output>,
}

impl Rig {
    fn new(config: MachineConfig) -> Self {
        Self::boot(factory_state(), config, START_MS)
    }

    fn boot(state: PersistedState, config: MachineConfig, now: u64) -> Self {
        let (machine, out, warnings) = DeviceMachine::boot(state, config, now).unwrap();
        assert!(warnings.is_empty());
        let mut rig = Self {
            machine: machine.with_rng_seed(1),
            saved: None,
            now,
            rng: StdRng::seed_from_u64(2),
            boot_outputs: Vec::new(),
        };
        rig.absorb(&out);
        rig.boot_outputs = out;
        rig
    }

    /// Records persists; returns the outputs.
    fn handle(&mut self, input: Input) -> Vec<Output> {
        let out = self.machine.handle(input, self.now);
        self.absorb(&out);
        out
    }

    fn absorb(&mut self, out: &[Output]) {
        for output in out {
            if let Output::Persist(state) = output {
                self.saved = Some((**state).clone());
            }
        }
    }

    fn saved(&self) -> &PersistedState {
        self.saved.as_ref().expect("something was persisted")
    }

    fn restart(&self, config: MachineConfig, now: u64) -> Self {
        Self::boot(self.saved().clone(), config, now)
    }

    fn hello(&mut self, pop: [u8; 11]) -> (ClientHandshake, ClientHello) {
        ClientHandshake::start(
            &SessionSecret::Pop(PopSecret::from_bytes(pop)),
            &mut self.rng,
        )
    }

    /// RT1 with `pop`; returns the client state and the outputs.
    fn rt1(&mut self, pop: [u8; 11]) -> (ClientHandshake, Vec<Output>) {
        let (client, hello) = self.hello(pop);
        let out = self.handle(Input::Message(WireMessage::ClientHello(hello)));
        (client, out)
    }

    /// A full handshake with the right PoP and `first` riding along; returns the installer's
    /// channel, the DeviceInfo and the outputs of the finish.
    fn connect(&mut self, first: Request) -> (SecureChannel, DeviceInfo, Vec<Output>) {
        let (client, out) = self.rt1(POP);
        let device_hello = sent(&out)
            .into_iter()
            .find_map(|m| match m {
                WireMessage::DeviceHello(h) => Some(h),
                _ => None,
            })
            .expect("a DeviceHello");
        let (mut channel, info, confirm) = client.finish(&device_hello).unwrap();
        let finish = confirm
            .finish(&mut channel, &SecureMessage::Request(first))
            .unwrap();
        let out = self.handle(Input::Message(WireMessage::ClientFinish(finish)));
        (channel, info, out)
    }

    fn request(&mut self, channel: &mut SecureChannel, request: Request) -> Vec<Output> {
        let sealed = channel.seal(&SecureMessage::Request(request)).unwrap();
        self.handle(Input::Message(WireMessage::Sealed(sealed)))
    }
}

impl Rig {
    fn boot_jobs(&self) -> Vec<Job> {
        jobs(&self.boot_outputs)
    }
}

fn sent(out: &[Output]) -> Vec<WireMessage> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn jobs(out: &[Output]) -> Vec<Job> {
    out.iter()
        .filter_map(|o| match o {
            Output::Start(job) => Some(job.clone()),
            _ => None,
        })
        .collect()
}

fn opened(channel: &mut SecureChannel, out: &[Output]) -> Vec<SecureMessage> {
    sent(out)
        .into_iter()
        .filter_map(|m| match m {
            WireMessage::Sealed(s) => Some(channel.open(&s).unwrap()),
            _ => None,
        })
        .collect()
}

fn responses(channel: &mut SecureChannel, out: &[Output]) -> Vec<Response> {
    opened(channel, out)
        .into_iter()
        .filter_map(|m| match m {
            SecureMessage::Response(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn events(channel: &mut SecureChannel, out: &[Output]) -> Vec<Event> {
    opened(channel, out)
        .into_iter()
        .filter_map(|m| match m {
            SecureMessage::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn error_code(response: &Response) -> ErrorCode {
    match response {
        Response::Error(error) => error.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn refused(out: &[Output]) -> HandshakeRefused {
    sent(out)
        .into_iter()
        .find_map(|m| match m {
            WireMessage::HandshakeRefused(r) => Some(r),
            _ => None,
        })
        .expect("a refusal")
}

fn assigned(registration_id: &str) -> RegistrationOutcome {
    RegistrationOutcome {
        state: RegistrationState {
            registration_id: registration_id.into(),
            status: RegistrationStatus::Assigned,
            assigned_hub: Some("hub-1.example".into()),
            device_id: Some(registration_id.into()),
            substatus: Some("initialAssignment".into()),
            error_code: None,
            error_message: None,
        },
        source: OutcomeSource::Registration,
        operation_id: Some("op".into()),
    }
}

fn register_job(out: &[Output]) -> JobId {
    jobs(out)
        .into_iter()
        .find_map(|j| match j {
            Job::Register { id, .. } => Some(id),
            _ => None,
        })
        .expect("a Register job")
}

fn join_job(out: &[Output]) -> (JobId, StoredNetwork) {
    jobs(out)
        .into_iter()
        .find_map(|j| match j {
            Job::JoinNetwork { id, network, .. } => Some((id, network)),
            _ => None,
        })
        .expect("a JoinNetwork job")
}

fn advertised(out: &[Output]) -> Vec<DeviceState> {
    out.iter()
        .filter_map(|o| match o {
            Output::Advertise(s) => Some(*s),
            _ => None,
        })
        .collect()
}

fn wifi_config() -> MachineConfig {
    MachineConfig {
        capabilities: crate::network::Capabilities {
            wifi: true,
            ..Default::default()
        },
        ..MachineConfig::default()
    }
}

#[test]
fn commissionable_to_registered() {
    let mut rig = Rig::new(MachineConfig::default());
    assert_eq!(
        rig.machine.device_state(rig.now),
        DeviceState::Commissionable
    );
    let (mut channel, info, out) = rig.connect(Request::Provision {
        ticket: ticket(1),
        network: None,
    });
    assert_eq!(info.registration_id, REG_ID);
    assert_eq!(info.state, DeviceState::Commissionable);
    assert!(info.network.already_online);
    assert_eq!(
        responses(&mut channel, &out),
        [Response::ProvisionAccepted {
            state: DeviceState::TicketStaged
        }]
    );
    let staged = rig.saved().staged.clone().unwrap();
    assert_eq!(staged.fail_safe_deadline_ms, START_MS + 120_000);
    let job = register_job(&out);
    assert_eq!(advertised(&out), [DeviceState::Registering]);

    let out = rig.handle(Input::DpsProgress {
        job,
        progress: DpsProgress::LookingUp,
    });
    assert!(matches!(
        events(&mut channel, &out)[..],
        [Event::Registration(RegistrationProgress {
            stage: RegistrationStage::StatusLookup,
            ..
        })]
    ));
    rig.now += 3_000;
    let out = rig.handle(Input::DpsDone {
        job,
        result: Ok(assigned(REG_ID)),
    });
    let events = events(&mut channel, &out);
    assert!(matches!(
        &events[..],
        [
            Event::Registration(RegistrationProgress {
                stage: RegistrationStage::Committing,
                ..
            }),
            Event::RegistrationResult(result)
        ] if result.is_assigned()
    ));
    assert_eq!(advertised(&out), [DeviceState::Registered]);
    let saved = rig.saved();
    assert!(saved.staged.is_none());
    assert_eq!(
        saved.assignment.as_ref().unwrap().assigned_hub,
        "hub-1.example"
    );
    assert!(saved.nonce_seen(&[1; 16]));
}

use fieldlink_protocol::message::{RegistrationProgress, RegistrationStage};

#[test]
fn the_attempt_is_persisted_before_the_answer() {
    let mut rig = Rig::new(MachineConfig::default());
    let (_, out) = rig.rt1(POP);
    let persist = out
        .iter()
        .position(|o| matches!(o, Output::Persist(s) if s.pop_attempts.failures == 1))
        .expect("attempt persisted");
    let answer = out
        .iter()
        .position(|o| matches!(o, Output::Send { .. }))
        .expect("answer");
    assert!(persist < answer);
}

#[test]
fn wrong_pop_counts_down_with_growing_delays_then_locks_across_restarts() {
    let mut rig = Rig::new(MachineConfig::default());
    let delays = [0, 1_000, 2_000, 4_000, 8_000];
    for (i, delay) in delays.iter().enumerate() {
        let (client, out) = rig.rt1([1; 11]);
        let (hello, not_before) = out
            .iter()
            .find_map(|o| match o {
                Output::Send {
                    message: WireMessage::DeviceHello(h),
                    not_before_ms,
                } => Some((h.clone(), *not_before_ms)),
                _ => None,
            })
            .unwrap();
        assert_eq!(not_before - rig.now, *delay);
        match client.finish(&hello) {
            Err(SessionError::WrongSecret { attempts_left }) => {
                assert_eq!(attempts_left as usize, 4 - i)
            }
            other => panic!("expected wrong_pop, got {other:?}"),
        }
        rig.handle(Input::Disconnected);
        rig.now += 100;
    }
    let (_, out) = rig.rt1(POP);
    let refusal = refused(&out);
    assert_eq!(refusal.code, ErrorCode::DeviceLocked);
    assert!(refusal.retry_after_s.unwrap() > 290);
    assert_eq!(rig.machine.device_state(rig.now), DeviceState::Locked);

    // Power cycle: still locked, even with the right PoP.
    let mut restarted = rig.restart(MachineConfig::default(), rig.now + 1_000);
    let (_, out) = restarted.rt1(POP);
    assert_eq!(refused(&out).code, ErrorCode::DeviceLocked);
    assert_eq!(
        restarted.machine.next_wakeup(restarted.now),
        restarted
            .saved
            .as_ref()
            .map_or(rig.saved().pop_attempts.locked_until_ms, |s| s
                .pop_attempts
                .locked_until_ms)
    );

    // After the lockout, the right PoP works and resets the counter.
    restarted.now += 300_000;
    let out = restarted.handle(Input::Tick);
    assert_eq!(advertised(&out), [DeviceState::Commissionable]);
    let (_, _, _) = restarted.connect(Request::GetStatus);
    assert_eq!(restarted.saved().pop_attempts.failures, 0);
    assert_eq!(restarted.saved().pop_attempts.locked_until_ms, None);
}

#[test]
fn a_killed_handshake_keeps_its_attempt() {
    let mut rig = Rig::new(MachineConfig::default());
    let _ = rig.rt1(POP);
    // Power lost before the ClientFinish: the attempt is on disk.
    let mut restarted = rig.restart(MachineConfig::default(), rig.now);
    let (client, out) = restarted.rt1(POP);
    let hello = sent(&out)
        .into_iter()
        .find_map(|m| match m {
            WireMessage::DeviceHello(h) => Some(h),
            _ => None,
        })
        .unwrap();
    assert_eq!(hello.attempts_left, 3);
    assert!(client.finish(&hello).is_ok());
}

#[test]
fn the_manual_passcode_opens_a_session_too() {
    let mut rig = Rig::new(MachineConfig::default());
    let passcode = PopSecret::from_bytes(POP).manual_passcode();
    let (client, hello) =
        ClientHandshake::start(&SessionSecret::ManualPasscode(passcode), &mut rig.rng);
    let out = rig.handle(Input::Message(WireMessage::ClientHello(hello)));
    let device_hello = sent(&out)
        .into_iter()
        .find_map(|m| match m {
            WireMessage::DeviceHello(h) => Some(h),
            _ => None,
        })
        .unwrap();
    assert!(client.finish(&device_hello).is_ok());
}

#[test]
fn unsupported_versions_are_refused_without_counting() {
    let mut rig = Rig::new(MachineConfig::default());
    let (_, mut hello) = rig.hello(POP);
    hello.version = 9;
    let out = rig.handle(Input::Message(WireMessage::ClientHello(hello)));
    let refusal = refused(&out);
    assert_eq!(refusal.code, ErrorCode::UnsupportedVersion);
    assert_eq!(refusal.supported_version, Some(1));
    assert!(rig.saved.is_none(), "nothing counted");
}

#[test]
fn bad_tickets_are_rejected_with_specific_codes() {
    let mut rig = Rig::new(MachineConfig::default());
    let mut tampered = ticket(2);
    let last = tampered.claims.len() - 1;
    tampered.claims[last] ^= 1;
    let mut expired_claims = claims(REG_ID, 3, START_MS);
    expired_claims.expires_at = (START_MS / 1000) as i64 - 1;
    expired_claims.not_before = expired_claims.expires_at - 100;
    let foreign = signer().sign(&claims("someone-else", 4, START_MS));
    let unknown_key =
        TicketSigner::new("api-9", SigningKey::from_bytes(&[3; 32])).sign(&TicketClaims {
            key_id: "api-9".into(),
            ..claims(REG_ID, 5, START_MS)
        });
    let cases = [
        (
            tampered,
            [ErrorCode::TicketBadSignature, ErrorCode::TicketMalformed].as_slice(),
        ),
        (signer().sign(&expired_claims), &[ErrorCode::TicketExpired]),
        (foreign, &[ErrorCode::TicketWrongDevice]),
        (unknown_key, &[ErrorCode::TicketUnknownKey]),
    ];
    let (mut channel, _, out) = rig.connect(Request::GetStatus);
    assert!(matches!(
        responses(&mut channel, &out)[..],
        [Response::Status(_)]
    ));
    for (bad, codes) in cases {
        let out = rig.request(
            &mut channel,
            Request::Provision {
                ticket: bad,
                network: None,
            },
        );
        let code = error_code(&responses(&mut channel, &out)[0]);
        assert!(codes.contains(&code), "{code:?}");
        assert!(jobs(&out).is_empty());
    }
    assert!(rig.saved().staged.is_none());
    assert_eq!(rig.machine.device_state(rig.now), DeviceState::SessionOpen);

    // Replay: commit a ticket, then present it again.
    let out = rig.request(
        &mut channel,
        Request::Provision {
            ticket: ticket(6),
            network: None,
        },
    );
    responses(&mut channel, &out);
    let job = register_job(&out);
    let out = rig.handle(Input::DpsDone {
        job,
        result: Ok(assigned(REG_ID)),
    });
    events(&mut channel, &out);
    let out = rig.request(
        &mut channel,
        Request::Provision {
            ticket: ticket(6),
            network: None,
        },
    );
    assert_eq!(
        error_code(&responses(&mut channel, &out)[0]),
        ErrorCode::TicketReplayed
    );
}

#[test]
fn the_fail_safe_rolls_back_and_ignores_late_results() {
    let config = MachineConfig {
        fail_safe_window: Duration::from_secs(30),
        ..MachineConfig::default()
    };
    let mut rig = Rig::new(config);
    let (mut channel, _, out) = rig.connect(Request::Provision {
        ticket: ticket(7),
        network: None,
    });
    responses(&mut channel, &out);
    let job = register_job(&out);
    assert_eq!(rig.machine.next_wakeup(rig.now), Some(START_MS + 30_000));
    rig.now += 29_999;
    assert!(rig.handle(Input::Tick).is_empty());
    rig.now += 1;
    let out = rig.handle(Input::Tick);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Cancel(id) if *id == job))
    );
    assert!(rig.saved().staged.is_none());
    assert_eq!(advertised(&out), [DeviceState::Failed]);
    match &events(&mut channel, &out)[..] {
        [Event::RegistrationResult(result)] => {
            assert!(!result.is_assigned());
            assert!(result.error_message.as_ref().unwrap().contains("fail-safe"));
        }
        other => panic!("{other:?}"),
    }
    // DPS answering after the rollback changes nothing.
    let out = rig.handle(Input::DpsDone {
        job,
        result: Ok(assigned(REG_ID)),
    });
    assert!(!out.iter().any(|o| matches!(o, Output::Persist(_))));
    assert!(rig.machine.persisted().assignment.is_none());
    // Commissionable again: a new ticket is accepted.
    let out = rig.request(
        &mut channel,
        Request::Provision {
            ticket: ticket(8),
            network: None,
        },
    );
    assert!(matches!(
        responses(&mut channel, &out)[..],
        [Response::ProvisionAccepted { .. }]
    ));
}

#[test]
fn boot_rolls_back_an_expired_staging_and_resumes_a_live_one() {
    let mut rig = Rig::new(MachineConfig::default());
    rig.connect(Request::Provision {
        ticket: ticket(9),
        network: None,
    });
    assert!(rig.saved().staged.is_some());

    let resumed = rig.restart(MachineConfig::default(), START_MS + 60_000);
    assert!(matches!(resumed.boot_jobs()[..], [Job::Register { .. }]));
    assert_eq!(
        resumed.machine.device_state(resumed.now),
        DeviceState::Registering
    );

    let expired = rig.restart(MachineConfig::default(), START_MS + 120_000);
    assert!(expired.boot_jobs().is_empty());
    assert!(expired.saved().staged.is_none(), "rollback persisted");
    assert_eq!(
        expired.machine.device_state(expired.now),
        DeviceState::Failed
    );
}

#[test]
fn a_registered_device_does_not_register_again_at_boot() {
    let mut rig = Rig::new(MachineConfig::default());
    let (_, _, out) = rig.connect(Request::Provision {
        ticket: ticket(10),
        network: None,
    });
    let job = register_job(&out);
    rig.handle(Input::DpsDone {
        job,
        result: Ok(assigned(REG_ID)),
    });
    let rebooted = rig.restart(MachineConfig::default(), START_MS + 86_400_000);
    assert!(rebooted.boot_jobs().is_empty());
    assert_eq!(
        rebooted.machine.device_state(rebooted.now),
        DeviceState::Registered
    );
    let status = rebooted.machine.status(rebooted.now);
    assert!(status.registration.unwrap().is_assigned());
}

#[test]
fn a_failed_join_restores_the_network_and_a_corrected_retry_works() {
    let mut state = factory_state();
    let old = StoredNetwork::Wifi {
        ssid: "old-ap".into(),
        passphrase: SecretString::new("old-passphrase"),
        hidden: false,
        bssid: None,
    };
    state.network.current = Some(old.clone());
    let mut rig = Rig::boot(state, wifi_config(), START_MS);
    let (mut channel, _, out) = rig.connect(Request::Provision {
        ticket: ticket(11),
        network: Some(wifi("site", "wrong-passphrase")),
    });
    let (job, candidate) = join_job(&out);
    assert!(matches!(candidate, StoredNetwork::Wifi { ref ssid, .. } if ssid == "site"));
    responses(&mut channel, &out);
    let out = rig.handle(Input::NetworkStage {
        job,
        stage: JoinStage::Associating,
    });
    assert!(matches!(
        &events(&mut channel, &out)[..],
        [Event::Network(progress)] if progress.stage == JoinStage::Associating
    ));
    let out = rig.handle(Input::NetworkDone {
        job,
        result: Err(JoinFailure::WifiAuthFailed {
            ssid: "site".into(),
        }),
    });
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::RestoreNetwork(Some(n)) if *n == old))
    );
    assert!(matches!(
        &events(&mut channel, &out)[..],
        [Event::NetworkResult(NetworkResult::Failed { kind, .. })] if kind.as_str() == "wifi_auth_failed"
    ));
    assert_eq!(rig.machine.device_state(rig.now), DeviceState::TicketStaged);

    // Same session, corrected passphrase.
    let out = rig.request(
        &mut channel,
        Request::ConfigureNetwork {
            network: wifi("site", "right-passphrase"),
        },
    );
    assert!(matches!(
        responses(&mut channel, &out)[..],
        [Response::NetworkAccepted { .. }]
    ));
    let (job, _) = join_job(&out);
    let out = rig.handle(Input::NetworkDone {
        job,
        result: Ok(()),
    });
    let job = register_job(&out);
    rig.handle(Input::DpsDone {
        job,
        result: Ok(assigned(REG_ID)),
    });
    let saved = rig.saved();
    assert!(
        matches!(&saved.network.current, Some(StoredNetwork::Wifi { ssid, .. }) if ssid == "site")
    );
    assert_eq!(saved.network.previous, Some(old));
}

#[test]
fn a_corrected_retry_in_the_next_session_works_too() {
    let mut rig = Rig::new(wifi_config());
    let (_, _, out) = rig.connect(Request::Provision {
        ticket: ticket(12),
        network: Some(wifi("site", "wrong-passphrase")),
    });
    let (job, _) = join_job(&out);
    rig.handle(Input::NetworkDone {
        job,
        result: Err(JoinFailure::WifiAuthFailed {
            ssid: "site".into(),
        }),
    });
    rig.handle(Input::Disconnected);
    // The installer comes back with the same ticket and the right passphrase.
    let (mut channel, info, out) = rig.connect(Request::Provision {
        ticket: ticket(12),
        network: Some(wifi("site", "right-passphrase")),
    });
    assert_eq!(info.state, DeviceState::TicketStaged);
    assert!(matches!(
        responses(&mut channel, &out)[..],
        [Response::ProvisionAccepted { .. }]
    ));
    join_job(&out);
}

#[test]
fn an_offline_device_needs_a_network() {
    let mut rig = Rig::new(wifi_config());
    let (mut channel, _, out) = rig.connect(Request::Provision {
        ticket: ticket(13),
        network: None,
    });
    assert_eq!(
        error_code(&responses(&mut channel, &out)[0]),
        ErrorCode::NetworkNotFound
    );
    let out = rig.request(
        &mut channel,
        Request::Provision {
            ticket: ticket(13),
            network: Some(NetworkConfig::Cellular { apn: "iot".into() }),
        },
    );
    assert_eq!(
        error_code(&responses(&mut channel, &out)[0]),
        ErrorCode::NetworkUnsupported
    );
}

#[test]
fn resume_busy_idempotence_status_and_cancel() {
    let mut rig = Rig::new(MachineConfig::default());
    let (_, _, out) = rig.connect(Request::Provision {
        ticket: ticket(14),
        network: None,
    });
    let job = register_job(&out);
    rig.handle(Input::Disconnected);
    // Registration goes on without the link.
    rig.handle(Input::DpsProgress {
        job,
        progress: DpsProgress::Registering,
    });
    let (mut channel, info, out) = rig.connect(Request::GetStatus);
    assert_eq!(info.state, DeviceState::Registering);
    assert_eq!(info.assignment.as_ref().unwrap().ticket_nonce, [14; 16]);
    match &responses(&mut channel, &out)[..] {
        [Response::Status(status)] => {
            assert_eq!(status.state, DeviceState::Registering);
            assert_eq!(status.fail_safe_remaining_s, Some(120));
        }
        other => panic!("{other:?}"),
    }
    // The same ticket again: accepted, nothing restarted. Another ticket: busy.
    let out = rig.request(
        &mut channel,
        Request::Provision {
            ticket: ticket(14),
            network: None,
        },
    );
    assert!(matches!(
        responses(&mut channel, &out)[..],
        [Response::ProvisionAccepted {
            state: DeviceState::Registering
        }]
    ));
    assert!(jobs(&out).is_empty());
    let out = rig.request(
        &mut channel,
        Request::Provision {
            ticket: ticket(15),
            network: None,
        },
    );
    assert_eq!(
        error_code(&responses(&mut channel, &out)[0]),
        ErrorCode::Busy
    );
    // Cancel rolls back now.
    let out = rig.request(&mut channel, Request::Cancel);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Cancel(id) if *id == job))
    );
    assert!(matches!(
        responses(&mut channel, &out)[..],
        [Response::Cancelled {
            state: DeviceState::SessionOpen
        }]
    ));
    assert!(rig.saved().staged.is_none());
}

#[test]
fn dps_failure_rolls_back_and_reports_the_dps_error() {
    let mut rig = Rig::new(MachineConfig::default());
    let (mut channel, _, out) = rig.connect(Request::Provision {
        ticket: ticket(16),
        network: None,
    });
    responses(&mut channel, &out);
    let job = register_job(&out);
    let mut outcome = assigned(REG_ID);
    outcome.state.status = RegistrationStatus::Failed;
    outcome.state.assigned_hub = None;
    outcome.state.error_code = Some(400209);
    outcome.state.error_message = Some("Custom allocation failed".into());
    let out = rig.handle(Input::DpsDone {
        job,
        result: Ok(outcome),
    });
    match &events(&mut channel, &out)[..] {
        [Event::RegistrationResult(result)] => {
            assert_eq!(result.error_code, Some(400209));
            assert_eq!(result.status.as_str(), "failed");
            assert_eq!(result.failure, Some(ErrorCode::RegistrationFailed));
        }
        other => panic!("{other:?}"),
    }
    assert!(rig.saved().staged.is_none());
    assert_eq!(rig.machine.device_state(rig.now), DeviceState::Failed);
    // Unreachable DPS: reported with its code.
    let out = rig.request(
        &mut channel,
        Request::Provision {
            ticket: ticket(17),
            network: None,
        },
    );
    responses(&mut channel, &out);
    let job = register_job(&out);
    let out = rig.handle(Input::DpsDone {
        job,
        result: Err(DpsError::Unreachable {
            step: crate::dps::DpsStep::StatusLookup,
            last_error: "connect failed".into(),
        }),
    });
    match &events(&mut channel, &out)[..] {
        [Event::RegistrationResult(result)] => {
            assert!(
                result
                    .error_message
                    .as_ref()
                    .unwrap()
                    .starts_with("dps_unreachable")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn tampered_records_close_the_session() {
    let mut rig = Rig::new(MachineConfig::default());
    let (mut channel, _, _) = rig.connect(Request::GetStatus);
    let mut sealed = channel
        .seal(&SecureMessage::Request(Request::GetStatus))
        .unwrap();
    sealed.ciphertext[0] ^= 1;
    let out = rig.handle(Input::Message(WireMessage::Sealed(sealed)));
    assert!(out.iter().any(|o| matches!(o, Output::CloseLink)));
    assert_eq!(
        rig.machine.device_state(rig.now),
        DeviceState::Commissionable
    );
}

#[test]
fn scans_answer_and_fill_the_cache() {
    let mut rig = Rig::new(wifi_config());
    let (mut channel, info, out) = rig.connect(Request::ScanNetworks);
    assert_eq!(info.wifi_networks, None);
    let id = match jobs(&out)[..] {
        [Job::Scan { id }] => id,
        ref other => panic!("{other:?}"),
    };
    let network = fieldlink_protocol::message::WifiNetwork {
        ssid: "site".into(),
        rssi: -50,
        security: fieldlink_protocol::message::WifiSecurity::Wpa2Personal,
        channel: 6,
        bssid: None,
    };
    let out = rig.handle(Input::ScanDone {
        job: id,
        result: Ok(vec![network.clone()]),
    });
    assert_eq!(
        responses(&mut channel, &out),
        [Response::Networks(vec![network.clone()])]
    );
    rig.handle(Input::Disconnected);
    let (_, info, _) = rig.connect(Request::GetStatus);
    assert_eq!(info.wifi_networks, Some(vec![network]));
}

#[test]
fn wifi_passphrases_stay_out_of_debug_output() {
    let mut rig = Rig::new(wifi_config());
    let (_, _, out) = rig.connect(Request::Provision {
        ticket: ticket(18),
        network: Some(wifi("site", "hunter2-secret-pass")),
    });
    let shown = format!("{out:?} {:?} {:?}", rig.saved(), rig.machine);
    assert!(shown.contains("site"));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("0707070707"), "PoP leaked: {shown}");
}

#[test]
fn a_staged_ticket_is_single_use_after_a_cancel_or_a_crash() {
    // Burnt in the staging save itself; Cancel rolls back but the ticket stays used.
    let mut rig = Rig::new(MachineConfig::default());
    let (mut channel, _, out) = rig.connect(Request::Provision {
        ticket: ticket(20),
        network: None,
    });
    assert!(matches!(
        responses(&mut channel, &out)[..],
        [Response::ProvisionAccepted { .. }]
    ));
    let staging_save = rig.saved().clone();
    assert!(staging_save.staged.is_some());
    assert!(staging_save.nonce_seen(&[20; 16]), "burnt with the staging");
    let out = rig.request(&mut channel, Request::Cancel);
    responses(&mut channel, &out);
    assert!(rig.saved().staged.is_none());
    let replay = rig.request(
        &mut channel,
        Request::Provision {
            ticket: ticket(20),
            network: None,
        },
    );
    assert_eq!(
        error_code(&responses(&mut channel, &replay)[0]),
        ErrorCode::TicketReplayed
    );
    let fresh = rig.request(
        &mut channel,
        Request::Provision {
            ticket: ticket(21),
            network: None,
        },
    );
    assert!(matches!(
        responses(&mut channel, &fresh)[..],
        [Response::ProvisionAccepted { .. }]
    ));

    // A crash right after the staging save: the boot rolls the expired staging back, and the
    // record of the nonce survived in that same save.
    let mut rebooted = Rig::boot(staging_save, MachineConfig::default(), START_MS + 120_000);
    assert!(rebooted.saved().staged.is_none(), "rolled back at boot");
    let (mut channel, _, out) = rebooted.connect(Request::Provision {
        ticket: ticket(20),
        network: None,
    });
    assert_eq!(
        error_code(&responses(&mut channel, &out)[0]),
        ErrorCode::TicketReplayed
    );
}

/// Each way a registration can end without an assignment reaches the installer as a typed code
/// in `DpsResult.failure`, not only inside the message text.
#[test]
fn dps_failures_carry_a_typed_code() {
    use crate::dps::DpsStep;
    let rejected = |http_status| DpsError::Rejected {
        step: DpsStep::Register,
        http_status,
        error_code: Some(401_002),
        message: "Unauthorized".into(),
    };
    let cases = [
        (
            DpsError::Unreachable {
                step: DpsStep::StatusLookup,
                last_error: "connect failed".into(),
            },
            ErrorCode::DpsUnreachable,
        ),
        (
            DpsError::Throttled {
                step: DpsStep::Register,
                retry_after: Some(std::time::Duration::from_secs(3)),
            },
            ErrorCode::DpsThrottled,
        ),
        (rejected(401), ErrorCode::DpsUnauthorized),
        (rejected(403), ErrorCode::DpsUnauthorized),
        (rejected(404), ErrorCode::DpsNotFound),
        (rejected(400), ErrorCode::RegistrationFailed),
        (DpsError::Credential("bad key".into()), ErrorCode::Internal),
    ];
    for (nonce, (error, code)) in (40u8..).zip(cases) {
        let mut rig = Rig::new(MachineConfig::default());
        let (mut channel, _, out) = rig.connect(Request::Provision {
            ticket: ticket(nonce),
            network: None,
        });
        responses(&mut channel, &out);
        let job = register_job(&out);
        let out = rig.handle(Input::DpsDone {
            job,
            result: Err(error),
        });
        match &events(&mut channel, &out)[..] {
            [Event::RegistrationResult(result)] => {
                assert_eq!(result.failure, Some(code), "{result:?}");
                assert!(!result.is_assigned());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            rig.machine.status(rig.now).registration.unwrap().failure,
            Some(code),
            "GetStatus reports the same code"
        );
    }
    // The fail-safe has its own code.
    let mut rig = Rig::new(MachineConfig::default());
    let (mut channel, _, out) = rig.connect(Request::Provision {
        ticket: ticket(60),
        network: None,
    });
    responses(&mut channel, &out);
    rig.now += 121_000;
    let out = rig.handle(Input::Tick);
    match &events(&mut channel, &out)[..] {
        [Event::RegistrationResult(result)] => {
            assert_eq!(result.failure, Some(ErrorCode::FailSafeExpired));
        }
        other => panic!("{other:?}"),
    }
}
