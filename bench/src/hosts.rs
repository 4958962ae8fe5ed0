//! The hosts under `wrk` (jshost-node, js-host 0.12, a plain `node:http` echo server as the
//! reference), and the SDK calling sequentially against `wrk -c1` and bare hyper-util.

use crate::measure::{self, median, ratio, Bare, Caller, Fig, Run};
use crate::node::{Kind, NodeHost};
use crate::Rounds;
use anyhow::Result;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct Opts {
    #[command(flatten)]
    pub rounds: Rounds,
    /// wrk connections, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub connections: Vec<usize>,
}

pub async fn run(o: Opts) -> Result<()> {
    let (bin, js_host) = (
        crate::jshost_node_bin(),
        crate::root().join("node_modules/js-host/bin/js-host.js"),
    );
    let servers = [
        NodeHost::start("plain node:http echo", Kind::NodeHttp, &bin, &[]).await?,
        NodeHost::start("js-host 0.12", Kind::JsHost, &js_host, &[]).await?,
        NodeHost::start("jshost-node, one process", Kind::JshostNode, &bin, &[]).await?,
    ];
    let result = compare(&o, &servers).await;
    let labels: Vec<String> = servers.iter().map(|s| s.label.clone()).collect();
    for s in servers {
        s.stop().await?;
    }
    let figs = result?;

    println!(
        "Method: `wrk -t1 -cN` for {} per run posting the SDK's `echo` bytes (112 B) to each server, started by the \
         bench on 127.0.0.1 from bench/bench.config.js (js-host with the SDK's guard script preloaded: no stdout after its \
         status line; the plain server: bench/node-http-echo.js, which parses the body and answers JSON.stringify \
         of it); {} rounds rotating which server goes first, medians; host CPU per call from /proc/PID/stat of the \
         server and its children; steal from /proc/stat (redone over {}%). jshost-node: {}.\n",
        measure::dur(o.rounds.duration()),
        o.rounds.rounds,
        measure::STEAL_LIMIT,
        bin.display()
    );
    println!("| server | connections | wrk | host CPU per call | / plain node:http | / js-host 0.12 | steal (most) |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (ci, &c) in o.connections.iter().enumerate() {
        let at = |si: usize| &figs[ci * labels.len() + si];
        let (reference, js_host) = (median(at(0)).rate, median(at(1)).rate);
        for (si, s) in labels.iter().enumerate() {
            let fig = median(at(si));
            println!(
                "| {s} | {c} | {} | {:.1} µs | {} | {} | {} |",
                fig.show(),
                fig.cpu,
                ratio(fig.rate, reference),
                ratio(fig.rate, js_host),
                fig.steal_note()
            );
        }
    }
    Ok(())
}

/// The figures of each connection count and server, per round.
async fn compare(o: &Opts, servers: &[NodeHost]) -> Result<Vec<Vec<Fig>>> {
    let body = serde_json::to_vec(&crate::echo_data())?;
    let mut runs = Vec::new();
    for &c in &o.connections {
        for s in servers {
            let (label, url) = (
                format!("{}, -c{c}", s.label),
                measure::function_url(&s.url, "echo", &body),
            );
            let caller = Arc::new(Caller::Wrk(url, body.clone()));
            runs.push(Run::new(label, caller, c, Some(s.pid)));
        }
    }
    measure::rounds(&o.rounds, &runs).await
}

#[derive(clap::Args, Debug)]
pub struct SeqOpts {
    #[command(flatten)]
    pub rounds: Rounds,
    /// The host (default: jshost-node; a path ending in js-host.js is started as js-host 0.12).
    #[arg(long)]
    pub bin: Option<PathBuf>,
}

pub async fn sequential(o: SeqOpts) -> Result<()> {
    let bin = o.bin.clone().unwrap_or_else(crate::jshost_node_bin);
    let kind = if bin.ends_with("js-host.js") {
        Kind::JsHost
    } else {
        Kind::JshostNode
    };
    let host = NodeHost::start("host", kind, &bin, &[]).await?;
    let result = sequential_runs(&o, &host).await;
    host.stop().await?;
    let figs: Vec<Fig> = result?.iter().map(|r| median(r)).collect();
    let [on, off, bare, wrk] = [0, 1, 2, 3].map(|i| figs[i]);
    let gap = |a: &Fig, b: &Fig| (1.0 / a.rate - 1.0 / b.rate) * 1e6;
    println!(
        "Method: one host ({}), started by the bench on TCP; `echo` (112 B) called one at a time for {} per run by \
         the SDK (`Function::call`, batching on and off, two handles with `root_url`), by a bare hyper-util client \
         posting the same bytes, and by `wrk -t1 -c1`; {} rounds rotating the order, medians; steal from /proc/stat \
         (redone over {}%).\n",
        bin.display(),
        measure::dur(o.rounds.duration()),
        o.rounds.rounds,
        measure::STEAL_LIMIT
    );
    println!("| client, sequential | figure | reference | ratio | steal (most) |");
    println!("| --- | --- | --- | --- | --- |");
    for (label, fig, rlabel, reference) in [
        ("SDK, batching on (the default)", &on, "`wrk -t1 -c1`", &wrk),
        ("SDK, batching off", &off, "`wrk -t1 -c1`", &wrk),
        ("bare hyper-util", &bare, "`wrk -t1 -c1`", &wrk),
        ("SDK, batching off", &off, "bare hyper-util", &bare),
    ] {
        println!(
            "| {label} | {} | {rlabel}: {} | {} ({:+.1} µs per call) | {} |",
            fig.show(),
            reference.show(),
            ratio(fig.rate, reference.rate),
            gap(fig, reference),
            fig.steal_note()
        );
    }
    Ok(())
}

async fn sequential_runs(o: &SeqOpts, host: &NodeHost) -> Result<Vec<Vec<Fig>>> {
    let (on, off) = (host.sdk(true).await?, host.sdk(false).await?);
    let data = crate::echo_data();
    let body = serde_json::to_vec(&data)?;
    let url = measure::function_url(&host.url, "echo", &body);
    let callers = [
        Caller::Sdk(on.function("echo"), data.clone()),
        Caller::Sdk(off.function("echo"), data),
        Caller::Bare(Bare::new(&url, body.clone().into())?),
        Caller::Wrk(url, body),
    ];
    let labels = ["SDK batching on", "SDK batching off", "bare hyper", "wrk -c1"];
    let runs: Vec<Run> = callers
        .into_iter()
        .zip(labels)
        .map(|(c, label)| Run::new(label, Arc::new(c), 1, Some(host.pid)))
        .collect();
    let figs = measure::rounds(&o.rounds, &runs).await;
    on.disconnect().await?;
    off.disconnect().await?;
    figs
}
