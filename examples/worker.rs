//! A long-running worker: `npm ci && cargo run --example worker`, stop it with Ctrl-C.
//!
//! The worker takes jobs from a queue and renders each through JavaScript. A
//! `CancellationToken` (cancelled on Ctrl-C) stops it cleanly: the call in flight is cancelled
//! (`call_with_cancel`), nothing is left half-done in the pool, and the host connection is closed.
#![allow(clippy::print_stdout)]

use jshost::{JsHost, Settings};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Renders jobs from `jobs` until the queue closes or `shutdown` is cancelled; returns how many
/// jobs were done.
pub async fn run(
    host: JsHost,
    mut jobs: mpsc::Receiver<u64>,
    shutdown: CancellationToken,
) -> Result<u64, jshost::Error> {
    let render = host.function("render");
    let mut done = 0;
    loop {
        let job = tokio::select! {
            _ = shutdown.cancelled() => break,
            job = jobs.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        let items: Vec<_> = (0..job % 20)
            .map(|i| json!({"name": format!("job {job} item {i}"), "price": i}))
            .collect();
        match render
            .call_with_cancel(&json!({"title": format!("Job {job}"), "items": items}), &shutdown)
            .await
        {
            Ok(html) => {
                done += 1;
                tracing::debug!(job, bytes = html.len(), "rendered");
            }
            Err(e) if e.is_cancelled() => break,
            Err(e) => tracing::error!(job, error = %e, "job failed"),
        }
    }
    tracing::info!(done, "worker stopped");
    Ok(done)
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), jshost::Error> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .init();
    let settings = Settings::default()
        .source_root(env!("CARGO_MANIFEST_DIR"))
        .use_manager(true);
    let host = JsHost::connect(settings).await?;
    let shutdown = CancellationToken::new();
    let (tx, rx) = mpsc::channel(64);

    // A producer standing in for a real queue.
    let producer = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let mut job = 0u64;
            while !shutdown.is_cancelled() {
                if tx.send(job).await.is_err() {
                    break;
                }
                job += 1;
            }
        }
    });
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let _ = tokio::signal::ctrl_c().await;
            println!("Ctrl-C: stopping");
            shutdown.cancel();
        }
    });
    // The job loop runs as a task, on the runtime's worker threads beside the connections its
    // calls use: from `main`'s own thread each call would cross to a worker and back (see the
    // README's Runtimes section).
    let done = match tokio::spawn(run(host.clone(), rx, shutdown)).await {
        Ok(done) => done?,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let _ = producer.await;
    println!("rendered {done} pages");
    host.disconnect().await
}
