//! The batching matrix (issue 19): the SDK's automatic batching on against off, on one host.

use crate::measure::{self, dur, median, ratio, Caller, Fig, Run};
use crate::node::{Kind, NodeHost};
use crate::Rounds;
use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct Opts {
    #[command(flatten)]
    pub rounds: Rounds,
    /// Calls in flight, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    pub in_flight: Vec<usize>,
    /// Shapes, comma-separated: echo, sleep (an async function awaiting 200 ms), markdown (marked
    /// on a 4 KB README), react (renderToString of a 20-row table), blob64k (64 KB answers).
    #[arg(long, value_delimiter = ',', default_value = SHAPES)]
    pub shapes: Vec<String>,
    /// The host (default: node_modules/jshost-node/bin/jshost-node.js).
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Extra flags for the host, e.g. `--host-arg=--workers --host-arg=2`.
    #[arg(long = "host-arg", allow_hyphen_values = true)]
    pub host_args: Vec<String>,
}

const SHAPES: &str = "echo,sleep,markdown,react,blob64k";

/// A function and the data each call sends.
pub struct Shape {
    pub name: &'static str,
    pub function: &'static str,
    pub data: Value,
}

/// The shapes of the matrix by name.
pub fn shape(name: &str) -> Result<Shape> {
    let price = |i: u32| format!("{:.2}", f64::from(i) * 1.25 + 3.0);
    let items: Vec<Value> = (0..20)
        .map(|i| json!({ "id": i, "name": format!("Item {i} & Co"), "price": price(i) }))
        .collect();
    let markdown = include_str!("../readme.md");
    let (name, function, data) = match name {
        "echo" => ("echo", "echo", crate::echo_data()),
        "sleep" => ("async, awaits 200 ms", "sleep", json!({ "ms": 200 })),
        "markdown" => ("marked, 4 KB README", "markdown", json!({ "markdown": markdown })),
        "react" => (
            "React renderToString, 20 rows",
            "react",
            json!({ "title": "bench", "items": items }),
        ),
        "blob64k" => ("64 KB answers", "blob", json!({ "size": 65536 })),
        other => bail!("unknown shape {other:?} (one of {SHAPES})"),
    };
    Ok(Shape { name, function, data })
}

pub async fn run(o: Opts) -> Result<()> {
    let shapes = o.shapes.iter().map(|s| shape(s)).collect::<Result<Vec<_>>>()?;
    let bin = o.bin.clone().unwrap_or_else(crate::jshost_node_bin);
    let extra = &o.host_args;
    let host = NodeHost::start("jshost-node", Kind::JshostNode, &bin, extra).await?;
    let pid = host.pid;
    let result = measure_all(&o, &shapes, &host).await;
    host.stop().await?;
    let figs: Vec<Fig> = result?.iter().map(|f| median(f)).collect();

    println!(
        "Method: one jshost-node process (`node {} bench/bench.config.js --port 0 --json --exit-on-stdin-close{}`, \
         pid {pid}), two SDK handles on it (`Settings::root_url`, `batch(true)` and `batch(false)`). Each cell keeps \
         N calls in flight (N tokio tasks calling in a loop, 2 worker threads) for {} per mode and round, after a \
         warm-up of {}; {} rounds, the order reversed in every other round (so on and off alternate which goes \
         first); medians of the rounds; steal time from /proc/stat around each measurement (redone when over {}%, \
         flagged (!) when it stayed over). `wrk -t1 -c64` posts the SDK's echo bytes to the same host in every \
         round.\n",
        bin.display(),
        extra.iter().map(|a| format!(" {a}")).collect::<String>(),
        dur(o.rounds.duration()),
        dur(measure::WARM_UP),
        o.rounds.rounds,
        measure::STEAL_LIMIT
    );
    println!(
        "| function | in flight | batching on | batching off | on/off calls/s | on/off p99 | steal (most) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut cells = figs.chunks_exact(2);
    for s in &shapes {
        for (&n, [on, off]) in o.in_flight.iter().zip(cells.by_ref().map(|c| [c[0], c[1]])) {
            println!(
                "| {} | {n} | {} | {} | {} | {} | {} / {} |",
                s.name,
                on.show(),
                off.show(),
                ratio(on.rate, off.rate),
                ratio(on.p99.as_secs_f64(), off.p99.as_secs_f64()),
                on.steal_note(),
                off.steal_note()
            );
        }
    }
    let wrk = figs.last().copied().unwrap_or_default();
    let echo64 = shapes
        .iter()
        .position(|s| s.function == "echo")
        .zip(o.in_flight.iter().position(|&n| n == 64));
    let sdk64 = |m: usize| {
        echo64.map_or("–".into(), |(s, n)| {
            ratio(figs[(s * o.in_flight.len() + n) * 2 + m].rate, wrk.rate)
        })
    };
    println!(
        "| echo, `wrk -t1 -c64` (same host) | 64 | {} | – | SDK batching on / wrk: {}; off / wrk: {} | – | {} |",
        wrk.show(),
        sdk64(0),
        sdk64(1),
        wrk.steal_note()
    );
    Ok(())
}

/// The figures of each run: per shape and level, on then off; wrk last.
async fn measure_all(o: &Opts, shapes: &[Shape], host: &NodeHost) -> Result<Vec<Vec<Fig>>> {
    let handles = [host.sdk(true).await?, host.sdk(false).await?];
    let mut runs = Vec::new();
    for s in shapes {
        for &in_flight in &o.in_flight {
            for (h, mode) in handles.iter().zip(["on", "off"]) {
                let caller = Arc::new(Caller::Sdk(h.function(s.function), s.data.clone()));
                let label = format!("{} at {in_flight}, batching {mode}", s.name);
                runs.push(Run::new(label, caller, in_flight, None));
            }
        }
    }
    let echo = serde_json::to_vec(&crate::echo_data())?;
    let caller = Arc::new(Caller::Wrk(measure::function_url(&host.url, "echo", &echo), echo));
    runs.push(Run::new("wrk -c64", caller, 64, None));
    let figs = measure::rounds(&o.rounds, &runs).await;
    for h in handles {
        h.disconnect().await?;
    }
    figs
}
