//! Scale-out: the CPU-bound `render` function through one `JsHost` per configuration, each
//! spawned with `JsHost::spawn(settings)`, at a few in-flight levels (`buffer_unordered` over
//! that one `JsHost`, which spreads the calls over its hosts). The configurations are host counts
//! (`Settings::hosts(n)`, one node process each) or jshost-node worker counts
//! (`Settings::workers(n)`: one host whose primary process hands each connection to a worker).
//!
//! Every configuration is spawned up front and the rounds alternate between them (rotating which
//! goes first), so all see the same machine; an idle node process costs nothing meanwhile. Every
//! host is stopped at the end, whatever happened, and every process it started must be gone.

use crate::clients::{Clients, Side};
use crate::compare;
use crate::procfs::Proc;
use crate::{median, procfs, Func};
use anyhow::{ensure, Context, Result};
use jshost::{JsHost, Settings};
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The configurations, in order.
    pub setups: Vec<Setup>,
    /// In-flight levels.
    pub levels: Vec<usize>,
    /// Calls per configuration and level (over all rounds).
    pub calls: usize,
    pub rounds: usize,
    /// Calls per configuration before measuring (JIT, connections).
    pub warmup: usize,
}

/// One configuration: one `JsHost::spawn(settings)`.
#[derive(Debug, Clone)]
pub struct Setup {
    /// How rows and notes name it: `2 hosts`, `2 workers, batching on`.
    pub name: String,
    /// What its rows say it is, before the level: "`render` scale-out, 2 hosts
    /// (`Settings::hosts(2)`)".
    pub row: String,
    pub settings: Settings,
    /// Hosts `JsHost::hosts` must list.
    pub hosts: usize,
    /// jshost-node `--workers` of each host (0: none, one process per host): each host must run
    /// its primary and this many workers.
    pub workers: usize,
    /// The index of the configuration its ratio is to (its own: it is a baseline).
    pub baseline: usize,
    /// The target for the ratio to the baseline (`1.3` and "≥ 1.3× one worker").
    pub target: Option<(f64, &'static str)>,
}

/// One configuration's results.
#[derive(Debug, Clone)]
pub struct Measured {
    pub setup: Setup,
    /// `JsHost::spawn` until it returned.
    pub spawn_time: Duration,
    /// Per level, in the plan's order.
    pub levels: Vec<Level>,
}

/// One configuration at one level.
#[derive(Debug, Clone)]
pub struct Level {
    /// Calls/s: the median of the rounds.
    pub rate: f64,
    /// Calls measured (all rounds).
    pub calls: usize,
    /// Wall time of the measured runs.
    pub elapsed: Duration,
    /// CPU time of each node process (each host, and each worker and primary of a host with
    /// workers) during the measured runs (`None`: unreadable).
    pub node_cpu: Vec<Option<Duration>>,
    /// CPU time of this process during the measured runs.
    pub client_cpu: Option<Duration>,
    /// CPU time of the rest of the machine during the measured runs (other processes, kernel work
    /// charged to none; `compare::Others`).
    pub rest_cpu: Option<Duration>,
}

impl Level {
    /// Node CPU time per call, all processes together.
    pub fn node_cpu_per_call(&self) -> Option<Duration> {
        let total: Option<Duration> = self.node_cpu.iter().copied().sum();
        Some(total? / u32::try_from(self.calls.max(1)).ok()?)
    }

    /// This process's CPU time per call.
    pub fn client_cpu_per_call(&self) -> Option<Duration> {
        Some(self.client_cpu? / u32::try_from(self.calls.max(1)).ok()?)
    }

    /// Each node process's share of the node CPU time, in percent.
    pub fn node_shares(&self) -> Option<Vec<f64>> {
        let each: Option<Vec<Duration>> = self.node_cpu.iter().copied().collect();
        let each = each?;
        let total: Duration = each.iter().sum();
        (!total.is_zero()).then(|| {
            each.iter()
                .map(|d| 100.0 * d.as_secs_f64() / total.as_secs_f64())
                .collect()
        })
    }

    /// Cores kept busy by the rest of the machine during the measured runs.
    pub fn rest_cores(&self) -> Option<f64> {
        compare::per_wall(self.rest_cpu, self.elapsed)
    }

