//! Assignment sources that misbehave on purpose, wrapping a real one.

use std::sync::Arc;

use async_trait::async_trait;
use fieldlink_core::assignment::{Assignment, AssignmentSource, ServiceError};

/// Flips one bit of every ticket's signed claims (a man in the middle).
#[derive(Clone)]
pub struct TamperedTickets(pub Arc<dyn AssignmentSource>);

#[async_trait]
impl AssignmentSource for TamperedTickets {
    async fn assignment(&self, registration_id: String) -> Result<Assignment, ServiceError> {
        let mut assignment = self.0.assignment(registration_id).await?;
        if let Some(last) = assignment.ticket.claims.last_mut() {
            *last ^= 0x01;
        }
        Ok(assignment)
    }
}

/// Fetches tickets for another registration ID than the one asked for.
#[derive(Clone)]
pub struct TicketsFor {
    /// The real source.
    pub inner: Arc<dyn AssignmentSource>,
    /// The registration ID the tickets name instead.
    pub registration_id: String,
}

#[async_trait]
impl AssignmentSource for TicketsFor {
    async fn assignment(&self, _registration_id: String) -> Result<Assignment, ServiceError> {
        self.inner.assignment(self.registration_id.clone()).await
    }
}

/// Hands out the same (first) ticket every time: a replay.
pub struct ReplayedTickets {
    inner: Arc<dyn AssignmentSource>,
    first: tokio::sync::Mutex<Option<Assignment>>,
}

impl ReplayedTickets {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn AssignmentSource>) -> Self {
        Self {
            inner,
            first: tokio::sync::Mutex::new(None),
        }
    }
}

#[async_trait]
impl AssignmentSource for ReplayedTickets {
    async fn assignment(&self, registration_id: String) -> Result<Assignment, ServiceError> {
        let mut first = self.first.lock().await;
        if let Some(assignment) = first.as_ref() {
            return Ok(assignment.clone());
        }
        let assignment = self.inner.assignment(registration_id).await?;
        *first = Some(assignment.clone());
        Ok(assignment)
    }
}
