//! Following one activation, sans-I/O: NetworkManager's device and active-connection states
//! become join stages, and the state reason of a failed activation becomes a typed
//! [`JoinFailure`].

use super::super::{JoinFailure, JoinStage};

/// `NMDeviceState` values.
pub(super) mod device_state {
    /// Not managed by NetworkManager.
    pub const UNMANAGED: u32 = 10;
    /// Not ready (rfkill, missing firmware).
    pub const UNAVAILABLE: u32 = 20;
    /// Ready, no connection.
    pub const DISCONNECTED: u32 = 30;
    /// Preparing the connection.
    pub const PREPARE: u32 = 40;
    /// Associating (Wi-Fi) or attaching (modem).
    pub const CONFIG: u32 = 50;
    /// Waiting for secrets.
    pub const NEED_AUTH: u32 = 60;
    /// Asking for an address (DHCP, SLAAC).
    pub const IP_CONFIG: u32 = 70;
    /// Has an address; checking it.
    pub const IP_CHECK: u32 = 80;
    /// Waiting for secondary connections.
    pub const SECONDARIES: u32 = 90;
    /// Connected.
    pub const ACTIVATED: u32 = 100;
    /// Disconnecting.
    pub const DEACTIVATING: u32 = 110;
    /// The activation failed.
    pub const FAILED: u32 = 120;
}

/// `NMDeviceStateReason` values the mapping uses.
pub(super) mod reason {
    /// No reason given.
    pub const NONE: u32 = 0;
    /// Unknown.
    pub const UNKNOWN: u32 = 1;
    /// IP configuration could not be reserved (no DHCP answer).
    pub const IP_CONFIG_UNAVAILABLE: u32 = 5;
    /// The IP configuration is no longer valid.
    pub const IP_CONFIG_EXPIRED: u32 = 6;
    /// Secrets were required but not provided (a wrong Wi-Fi passphrase ends here). The
    /// supplicant reasons (disconnect, config failed, failed, timeout) follow, up to 11.
    pub const NO_SECRETS: u32 = 7;
    /// The supplicant took too long to authenticate.
    pub const SUPPLICANT_TIMEOUT: u32 = 11;
    /// DHCP client failed to start.
    pub const DHCP_START_FAILED: u32 = 15;
    /// DHCP client failed.
    pub const DHCP_FAILED: u32 = 17;
    /// AutoIP failed to start.
    pub const AUTOIP_START_FAILED: u32 = 20;
    /// AutoIP failed.
    pub const AUTOIP_FAILED: u32 = 22;
    /// The modem's APN could not be selected.
    pub const GSM_APN_FAILED: u32 = 29;
    /// Network registration failed (GSM range `29..=34`).
    pub const GSM_PIN_CHECK_FAILED: u32 = 34;
    /// The carrier (cable, link) went down.
    pub const CARRIER: u32 = 40;
    /// SIM problems (`45..=48`).
    pub const GSM_SIM_NOT_INSERTED: u32 = 45;
    /// SIM problems (`45..=48`).
    pub const GSM_SIM_WRONG: u32 = 48;
    /// The Wi-Fi network could not be found.
    pub const SSID_NOT_FOUND: u32 = 53;
    /// A new activation replaced this one.
    pub const NEW_ACTIVATION: u32 = 60;
    /// The IP address is already in use.
    pub const IP_ADDRESS_DUPLICATE: u32 = 64;
    /// The IP method is not supported.
    pub const IP_METHOD_UNSUPPORTED: u32 = 65;
    /// The peer could not be found.
    pub const PEER_NOT_FOUND: u32 = 67;
}

/// `NMActiveConnectionState` values.
pub(super) mod active_state {
    /// Activated.
    pub const ACTIVATED: u32 = 2;
    /// Deactivated.
    pub const DEACTIVATED: u32 = 4;
}

/// `NMActiveConnectionStateReason` values the mapping uses.
mod active_reason {
    /// The IP configuration was invalid.
    pub const IP_CONFIG_INVALID: u32 = 5;
    /// Secrets were required but not provided.
    pub const NO_SECRETS: u32 = 9;
    /// The authentication failed.
    pub const LOGIN_FAILED: u32 = 10;
}

