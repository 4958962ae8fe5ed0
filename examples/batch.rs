//! Fan-out: `npm ci && cargo run --example batch`.
//!
//! 1,000 calls at once with `join_all` over one `JsHost` (the pool bounds the sockets), then the
//! same work with bounded concurrency (`buffer_unordered`), which keeps memory and host load flat
//! for batches of any size.
#![allow(clippy::print_stdout)]

use futures::stream::{self, StreamExt};
use jshost::{JsHost, Settings};
use serde_json::json;
use std::time::Instant;

/// Doubles `0..n` with `join_all`: every call in flight at once. Results are in input order.
pub async fn all_at_once(host: &JsHost, n: u64) -> Result<Vec<u64>, jshost::Error> {
    let double = host.function("double");
    let calls = (0..n).map(|i| {
        let double = double.clone();
        // The answer ("42") is JSON: a number.
        async move { double.call_json::<u64, _>(&json!({ "number": i })).await }
    });
    futures::future::join_all(calls).await.into_iter().collect()
}

/// Doubles `0..n` with at most `limit` calls in flight. Results are in input order.
pub async fn bounded(host: &JsHost, n: u64, limit: usize) -> Result<Vec<u64>, jshost::Error> {
    let double = host.function("double");
    let mut results: Vec<(u64, u64)> =
        stream::iter(0..n)
            .map(|i| {
                let double = double.clone();
                async move {
                    Ok::<_, jshost::Error>((i, double.call_json::<u64, _>(&json!({ "number": i })).await?))
                }
            })
            .buffer_unordered(limit)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
    results.sort_unstable();
    Ok(results.into_iter().map(|(_, v)| v).collect())
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), jshost::Error> {
    let settings = Settings::default()
        .source_root(env!("CARGO_MANIFEST_DIR"))
        .use_manager(true);
    let host = JsHost::connect(settings).await?;

    let started = Instant::now();
    let doubled = all_at_once(&host, 1_000).await?;
    println!(
        "join_all: {} calls in {:?} (last: {})",
        doubled.len(),
        started.elapsed(),
        doubled[999]
    );

    let started = Instant::now();
    let doubled = bounded(&host, 1_000, 32).await?;
    println!(
        "buffer_unordered(32): {} calls in {:?}",
        doubled.len(),
        started.elapsed()
    );

    host.disconnect().await
}
