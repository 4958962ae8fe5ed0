//! The examples in `examples/` exercised against real js-host: each example's logic is a function
//! that these tests call with an owned host serving the repository's `host.config.js`. The quick
//! start's examples (hello_world, batch, worker) belong to the root package; axum_ssr and
//! actix_ssr to the package in `examples/web/`, so that the quick start builds no web framework.

#[allow(dead_code)]
#[path = "../../../examples/axum_ssr.rs"]
mod axum_ssr;
#[allow(dead_code)]
#[path = "../../../examples/batch.rs"]
mod batch;
#[allow(dead_code)]
#[path = "../../../examples/worker.rs"]
mod worker;

use jshost::{JsHost, Settings};
use jshost_client::HttpClient;
use jshost_integration::repo_root;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// An owned host for the repository's own `host.config.js` (port 0: no clash with other tests).
async fn demo_host() -> JsHost {
    let settings = Settings::default().source_root(repo_root()).status_cache(false);
    JsHost::spawn(settings).await.unwrap()
}

#[tokio::test]
async fn axum_ssr_renders_and_turns_js_errors_into_500s() {
    let host = demo_host().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, axum_ssr::app(host)).await });
    let client = HttpClient::new();

    let ok = client
        .get(&format!("{url}/?title=Shop&items=3"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    let html = ok.text_lossy();
    assert!(
        html.contains("<title>Shop</title>") && html.contains("Item 2"),
        "{html}"
    );

    let failed = client
        .get(&format!("{url}/?items=-1"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(failed.status, 500);
    assert!(
        failed.text_lossy().contains("render needs `items`, an array"),
        "{}",
        failed.text_lossy()
    );
    server.abort();
}

#[tokio::test]
async fn batch_runs_a_thousand_calls_both_ways() {
    let host = demo_host().await;
    let expected: Vec<u64> = (0..1000).map(|i| i * 2).collect();
    assert_eq!(batch::all_at_once(&host, 1000).await.unwrap(), expected);
    assert_eq!(batch::bounded(&host, 1000, 32).await.unwrap(), expected);
}

#[tokio::test]
async fn worker_stops_cleanly_when_cancelled() {
    let host = demo_host().await;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(worker::run(host.clone(), rx, shutdown.clone()));
    for job in 0..50 {
        tx.send(job).await.unwrap();
    }
    // The queue is bounded (16): once all 50 are accepted, at least 34 were taken by the worker.
    shutdown.cancel();
    let stopped = Instant::now();
    let done = worker.await.unwrap().unwrap();
    assert!(
        stopped.elapsed() < Duration::from_secs(2),
        "took {:?}",
        stopped.elapsed()
    );
    assert!(done >= 33, "did {done} jobs");
    // Nothing left in a bad state: the host still answers.
    assert!(host
        .function("hello_world")
        .call(&())
        .await
        .unwrap()
        .starts_with("Hello"));

    // A closed queue also ends it.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    drop(tx);
    assert_eq!(worker::run(host, rx, CancellationToken::new()).await.unwrap(), 0);
}

/// The packages `cargo tree` lists for `package` (or, for `None`, for what `cargo run` in the
/// repository root selects: the workspace's default members) with dev-dependencies, which is
/// what building one of their examples compiles.
fn dependencies_of(package: Option<&str>) -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--prefix", "none", "-e", "normal,build,dev"])
        .args(package.map(|p| ["-p", p]).into_iter().flatten())
        .arg("--manifest-path")
        .arg(repo_root().join("Cargo.toml"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_quick_start_builds_no_web_framework() {
    let quick_start = dependencies_of(None);
    assert!(
        quick_start.iter().any(|p| p == "tokio"),
        "the tree lists dependencies: {quick_start:?}"
    );
    let web = dependencies_of(Some("jshost-web-examples"));
    for framework in ["axum", "actix-web"] {
        assert!(
            !quick_start.iter().any(|p| p == framework),
            "`cargo run --example hello_world` would build {framework}"
        );
        assert!(
            web.iter().any(|p| p == framework),
            "the web examples' package has {framework}: {web:?}"
        );
    }
}

#[tokio::test]
async fn hello_world_answers_through_an_owned_host() {
    // The quick start's own binary (its managed mode would take port 9009, shared by everything
    // on the machine; `--owned` runs the same calls on a host of its own).
    let root = repo_root();
    let built = std::process::Command::new(env!("CARGO"))
        .args(["build", "-q", "--example", "hello_world", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .status()
        .expect("run cargo build");
    assert!(built.success(), "cargo build --example hello_world: {built}");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    let out = tokio::process::Command::new(target.join("debug/examples/hello_world"))
        .arg("--owned")
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("hello_world ends within 60 s")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Hello, World!\nHello, Foo!\n",
        "{stderr}"
    );
    assert!(
        stderr.contains("start-up (owned host: connect, first answer): "),
        "{stderr}"
    );
}
