//! Scale-out: the CPU-bound `render` function through one `JsHost` per host count, each spawned
//! with `JsHost::spawn(settings.hosts(n))`, at a few in-flight levels (`buffer_unordered` over
//! that one `JsHost`, which spreads the calls over its hosts).
//!
//! Every configuration is spawned up front and the rounds alternate between them (rotating which
//! goes first), so all see the same machine; an idle node process costs nothing meanwhile. Every
//! host is stopped at the end, whatever happened.

use crate::clients::{Clients, Side};
use crate::{median, procfs, Func};
use anyhow::{ensure, Context, Result};
use jshost::{JsHost, Settings};
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Host counts, the first being the baseline of the ratios.
    pub hosts: Vec<usize>,
    /// In-flight levels.
    pub levels: Vec<usize>,
    /// Calls per host count and level (over all rounds).
    pub calls: usize,
    pub rounds: usize,
    /// Calls per host count before measuring (JIT, connections).
    pub warmup: usize,
}

/// One host count's results.
#[derive(Debug, Clone)]
pub struct Measured {
    pub hosts: usize,
    /// `JsHost::spawn` until it returned.
    pub spawn_time: Duration,
    /// Per level, in the plan's order.
    pub levels: Vec<Level>,
}

/// One host count at one level.
#[derive(Debug, Clone)]
pub struct Level {
    /// Calls/s: the median of the rounds.
    pub rate: f64,
    /// Calls measured (all rounds).
    pub calls: usize,
    /// Wall time of the measured runs.
    pub elapsed: Duration,
    /// CPU time of each node process during the measured runs (`None`: unreadable).
    pub node_cpu: Vec<Option<Duration>>,
    /// CPU time of this process during the measured runs.
    pub client_cpu: Option<Duration>,
}

impl Level {
    /// Node CPU time per call, all hosts together.
    pub fn node_cpu_per_call(&self) -> Option<Duration> {
        let total: Option<Duration> = self.node_cpu.iter().copied().sum();
        Some(total? / u32::try_from(self.calls.max(1)).ok()?)
    }

    /// This process's CPU time per call.
    pub fn client_cpu_per_call(&self) -> Option<Duration> {
        Some(self.client_cpu? / u32::try_from(self.calls.max(1)).ok()?)
    }

    /// Each host's share of the node CPU time, in percent.
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

    /// Cores kept busy by node and this process together during the measured runs.
    pub fn busy_cores(&self) -> Option<f64> {
        let node: Option<Duration> = self.node_cpu.iter().copied().sum();
        let used = node? + self.client_cpu?;
        (!self.elapsed.is_zero()).then(|| used.as_secs_f64() / self.elapsed.as_secs_f64())
    }
}

/// One host count, spawned.
struct Config {
    hosts: usize,
    host: JsHost,
    clients: Clients,
    pids: Vec<Option<u32>>,
    spawn_time: Duration,
}

/// Spawns one `JsHost` per host count in `plan` from `settings`, measures them, and stops them
/// all (also on error).
pub async fn run(settings: &Settings, plan: &Plan) -> Result<Vec<Measured>> {
    let mut configs = Vec::with_capacity(plan.hosts.len());
    let spawned = spawn_all(settings, plan, &mut configs).await;
    let measured = match spawned {
        Ok(()) => measure(plan, &configs).await,
        Err(e) => Err(e),
    };
    for c in configs {
        if let Err(e) = c.host.stop().await {
            eprintln!("jshost-bench: stopping the {}-host scale-out pool: {e}", c.hosts);
        }
        drop(c.clients);
        drop(c.host);
    }
    measured
}

async fn spawn_all(settings: &Settings, plan: &Plan, configs: &mut Vec<Config>) -> Result<()> {
    let function = Func::Render;
    for &hosts in &plan.hosts {
        eprintln!("scale-out: spawning {hosts} host(s) (`Settings::hosts({hosts})`)...");
        let started = Instant::now();
        let host = JsHost::spawn(settings.clone().hosts(hosts))
            .await
            .with_context(|| format!("spawning {hosts} host(s) for the scale-out run"))?;
        let spawn_time = started.elapsed();
        let members = host.hosts();
        let pids = members.iter().map(JsHost::pid).collect();
        let clients = Clients::new(host.function(function.name()), &host.url(), function.data())?;
        configs.push(Config {
            hosts,
            host,
            clients,
            pids,
            spawn_time,
        });
        let c = configs.last().context("just pushed")?;
        ensure!(
            members.len() == hosts,
            "JsHost::spawn(hosts({hosts})) lists {} host(s)",
            members.len()
        );
        let text = c.clients.sdk_text().await?;
        ensure!(
            text.starts_with("<!doctype html>") && text.len() > 5_000,
            "render answered {} bytes: {:?}",
            text.len(),
            text.get(..80).unwrap_or(&text)
        );
        c.clients.concurrent(Side::Sdk, plan.warmup, 8).await?;
    }
    Ok(())
}

fn node_cpu(pids: &[Option<u32>]) -> Vec<Option<procfs::Cpu>> {
    pids.iter().map(|pid| pid.and_then(procfs::cpu_time_of)).collect()
}

async fn measure(plan: &Plan, configs: &[Config]) -> Result<Vec<Measured>> {
    let per_round = (plan.calls / plan.rounds).max(1);
    let mut out: Vec<Measured> = configs
        .iter()
        .map(|c| Measured {
            hosts: c.hosts,
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
                node_cpu: vec![Some(Duration::ZERO); c.pids.len()],
                client_cpu: Some(Duration::ZERO),
            })
            .collect();
        eprintln!(
            "scale-out: `render`, {level} in flight: {} calls per host count in {} rounds...",
            plan.calls, plan.rounds
        );
        let mut rates = vec![Vec::new(); configs.len()];
        for round in 0..plan.rounds {
            for k in 0..configs.len() {
                let i = (round + k) % configs.len();
                let (c, m) = (&configs[i], &mut stats[i]);
                let node0 = node_cpu(&c.pids);
                let client0 = procfs::cpu_time();
                let elapsed = c.clients.concurrent(Side::Sdk, per_round, level).await?;
                let client1 = procfs::cpu_time();
                let node1 = node_cpu(&c.pids);
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
