//! Counters kept by the in-memory radio.

use std::time::Duration;

use super::Direction;

/// What crossed the in-memory radio, summed over connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Connections opened.
    pub connections: u32,
    /// Client-initiated round trips: an installer message that starts after a device frame (or
    /// as the first frame of a connection) counts as one.
    pub round_trips: u32,
    /// Frames transmitted installer → device (delivered or dropped by a fault).
    pub frames_to_peripheral: u32,
    /// Frames transmitted device → installer.
    pub frames_to_central: u32,
    /// Bytes (ATT payload) installer → device.
    pub bytes_to_peripheral: u64,
    /// Bytes (ATT payload) device → installer.
    pub bytes_to_central: u64,
    /// Messages started installer → device.
    pub messages_to_peripheral: u32,
    /// Messages started device → installer.
    pub messages_to_central: u32,
    /// Frames dropped by faults.
    pub dropped_frames: u32,
    /// Modelled air time: every transmitted frame occupies one connection interval.
    pub air_time: Duration,
}

impl LinkStats {
    /// Records one transmitted frame.
    pub(super) fn record(
        &mut self,
        direction: Direction,
        len: usize,
        starts_message: bool,
        starts_round_trip: bool,
        interval: Duration,
    ) {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        match direction {
            Direction::ToPeripheral => {
                self.frames_to_peripheral += 1;
                self.bytes_to_peripheral += len;
                self.messages_to_peripheral += u32::from(starts_message);
            }
            Direction::ToCentral => {
                self.frames_to_central += 1;
                self.bytes_to_central += len;
                self.messages_to_central += u32::from(starts_message);
            }
        }
        self.round_trips += u32::from(starts_round_trip);
        self.air_time = self.air_time.saturating_add(interval);
    }
}
