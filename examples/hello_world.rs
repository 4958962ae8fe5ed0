//! The quick start: `npm ci && cargo run --example hello_world`.
//!
//! Connects through a js-host manager (started on first use, detached, and kept warm between
//! runs), calls `hello_world` from `host.config.js` twice, and disconnects. Run it twice: the
//! second run reuses the warm host and is much faster. `cargo run --example hello_world --
//! --owned` runs the host as a child of this program instead (as tests and workers do).
#![allow(clippy::print_stdout)]

use jshost::{JsHost, Settings};
use serde_json::json;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

#[tokio::main]
async fn main() -> Result<(), jshost::Error> {
    // What jshost does, on stderr: `info` events by default, or as RUST_LOG says
    // (`RUST_LOG=jshost=debug` shows every call).
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_target("jshost", tracing::Level::INFO));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();

    let owned = std::env::args().any(|arg| arg == "--owned");
    let started = std::time::Instant::now();
    // The repository root holds package.json, node_modules and host.config.js.
    let settings = Settings::default().source_root(env!("CARGO_MANIFEST_DIR"));
    let host = if owned {
        JsHost::spawn(settings).await?
    } else {
        JsHost::connect(settings.use_manager(true)).await?
    };

    let hello = host.function("hello_world");
    let first = hello.call(&()).await?;
    let start_up = started.elapsed();
    println!("{first}");
    println!("{}", hello.call(&json!({ "name": "Foo" })).await?);
    eprintln!(
        "start-up ({} host: connect, first answer): {:.1} ms{}",
        if owned { "owned" } else { "managed" },
        start_up.as_secs_f64() * 1000.0,
        host.logfile()
            .map(|p| format!("; host logfile: {}", p.display()))
            .unwrap_or_default()
    );

    // Optional: the connection is also closed (an owned host stopped) when `host` is dropped or
    // the process exits.
    host.disconnect().await?;
    Ok(())
}
