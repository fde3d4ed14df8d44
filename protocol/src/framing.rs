//! Segmentation and reassembly of messages over GATT writes and notifications.
//!
//! Every frame is one ATT write (installer → device) or one notification (device → installer)
//! and is at most `min(ATT_MTU − 3, 512)` bytes. Frame layout:
//!
//! ```text
//! BEGIN frame:         [flags][seq][total_len u16 BE][data…]
//! continuation frame:  [flags][seq][data…]
//! flags: 0x01 BEGIN, 0x02 END (both set for a one-frame message); other bits must be 0.
//! seq:   u8, +1 (wrapping) for every frame sent in that direction, across messages.
//! ```
//!
//! The receiver ([`Reassembler`]) checks the sequence number of every frame: one behind (or up
//! to 127 behind) is a duplicate and is ignored; any other jump is a gap. After any error except
//! [`FrameError::Duplicate`] it discards the partial message and waits for the next BEGIN frame.

use std::fmt;

/// Smallest ATT MTU (Bluetooth Core, LE).
pub const MIN_ATT_MTU: u16 = 23;
/// Largest ATT MTU.
pub const MAX_ATT_MTU: u16 = 517;
/// Largest attribute value, hence largest frame.
pub const MAX_ATTRIBUTE_LEN: usize = 512;
/// Largest message (reassembled payload) in bytes.
pub const MAX_MESSAGE_LEN: usize = 8 * 1024;
/// Default time allowed to receive all frames of one message.
pub const DEFAULT_REASSEMBLY_DEADLINE_MS: u64 = 30_000;

/// Flag: first frame of a message (carries the total length).
pub const FLAG_BEGIN: u8 = 0x01;
/// Flag: last frame of a message.
pub const FLAG_END: u8 = 0x02;
/// Header bytes of a BEGIN frame.
pub const BEGIN_HEADER_LEN: usize = 4;
/// Header bytes of a continuation frame.
pub const CONTINUATION_HEADER_LEN: usize = 2;

/// The largest frame for an ATT MTU (clamped to 23..=517).
pub fn max_frame_len(mtu: u16) -> usize {
    (usize::from(mtu.clamp(MIN_ATT_MTU, MAX_ATT_MTU)) - 3).min(MAX_ATTRIBUTE_LEN)
}

/// How many frames a message of `len` bytes takes at this MTU.
pub fn frame_count(mtu: u16, len: usize) -> usize {
    let frame = max_frame_len(mtu);
    let first = frame - BEGIN_HEADER_LEN;
    if len <= first {
        1
    } else {
        1 + (len - first).div_ceil(frame - CONTINUATION_HEADER_LEN)
    }
}

/// A framing failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame that was already received; it is ignored and nothing else changes.
    #[error("duplicate frame (sequence {seq}) ignored")]
    Duplicate {
        /// Its sequence number.
        seq: u8,
    },
    /// Frames are missing (or arrived out of order).
    #[error("frames missing: expected sequence {expected}, got {got}")]
    Gap {
        /// The sequence number expected.
        expected: u8,
        /// The one received.
        got: u8,
    },
    /// The message is larger than allowed.
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Declared or given length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The message was not complete before its reassembly deadline.
    #[error("message not complete before its reassembly deadline")]
    Timeout,
    /// A frame that cannot be parsed.
    #[error("malformed frame: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// A continuation frame with no message in progress.
    #[error("continuation frame (sequence {seq}) without a BEGIN frame")]
    MissingBegin {
        /// Its sequence number.
        seq: u8,
    },
    /// A BEGIN frame arrived before the previous message's END.
    #[error("message truncated: {received} of {declared} bytes before a new BEGIN frame")]
    Truncated {
        /// Declared length of the abandoned message.
        declared: usize,
        /// Bytes received of it.
        received: usize,
    },
    /// The data does not add up to the declared length.
    #[error("message length mismatch: declared {declared} bytes, received {received}")]
    LengthMismatch {
        /// Declared length.
        declared: usize,
        /// Bytes received.
        received: usize,
    },
}

