//! Load: 100,000 calls at 256 in flight on one real host.

use futures::StreamExt;
use jshost::JsHost;
use jshost_integration::{established_connections, Fixture};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_calls_at_256_in_flight() {
    const CALLS: usize = 100_000;
    let fixture = Fixture::new("soak", "");
    // Plain calls on TCP: this checks the pool's bound on sockets (batching would use two).
    let host = JsHost::spawn(fixture.settings().batch(false).private_socket(false))
        .await
        .unwrap();
    let port = host.status().port().unwrap();
    let max = jshost_client::HttpClient::new().max_open_connections();
    let echo = host.function("echo");
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));

    // Sample the number of open connections to the host while the load runs.
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while done.load(Ordering::Relaxed) < CALLS {
                peak.fetch_max(established_connections(port), Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
    };
    let errors = futures::stream::iter(0..CALLS)
        .map(|i| {
            let echo = echo.clone();
            let done = done.clone();
            async move {
                let result = echo.call(&json!([i])).await;
                done.fetch_add(1, Ordering::Relaxed);
                match result {
                    Ok(text) if text == format!("[{i}]") => 0,
                    Ok(text) => panic!("call {i} got the answer of another call: {text}"),
                    Err(e) => {
                        eprintln!("call {i}: {e}");
                        1
                    }
                }
            }
        })
        .buffer_unordered(256)
        .fold(0usize, |acc, e| async move { acc + e })
        .await;
    sampler.await.unwrap();
    assert_eq!(errors, 0);
    let peak = peak.load(Ordering::Relaxed);
    assert!(peak > 0, "the sampler saw the connections");
    assert!(
        peak <= max,
        "{peak} connections open at once; the pool allows {max}"
    );
}
