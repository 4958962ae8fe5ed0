//! Process supervision for jshost.
//!
//! - [`node`]: pre-flight checks, running `js-host CONFIG --config` for the expected status, and
//!   the [`node::StatusCache`] that keeps warm starts fast.
//! - [`Manager`]: a client of the js-host manager protocol, and [`spawn_detached`] to start a
//!   manager that outlives this process (development mode).
//! - [`OwnedHost`]: a js-host child owned and supervised by this process.
//! - [`watchdog`]: closes managed connections when this process exits, however it exits.
//!
//! Most users depend on the `jshost` crate, which drives all of this from its `Settings`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod manager;
pub mod node;
pub mod owned;
pub mod watchdog;

pub use manager::{probe_status, spawn_detached, Connection, Disconnected, HostInfo, Manager};
pub use node::NodeSetup;
pub use owned::{ExitInfo, OwnedHost};
