//! Shared building blocks of the jshost SDK: [`Settings`], the parsed [`Status`] of a js-host
//! process, the call [`hash`], and the one [`Error`] type.
//!
//! Most users depend on the `jshost` crate, which re-exports all of this but
//! [`error::Build`], the SDK's own way of making errors.
//!
//! ```
//! let settings = jshost_core::Settings::default().config_file("host.config.js");
//! assert!(settings.validate().is_ok());
//! assert_eq!(jshost_core::hash("foo"), "0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
mod hash;
pub mod settings;
pub mod status;

pub use error::{Error, ErrorKind, Result};
pub use hash::hash;
pub use settings::Settings;
pub use status::Status;
