//! Test helper: connects to a managed host with `JSHOST_*` settings, prints its connection id,
//! and returns from `main` without disconnecting. The manager must still see the connection
//! closed (tests/managed.rs checks).
#![allow(clippy::print_stdout)]

#[tokio::main]
async fn main() -> Result<(), jshost::Error> {
    let settings = jshost::Settings::from_env()?
        .use_manager(true)
        .status_cache(false);
    let host = jshost::JsHost::connect(settings).await?;
    assert_eq!(host.function("hello_world").call(&()).await?, "Hello, World!");
    println!("{}", host.connection_id().unwrap_or_default());
    Ok(())
}
