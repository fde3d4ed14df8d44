//! The link liveness probe of an open connection.
//!
//! Some stacks never report a remote disconnect (BlueZoo; a stalled `events()` stream on BlueZ,
//! btleplug #332), and while the device registers with DPS the installer writes nothing, so a
//! failing write cannot reveal it either. Every [`LivenessProbe::interval`] without traffic from
//! the peripheral, the probe asks the platform whether the link is up and reads the readable TX
//! characteristic (fieldlink devices answer with their 4 bytes of service data; the read reaches
//! the device's GATT server, so a dead device fails it). A `false` from the platform is a lost
//! link at once; failed or unanswered probes are a lost link once nothing has proved the link
//! alive for [`LivenessProbe::timeout`]. Real radios also end the link on their supervision
//! timeout; the probe bounds detection even when that event is lost.

use std::{sync::Mutex, time::Duration};

use ::btleplug::{
    api::{CharPropFlags, Characteristic, Peripheral as _},
    platform::Peripheral,
};
use tokio::time::Instant;

use crate::transport::DisconnectReason;

/// How an open connection checks that its peripheral is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessProbe {
    /// How often to probe while the peripheral is silent (any notification counts as proof of
    /// life, so a busy link is not probed).
    pub interval: Duration,
    /// The deadline: the link is lost once no probe or notification has proved it alive for this
    /// long (and the latest probe failed). Also bounds each probe.
    pub timeout: Duration,
    /// Whether to read the TX characteristic (when it is readable) besides asking the platform
    /// for the connection state. The platform's answer alone misses a dead peer on BlueZoo.
    pub read: bool,
}

impl Default for LivenessProbe {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
            read: true,
        }
    }
}

/// When the peripheral last proved the link alive.
#[derive(Debug)]
pub(super) struct LastAlive(Mutex<Instant>);

impl LastAlive {
    pub(super) fn now() -> Self {
        Self(Mutex::new(Instant::now()))
    }

    pub(super) fn touch(&self) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
    }

    fn since(&self) -> Duration {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .elapsed()
    }
}

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Alive,
    /// The platform says the link is down.
    Down,
    /// An error or no answer in time.
    Failed,
}

/// The characteristic to read, if reading is enabled and TX allows it.
pub(super) fn readable(tx: &Characteristic, probe: &LivenessProbe) -> Option<Characteristic> {
    (probe.read && tx.properties.contains(CharPropFlags::READ)).then(|| tx.clone())
}

async fn probe_once(
    peripheral: &Peripheral,
    read: Option<&Characteristic>,
    bound: Duration,
) -> Probe {
    let check = async {
        match peripheral.is_connected().await {
            Ok(true) => {}
            Ok(false) => return Probe::Down,
            Err(_) => return Probe::Failed,
        }
        match read {
            Some(characteristic) => match peripheral.read(characteristic).await {
                Ok(_) => Probe::Alive,
                Err(error) => {
                    tracing::debug!(%error, "liveness read failed");
                    Probe::Failed
                }
            },
            None => Probe::Alive,
        }
    };
    tokio::time::timeout(bound, check)
        .await
        .unwrap_or(Probe::Failed)
}

/// Whether a failed probe ends the link, given how long ago it was last proved alive.
fn verdict(probe: Probe, silent_for: Duration, timeout: Duration) -> Option<DisconnectReason> {
    match probe {
        Probe::Alive => None,
        Probe::Down => Some(DisconnectReason::LinkLoss),
        Probe::Failed => (silent_for >= timeout).then_some(DisconnectReason::LinkLoss),
    }
}

/// Probes until the link is found lost; never returns while it is alive.
pub(super) async fn watch(
    peripheral: &Peripheral,
    read: Option<&Characteristic>,
    config: LivenessProbe,
    call_timeout: Duration,
    last_alive: &LastAlive,
) -> DisconnectReason {
    let bound = config.timeout.min(call_timeout);
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.reset();
    loop {
        ticks.tick().await;
        if last_alive.since() < config.interval {
            continue;
        }
        let probe = probe_once(peripheral, read, bound).await;
        if probe == Probe::Alive {
            last_alive.touch();
            continue;
        }
        let silent_for = last_alive.since();
        if let Some(reason) = verdict(probe, silent_for, config.timeout) {
            tracing::debug!(?probe, ?silent_for, "liveness probe: link lost");
            return reason;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_platform_down_is_lost_at_once_and_failures_only_past_the_deadline() {
        let deadline = Duration::from_secs(3);
        assert_eq!(
            verdict(Probe::Alive, Duration::from_secs(60), deadline),
            None
        );
        assert_eq!(
            verdict(Probe::Down, Duration::ZERO, deadline),
            Some(DisconnectReason::LinkLoss)
        );
        assert_eq!(
            verdict(Probe::Failed, Duration::from_secs(2), deadline),
            None
        );
        assert_eq!(
            verdict(Probe::Failed, Duration::from_secs(3), deadline),
            Some(DisconnectReason::LinkLoss)
        );
    }

    #[test]
    fn only_a_readable_tx_is_read_and_only_when_enabled() {
        use fieldlink_protocol::gatt::{SERVICE_UUID, TX_CHAR_UUID};
        let tx = |properties| Characteristic {
            uuid: uuid::Uuid::from_u128(TX_CHAR_UUID),
            service_uuid: uuid::Uuid::from_u128(SERVICE_UUID),
            properties,
            descriptors: std::collections::BTreeSet::new(),
        };
        let on = LivenessProbe::default();
        let off = LivenessProbe { read: false, ..on };
        let readable_tx = tx(CharPropFlags::NOTIFY | CharPropFlags::READ);
        assert_eq!(readable(&readable_tx, &on), Some(readable_tx.clone()));
        assert_eq!(readable(&readable_tx, &off), None);
        assert_eq!(readable(&tx(CharPropFlags::NOTIFY), &on), None);
    }

    #[tokio::test(start_paused = true)]
    async fn last_alive_measures_the_silence() {
        let alive = LastAlive::now();
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(alive.since() >= Duration::from_secs(2));
        alive.touch();
        assert!(alive.since() < Duration::from_millis(10));
    }
}
