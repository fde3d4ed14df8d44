//! Who retries a failed service call, and how the workflow learns about it.
//!
//! **One layer owns retries.** The service source (the provisioning-API client,
//! [`crate::api_client::ProvisioningApiClient`]) retries transport failures, timeouts, retryable
//! 5xx, 408 and 429 with exponential backoff and full jitter, honouring `Retry-After`, within its
//! attempt cap and time budget. The workflow calls the source **once** per need and never retries
//! what it returns: an error that comes back is final for that step (`api_unavailable`,
//! `throttled{retry_after}`, ...). Retrying in both layers multiplied the attempts (5 × 4),
//! honoured `Retry-After` twice and overran the step deadlines.
//!
//! The workflow runs each call inside a [`ServiceCallScope`] (a tokio task-local) that carries
//! the time the step leaves for the call and a retry observer. A source that retries fits its
//! attempts and waits into [`budget`] and calls [`report_retry`] before each wait; the workflow
//! turns that into a [`ProgressKind::ServiceRetry`](super::ProgressKind::ServiceRetry) event, so
//! the "attempt N of M" a shell shows is the count of the layer that actually retries. A source
//! that talks to a network and does not retry itself simply fails the step on its first error.

use std::{future::Future, sync::Arc, time::Duration};

tokio::task_local! {
    static SCOPE: ServiceCallScope;
}

/// A retry a service source is about to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRetry {
    /// The attempt that will be made after the wait (2 = the first retry).
    pub next_attempt: u32,
    /// The source's attempt cap (the budget may end the retries earlier).
    pub max_attempts: u32,
    /// How long the source waits before that attempt (`Retry-After` included).
    pub wait: Duration,
    /// The server's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
    /// Why the last attempt failed (stable snake_case, e.g. `unreachable`, `http_503`).
    pub reason: String,
}

/// The context of one service call made by the workflow.
#[derive(Clone)]
pub struct ServiceCallScope {
    budget: Duration,
    observer: Arc<dyn Fn(ServiceRetry) + Send + Sync>,
}

impl std::fmt::Debug for ServiceCallScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceCallScope")
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl ServiceCallScope {
    /// A scope whose call may take `budget` from its start; `observer` hears each retry.
    pub fn new(budget: Duration, observer: impl Fn(ServiceRetry) + Send + Sync + 'static) -> Self {
        Self {
            budget,
            observer: Arc::new(observer),
        }
    }

    /// Runs `call` inside this scope.
    pub async fn run<F: Future>(self, call: F) -> F::Output {
        SCOPE.scope(self, call).await
    }
}

/// The time the current workflow step leaves for the whole call (all attempts and waits),
/// measured from the call's start; `None` outside a workflow call.
pub fn budget() -> Option<Duration> {
    SCOPE.try_with(|scope| scope.budget).ok()
}

/// Tells the workflow (if the call runs inside one) that a retry is scheduled.
pub fn report_retry(retry: ServiceRetry) {
    let _ = SCOPE.try_with(|scope| (scope.observer)(retry));
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn retry(next_attempt: u32) -> ServiceRetry {
        ServiceRetry {
            next_attempt,
            max_attempts: 4,
            wait: Duration::from_millis(10),
            retry_after: None,
            reason: "http_503".into(),
        }
    }

    #[tokio::test]
    async fn the_scope_carries_the_budget_and_the_observer_only_inside_the_call() {
        assert_eq!(budget(), None);
        report_retry(retry(9)); // outside any scope: ignored
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&heard);
        let scope = ServiceCallScope::new(Duration::from_secs(7), move |r| {
            sink.lock().unwrap().push(r.next_attempt)
        });
        let seen = scope
            .run(async {
                tokio::task::yield_now().await;
                report_retry(retry(2));
                report_retry(retry(3));
                budget()
            })
            .await;
        assert_eq!(seen, Some(Duration::from_secs(7)));
        assert_eq!(*heard.lock().unwrap(), [2, 3]);
        assert_eq!(budget(), None);
    }
}
