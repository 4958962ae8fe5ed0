//! Test helper: connects to a managed host with `JSHOST_*` settings (the status cache off),
//! prints the host's process id (from its `pid` function), and disconnects.
#![allow(clippy::print_stdout)]

#[tokio::main]
async fn main() -> Result<(), jshost::Error> {
    let settings = jshost::Settings::from_env()?
        .use_manager(true)
        .status_cache(false);
    let host = jshost::JsHost::connect(settings).await?;
    println!("{}", host.function("pid").call(&()).await?);
    host.disconnect().await
}