/// Something seen about the activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Observation {
    /// A device state: from a `StateChanged` signal (`ours` unknown) or a poll (`ours` = whether
    /// the device's active connection is this activation).
    Device {
        /// `NMDeviceState`.
        state: u32,
        /// `NMDeviceStateReason`.
        reason: u32,
        /// Whether the device is running this activation, when known.
        ours: Option<bool>,
    },
    /// The active connection's state, with its reason when a signal carried one.
    Active {
        /// `NMActiveConnectionState`.
        state: u32,
        /// `NMActiveConnectionStateReason`.
        reason: Option<u32>,
    },
    /// The active-connection object is gone (NetworkManager removes it after deactivating).
    ActiveGone,
}

/// Where the activation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Still going.
    Pending,
    /// Connected, with an address.
    Activated,
    /// Failed; [`ActivationTracker::failure`] says how.
    Failed,
}

/// Folds observations into stages and a verdict.
#[derive(Debug, Default)]
pub(super) struct ActivationTracker {
    /// Set once a state of this activation was seen (the device left the previous connection).
    armed: bool,
    reached: Option<JoinStage>,
    device_reason: Option<u32>,
    active_reason: Option<u32>,
    verdict: Option<Verdict>,
}

impl ActivationTracker {
    /// A tracker for an activation just requested.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// The last stage reached.
    pub(super) fn last_stage(&self) -> Option<JoinStage> {
        self.reached
    }

    /// Takes one observation; returns the stages newly reached (in order) and the verdict. Once
    /// decided, the verdict does not change.
    pub(super) fn observe(&mut self, observation: Observation) -> (Vec<JoinStage>, Verdict) {
        if let Some(verdict) = self.verdict {
            return (Vec::new(), verdict);
        }
        let before = self.reached;
        let verdict = match observation {
            Observation::Device {
                state,
                reason,
                ours,
            } => self.on_device(state, reason, ours),
            Observation::Active { state, reason } => {
                if reason.is_some() {
                    self.active_reason = reason;
                }
                match state {
                    active_state::ACTIVATED => {
                        self.armed = true;
                        self.reach(JoinStage::GotIp);
                        Verdict::Activated
                    }
                    active_state::DEACTIVATED => Verdict::Failed,
                    // ACTIVATING does not arm: the device may still be taking the previous
                    // connection down.
                    _ => Verdict::Pending,
                }
            }
            Observation::ActiveGone => Verdict::Failed,
        };
        if verdict != Verdict::Pending {
            self.verdict = Some(verdict);
        }
        (stages_between(before, self.reached), verdict)
    }

    fn on_device(&mut self, state: u32, reason: u32, ours: Option<bool>) -> Verdict {
        use device_state as s;
        if ours == Some(false) {
            // The device runs another connection: before ours started, that is the previous
            // one going down; after, someone replaced ours.
            if !self.armed {
                return Verdict::Pending;
            }
            self.note_reason(reason);
            if self.device_reason.is_none() {
                self.device_reason = Some(reason::NEW_ACTIVATION);
            }
            return Verdict::Failed;
        }
        if ours == Some(true) {
            self.armed = true;
        }
        match state {
            s::PREPARE | s::CONFIG | s::NEED_AUTH => {
                self.armed = true;
                self.reach(JoinStage::Associating);
                Verdict::Pending
            }
            s::IP_CONFIG => {
                self.armed = true;
                self.reach(JoinStage::Authenticated);
                Verdict::Pending
            }
            s::IP_CHECK | s::SECONDARIES => {
                self.armed = true;
                self.reach(JoinStage::GotIp);
                Verdict::Pending
            }
            s::ACTIVATED if self.armed => {
                self.reach(JoinStage::GotIp);
                Verdict::Activated
            }
            s::FAILED if self.armed || reason != reason::NEW_ACTIVATION => {
                self.note_reason(reason);
                if self.armed {
                    Verdict::Failed
                } else {
                    Verdict::Pending
                }
            }
            s::DEACTIVATING | s::DISCONNECTED | s::UNAVAILABLE | s::UNMANAGED if self.armed => {
                self.note_reason(reason);
                Verdict::Failed
            }
            _ => Verdict::Pending,
        }
    }

    fn note_reason(&mut self, reason: u32) {
        // The first informative reason wins: NetworkManager goes FAILED(reason) → DISCONNECTED
        // (no reason).
        if self.device_reason.is_none() && reason != reason::NONE && reason != reason::UNKNOWN {
            self.device_reason = Some(reason);
        }
    }

