//! Start-up with a managed host (`--only startup`): `JsHost::connect` (`use_manager(true)`) until
//! the first answer, for js-host 0.12 and for jshost-node (the SDK's default host), each with a
//! manager of its own: a config file of its own that `require`s the bench config, with a port of
//! its own.
//!
//! - first ever: nothing running, nothing cached (the config file is new);
//! - warm: a managed host of the config running (a handle stays connected through the warm runs);
//! - cold: nothing running, the config's status cached: manager + host + first answer.
//!
//! Before each first-ever and each cold run, every manager is stopped (`/manager/stop`) and the
//! run waits, polling with a deadline, until no process of either config is left (any process
//! with the config file as an argument: a manager, the hosts it started, a `--config` run) and
//! both ports are free. Python's `settings.configure` + first call (js-host 0.2.0, which speaks
//! js-host's manager protocol) runs beside js-host, warm and cold. The runs alternate between the
//! hosts (rotating which goes first), so both see the same machine. Every manager is stopped at
//! the end, also on error, and any process of theirs still there is killed (an error).

use crate::procfs::{self, Proc};
use crate::python::Python;
use crate::{free_port, Func};
use anyhow::{bail, Context, Result};
use jshost::{JsHost, Manager, Settings};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long stopping the managers may take before it is an error.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// A managed host measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Managed {
    /// js-host 0.12.
    JsHost,
    /// jshost-node (`Settings::default().path_to_bin`).
    JshostNode,
}

impl Managed {
    pub const ALL: [Managed; 2] = [Managed::JsHost, Managed::JshostNode];

    pub fn label(self) -> &'static str {
        match self {
            Managed::JsHost => "js-host 0.12",
            Managed::JshostNode => "jshost-node",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Managed::JsHost => "js-host",
            Managed::JshostNode => "jshost-node",
        }
    }

    fn bin(self) -> &'static str {
        match self {
            Managed::JsHost => crate::compare::JS_HOST_BIN,
            Managed::JshostNode => crate::compare::JSHOST_NODE_BIN,
        }
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    pub function: Func,
    pub warm_runs: usize,
    pub cold_runs: usize,
    /// Python's runs, warm and cold (js-host only).
    pub python_runs: usize,
}

/// One host's start-up times.
#[derive(Debug, Clone)]
pub struct Startup {
    pub host: Managed,
    /// The manager's port.
    pub port: u16,
    pub first_ever: Option<Duration>,
    pub warm: Vec<Duration>,
    pub cold: Vec<Duration>,
    pub python_warm: Vec<Duration>,
    pub python_cold: Vec<Duration>,
    pub python_error: Option<String>,
}

/// One host's manager setup.
struct Subject {
    host: Managed,
    settings: Settings,
    config: PathBuf,
    /// The config file's name, unique to this run: an argument of every process of the config.
    needle: String,
    url: String,
    port: u16,
}

impl Subject {
    fn new(host: Managed, root: &Path, bench_config: &Path, work: &Path) -> Result<Subject> {
        let port = free_port()?;
        let needle = format!("bench-managed-{}-{}.config.js", host.slug(), std::process::id());
        let config = work.join(&needle);
        std::fs::write(
            &config,
            format!(
                "// jshost-bench: {} with its {} manager on port {port}.\n\
                 module.exports = Object.assign({{}}, require({}), {{ port: {port} }});\n",
                bench_config.display(),
                host.label(),
                serde_json::to_string(&bench_config)?
            ),
        )?;
        let settings = Settings::default()
            .source_root(root)
            .config_file(&config)
            .path_to_bin(host.bin())
            .use_manager(true);
        Ok(Subject {
            host,
            settings,
            config,
            needle,
            url: format!("http://127.0.0.1:{port}"),
            port,
        })
    }

    /// Its processes still there, and whether something listens on its port.
    fn left(&self) -> (Vec<Proc>, bool) {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let listening = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
        (procfs::with_arg(&self.needle), listening)
    }
}

/// Measures the start-up of every host of [`Managed::ALL`]; Python beside js-host.
pub async fn run(
    plan: &Plan,
    root: &Path,
    bench_config: &Path,
    work: &Path,
    python: Option<&Python>,
) -> Result<Vec<Startup>> {
    let subjects = Managed::ALL
        .into_iter()
        .map(|h| Subject::new(h, root, bench_config, work))
        .collect::<Result<Vec<_>>>()?;
    let result = runs(plan, &subjects, python).await;
    let stopped = stop_all(&subjects).await;
    if stopped.is_err() {
        for s in &subjects {
            procfs::leftovers(&procfs::with_arg(&s.needle)).await;
        }
    }
    let startup = result?;
    stopped.context("stopping the start-up runs' managers (what was left is killed)")?;
    Ok(startup)
}

