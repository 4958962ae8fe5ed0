//! Call JavaScript functions living in a persistent Node.js process, from async Rust.
//!
//! jshost is the Rust SDK for hosts that speak the [js-host] 0.12 protocol: a Node process that
//! serves the functions of a `host.config.js` over HTTP. Its own host, **jshost-node** (npm
//! `jshost-node`, the default `path_to_bin`), adds `async` functions, `/batch`, workers, Unix
//! sockets and hot reload; js-host 0.12 itself stays supported
//! (`path_to_bin("node_modules/js-host/bin/js-host.js")`). Calls are `.await`able, pooled over
//! keep-alive connections, have timeouts and cancellation, and return text or typed JSON.
//!
//! Setup: `npm install jshost-node` next to a `host.config.js` that exports the functions:
//!
//! ```js
//! module.exports = {
//!   functions: {
//!     hello_world: (data, cb) => cb(null, 'Hello, ' + (data.name || 'World') + '!'),
//!     render: async (data) => `<h1>${data.title}</h1>`,   // jshost-node: async is fine
//!   },
//! };
//! ```
//!
//! ```no_run
//! use jshost::{JsHost, Settings};
//! use serde_json::json;
//!
//! # async fn demo() -> Result<(), jshost::Error> {
//! // Development: a detached js-host manager starts the host and keeps it warm between runs.
//! let host = JsHost::connect(Settings::default().use_manager(true)).await?;
//! let hello = host.function("hello_world");
//! assert_eq!(hello.call(&json!({"name": "Foo"})).await?, "Hello, Foo!");
//! host.disconnect().await?;
//! # Ok(()) }
//! ```
//!
//! Three ways to reach a host:
//! - [`JsHost::connect`] with default settings: a host you run yourself (under systemd, PM2...)
//!   at the config's address, or behind a caching proxy at `root_url` (production);
//! - [`JsHost::connect`] with `use_manager(true)`: a managed host (development);
//! - [`JsHost::spawn`]: a host owned by this process, gone when it ends (tests, CI, workers).
//!
//! A process-wide default host, as in the Python client:
//! ```no_run
//! # async fn demo() -> Result<(), jshost::Error> {
//! jshost::configure(jshost::Settings::from_env()?).await?;
//! let text = jshost::Function::new("hello_world").call(&()).await?;
//! # Ok(()) }
//! ```
//!
//! Typed JSON both ways, and a timeout per function:
//! ```no_run
//! # async fn demo(host: jshost::JsHost) -> Result<(), jshost::Error> {
//! #[derive(serde::Deserialize)]
//! struct Page { html: String }
//! let render = host.function("render_page").timeout(std::time::Duration::from_secs(2));
//! let page: Page = render.call_json(&serde_json::json!({"title": "Shop"})).await?;
//! # Ok(()) }
//! ```
//!
//! Every failure is an [`Error`] with predicates (`is_timeout()`, `is_function()`,
//! `is_process()`, `is_connection()`...); function errors keep the JavaScript stack
//! ([`Error::js_stack`]). [`Settings`] holds every knob, also from `JSHOST_*` variables
//! ([`Settings::from_env`]): the config file, the manager, timeouts, several hosts
//! (`owned_hosts(n)`, `root_urls`), batching, workers, hot reload, TLS and headers.
//!
//! # Runtimes
//!
//! A [`JsHost`] works from any tokio runtime, several at once, or none: handles are `Send +
//! Sync + Clone` and may cross runtimes freely. A call made inside a runtime runs there, on a
//! pool of connections kept for that runtime, so one actix worker's runtime ending or blocking
//! never affects the calls of another. (A runtime must have I/O and time enabled, as
//! `#[tokio::main]`, `#[tokio::test]` and actix-rt do.) Everything else (calls made outside any
//! runtime, supervision of owned hosts, closing the managed connection of a dropped handle)
//! runs on a small runtime of the SDK's own (`jshost-driver` threads), so an owned host lives
//! as long as its last handle, not as long as the runtime that spawned it, and a handle dropped
//! at the end of a `#[tokio::test]` still closes its connection.
//!
//! # Cancellation
//!
//! Dropping a call's future cancels it; [`Function::call_with_cancel`] does the same when a
//! [`CancellationToken`] fires.
//!
//! # Features
//!
//! - `tls` (default): `https://` root URLs, with rustls, the system's root certificates and
//!   [`Settings::ca_file`]; without it an `https://` URL is a config error saying so.
//!
//! # Platforms
//!
//! Unix-like systems only (Linux, macOS): owned hosts and managers are supervised with Unix
//! process groups and pipes. Building for another platform fails with a message saying so.
//!
//! [js-host]: https://www.npmjs.com/package/js-host
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(not(unix))]
compile_error!("jshost supports Unix-like systems only (Linux, macOS): it supervises Node processes with Unix process groups and pipes");