    /// Cores kept busy by node and this process together during the measured runs.
    pub fn busy_cores(&self) -> Option<f64> {
        let node: Option<Duration> = self.node_cpu.iter().copied().sum();
        let used = node? + self.client_cpu?;
        (!self.elapsed.is_zero()).then(|| used.as_secs_f64() / self.elapsed.as_secs_f64())
    }
}

/// One configuration, spawned.
struct Config {
    setup: Setup,
    host: JsHost,
    clients: Clients,
    /// Its node processes (`None`: a host without a pid), read once it has answered.
    procs: Vec<Option<Proc>>,
    spawn_time: Duration,
}

/// Spawns one `JsHost` per configuration of `plan`, measures them, and stops them all (also on
/// error), killing any process of theirs still there 3 s later (an error then).
pub async fn run(plan: &Plan) -> Result<Vec<Measured>> {
    let mut configs = Vec::with_capacity(plan.setups.len());
    let spawned = spawn_all(plan, &mut configs).await;
    let measured = match spawned {
        Ok(()) => measure(plan, &configs).await,
        Err(e) => Err(e),
    };
    let mut left_behind = Vec::new();
    for c in configs {
        let procs: Vec<Proc> = c
            .host
            .hosts()
            .iter()
            .filter_map(JsHost::pid)
            .flat_map(procfs::tree)
            .collect();
        if let Err(e) = c.host.stop().await {
            eprintln!(
                "jshost-bench: stopping the scale-out configuration {}: {e}",
                c.setup.name
            );
        }
        drop(c.clients);
        drop(c.host);
        let left = procfs::leftovers(&procs).await;
        if !left.is_empty() {
            left_behind.push(format!(
                "{}: {}",
                c.setup.name,
                left.iter()
                    .map(|p| p.pid.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let measured = measured?;
    ensure!(
        left_behind.is_empty(),
        "scale-out: process(es) still ran 3 s after `JsHost::stop` (killed): {}",
        left_behind.join("; ")
    );
    Ok(measured)
}

async fn spawn_all(plan: &Plan, configs: &mut Vec<Config>) -> Result<()> {
    let function = Func::Render;
    for setup in &plan.setups {
        let name = &setup.name;
        eprintln!("scale-out: spawning {name}...");
        let started = Instant::now();
        let host = JsHost::spawn(setup.settings.clone())
            .await
            .with_context(|| format!("spawning {name} for the scale-out run"))?;
        let spawn_time = started.elapsed();
        let members = host.hosts();
        let clients = Clients::new(host.function(function.name()), &host.url(), function.data())?;
        configs.push(Config {
            setup: setup.clone(),
            host,
            clients,
            procs: Vec::new(),
            spawn_time,
        });
        let c = configs.last_mut().context("just pushed")?;
        ensure!(
            members.len() == setup.hosts,
            "{name}: JsHost::spawn lists {} host(s), not {}",
            members.len(),
            setup.hosts
        );
        let text = c.clients.sdk_text().await?;
        ensure!(
            text.starts_with("<!doctype html>") && text.len() > 5_000,
            "render answered {} bytes: {:?}",
            text.len(),
            text.get(..80).unwrap_or(&text)
        );
        // Once it answered, a host's workers have all started (jshost-node announces its status
        // when every worker is ready).
        for member in &members {
            match member.pid() {
                Some(pid) => {
                    let tree = procfs::tree(pid);
                    ensure!(
                        setup.workers == 0 || tree.len() == 1 + setup.workers,
                        "{name}: host {pid} runs {} process(es), not a primary and {} worker(s)",
                        tree.len(),
                        setup.workers
                    );
                    c.procs.extend(tree.into_iter().map(Some));
                }
                None => c.procs.push(None),
            }
        }
        c.clients.concurrent(Side::Sdk, plan.warmup, 8).await?;
    }
    Ok(())
}

fn node_cpu(procs: &[Option<Proc>]) -> Vec<Option<procfs::Cpu>> {
    procs
        .iter()
        .map(|p| p.filter(|p| p.alive()).and_then(|p| procfs::cpu_time_of(p.pid)))
        .collect()
}

async fn measure(plan: &Plan, configs: &[Config]) -> Result<Vec<Measured>> {
    let per_round = (plan.calls / plan.rounds).max(1);
    let mut out: Vec<Measured> = configs
        .iter()
        .map(|c| Measured {
            setup: c.setup.clone(),
            spawn_time: c.spawn_time,
            levels: Vec::new(),
        })
        .collect();
    for &level in &plan.levels {
        let mut stats: Vec<Level> = configs
            .iter()
            .map(|c| Level {
                rate: 0.0,
                calls: 0,
                elapsed: Duration::ZERO,
                node_cpu: vec![Some(Duration::ZERO); c.procs.len()],
                client_cpu: Some(Duration::ZERO),
                rest_cpu: Some(Duration::ZERO),
            })
            .collect();
        eprintln!(
            "scale-out: `render`, {level} in flight: {} calls per configuration in {} rounds...",
            plan.calls, plan.rounds
        );
        let mut rates = vec![Vec::new(); configs.len()];
        for round in 0..plan.rounds {
            for k in 0..configs.len() {
                let i = (round + k) % configs.len();
                let (c, m) = (&configs[i], &mut stats[i]);
                let procs: Vec<Proc> = c.procs.iter().flatten().copied().collect();
                let others = compare::Others::start(&procs);
                let node0 = node_cpu(&c.procs);
                let client0 = procfs::cpu_time();
                let elapsed = c.clients.concurrent(Side::Sdk, per_round, level).await?;
                let client1 = procfs::cpu_time();
                let node1 = node_cpu(&c.procs);
                let (rest, _, _) = others.end(&procs);
                m.rest_cpu = m.rest_cpu.zip(rest).map(|(a, b)| a + b);
                rates[i].push(per_round as f64 / elapsed.as_secs_f64());
                m.calls += per_round;
                m.elapsed += elapsed;
                let used = |before: Option<procfs::Cpu>, after: Option<procfs::Cpu>| {
                    Some(after?.since(before?).total())
                };
                m.client_cpu = m.client_cpu.zip(used(client0, client1)).map(|(a, b)| a + b);
                for (sum, (before, after)) in m.node_cpu.iter_mut().zip(node0.into_iter().zip(node1)) {
                    *sum = sum.zip(used(before, after)).map(|(a, b)| a + b);
                }
            }
        }
        for ((m, mut s), r) in out.iter_mut().zip(stats).zip(&mut rates) {
            s.rate = median(r);
            m.levels.push(s);
        }
    }
    Ok(out)
}
