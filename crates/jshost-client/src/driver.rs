//! The SDK's own runtime, where its background work lives.
//!
//! Owned-host supervision, processes the SDK runs, and drop-time disconnects must not depend on
//! the runtime that happened to create a handle: that runtime may be a current-thread runtime of
//! one actix worker (blocked for seconds, or dropped while other workers go on) or the runtime of
//! a `#[tokio::test]` that is about to end. So they run on one small multi-thread runtime owned by
//! the SDK (threads named `jshost-driver`), started on first use and kept for the life of the
//! process, as do requests made from outside any runtime. Callers only await a
//! [`tokio::task::JoinHandle`], which works from any runtime (or none).

use jshost_core::error::Build as _;
use jshost_core::{Error, Result};
use std::cell::Cell;
use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

thread_local! {
    static ON_DRIVER: Cell<bool> = const { Cell::new(false) };
}

/// How many threads the driver runs: the cores, at most 2 (supervision and the odd request from
/// outside a runtime: I/O, not computation).
fn thread_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 2)
}

fn runtime() -> Result<&'static Runtime> {
    static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(thread_count())
                .thread_name("jshost-driver")
                .on_thread_start(|| ON_DRIVER.with(|d| d.set(true)))
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::process(format!("cannot start the jshost driver runtime: {e}")))
}

/// The driver runtime's handle (started on first use).
///
/// # Errors
/// A process error when the runtime's threads cannot be started.
pub fn handle() -> Result<&'static Handle> {
    runtime().map(Runtime::handle)
}

/// Whether the current thread is one of the driver's.
pub fn on_driver() -> bool {
    ON_DRIVER.with(Cell::get)
}

/// Aborts the task when dropped: dropping the caller's future cancels the work.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `work` on the driver and returns its output. On a driver thread it is simply awaited;
/// elsewhere it is spawned there and awaited through its join handle, so the caller may be any
/// runtime, or none. Dropping the returned future cancels `work`.
///
/// # Errors
/// `work`'s own errors; a process error when the driver cannot start. A panic in `work` is
/// resumed in the caller.
pub async fn run<T, F>(work: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    if on_driver() {
        return work.await;
    }
    let mut task = AbortOnDrop(handle()?.spawn(work));
    match (&mut task.0).await {
        Ok(output) => output,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::process("the jshost driver runtime stopped the task").with_source(e)),
    }
}

/// Runs `work` right here when the caller is inside a tokio runtime (no hand-off), else on the
/// driver, as [`run`] does.
///
/// # Errors
/// As [`run`].
pub async fn here_or_on_driver<T, F>(work: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    if Handle::try_current().is_ok() {
        work.await
    } else {
        run(work).await
    }
}

/// Spawns `work` on the driver, detached (background work such as closing a connection).
pub fn spawn<F>(work: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    match handle() {
        Ok(h) => {
            h.spawn(work);
        }
        Err(e) => tracing::warn!(error = %e, "cannot run background work"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_without_a_runtime_on_a_driver_thread() {
        let ran_on_driver = futures::executor::block_on(run(async { Ok::<_, Error>(on_driver()) }));
        assert!(ran_on_driver.expect("ran"));
    }

    #[test]
    fn dropping_the_future_cancels_the_work() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let work = run(async move {
            let _tx = tx; // dropped when the task is aborted
            std::future::pending::<Result<()>>().await
        });
        let mut work = Box::pin(work);
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(work.as_mut().poll(&mut cx).is_pending());
        drop(work);
        assert!(
            rx.recv_timeout(std::time::Duration::from_secs(5)).is_err(),
            "the task was aborted and its sender dropped"
        );
    }
}

#[cfg(test)]
mod placement {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_stays_on_the_callers_runtime() {
        let on = here_or_on_driver(async { Ok::<_, Error>(on_driver()) })
            .await
            .expect("ran");
        assert!(!on, "ran on the caller's runtime");
        let on = run(async { Ok::<_, Error>(on_driver()) }).await.expect("ran");
        assert!(on);
        let on = here_or_on_driver(async { Ok::<_, Error>(on_driver()) })
            .await
            .expect("ran");
        assert!(!on, "still on the caller's runtime after the driver started");
    }
}
