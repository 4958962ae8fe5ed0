//! The leak soak (issue 20): a function keeping 1 MB per 100 calls, called at a steady rate for
//! N minutes on a host started with `--max-memory MB`: failed calls and host RSS over time.

use crate::node::{self, Kind, NodeHost};
use anyhow::Result;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;

/// Time between printed rows.
const ROW_EVERY: Duration = Duration::from_secs(10);
/// Distinct errors kept for the summary.
const ERRORS_KEPT: usize = 5;

#[derive(clap::Args, Debug)]
pub struct Opts {
    /// How long to call.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// The host's `--max-memory MB` (0: not passed).
    #[arg(long, default_value_t = 200)]
    pub max_memory: u64,
    /// Calls per second, spread over the callers (the leak is 10 KB per call).
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Calls in flight at most.
    #[arg(long, default_value_t = 16)]
    pub in_flight: u64,
    /// Stop early when the host's RSS passes this many MB (a host that never recycles).
    #[arg(long, default_value_t = 4096.0)]
    pub rss_limit: f64,
    /// Extra flags for the host, e.g. `--host-arg=--workers --host-arg=2`.
    #[arg(long = "host-arg", allow_hyphen_values = true)]
    pub host_args: Vec<String>,
    /// The host (default: node_modules/jshost-node/bin/jshost-node.js).
    #[arg(long)]
    pub bin: Option<PathBuf>,
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<String>>,
}

pub async fn run(o: Opts) -> Result<()> {
    let bin = o.bin.clone().unwrap_or_else(crate::jshost_node_bin);
    let mut extra = o.host_args.clone();
    if o.max_memory > 0 {
        extra.extend(["--max-memory".to_owned(), o.max_memory.to_string()]);
    }
    // A host that refuses `--max-memory` fails to start, saying so: pass `--max-memory 0`.
    let mut host = NodeHost::start("soak host", Kind::JshostNode, &bin, &extra).await?;
    let length = Duration::from_secs_f64(o.minutes.max(0.0) * 60.0);
    println!(
        "Method: one host (`node {} bench/bench.config.js --port 0 --json --exit-on-stdin-close{}`, pid {}), the \
         SDK (`root_url`, batching on) calling `leak` (keeps 10 KB per call: 1 MB per 100 calls) at {} calls/s, at \
         most {} in flight, for {}; host RSS = VmRSS of the host and its descendants, sampled every second.\n",
        bin.display(),
        extra.iter().map(|a| format!(" {a}")).collect::<String>(),
        host.pid,
        o.rate,
        o.in_flight,
        crate::measure::dur(length)
    );
    let result = soak(&o, &mut host, length).await;
    host.stop().await?;
    result
}

async fn soak(o: &Opts, host: &mut NodeHost, length: Duration) -> Result<()> {
    let sdk = host.sdk(true).await?;
    let function = sdk.function("leak");
    let counts = Arc::new(Counts::default());
    let (started, callers) = (Instant::now(), o.in_flight.max(1));
    let deadline = started + length;
    let period = Duration::from_secs_f64(callers as f64 / o.rate.max(1) as f64);
    let tasks: Vec<_> = (0..callers)
        .map(|i| {
            let (function, counts) = (function.clone(), Arc::clone(&counts));
            // The callers' first calls spread over one period.
            let first = tokio::time::Instant::now() + period.mul_f64(i as f64 / callers as f64);
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval_at(first, period);
                ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
                while Instant::now() < deadline {
                    ticks.tick().await;
                    if let Err(e) = function.call(&serde_json::json!({})).await {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        let mut errors = counts.errors.lock().unwrap_or_else(PoisonError::into_inner);
                        if errors.len() < ERRORS_KEPT && !errors.contains(&e.to_string()) {
                            errors.push(e.to_string());
                        }
                    } else {
                        counts.ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    println!(
        "| time | calls answered | failed | calls/s | host RSS | host processes | pids seen |\n{}",
        "| --- ".repeat(7) + "|"
    );
    let (mut seen, mut rss_max, mut most_at_once) = (BTreeSet::new(), 0.0f64, 0);
    let (mut last_ok, mut last_row) = (0, Instant::now());
    let mut stopped_early = None;
    while Instant::now() < deadline && stopped_early.is_none() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (pids, rss) = (node::tree(host.pid), node::tree_rss_mb(host.pid));
        seen.extend(pids.iter().copied());
        (most_at_once, rss_max) = (most_at_once.max(pids.len()), rss_max.max(rss));
        if !host.running() {
            stopped_early = Some("the host process exited".to_owned());
        } else if rss > o.rss_limit {
            stopped_early = Some(format!(
                "host RSS {rss:.0} MB passed --rss-limit {:.0} MB",
                o.rss_limit
            ));
        }
        if last_row.elapsed() >= ROW_EVERY || Instant::now() >= deadline || stopped_early.is_some() {
            let ok = counts.ok.load(Ordering::Relaxed);
            println!(
                "| {:.0} s | {ok} | {} | {:.0} | {rss:.0} MB | {} | {} |",
                started.elapsed().as_secs_f64(),
                counts.failed.load(Ordering::Relaxed),
                (ok - last_ok) as f64 / last_row.elapsed().as_secs_f64(),
                pids.len(),
                seen.len()
            );
            (last_ok, last_row) = (ok, Instant::now());
        }
    }
    if stopped_early.is_some() {
        tasks.iter().for_each(|t| t.abort());
    }
    for t in tasks {
        let _ = t.await;
    }
    sdk.disconnect().await?;
    println!(
        "\nSoak: {} calls answered, {} failed in {:.0} s; host RSS at most {rss_max:.0} MB; {} host processes seen, \
         at most {most_at_once} at once.{}",
        counts.ok.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        seen.len(),
        stopped_early.map(|why| format!(" **Stopped early: {why}.**")).unwrap_or_default()
    );
    let errors = counts.errors.lock().unwrap_or_else(PoisonError::into_inner);
    errors.iter().for_each(|e| println!("- error: {e}"));
    Ok(())
}
