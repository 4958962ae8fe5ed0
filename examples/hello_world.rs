//! The quick start: `npm ci && cargo run --example hello_world`.
//!
//! Connects through a js-host manager (started on first use, detached, and kept warm between
//! runs), calls `hello_world` from `host.config.js` twice, and disconnects. Run it twice: the
//! second run reuses the warm host and is much faster.
#![allow(clippy::print_stdout)]

use jshost::{JsHost, Settings};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), jshost::Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "jshost=info,jshost_manager=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let started = std::time::Instant::now();
    // The repository root holds package.json, node_modules and host.config.js.
    let settings = Settings::default()
        .source_root(env!("CARGO_MANIFEST_DIR"))
        .use_manager(true);
    let host = JsHost::connect(settings).await?;

    let hello = host.function("hello_world");
    println!("{}", hello.call(&()).await?);
    println!("{}", hello.call(&json!({ "name": "Foo" })).await?);
    eprintln!(
        "connect + 2 calls: {:.1} ms; host logfile: {}",
        started.elapsed().as_secs_f64() * 1000.0,
        host.logfile()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );

    // Optional: the connection is also closed when `host` is dropped or the process exits.
    host.disconnect().await?;
    Ok(())
}