    fn reach(&mut self, stage: JoinStage) {
        if self
            .reached
            .is_none_or(|reached| stage_index(reached) < stage_index(stage))
        {
            self.reached = Some(stage);
        }
    }

    /// The typed failure for a failed activation of network `name` (an SSID, or an APN).
    pub(super) fn failure(&self, name: &str) -> JoinFailure {
        failure_for(self.device_reason, self.active_reason, self.reached, name)
    }
}

const STAGES: [JoinStage; 5] = [
    JoinStage::Associating,
    JoinStage::Authenticated,
    JoinStage::GotIp,
    JoinStage::InternetReachable,
    JoinStage::DpsReachable,
];

fn stage_index(stage: JoinStage) -> usize {
    STAGES
        .iter()
        .position(|s| *s == stage)
        .unwrap_or(STAGES.len())
}

/// The stages after `from` up to and including `to`.
pub(super) fn stages_between(from: Option<JoinStage>, to: Option<JoinStage>) -> Vec<JoinStage> {
    let start = from.map_or(0, |stage| stage_index(stage) + 1);
    let end = to.map_or(0, |stage| stage_index(stage) + 1);
    STAGES
        .get(start..end.max(start))
        .map(<[JoinStage]>::to_vec)
        .unwrap_or_default()
}

