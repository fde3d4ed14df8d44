//! Handshake handling: PoP attempt counting before answering, lockout, confirmation.

use fieldlink_protocol::PROTOCOL_VERSION;
use fieldlink_protocol::message::{
    ClientFinish, ClientHello, ErrorCode, HandshakeRefused, ProtocolError, Response, Sealed,
    SecureMessage, WireMessage,
};
use fieldlink_protocol::session::DeviceHandshake;

use super::lockout::Admission;
use super::{DeviceMachine, Link, Output, convert};

impl DeviceMachine {
    pub(super) fn on_message(&mut self, message: WireMessage, now_ms: u64, out: &mut Vec<Output>) {
        match message {
            WireMessage::ClientHello(hello) => self.on_client_hello(&hello, now_ms, out),
            WireMessage::ClientFinish(finish) => self.on_client_finish(&finish, now_ms, out),
            WireMessage::Sealed(record) => self.on_sealed(&record, now_ms, out),
            WireMessage::DeviceHello(_) | WireMessage::HandshakeRefused(_) => {
                // Device-to-installer messages have no business arriving here.
                self.on_undecodable("a device-side message arrived from the installer", out);
            }
        }
    }

    pub(super) fn on_undecodable(&mut self, reason: &str, out: &mut Vec<Output>) {
        tracing::debug!(reason, "undecodable message from the installer");
        if matches!(self.link, Link::Open(_)) {
            self.send_secure(
                SecureMessage::Response(Response::Error(ProtocolError::new(
                    ErrorCode::MalformedMessage,
                ))),
                out,
            );
        } else {
            self.link = Link::Idle;
            out.push(refusal(ErrorCode::MalformedMessage, None));
        }
    }

    fn on_client_hello(&mut self, hello: &ClientHello, now_ms: u64, out: &mut Vec<Output>) {
        // A new hello starts over: any earlier session on this link is gone.
        self.link = Link::Idle;
        self.pending_scan = None;
        if hello.version != PROTOCOL_VERSION {
            out.push(Output::Send {
                message: WireMessage::HandshakeRefused(HandshakeRefused {
                    code: ErrorCode::UnsupportedVersion,
                    retry_after_s: None,
                    supported_version: Some(PROTOCOL_VERSION),
                }),
                not_before_ms: 0,
            });
            return;
        }
        let policy = self.config.lockout;
        match policy.admit(&mut self.state.pop_attempts, now_ms) {
            Admission::Locked { retry_after } => {
                let retry_after_s = convert::ceil_secs(crate::clock::duration_ms(retry_after));
                out.push(refusal(ErrorCode::DeviceLocked, Some(retry_after_s)));
            }
            Admission::Admitted {
                attempts_left,
                answer_at_ms,
                attempt,
            } => {
                // Durable before any answer leaves the device.
                out.push(self.persist());
                let info = self.device_info(now_ms);
                match DeviceHandshake::respond(
                    &self.pop,
                    hello,
                    &info,
                    attempts_left,
                    &mut self.rng,
                ) {
                    Ok((pending, device_hello)) => {
                        tracing::info!(attempt, attempts_left, "answering a handshake");
                        self.link = Link::Pending(Box::new(pending));
                        out.push(Output::Send {
                            message: WireMessage::DeviceHello(device_hello),
                            not_before_ms: answer_at_ms,
                        });
                    }
                    Err(error) => {
                        tracing::debug!(%error, "unusable ClientHello");
                        out.push(refusal(error.error_code(), None));
                    }
                }
            }
        }
    }

    fn on_client_finish(&mut self, finish: &ClientFinish, now_ms: u64, out: &mut Vec<Output>) {
        let Link::Pending(pending) = std::mem::replace(&mut self.link, Link::Idle) else {
            tracing::debug!("ClientFinish without a pending handshake");
            out.push(Output::CloseLink);
            return;
        };
        match pending.confirm(finish) {
            Ok((channel, first)) => {
                let policy = self.config.lockout;
                policy.confirmed(&mut self.state.pop_attempts);
                out.push(self.persist());
                self.link = Link::Open(Box::new(channel));
                tracing::info!("secure session open");
                self.on_secure_message(first, now_ms, out);
            }
            Err(error) => {
                // The attempt stays counted; the installer has already seen the mismatch.
                tracing::info!(code = error.code(), "handshake confirmation failed");
                out.push(Output::CloseLink);
            }
        }
    }

    fn on_sealed(&mut self, record: &Sealed, now_ms: u64, out: &mut Vec<Output>) {
        let Link::Open(channel) = &mut self.link else {
            tracing::debug!("sealed record without a session");
            out.push(Output::CloseLink);
            return;
        };
        match channel.open(record) {
            Ok(message) => self.on_secure_message(message, now_ms, out),
            Err(error) => {
                // Replayed, reordered or tampered: the session cannot be trusted any more.
                tracing::warn!(
                    code = error.code(),
                    "rejected a sealed record; closing the session"
                );
                self.link = Link::Idle;
                out.push(Output::CloseLink);
            }
        }
    }

    fn on_secure_message(&mut self, message: SecureMessage, now_ms: u64, out: &mut Vec<Output>) {
        match message {
            SecureMessage::Request(request) => self.on_request(request, now_ms, out),
            SecureMessage::Response(_) | SecureMessage::Event(_) => {
                self.respond_error(ProtocolError::new(ErrorCode::MalformedMessage), out);
            }
        }
    }
}

fn refusal(code: ErrorCode, retry_after_s: Option<u32>) -> Output {
    Output::Send {
        message: WireMessage::HandshakeRefused(HandshakeRefused {
            code,
            retry_after_s,
            supported_version: None,
        }),
        not_before_ms: 0,
    }
}