impl FrameError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Duplicate { .. } => "duplicate",
            Self::Gap { .. } => "gap",
            Self::TooLarge { .. } => "too_large",
            Self::Timeout => "timeout",
            Self::Malformed { .. } => "malformed",
            Self::MissingBegin { .. } => "missing_begin",
            Self::Truncated { .. } => "truncated",
            Self::LengthMismatch { .. } => "length_mismatch",
        }
    }
}

/// Splits messages into frames for one direction of one connection.
#[derive(Debug, Clone)]
pub struct Segmenter {
    frame_len: usize,
    next_seq: u8,
}

impl Segmenter {
    /// A segmenter for this ATT MTU (clamped to 23..=517), starting at sequence 0.
    pub fn new(mtu: u16) -> Self {
        Self {
            frame_len: max_frame_len(mtu),
            next_seq: 0,
        }
    }

    /// Adopts a new MTU (after an MTU exchange); the sequence continues.
    pub fn set_mtu(&mut self, mtu: u16) {
        self.frame_len = max_frame_len(mtu);
    }

    /// Largest frame this segmenter produces.
    pub fn max_frame_len(&self) -> usize {
        self.frame_len
    }

    /// Sequence number of the next frame.
    pub fn next_seq(&self) -> u8 {
        self.next_seq
    }

    /// Frames for `msg`, in sending order.
    pub fn segment(&mut self, msg: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
        if msg.len() > MAX_MESSAGE_LEN {
            return Err(FrameError::TooLarge {
                len: msg.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        let total = u16::try_from(msg.len()).expect("MAX_MESSAGE_LEN fits u16");
        let mut frames = Vec::with_capacity(frame_count(MAX_ATT_MTU, msg.len()));
        let first_len = msg.len().min(self.frame_len - BEGIN_HEADER_LEN);
        let (first, mut rest) = msg.split_at(first_len);
        let mut frame = Vec::with_capacity(BEGIN_HEADER_LEN + first.len());
        let end = if rest.is_empty() { FLAG_END } else { 0 };
        frame.extend_from_slice(&[FLAG_BEGIN | end, self.take_seq()]);
        frame.extend_from_slice(&total.to_be_bytes());
        frame.extend_from_slice(first);
        frames.push(frame);
        while !rest.is_empty() {
            let take = rest.len().min(self.frame_len - CONTINUATION_HEADER_LEN);
            let (chunk, tail) = rest.split_at(take);
            rest = tail;
            let end = if rest.is_empty() { FLAG_END } else { 0 };
            let mut frame = Vec::with_capacity(CONTINUATION_HEADER_LEN + chunk.len());
            frame.extend_from_slice(&[end, self.take_seq()]);
            frame.extend_from_slice(chunk);
            frames.push(frame);
        }
        Ok(frames)
    }

    fn take_seq(&mut self) -> u8 {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        seq
    }
}

struct Partial {
    declared: usize,
    data: Vec<u8>,
    started_ms: u64,
}

/// Reassembles frames from one direction of one connection.
pub struct Reassembler {
    max_message: usize,
    deadline_ms: u64,
    expected_seq: Option<u8>,
    partial: Option<Partial>,
}

impl fmt::Debug for Reassembler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reassembler")
            .field("max_message", &self.max_message)
            .field("deadline_ms", &self.deadline_ms)
            .field("expected_seq", &self.expected_seq)
            .field(
                "partial_len",
                &self.partial.as_ref().map(|p| (p.data.len(), p.declared)),
            )
            .finish()
    }
}

impl Reassembler {
    /// Accepts messages of at most `max_message` bytes (capped at [`MAX_MESSAGE_LEN`]), each
    /// completed within `deadline_ms` of its BEGIN frame.
    pub fn new(max_message: usize, deadline_ms: u64) -> Self {
        Self {
            max_message: max_message.min(MAX_MESSAGE_LEN),
            deadline_ms,
            expected_seq: None,
            partial: None,
        }
    }

