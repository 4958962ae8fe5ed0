//! Memory: the RSS of a process making 100,000 calls stays flat after warm-up. Its own test
//! binary, so no other test allocates in the process while it measures.
#![allow(clippy::unwrap_used)]

use futures::StreamExt;
use jshost::JsHost;
use jshost_integration::Fixture;
use serde_json::json;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn run(host: &JsHost, calls: usize) {
    let echo = host.function("echo");
    futures::stream::iter(0..calls)
        .map(|i| {
            let echo = echo.clone();
            async move {
                assert_eq!(
                    echo.call(&json!({ "i": i })).await.unwrap(),
                    format!("{{\"i\":{i}}}")
                )
            }
        })
        .buffer_unordered(64)
        .collect::<()>()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rss_stays_flat_over_a_hundred_thousand_calls() {
    let fixture = Fixture::new("memory", "");
    let host = JsHost::spawn(fixture.settings()).await.unwrap();
    run(&host, 20_000).await; // warm-up: pool, allocator arenas, tracing callsites
    let before = rss_kib();
    run(&host, 100_000).await;
    let after = rss_kib();
    let growth = after.saturating_sub(before);
    eprintln!("RSS before {before} KiB, after {after} KiB, growth {growth} KiB");
    assert!(growth <= 5 * 1024, "RSS grew by {growth} KiB over 100,000 calls");
}
