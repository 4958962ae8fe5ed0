//! jshost's end-to-end tests against real js-host processes, linked as one test binary (CI links
//! once). Each module is one area; every test uses its own config fixture on its own port and
//! stops every process it starts, so they run in parallel. (`memory.rs` and `spans.rs` are
//! binaries of their own: one measures the process's RSS, the other installs a tracing
//! subscriber, which other tests would disturb.)
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod actix;
mod batching;
mod caching;
mod cli;
mod concurrency;
mod default_host;
mod devloop;
mod direct;
mod examples;
mod jshost_node;
mod managed;
mod output;
mod owned;
mod production;
mod reliability;
mod runtimes;
mod scale_out;
mod security;
mod soak;
mod tls;
