//! Two host binaries against each other in one run (before and after a change): cold start,
//! echo at 1 and 64 in flight, and the realistic rows (markdown, React) of the matrix.

use crate::measure::{self, dur, median, ratio, Bare, Caller, Fig, Run};
use crate::node::{Kind, NodeHost};
use crate::Rounds;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Opts {
    #[command(flatten)]
    pub rounds: Rounds,
    /// Host A, the reference: a jshost-node.js (e.g. of an older checkout).
    #[arg(long)]
    pub host_a: PathBuf,
    /// Host B, compared with A: a jshost-node.js taking the same flags.
    #[arg(long)]
    pub host_b: PathBuf,
    /// Cold starts of each host, alternating.
    #[arg(long, default_value_t = 7)]
    pub starts: usize,
}

/// The rows: (label, shape (matrix.rs), calls in flight, caller: SDK batching on, off, wrk).
const ROWS: [(&str, &str, usize, usize); 8] = [
    ("echo, SDK, 1 in flight, batching on (default)", "echo", 1, 0),
    ("echo, SDK, 64 in flight, batching on (default)", "echo", 64, 0),
    ("echo, SDK, 64 in flight, batching off", "echo", 64, 1),
    ("echo, `wrk -t1 -c64`", "echo", 64, 2),
    ("marked, 4 KB README, SDK, 1 in flight", "markdown", 1, 0),
    ("marked, 4 KB README, SDK, 64 in flight", "markdown", 64, 0),
    ("React renderToString, 20 rows, SDK, 1 in flight", "react", 1, 0),
    ("React renderToString, 20 rows, SDK, 64 in flight", "react", 64, 0),
];

pub async fn run(o: Opts) -> Result<()> {
    let bins = [&o.host_a, &o.host_b];
    let mut starts: [Vec<Duration>; 2] = Default::default();
    for run in 0..o.starts {
        for k in 0..2 {
            let i = (run + k) % 2;
            let took = cold_start(bins[i]).await;
            starts[i].push(took.with_context(|| format!("cold start of {}", bins[i].display()))?);
        }
    }
    let a = NodeHost::start("host A", Kind::JshostNode, &o.host_a, &[]).await?;
    // On an error, dropping `a` kills it.
    let b = NodeHost::start("host B", Kind::JshostNode, &o.host_b, &[]).await?;
    let result = throughput(&o, [&a, &b]).await;
    a.stop().await?;
    b.stop().await?;
    let figs = result?;

    println!(
        "Method: A = {}, B = {}. Cold start: `node BIN bench/bench.config.js --port 0 --json --exit-on-stdin-close` \
         until a bare hyper-util client has the first `echo` answer, then the host is stopped; {} runs each, \
         alternating, median. Calls: one process of each host, started the same way; the SDK through two handles on \
         each (`root_url`, batching on and off), N tokio tasks calling in a loop for {} per run (markdown and React: \
         the matrix's data); `wrk -t1 -c64` with \
         the same bytes and the SDK's `X-Jshost-Timeout` header; {} rounds alternating A and B, medians; steal from \
         /proc/stat (redone over {}%).\n",
        o.host_a.display(),
        o.host_b.display(),
        o.starts,
        dur(o.rounds.duration()),
        o.rounds.rounds,
        measure::STEAL_LIMIT
    );
    println!("| measurement | A | B | B / A | host CPU per call, A / B | steal (most) |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let [sa, sb] = starts.map(|mut v| {
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    });
    println!(
        "| cold start: process start + first answer | {} | {} | {} | – | – |",
        dur(sa),
        dur(sb),
        ratio(sb.as_secs_f64(), sa.as_secs_f64())
    );
    for (&(label, ..), pair) in ROWS.iter().zip(figs.chunks(2)) {
        let (fa, fb) = (median(&pair[0]), median(&pair[1]));
        println!(
            "| {label} | {} | {} | {} calls/s, p99 {} | {:.1} µs / {:.1} µs | {} / {} |",
            fa.show(),
            fb.show(),
            ratio(fb.rate, fa.rate),
            ratio(fb.p99.as_secs_f64(), fa.p99.as_secs_f64()),
            fa.cpu,
            fb.cpu,
            fa.steal_note(),
            fb.steal_note()
        );
    }
    Ok(())
}

/// Start + first answer of one host process.
async fn cold_start(bin: &std::path::Path) -> Result<Duration> {
    let started = Instant::now();
    let host = NodeHost::start("cold start", Kind::JshostNode, bin, &[]).await?;
    let body = serde_json::to_vec(&crate::echo_data())?;
    let bare = Bare::new(&measure::function_url(&host.url, "echo", &body), body.into())?;
    let answered = bare.call().await;
    let took = started.elapsed();
    host.stop().await?;
    answered.map(|()| took)
}

/// The figures of each row and host (A, B), per round.
async fn throughput(o: &Opts, hosts: [&NodeHost; 2]) -> Result<Vec<Vec<Fig>>> {
    let mut handles = Vec::new();
    for h in hosts {
        handles.push([h.sdk(true).await?, h.sdk(false).await?]);
    }
    let mut runs = Vec::new();
    for &(label, shape, in_flight, c) in &ROWS {
        let shape = crate::matrix::shape(shape)?;
        for (i, h) in hosts.iter().enumerate() {
            let caller = if c < 2 {
                Caller::Sdk(handles[i][c].function(shape.function), shape.data.clone())
            } else {
                let body = serde_json::to_vec(&shape.data)?;
                Caller::Wrk(measure::function_url(&h.url, shape.function, &body), body)
            };
            let label = format!("{label}, host {}", ["A", "B"][i]);
            runs.push(Run::new(label, Arc::new(caller), in_flight, Some(h.pid)));
        }
    }
    let figs = measure::rounds(&o.rounds, &runs).await;
    for h in handles.into_iter().flatten() {
        h.disconnect().await?;
    }
    figs
}
