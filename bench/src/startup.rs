//! Start-up to the first answer (issue 22): cold managed, warm managed and owned hosts.

use crate::measure::dur;
use crate::node;
use anyhow::{bail, Context, Result};
use jshost::{JsHost, Settings};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    let [first, cold, warm, own, floor_cold, floor_own] = result?;
    stopped?;
    println!(
        "Method: wall time from the call to the first answer of `echo`, on the host {} with bench/bench.config.js (through a config of \
         its own on port {port}). Cold managed: `JsHost::connect(use_manager(true))` with nothing running (before \
         each run the manager is stopped with `/manager/stop` and the run waits, polling, until no process with the \
         config in its arguments is left and the port is free), the config's status cached by the SDK from the first \
         run; warm managed: `connect` while another handle keeps the managed host running; owned: `JsHost::spawn` \
         (then `stop`). {} runs of each, alternating cold, warm ×2, owned; medians. Floors, measured in every run: \
         `node -e ''` started and awaited, three times in series (the manager, the host's primary, its worker: the \
         first two without NODE_EXTRA_CA_CERTS, the third with this environment's, as jshost does) for cold managed, \
         the last two for owned.\n",
        bin.display(),
        o.runs
    );
    println!(
        "| start-up | median | min – max | runs | median / its floor's |\n| --- | --- | --- | --- | --- |"
    );
    let (fc, fo) = (median(&floor_cold), median(&floor_own));
    row("cold managed: manager + host + first answer", &cold, Some(fc));
    row("warm managed: connect + first answer", &warm, None);
    row("owned: `JsHost::spawn` + first answer", &own, Some(fo));
    row("first run: cold managed, status not cached", &first, None);
    row("floor of cold managed: 3 Node start-ups", &floor_cold, None);
    row("floor of owned: 2 Node start-ups", &floor_own, None);
    Ok(())
}

fn median(v: &[Duration]) -> Duration {
    Duration::from_secs_f64(crate::measure::median_f64(
        v.iter().map(Duration::as_secs_f64).collect(),
    ))
}

/// A row of the table: `v`'s median, range and count, and its median over `floor`.
fn row(label: &str, v: &[Duration], floor: Option<Duration>) {
    let (m, n) = (median(v), v.len());
    let versus = floor.map_or("–".into(), |f| {
        format!("{:.2}×", m.as_secs_f64() / f.as_secs_f64())
    });
    let at = |d: Option<&Duration>| dur(d.copied().unwrap_or_default());
    let (min, max) = (at(v.iter().min()), at(v.iter().max()));
    println!("| {label} | {} | {min} – {max} | {n} | {versus} |", dur(m));
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

/// First run, cold managed, warm managed, owned, and the floors of cold managed (the manager's
/// Node start-up, then the host's two: primary, worker) and owned (the host's two).
type Times = [Vec<Duration>; 6];

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
        let host_floor = node_start(false).await? + node_start(true).await?;
        out[4].push(node_start(false).await? + host_floor);
        out[5].push(host_floor);
    }
    Ok(out)
}

/// `node -e ''` started and awaited, with this environment's NODE_EXTRA_CA_CERTS or without it.
async fn node_start(ca: bool) -> Result<Duration> {
    let mut cmd = tokio::process::Command::new("node");
    cmd.args(["-e", ""]);
    if !ca {
        cmd.env_remove("NODE_EXTRA_CA_CERTS");
    }
    let started = Instant::now();
    let status = cmd.status().await?;
    anyhow::ensure!(status.success(), "node -e '' failed: {status}");
    Ok(started.elapsed())
}

/// Stops the manager on `port` (and so its hosts), then waits until no process with `needle`
/// in its arguments is left and the port is free; what is left after the deadline is killed.
async fn stop_all(port: u16, needle: &str) -> Result<()> {
    let manager = jshost::manager::Manager::new(format!("http://127.0.0.1:{port}"));
    let _ = manager.stop().await; // an error when none runs (yet, or any more)
    let deadline = Instant::now() + STOP_DEADLINE;
    loop {
        let left = node::with_arg(needle);
        let listening = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if left.is_empty() && !listening {
            return Ok(());
        }
        if Instant::now() > deadline {
            let pids = left.iter().map(u32::to_string);
            let _ = std::process::Command::new("kill").arg("-9").args(pids).status();
            bail!("{STOP_DEADLINE:?} after /manager/stop, still running: {left:?} (killed), port {port} listening: {listening}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
