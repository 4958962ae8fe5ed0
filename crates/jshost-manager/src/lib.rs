//! Process supervision for jshost: the hosts and managers behind a `JsHost`.
//!
//! - [`Manager`]: a client of the js-host manager protocol (`/host/*`, `/manager/stop`), with
//!   typed outcomes ([`Started`], `Option` where "no such host" is an answer);
//! - [`ManagedConnection`]: one connection to a managed host and its whole lifecycle (close,
//!   stop, restart, closing on drop and at process exit);
//! - [`OwnedHost`]: a js-host child owned and supervised by this process.
//!
//! All of it runs on the SDK's own runtime, so it works from any tokio runtime or none.
//! Most users depend on the `jshost` crate, which drives all of this from its `Settings`.
//!
//! Unix only (Linux, macOS): hosts are supervised with process groups and pipes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(not(unix))]
compile_error!("jshost supports Unix-like systems only (Linux, macOS): it supervises Node processes with Unix process groups and pipes");

mod connection;
mod expected;
mod locate;
mod lock;
mod manager;
mod node;
mod output;
mod owned;
mod private;
mod watchdog;

pub use connection::{Connected, ManagedConnection};
pub use manager::{Connection, Disconnected, HostInfo, Manager, Started};
pub use owned::{ExitInfo, OwnedHost};

// Shared with the `jshost` facade and CLI; not part of the public API.
#[doc(hidden)]
pub use expected::{status_url, Expected};
#[doc(hidden)]
pub use locate::{locate_manager, Located};
#[doc(hidden)]
pub use manager::{probe_status, probe_status_with};
#[doc(hidden)]
pub use node::{NodeSetup, StatusCache};
#[doc(hidden)]
pub use owned::GUARD_JS;
