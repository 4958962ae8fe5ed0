//! The SDK's own runtime, where all of its background work lives.
//!
//! Connection tasks, owned-host supervision and drop-time disconnects must not depend on the
//! runtime that happened to create a handle or make a call: that runtime may be a current-thread
//! runtime of one actix worker (blocked for seconds, or dropped while other workers go on) or the
//! runtime of a `#[tokio::test]` that is about to end. So every request, process and timer of
//! the SDK runs on one small multi-thread runtime owned by the SDK (threads named
//! `jshost-driver`), started on first use and kept for the life of the process. Callers only
//! await a [`tokio::task::JoinHandle`], which works from any runtime (or none).

use jshost_core::{Error, Result};
use std::cell::Cell;
use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

thread_local! {
    static ON_DRIVER: Cell<bool> = const { Cell::new(false) };
}

/// How many threads the driver runs: the cores, at most 4 (the work is I/O, not computation).
fn thread_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4)
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

/// A hyper executor that runs connection tasks on the driver.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DriverExecutor;

impl<F> hyper::rt::Executor<F> for DriverExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        match handle() {
            Ok(h) => {
                h.spawn(fut);
            }
            Err(e) => tracing::warn!(error = %e, "cannot run a connection task"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_without_a_runtime_and_cancels_on_drop() {
        let out = futures_lite_block_on(run(async { Ok::<_, Error>(on_driver()) }));
        assert!(out.expect("ran"), "the work ran on a driver thread");
    }

    /// A minimal executor that is not tokio: the caller side needs no runtime at all.
    fn futures_lite_block_on<F: Future>(fut: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a bare runtime without I/O or time");
        rt.block_on(fut)
    }
}
