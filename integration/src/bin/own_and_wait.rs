//! Test helper: spawns an owned host with `JSHOST_*` settings, prints its pid, then waits to be
//! killed (at most 120 s). Tests SIGKILL it and check the host does not outlive it.
#![allow(clippy::print_stdout)]

use std::io::Write;

#[tokio::main]
async fn main() -> Result<(), jshost::Error> {
    let settings = jshost::Settings::from_env()?.status_cache(false);
    let host = jshost::JsHost::spawn(settings).await?;
    assert_eq!(host.function("hello_world").call(&()).await?, "Hello, World!");
    println!("{}", host.pid().unwrap_or_default());
    let _ = std::io::stdout().flush();
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    Ok(())
}
