//! Start-up to the first answer (issue 22): cold managed, warm managed and owned hosts.

use crate::measure::dur;
use crate::node;
use anyhow::{bail, Context, Result};
use jshost::{JsHost, Settings};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long stopping the manager and its hosts may take.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct Opts {
    /// Runs of each kind, alternating.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// The host (default: node_modules/jshost-node/bin/jshost-node.js).
    #[arg(long)]
    pub bin: Option<PathBuf>,
}

pub async fn run(o: Opts) -> Result<()> {
    let bin = o.bin.clone().unwrap_or_else(crate::jshost_node_bin);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    // A config of its own, new in every run (so the first connect finds no cached status), on a
    // port of its own, so that its manager is this run's alone.
    let needle = format!("bench-startup-{}.config.js", std::process::id());
    let config = crate::work_dir().join(&needle);
    std::fs::write(
        &config,
        format!(
            "module.exports = Object.assign({{}}, require({}), {{ port: {port} }});\n",
            serde_json::to_string(&crate::bench_config())?
        ),
    )?;
    let owned = Settings::default()
        .source_root(crate::root())
        .config_file(&config)
        .path_to_bin(&bin);
    let managed = owned.clone().use_manager(true);
    let result = runs(&o, &owned, &managed, port, &needle).await;
    let stopped = stop_all(port, &needle).await;
    let [first, cold, warm, own] = result?;
    stopped?;

    println!(
        "Method: wall time from the call to the first answer of `echo`, on the host {} with bench/bench.config.js (through a config of \
         its own on port {port}). Cold managed: `JsHost::connect(use_manager(true))` with nothing running (before \
         each run the manager is stopped with `/manager/stop` and the run waits, polling, until no process with the \
         config in its arguments is left and the port is free), the config's status cached by the SDK from the first \
         run; warm managed: `connect` while another handle keeps the managed host running; owned: `JsHost::spawn` \
         (then `stop`). {} runs of each, alternating cold, warm ×2, owned; medians.\n",
        bin.display(),
        o.runs
    );
    println!("| start-up | median | min – max | runs |");
    println!("| --- | --- | --- | --- |");
    for (label, v) in [
        ("cold managed: manager + host + first answer", cold),
        ("warm managed: connect + first answer", warm),
        ("owned: `JsHost::spawn` + first answer", own),
        ("first run: cold managed, status not cached", first),
    ] {
        let mut v = v;
        v.sort();
        let at = |i: usize| dur(v.get(i).copied().unwrap_or_default());
        let (n, median) = (v.len(), at(v.len() / 2));
        println!(
            "| {label} | {median} | {} – {} | {n} |",
            at(0),
            at(n.saturating_sub(1))
        );
    }
    Ok(())
}

/// Connect (or spawn) + first answer, timed.
async fn first_answer(settings: &Settings, spawn: bool) -> Result<(JsHost, Duration)> {
    let started = Instant::now();
    let host = if spawn {
        JsHost::spawn(settings.clone()).await?
    } else {
        JsHost::connect(settings.clone()).await?
    };
    host.function("echo").call(&crate::echo_data()).await?;
    Ok((host, started.elapsed()))
}

/// First run, cold managed, warm managed, owned.
type Times = [Vec<Duration>; 4];

async fn runs(o: &Opts, owned: &Settings, managed: &Settings, port: u16, needle: &str) -> Result<Times> {
    let mut out = Times::default();
    stop_all(port, needle).await?;
    let (host, took) = first_answer(managed, false).await.context("first run")?;
    out[0].push(took);
    host.disconnect().await?;
    for run in 0..o.runs {
        eprintln!("startup: run {} of {}...", run + 1, o.runs);
        stop_all(port, needle).await?;
        let (prime, took) = first_answer(managed, false).await.context("cold managed")?;
        out[1].push(took);
        for _ in 0..2 {
            let (host, took) = first_answer(managed, false).await.context("warm managed")?;
            out[2].push(took);
            host.disconnect().await?;
        }
        prime.disconnect().await?;
        let (host, took) = first_answer(owned, true).await.context("owned")?;
        out[3].push(took);
        host.stop().await?;
    }
    Ok(out)
}

/// Stops the manager on `port` (and so its hosts), then waits until no process with `needle`
/// in its arguments is left and the port is free; what is left after the deadline is killed.
async fn stop_all(port: u16, needle: &str) -> Result<()> {
    if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        let request = format!(
            "POST /manager/stop HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(STOP_DEADLINE, s.read_to_end(&mut answer)).await;
    }
    let deadline = Instant::now() + STOP_DEADLINE;
    loop {
        let left = node::with_arg(needle);
        let listening = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if left.is_empty() && !listening {
            return Ok(());
        }
        if Instant::now() > deadline {
            for pid in &left {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
            }
            bail!("{STOP_DEADLINE:?} after /manager/stop, still running: {left:?} (killed), port {port} listening: {listening}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