/// The typed failure for NetworkManager's reasons; without an informative reason, the stage
/// the activation stopped at decides.
pub(super) fn failure_for(
    device_reason: Option<u32>,
    active_reason: Option<u32>,
    last_stage: Option<JoinStage>,
    name: &str,
) -> JoinFailure {
    let ssid = name.to_owned();
    let by_device = device_reason.and_then(|code| match code {
        reason::NO_SECRETS..=reason::SUPPLICANT_TIMEOUT => {
            Some(JoinFailure::WifiAuthFailed { ssid: ssid.clone() })
        }
        reason::SSID_NOT_FOUND
        | reason::PEER_NOT_FOUND
        | reason::CARRIER
        | reason::GSM_APN_FAILED..=reason::GSM_PIN_CHECK_FAILED
        | reason::GSM_SIM_NOT_INSERTED..=reason::GSM_SIM_WRONG => {
            Some(JoinFailure::NetworkNotFound { ssid: ssid.clone() })
        }
        reason::IP_CONFIG_UNAVAILABLE
        | reason::IP_CONFIG_EXPIRED
        | reason::DHCP_START_FAILED..=reason::DHCP_FAILED
        | reason::AUTOIP_START_FAILED..=reason::AUTOIP_FAILED
        | reason::IP_ADDRESS_DUPLICATE
        | reason::IP_METHOD_UNSUPPORTED => Some(JoinFailure::DhcpFailed { ssid: ssid.clone() }),
        _ => None,
    });
    if let Some(failure) = by_device {
        return failure;
    }
    let by_active = active_reason.and_then(|code| match code {
        active_reason::NO_SECRETS | active_reason::LOGIN_FAILED => {
            Some(JoinFailure::WifiAuthFailed { ssid: ssid.clone() })
        }
        active_reason::IP_CONFIG_INVALID => Some(JoinFailure::DhcpFailed { ssid: ssid.clone() }),
        _ => None,
    });
    if let Some(failure) = by_active {
        return failure;
    }
    match last_stage {
        None => JoinFailure::NetworkNotFound { ssid },
        // Associated but never got to IP configuration: the handshake failed.
        Some(JoinStage::Associating) => JoinFailure::WifiAuthFailed { ssid },
        Some(JoinStage::Authenticated) => JoinFailure::DhcpFailed { ssid },
        Some(_) => JoinFailure::NoInternet { ssid },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use device_state as s;

    fn device(state: u32, reason: u32, ours: Option<bool>) -> Observation {
        Observation::Device {
            state,
            reason,
            ours,
        }
    }

    fn run(observations: &[Observation]) -> (Vec<JoinStage>, Verdict, ActivationTracker) {
        let mut tracker = ActivationTracker::new();
        let mut stages = Vec::new();
        let mut verdict = Verdict::Pending;
        for observation in observations {
            let (new, v) = tracker.observe(*observation);
            stages.extend(new);
            verdict = v;
        }
        (stages, verdict, tracker)
    }

    #[test]
    fn a_successful_activation_reports_every_stage_up_to_got_ip() {
        let (stages, verdict, _) = run(&[
            // The previous connection goes down first: ignored.
            device(s::DEACTIVATING, reason::NEW_ACTIVATION, None),
            device(s::DISCONNECTED, reason::NEW_ACTIVATION, None),
            device(s::PREPARE, 0, None),
            device(s::CONFIG, 0, None),
            device(s::IP_CONFIG, 0, None),
            device(s::IP_CHECK, 0, None),
            device(s::ACTIVATED, 0, None),
        ]);
        assert_eq!(verdict, Verdict::Activated);
        assert_eq!(
            stages,
            [
                JoinStage::Associating,
                JoinStage::Authenticated,
                JoinStage::GotIp
            ]
        );
    }

    #[test]
    fn skipped_states_still_report_the_stages_in_order() {
        let (stages, verdict, _) = run(&[device(s::ACTIVATED, 0, Some(true))]);
        assert_eq!(verdict, Verdict::Activated);
        assert_eq!(stages.len(), 3);
        // An ACTIVATED device running another connection is not ours.
        let (stages, verdict, _) = run(&[device(s::ACTIVATED, 0, Some(false))]);
        assert_eq!((stages.len(), verdict), (0, Verdict::Pending));
    }

    #[test]
    fn reasons_map_to_typed_failures() {
        let cases = [
            (reason::NO_SECRETS, "wifi_auth_failed"),
            (10, "wifi_auth_failed"),
            (reason::SSID_NOT_FOUND, "network_not_found"),
            (reason::IP_CONFIG_UNAVAILABLE, "dhcp_failed"),
            (reason::DHCP_FAILED, "dhcp_failed"),
            (reason::GSM_APN_FAILED, "network_not_found"),
        ];
        for (code, expected) in cases {
            let (_, verdict, tracker) = run(&[
                device(s::PREPARE, 0, None),
                device(s::FAILED, code, None),
                device(s::DISCONNECTED, 0, None),
            ]);
            assert_eq!(verdict, Verdict::Failed);
            assert_eq!(tracker.failure("site").code(), expected, "reason {code}");
        }
    }

    #[test]
    fn without_a_reason_the_stage_decides() {
        let (_, verdict, tracker) = run(&[
            device(s::CONFIG, 0, None),
            device(s::IP_CONFIG, 0, None),
            device(s::DISCONNECTED, 0, None),
        ]);
        assert_eq!(verdict, Verdict::Failed);
        assert_eq!(tracker.failure("x").code(), "dhcp_failed");
        // The active connection's reason is used when the device gave none.
        let (_, _, tracker) = run(&[
            device(s::CONFIG, 0, None),
            Observation::Active {
                state: active_state::DEACTIVATED,
                reason: Some(active_reason::NO_SECRETS),
            },
        ]);
        assert_eq!(tracker.failure("x").code(), "wifi_auth_failed");
        let (_, verdict, tracker) = run(&[Observation::ActiveGone]);
        assert_eq!(verdict, Verdict::Failed);
        assert_eq!(tracker.failure("x").code(), "network_not_found");
    }

    #[test]
    fn another_activation_taking_the_device_fails_ours() {
        let (_, verdict, _) = run(&[
            device(s::CONFIG, 0, Some(true)),
            device(s::CONFIG, 0, Some(false)),
        ]);
        assert_eq!(verdict, Verdict::Failed);
    }

    #[test]
    fn the_verdict_sticks() {
        let mut tracker = ActivationTracker::new();
        tracker.observe(device(s::PREPARE, 0, None));
        assert_eq!(
            tracker
                .observe(device(s::FAILED, reason::NO_SECRETS, None))
                .1,
            Verdict::Failed
        );
        assert_eq!(
            tracker.observe(device(s::ACTIVATED, 0, Some(true))).1,
            Verdict::Failed
        );
        assert_eq!(tracker.last_stage(), Some(JoinStage::Associating));
    }

    #[test]
    fn stages_between_is_inclusive_of_the_target() {
        assert_eq!(
            stages_between(Some(JoinStage::Associating), Some(JoinStage::GotIp)),
            [JoinStage::Authenticated, JoinStage::GotIp]
        );
        assert!(stages_between(Some(JoinStage::GotIp), Some(JoinStage::Associating)).is_empty());
        assert!(stages_between(None, None).is_empty());
    }
}
