//! Runtime glue: the one tokio runtime all Rust work runs on.
//!
//! Every async export is `#[uniffi::export(async_runtime = "tokio")]`, so uniffi polls it inside
//! the runtime of `async-compat` (uniffi's tokio integration). This crate turns that runtime's
//! `multi-thread` feature on (see `Cargo.toml`), so it is a real multi-threaded runtime and the
//! only one in the process. [`run`] moves the work of an export onto that runtime's workers: Rust
//! never runs on (or waits for) the app's threads, and foreign callbacks (the `BleLink`,
//! progress listeners) are called from runtime worker threads.

use std::future::Future;

use tokio::task::JoinHandle;

/// Aborts the task when the caller's future is dropped (a cancelled Kotlin coroutine, Swift
/// `Task` or Python task).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `future` on the runtime's worker threads and waits for it. Must be called from an
/// `async_runtime = "tokio"` export (or a test runtime). A panic in `future` resumes in the
/// caller, where uniffi turns it into the foreign language's internal error.
pub(crate) async fn run<F, T>(future: F) -> T
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut task = AbortOnDrop(tokio::runtime::Handle::current().spawn(future));
    match (&mut task.0).await {
        Ok(value) => value,
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only `AbortOnDrop` aborts, and it is still alive here: this arm is never taken.
            Err(_) => std::future::pending().await,
        },
    }
}

/// Runs `future` on the runtime's worker threads and waits for it, like [`run`], except that
/// dropping the caller lets the task finish on its own (the caller cancels it through a token
/// first, so the core can still close the session cleanly).
pub(crate) async fn run_to_completion<F, T>(future: F) -> T
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::runtime::Handle::current().spawn(future).await {
        Ok(value) => value,
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Nothing aborts this task: this arm is never taken.
            Err(_) => std::future::pending().await,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_on_a_runtime_worker_and_returns_the_value() {
        let caller = std::thread::current().id();
        let worker = run(async { std::thread::current().id() }).await;
        assert_ne!(caller, worker);
        assert_eq!(run(async { 41 + 1 }).await, 42);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_caller_aborts_the_task() {
        let (started, is_started) = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let caller = tokio::spawn(run(async move {
            let _keep = tx;
            let _ = started.send(());
            std::future::pending::<()>().await;
        }));
        is_started.await.unwrap();
        caller.abort();
        // The sender is dropped once the inner task is aborted.
        assert!(rx.await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_caller_of_run_to_completion_lets_the_task_finish() {
        let (started, is_started) = tokio::sync::oneshot::channel::<()>();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (done, finished) = tokio::sync::oneshot::channel::<u8>();
        let caller = tokio::spawn(run_to_completion(async move {
            let _ = started.send(());
            let _ = released.await;
            let _ = done.send(7);
        }));
        is_started.await.unwrap();
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        release.send(()).unwrap();
        assert_eq!(finished.await.unwrap(), 7);
    }

    #[tokio::test]
    #[should_panic(expected = "boom")]
    async fn panics_resume_in_the_caller() {
        run(async { panic!("boom") }).await
    }
}
