//! Test helpers: an installer speaking the wire protocol over the link contract's channels, a
//! ticket signer, and a DPS emulator setup.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use fieldlink_device_agent::fleet::VirtualDevice;
use fieldlink_device_agent::link::PeripheralConnection;
use fieldlink_device_agent::store::TrustAnchorRecord;
use fieldlink_protocol::framing::{MAX_MESSAGE_LEN, Reassembler, Segmenter};
use fieldlink_protocol::message::{
    DeviceInfo, Event, HandshakeRefused, Request, Response, SecureMessage, WireMessage,
};
use fieldlink_protocol::payload::PopSecret;
use fieldlink_protocol::session::{ClientHandshake, SecureChannel, SessionError, SessionSecret};
use fieldlink_protocol::ticket::{SignedTicket, TicketClaims, TicketSigner};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::mpsc;

pub const KEY_ID: &str = "api-test";

pub fn signer() -> TicketSigner {
    TicketSigner::new(KEY_ID, SigningKey::from_bytes(&[42; 32]))
}

pub fn anchors() -> Vec<TrustAnchorRecord> {
    vec![TrustAnchorRecord::new(KEY_ID, &signer().verifying_key())]
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A ticket for `registration_id` valid around `now_unix`.
pub fn ticket_at(
    registration_id: &str,
    id_scope: &str,
    global_endpoint: &str,
    nonce: u8,
    now_unix: i64,
) -> SignedTicket {
    signer().sign(&TicketClaims {
        key_id: KEY_ID.into(),
        registration_id: registration_id.into(),
        id_scope: id_scope.into(),
        global_endpoint: global_endpoint.into(),
        tenant: "acme".into(),
        dps_instance: "dps-a".into(),
        not_before: now_unix - 60,
        expires_at: now_unix + 3600,
        nonce: [nonce; 16],
    })
}

/// Why a handshake did not open a session.
#[derive(Debug)]
pub enum HandshakeFailure {
    Refused(HandshakeRefused),
    Session(SessionError),
    Closed,
}

/// An installer over one connection.
pub struct Installer {
    to_device: Option<mpsc::Sender<Vec<u8>>>,
    from_device: mpsc::Receiver<Vec<u8>>,
    segmenter: Segmenter,
    reassembler: Reassembler,
    channel: Option<SecureChannel>,
    inbox: VecDeque<SecureMessage>,
    rng: StdRng,
    pub frames_sent: usize,
    pub frames_received: usize,
    pub max_frame_received: usize,
}

pub const WAIT: Duration = Duration::from_secs(30);

impl Installer {
    /// Connects to `device` at this ATT MTU.
    pub fn connect(device: &VirtualDevice, mtu: u16) -> Self {
        let (to_device, from_central) = mpsc::channel(64);
        let (to_central, from_device) = mpsc::channel(64);
        device.serve(PeripheralConnection {
            mtu,
            from_central,
            to_central,
        });
        Self {
            to_device: Some(to_device),
            from_device,
            segmenter: Segmenter::new(mtu),
            reassembler: Reassembler::new(MAX_MESSAGE_LEN, 30_000),
            channel: None,
            inbox: VecDeque::new(),
            rng: StdRng::from_entropy(),
            frames_sent: 0,
            frames_received: 0,
            max_frame_received: 0,
        }
    }

    /// Drops the link.
    pub fn disconnect(&mut self) {
        self.to_device = None;
    }

    /// Seals `request`, writes it and hangs up at once (both channel ends dropped), without
    /// waiting for the answer.
    pub async fn request_and_hang_up(mut self, request: Request) {
        let sealed = self
            .channel
            .as_mut()
            .unwrap()
            .seal(&SecureMessage::Request(request))
            .unwrap();
        self.send(&WireMessage::Sealed(sealed)).await;
    }

    pub async fn send(&mut self, message: &WireMessage) {
        let frames = self.segmenter.segment(&message.encode()).unwrap();
        let Some(link) = &self.to_device else { return };
        for frame in frames {
            self.frames_sent += 1;
            if link.send(frame).await.is_err() {
                return;
            }
        }
    }

    /// The next wire message, or `None` if the link closed.
    pub async fn recv(&mut self) -> Option<WireMessage> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.from_device.recv())
                .await
                .expect("device answered in time")?;
            self.frames_received += 1;
            self.max_frame_received = self.max_frame_received.max(frame.len());
            if let Some(message) = self.reassembler.push(&frame, 0).unwrap() {
                return Some(WireMessage::decode(&message).unwrap());
            }
        }
    }

    /// RT1 + RT2 with `secret`; `first` rides with the finish.
    pub async fn handshake(
        &mut self,
        secret: SessionSecret,
        first: Request,
    ) -> Result<DeviceInfo, HandshakeFailure> {
        let (client, hello) = ClientHandshake::start(&secret, &mut self.rng);
        self.send(&WireMessage::ClientHello(hello)).await;
        let device_hello = match self.recv().await {
            Some(WireMessage::DeviceHello(hello)) => hello,
            Some(WireMessage::HandshakeRefused(refused)) => {
                return Err(HandshakeFailure::Refused(refused));
            }
            Some(other) => panic!("unexpected {other:?}"),
            None => return Err(HandshakeFailure::Closed),
        };
        let (mut channel, info, confirm) = client
            .finish(&device_hello)
            .map_err(HandshakeFailure::Session)?;
        let finish = confirm
            .finish(&mut channel, &SecureMessage::Request(first))
            .unwrap();
        self.channel = Some(channel);
        self.send(&WireMessage::ClientFinish(finish)).await;
        Ok(info)
    }

    pub async fn open(&mut self, pop: &PopSecret, first: Request) -> DeviceInfo {
        self.handshake(SessionSecret::Pop(pop.clone()), first)
            .await
            .unwrap()
    }

    /// The next sealed message (response or event), or `None` if the link closed.
    pub async fn next_secure(&mut self) -> Option<SecureMessage> {
        if let Some(message) = self.inbox.pop_front() {
            return Some(message);
        }
        let message = self.recv().await?;
        let WireMessage::Sealed(sealed) = message else {
            panic!("expected a sealed record, got {message:?}")
        };
        Some(self.channel.as_mut().unwrap().open(&sealed).unwrap())
    }

    /// The next response; events before it are kept for [`Installer::next_event`].
    pub async fn response(&mut self) -> Response {
        let mut skipped = VecDeque::new();
        loop {
            match self.next_secure().await.expect("link open") {
                SecureMessage::Response(response) => {
                    skipped.append(&mut self.inbox);
                    self.inbox = skipped;
                    return response;
                }
                other => skipped.push_back(other),
            }
        }
    }

    pub async fn request(&mut self, request: Request) -> Response {
        let sealed = self
            .channel
            .as_mut()
            .unwrap()
            .seal(&SecureMessage::Request(request))
            .unwrap();
        self.send(&WireMessage::Sealed(sealed)).await;
        self.response().await
    }

    /// The next event.
    pub async fn next_event(&mut self) -> Option<Event> {
        match self.next_secure().await? {
            SecureMessage::Event(event) => Some(event),
            SecureMessage::Response(response) => panic!("unexpected response {response:?}"),
            SecureMessage::Request(_) => panic!("request from the device"),
        }
    }

    /// Events until (and including) the first one `last` accepts.
    pub async fn events_until(&mut self, last: impl Fn(&Event) -> bool) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            let event = self.next_event().await.expect("link open");
            let done = last(&event);
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

/// Sum of `dps_emulator_http_requests_total` samples for an operation.
pub fn request_count(metrics: &str, operation: &str) -> u64 {
    let needle = format!("operation=\"{operation}\"");
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("dps_emulator_http_requests_total{") && line.contains(&needle)
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}
