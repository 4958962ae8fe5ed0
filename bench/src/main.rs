//! `jshost-bench`: process-level comparisons of the jshost SDK and its Node hosts, each printed
//! as a ratio to a reference measured in the same run (medians of alternating rounds, with the
//! steal time of each round). It starts every host it measures from `bench/bench.config.js` and
//! stops them all. Targets and history live in `bench/RESULTS.md`, not here.
//!
//! ```text
//! cargo run --release -p jshost-bench -- <matrix|startup|hosts|sequential|ab|soak> [--help]
//! ```
#![allow(clippy::print_stdout)]

mod ab;
mod hosts;
mod matrix;
mod measure;
mod node;
mod soak;
mod startup;
mod wrk;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser)]
#[command(name = "jshost-bench", about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Batching on against off: echo, async 200 ms, markdown, React, 64 KB answers at 1, 8 and
    /// 64 in flight; and `wrk -c64` on echo against the same host.
    Matrix(matrix::Opts),
    /// Start-up to the first answer: cold managed, warm managed and owned hosts.
    Startup(startup::Opts),
    /// `wrk` against jshost-node, js-host 0.12 and a plain `node:http` echo server (the reference).
    Hosts(hosts::Opts),
    /// The SDK calling sequentially against `wrk -c1` and bare hyper-util on the same host.
    Sequential(hosts::SeqOpts),
    /// Two host binaries against each other (before/after): cold start; echo, markdown and React at 1 and 64 in flight.
    Ab(ab::Opts),
    /// A function leaking 1 MB per 100 calls for N minutes: failed calls and host RSS over time.
    Soak(soak::Opts),
}

/// Rounds and their length, shared by the subcommands that alternate rounds.
#[derive(clap::Args, Debug, Clone)]
pub struct Rounds {
    /// Alternating rounds; each figure is the median over them.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
}

impl Rounds {
    /// `--seconds` as a duration (at least 0.1 s).
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds.max(0.1))
    }
}

/// The repository's root (the SDK's `source_root` in every run).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `bench/bench.config.js`.
pub fn bench_config() -> PathBuf {
    root().join("bench/bench.config.js")
}

/// jshost-node as the SDK's default `path_to_bin` finds it.
pub fn jshost_node_bin() -> PathBuf {
    root().join("node_modules/jshost-node/bin/jshost-node.js")
}

/// The `echo` data every client sends (112 B of JSON).
pub fn echo_data() -> serde_json::Value {
    serde_json::json!({
        "title": "jshost-bench", "id": 42, "tags": ["alpha", "beta", "gamma"],
        "user": {"name": "Foo", "admin": false}, "score": 1.5
    })
}

/// A directory of this run's files (configs, wrk scripts, host stderr), removed at the end.
pub fn work_dir() -> PathBuf {
    std::env::temp_dir().join(format!("jshost-bench-{}", std::process::id()))
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into())
}

/// What the figures were measured on.
fn print_header() {
    let cpu = command_output("sh", &["-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"]);
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "## jshost-bench {}\n",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    println!(
        "{} UTC, commit {}; {cores} cores ({cpu}), Linux {}; node {}; load average {}\n",
        command_output("date", &["-u", "+%Y-%m-%d %H:%M"]),
        command_output("git", &["rev-parse", "--short", "HEAD"]),
        command_output("uname", &["-r"]),
        command_output("node", &["-v"]),
        command_output("cut", &["-d ", "-f1-3", "/proc/loadavg"]),
    );
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("building the tokio runtime")?;
    let work = work_dir();
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    // What the SDK preloads into an owned js-host; the bench preloads it into js-host and node:http.
    std::fs::write(work.join("guard.js"), jshost_manager::GUARD_JS).context("writing guard.js")?;
    print_header();
    let result = runtime.block_on(async {
        match cli.command {
            Command::Matrix(o) => matrix::run(o).await,
            Command::Startup(o) => startup::run(o).await,
            Command::Hosts(o) => hosts::run(o).await,
            Command::Sequential(o) => hosts::sequential(o).await,
            Command::Ab(o) => ab::run(o).await,
            Command::Soak(o) => soak::run(o).await,
        }
    });
    drop(runtime);
    let _ = std::fs::remove_dir_all(&work);
    result
}