mod backend;
mod balance;
mod batch;
mod connect;
mod function;
mod host;

pub use function::Function;
pub use host::JsHost;
pub use jshost_client::PoolStatus;
#[doc(inline)]
pub use jshost_core::{hash, Error, ErrorKind, Result, Settings, Status};
pub use tokio_util::sync::CancellationToken;

/// The js-host manager protocol: a [`Manager`](manager::Manager) client (`/host/*`,
/// `/manager/stop`), as [`JsHost::manager`] gives it for a managed host.
pub mod manager {
    #[doc(inline)]
    pub use jshost_manager::{Connection, Disconnected, HostInfo, Manager, Started};
}

use jshost_core::error::Build as _;
use std::sync::RwLock;

/// `Error` is read, not made, by users: its builders are the SDK's own (the trait
/// `jshost_core::error::Build`, which this crate does not re-export), so this does not compile:
///
/// ```compile_fail,E0599
/// let _ = jshost::Error::config("x");
/// ```
///
/// while what an error says is public:
///
/// ```
/// fn explain(e: &jshost::Error) -> (jshost::ErrorKind, Option<&str>, bool) {
///     (e.kind(), e.url(), e.is_not_sent())
/// }
/// ```
#[allow(dead_code)]
enum ErrorsAreMadeByTheSdk {}

static DEFAULT_HOST: RwLock<Option<JsHost>> = RwLock::new(None);

/// Connects with `settings` (see [`JsHost::connect`]) and makes the host the process-wide
/// default that [`Function::new`] uses. Calling it again replaces the default.
///
/// # Errors
/// As [`JsHost::connect`].
///
/// # Cancel safety
/// As [`JsHost::connect`]; the default is only replaced once connected.
pub async fn configure(settings: Settings) -> Result<JsHost> {
    let host = JsHost::connect(settings).await?;
    set_default_host(host.clone());
    Ok(host)
}

/// Makes `host` the process-wide default host.
pub fn set_default_host(host: JsHost) {
    let mut slot = DEFAULT_HOST
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *slot = Some(host);
}

/// The process-wide default host.
///
/// # Errors
/// A config error when [`configure`] has not been called.
pub fn default_host() -> Result<JsHost> {
    let slot = DEFAULT_HOST
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    slot.clone().ok_or_else(|| {
        Error::config(
            "no default host: call `jshost::configure(settings).await` first, or use `host.function(name)`",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_types_are_send_sync() {
        fn check<T: Send + Sync + std::fmt::Debug>() {}
        check::<JsHost>();
        check::<Function>();
        check::<Settings>();
        check::<Error>();
        fn clone<T: Clone>() {}
        clone::<JsHost>();
        clone::<Function>();
        clone::<Settings>();
    }

    #[test]
    fn function_new_without_configure_is_a_config_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let e = rt
            .block_on(Function::new("x").call(&()))
            .expect_err("no default host");
        assert!(e.is_config() && e.to_string().contains("configure"), "{e}");
    }

    #[test]
    fn data_must_be_an_object_or_array() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let e = rt
            .block_on(Function::new("x").call("bare string"))
            .expect_err("not an object");
        assert!(e.is_encode(), "{e:?}");
        let mut bad = std::collections::BTreeMap::new();
        bad.insert((1, 2), "non-string key");
        let e = rt
            .block_on(Function::new("x").call(&bad))
            .expect_err("unserialisable");
        assert!(
            e.is_encode() && e.to_string().contains("key must be a string"),
            "{e}"
        );
    }
}