    /// When the message in progress expires (`None` when idle); wake up then and call
    /// [`Reassembler::check_deadline`].
    pub fn deadline(&self) -> Option<u64> {
        self.partial
            .as_ref()
            .map(|p| p.started_ms.saturating_add(self.deadline_ms))
    }

    /// Whether no message is in progress.
    pub fn is_idle(&self) -> bool {
        self.partial.is_none()
    }

    /// Forgets everything (new connection).
    pub fn reset(&mut self) {
        self.expected_seq = None;
        self.partial = None;
    }

    /// Fails with [`FrameError::Timeout`] (and discards the partial message) once the deadline
    /// of the message in progress has passed.
    pub fn check_deadline(&mut self, now_ms: u64) -> Result<(), FrameError> {
        match self.deadline() {
            Some(deadline) if now_ms >= deadline => {
                self.reset();
                Err(FrameError::Timeout)
            }
            _ => Ok(()),
        }
    }

    /// Takes one frame; returns the message it completes, if any.
    pub fn push(&mut self, frame: &[u8], now_ms: u64) -> Result<Option<Vec<u8>>, FrameError> {
        let result = self.accept(frame, now_ms);
        if matches!(result, Err(ref e) if !matches!(e, FrameError::Duplicate { .. })) {
            self.reset();
        }
        result
    }

    fn accept(&mut self, frame: &[u8], now_ms: u64) -> Result<Option<Vec<u8>>, FrameError> {
        let [flags, seq, body @ ..] = frame else {
            return Err(FrameError::Malformed {
                reason: "shorter than the 2-byte header",
            });
        };
        let (flags, seq) = (*flags, *seq);
        if flags & !(FLAG_BEGIN | FLAG_END) != 0 {
            return Err(FrameError::Malformed {
                reason: "reserved flag bits set",
            });
        }
        if frame.len() > MAX_ATTRIBUTE_LEN {
            return Err(FrameError::Malformed {
                reason: "longer than 512 bytes",
            });
        }
        self.check_deadline(now_ms)?;
        match self.expected_seq {
            Some(expected) if seq != expected => {
                return if seq.wrapping_sub(expected) >= 128 {
                    Err(FrameError::Duplicate { seq })
                } else {
                    Err(FrameError::Gap { expected, got: seq })
                };
            }
            None if flags & FLAG_BEGIN == 0 => return Err(FrameError::MissingBegin { seq }),
            _ => {}
        }
        self.expected_seq = Some(seq.wrapping_add(1));
        let data = if flags & FLAG_BEGIN != 0 {
            if let Some(partial) = &self.partial {
                return Err(FrameError::Truncated {
                    declared: partial.declared,
                    received: partial.data.len(),
                });
            }
            let [hi, lo, data @ ..] = body else {
                return Err(FrameError::Malformed {
                    reason: "BEGIN frame without its length",
                });
            };
            let declared = usize::from(u16::from_be_bytes([*hi, *lo]));
            if declared > self.max_message {
                return Err(FrameError::TooLarge {
                    len: declared,
                    max: self.max_message,
                });
            }
            self.partial = Some(Partial {
                declared,
                data: Vec::with_capacity(declared),
                started_ms: now_ms,
            });
            data
        } else {
            body
        };
        let Some(partial) = self.partial.as_mut() else {
            return Err(FrameError::MissingBegin { seq });
        };
        let received = partial.data.len() + data.len();
        if received > partial.declared {
            return Err(FrameError::LengthMismatch {
                declared: partial.declared,
                received,
            });
        }
        partial.data.extend_from_slice(data);
        if flags & FLAG_END == 0 {
            return Ok(None);
        }
        if received != partial.declared {
            return Err(FrameError::LengthMismatch {
                declared: partial.declared,
                received,
            });
        }
        Ok(self.partial.take().map(|p| p.data))
    }
}

#[cfg(test)]
mod tests;
