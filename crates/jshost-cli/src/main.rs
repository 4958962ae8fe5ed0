//! `jshost`: the command-line companion of the jshost SDK.
//!
//! Calls the JavaScript functions of a [js-host] 0.12 process, runs managed hosts for development
//! and follows their logs:
//!
//! ```text
//! jshost host start                                   # a managed host, up until `host stop`
//! jshost call hello_world --data '{"name": "Foo"}'     # Hello, Foo!
//! echo '{"name": "Foo"}' | jshost call hello_world --data -
//! jshost status [--use-manager]                       # the host's status as JSON
//! jshost host stop|restart                            # the managed host (through its manager)
//! jshost manager stop
//! jshost logs [-f]                                    # the managed host's logfile
//! ```
//!
//! The global flags mirror the SDK's `Settings` and read the same `JSHOST_*` variables
//! (`--source-root`, `--config-file`, `--use-manager`, `--path-to-node`, `--path-to-bin`,
//! `--timeout`, `--root-url`); `-v` logs the SDK's `tracing` events to stderr.
//!
//! Exit codes (also in `jshost --help`): 0 success, 1 function error (the JS stack is printed),
//! 2 usage or configuration error, 3 connection or process error, 4 timeout, 5 unexpected
//! response, 6 unknown function, 7 no manager or managed host to act on, 8 I/O error. Errors are
//! printed to stderr as `jshost: <message>`.
//!
//! [js-host]: https://www.npmjs.com/package/js-host
#![allow(clippy::print_stdout)]

mod cli;
mod commands;
mod failure;

use clap::Parser;
use failure::{code, Failure};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let verbose = cli.global.verbose;
    if verbose > 0 {
        init_tracing(verbose);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return Failure::io("cannot start the async runtime", e).report(verbose > 0),
    };
    let settings = match cli.global.settings() {
        Ok(settings) => settings,
        Err(e) => return Failure::from(e).report(verbose > 0),
    };
    let result = runtime.block_on(commands::run(cli.command, settings));
    // Background work (closing pooled connections) gets a moment, never more.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::from(code::OK),
        Err(failure) => failure.report(verbose > 0),
    }
}

/// Logs the SDK's events to stderr: -v info, -vv debug, -vvv trace.
fn init_tracing(verbose: u8) {
    let level = match verbose {
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let directives = ["jshost", "jshost_core", "jshost_client", "jshost_manager"]
        .map(|target| format!("{target}={level}"))
        .join(",");
    let filter = tracing_subscriber::EnvFilter::try_new(directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Fails only if a subscriber is already installed, which cannot happen here.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