/// Stops every subject's manager (and so its hosts), then waits until none of their processes
/// is left and their ports are free, polling, for [`STOP_DEADLINE`] at most.
async fn stop_all(subjects: &[Subject]) -> Result<()> {
    for s in subjects {
        let manager = Manager::new(&s.url);
        if manager.is_running().await {
            if let Err(e) = manager.stop().await {
                // It may have stopped in between: what is left decides.
                eprintln!(
                    "jshost-bench: stopping the {} manager at {}: {e}",
                    s.host.label(),
                    s.url
                );
            }
        }
    }
    let deadline = Instant::now() + STOP_DEADLINE;
    loop {
        let left: Vec<String> = subjects
            .iter()
            .filter_map(|s| {
                let (procs, listening) = s.left();
                (!procs.is_empty() || listening).then(|| {
                    format!(
                        "{}: process(es) [{}]{}",
                        s.host.label(),
                        procs
                            .iter()
                            .map(|p| p.pid.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        if listening {
                            format!(", port {} still listening", s.port)
                        } else {
                            String::new()
                        }
                    )
                })
            })
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{STOP_DEADLINE:?} after `/manager/stop`, still running: {}",
                left.join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connect + first call, timed.
async fn connect_and_call(settings: &Settings, function: &str, data: &Value) -> Result<(JsHost, Duration)> {
    let started = Instant::now();
    let host = JsHost::connect(settings.clone()).await?;
    host.function(function).call(data).await?;
    Ok((host, started.elapsed()))
}

/// The subjects in the order of `round` (rotating which goes first).
fn rotated(subjects: &[Subject], round: usize) -> impl Iterator<Item = (usize, &Subject)> {
    (0..subjects.len()).map(move |k| {
        let i = (round + k) % subjects.len();
        (i, &subjects[i])
    })
}

async fn runs(plan: &Plan, subjects: &[Subject], python: Option<&Python>) -> Result<Vec<Startup>> {
    let function = plan.function.name();
    let data = plan.function.data();
    let mut out: Vec<Startup> = subjects
        .iter()
        .map(|s| Startup {
            host: s.host,
            port: s.port,
            first_ever: None,
            warm: Vec::new(),
            cold: Vec::new(),
            python_warm: Vec::new(),
            python_cold: Vec::new(),
            python_error: None,
        })
        .collect();
    let python = |s: &Subject| python.filter(|_| s.host == Managed::JsHost);
    let with_context =
        |s: &Subject, what: &str| format!("{} start-up, {what} (manager port {})", s.host.label(), s.port);

    for (i, s) in subjects.iter().enumerate() {
        eprintln!(
            "start-up: {} first ever (manager on port {})...",
            s.host.label(),
            s.port
        );
        stop_all(subjects).await?;
        let (host, took) = connect_and_call(&s.settings, function, &data)
            .await
            .with_context(|| with_context(s, "first ever"))?;
        out[i].first_ever = Some(took);
        host.disconnect().await?;
    }

    // Warm: a handle of each stays connected meanwhile, so each manager keeps its host.
    let mut primes = Vec::new();
    for s in subjects {
        let (prime, _) = connect_and_call(&s.settings, function, &data)
            .await
            .with_context(|| with_context(s, "warm"))?;
        primes.push(prime);
    }
    eprintln!("start-up: warm x{} each...", plan.warm_runs);
    for round in 0..plan.warm_runs {
        for (i, s) in rotated(subjects, round) {
            let (host, took) = connect_and_call(&s.settings, function, &data)
                .await
                .with_context(|| with_context(s, "warm"))?;
            out[i].warm.push(took);
            host.disconnect().await?;
        }
    }
    for (i, s) in subjects.iter().enumerate() {
        let Some(py) = python(s) else { continue };
        eprintln!("start-up: Python warm x{}...", plan.python_runs);
        for _ in 0..plan.python_runs {
            match py.startup(&s.config).await {
                Ok(took) => out[i].python_warm.push(took),
                Err(e) => {
                    out[i].python_error = Some(format!("{e:#}"));
                    break;
                }
            }
        }
    }
    for prime in primes {
        prime.disconnect().await?;
    }

    eprintln!(
        "start-up: cold x{} each (every manager stopped and its processes gone before each run)...",
        plan.cold_runs
    );
    for round in 0..plan.cold_runs {
        for (i, s) in rotated(subjects, round) {
            stop_all(subjects).await?;
            let (host, took) = connect_and_call(&s.settings, function, &data)
                .await
                .with_context(|| with_context(s, "cold"))?;
            out[i].cold.push(took);
            host.disconnect().await?;
        }
    }
    for (i, s) in subjects.iter().enumerate() {
        let (Some(py), None) = (python(s), &out[i].python_error) else {
            continue;
        };
        eprintln!("start-up: Python cold x{}...", plan.python_runs);
        for _ in 0..plan.python_runs {
            stop_all(subjects).await?;
            match py.startup(&s.config).await {
                Ok(took) => out[i].python_cold.push(took),
                Err(e) => {
                    out[i].python_error = Some(format!("{e:#}"));
                    break;
                }
            }
        }
    }
    Ok(out)
}
