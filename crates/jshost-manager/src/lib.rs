//! Process supervision for jshost: the Node processes behind a `JsHost`, started, watched and
//! stopped, whether a js-host manager runs them or this process owns them.
//!
//! - [`Manager`] (`manager`): a client of the js-host manager protocol (`/host/*`,
//!   `/manager/stop`), with typed outcomes ([`Started`], `Option` where "no such host" is an
//!   answer);
//! - [`ManagedConnection`] (`connection`): one connection to a managed host and its whole
//!   lifecycle (close, stop, restart, closing on drop);
//! - [`OwnedHost`] (`owned`): a host child owned and supervised by this process, which exits
//!   when this process does (it watches a pipe from it);
//! - the exit watchdog (`exit_watchdog`): a small helper process that closes the managed
//!   connections still open when this process exits, however it exits.
//!
//! What they share is here too: the status a config's hosts must report (`expected`, `node`),
//! finding or starting a config's manager (`locate`), one client per config at a time (`lock`),
//! the hosts' output passed on to `tracing` (`output`), and this user's private directory for
//! state (`private`).
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
mod exit_watchdog;
mod expected;
mod locate;
mod lock;
mod manager;
mod node;
mod output;
mod owned;
mod private;

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
