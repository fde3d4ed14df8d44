//! Requests inside the secure session.

use fieldlink_protocol::message::{
    ErrorCode, NetworkConfig, ProtocolError, Request, Response, SecureMessage,
};
use fieldlink_protocol::ticket::SignedTicket;

use super::{DeviceMachine, Job, Output, Work, convert, staging};

impl DeviceMachine {
    pub(super) fn on_request(&mut self, request: Request, now_ms: u64, out: &mut Vec<Output>) {
        match request {
            Request::Provision { ticket, network } => {
                self.provision(&ticket, network.as_ref(), now_ms, out);
            }
            Request::ConfigureNetwork { network } => self.configure_network(&network, now_ms, out),
            Request::ScanNetworks => self.scan(out),
            Request::GetStatus => {
                let status = self.status(now_ms);
                self.respond(Response::Status(status), out);
            }
            Request::Cancel => self.cancel(now_ms, out),
        }
    }

    pub(super) fn respond(&mut self, response: Response, out: &mut Vec<Output>) {
        self.send_secure(SecureMessage::Response(response), out);
    }

    pub(super) fn respond_error(&mut self, error: ProtocolError, out: &mut Vec<Output>) {
        tracing::info!(code = error.code.as_str(), "request refused");
        self.respond(Response::Error(error), out);
    }

    fn busy_error(&self, now_ms: u64) -> ProtocolError {
        let mut error = ProtocolError::with_message(
            ErrorCode::Busy,
            "a commissioning is in progress on this device; wait for its result, or send Cancel",
        );
        error.retry_after_s =
            self.state.staged.as_ref().map(|staged| {
                convert::ceil_secs(staged.fail_safe_deadline_ms.saturating_sub(now_ms))
            });
        error
    }

    fn provision(
        &mut self,
        ticket: &SignedTicket,
        network: Option<&NetworkConfig>,
        now_ms: u64,
        out: &mut Vec<Output>,
    ) {
        let working = !matches!(self.work, Work::Idle);
        if let Some(staged) = &self.state.staged
            && working
        {
            let same_ticket = ticket
                .claims_unverified()
                .is_ok_and(|claims| hex::encode(claims.nonce) == staged.nonce);
            if same_ticket {
                // A resumed installer re-sent the ticket already being registered: idempotent.
                let state = self.state_at(now_ms, true);
                self.respond(Response::ProvisionAccepted { state }, out);
            } else {
                let error = self.busy_error(now_ms);
                self.respond_error(error, out);
            }
            return;
        }
        let now_unix = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        let claims = match staging::check_ticket(&self.anchors, ticket, &self.state, now_unix) {
            Ok(claims) => claims,
            Err(rejection) => {
                let code = match &rejection {
                    staging::TicketRejection::Invalid(error) => ErrorCode::from(error),
                    staging::TicketRejection::Replayed => ErrorCode::TicketReplayed,
                };
                self.respond_error(
                    ProtocolError::with_message(code, rejection.to_string()),
                    out,
                );
                return;
            }
        };
        let candidate = match convert::candidate_network(network, &self.config.capabilities) {
            Ok(candidate) => candidate,
            Err(error) => {
                self.respond_error(error, out);
                return;
            }
        };
        if candidate.is_none() && !self.is_online_capable() {
            self.respond_error(
                ProtocolError::with_message(
                    ErrorCode::NetworkNotFound,
                    "the device has no working network; send Wi-Fi or cellular settings with the ticket",
                ),
                out,
            );
            return;
        }
        // A staging waiting for a corrected network is replaced whole by the new one.
        staging::stage(
            &mut self.state,
            ticket,
            &claims,
            candidate,
            now_ms,
            self.config.fail_safe_window,
        );
        self.last_attempt_failed = false;
        self.last_registration = None;
        self.last_network = None;
        out.push(self.persist());
        tracing::info!(
            id_scope = %claims.id_scope,
            fail_safe_s = self.config.fail_safe_window.as_secs(),
            "ticket staged"
        );
        self.respond(
            Response::ProvisionAccepted {
                state: fieldlink_protocol::message::DeviceState::TicketStaged,
            },
            out,
        );
        self.begin_work(now_ms, out);
    }

    fn configure_network(&mut self, network: &NetworkConfig, now_ms: u64, out: &mut Vec<Output>) {
        if self.state.staged.is_none() {
            self.respond_error(
                ProtocolError::with_message(
                    ErrorCode::InvalidState,
                    "no ticket is staged; send Provision with the ticket and the network",
                ),
                out,
            );
            return;
        }
        if !matches!(self.work, Work::Idle) {
            let error = self.busy_error(now_ms);
            self.respond_error(error, out);
            return;
        }
        let candidate = match convert::candidate_network(Some(network), &self.config.capabilities) {
            Ok(candidate) => candidate,
            Err(error) => {
                self.respond_error(error, out);
                return;
            }
        };
        if candidate.is_none() && !self.is_online_capable() {
            self.respond_error(
                ProtocolError::with_message(
                    ErrorCode::NetworkNotFound,
                    "the device has no working network to keep; send Wi-Fi or cellular settings",
                ),
                out,
            );
            return;
        }
        if let Some(staged) = self.state.staged.as_mut() {
            staged.network = candidate;
        }
        self.last_network = None;
        out.push(self.persist());
        let state = fieldlink_protocol::message::DeviceState::TicketStaged;
        self.respond(Response::NetworkAccepted { state }, out);
        self.begin_work(now_ms, out);
    }

    fn scan(&mut self, out: &mut Vec<Output>) {
        if !self.config.capabilities.wifi {
            self.respond(Response::Networks(Vec::new()), out);
            return;
        }
        let id = self.new_job();
        self.pending_scan = Some(id);
        out.push(Output::Start(Job::Scan { id }));
    }

    fn cancel(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        if self.state.staged.is_some() {
            self.roll_back_now(out);
            self.last_attempt_failed = false;
            tracing::info!("staged ticket cancelled by the installer");
        }
        let state = self.state_at(now_ms, true);
        self.respond(Response::Cancelled { state }, out);
    }

    /// Whether DPS can be reached without a new network config.
    fn is_online_capable(&self) -> bool {
        let capabilities = &self.config.capabilities;
        capabilities.already_online || self.state.network.current.is_some()
    }
}
