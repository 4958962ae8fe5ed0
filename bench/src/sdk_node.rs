//! The SDK against jshost-node (`--only sdk-node`), beside `wrk` against the very same host, and
//! beside the SDK against js-host 0.12, in one set of alternating rounds.
//!
//! Three owned hosts, each `JsHost::spawn` from `bench/bench.config.js` on a TCP port of
//! 127.0.0.1 (so wrk reaches the host the SDK calls):
//! - js-host 0.12 (`path_to_bin` = its bin);
//! - jshost-node, one process, `private_socket(false)`, `batch(false)`;
//! - jshost-node, one process, `private_socket(false)`, `batch(true)` (the default).
//!
//! Against each: the SDK's `Function::call` of `echo`, sequentially and at each in-flight level
//! (`buffer_unordered` over the one `JsHost`), and `wrk -t1 -cN` posting the bytes the SDK sends
//! (`jshost::raw::function_url` of the host's URL and the body, the same JSON body) at 1 and at
//! each level's connection count; sequentially also a bare hyper-util client posting those bytes
//! (`clients::Side::Bare`), the best any client on hyper can expect, and, against jshost-node with
//! batching off, the SDK called from a thread blocking on its calls rather than from a task (as
//! code in the body of `#[tokio::main]` is). Every SDK, bare and wrk run lasts the same time
//! (`--compare-seconds`); rounds (`--compare-rounds`) alternate between all runs, rotating which
//! goes first, so all see the same machine; calls/s is the median of the rounds. The host's CPU
//! time (its process and every descendant, `/proc/PID/stat`) is summed over the rounds per run
//! and divided by the calls made; the rest of the machine's CPU use is measured as in the host
//! comparison. Every host is stopped at the end, also on error.

use crate::clients::{Clients, Side};
use crate::compare::{self, Others, JSHOST_NODE_BIN, JS_HOST_BIN};
use crate::procfs::{self, Cpu, Proc};
use crate::{dur, latencies, median, percentile, rate, times, verdict, wrk, Func, Report};
use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use http::{Method, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use jshost::{JsHost, Settings};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The in-flight level the targets are set at.
const TARGET_LEVEL: usize = 64;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    /// In-flight levels besides sequential (SDK calls in flight, wrk connections).
    pub levels: Vec<usize>,
    /// Seconds per run (SDK or wrk).
    pub seconds: u64,
    pub rounds: usize,
    /// Seconds of the unmeasured warm-up (SDK at 64 in flight, then wrk -c64) of each host.
    pub warmup_seconds: u64,
}

/// An owned host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owned {
    /// js-host 0.12.
    JsHost,
    /// jshost-node, one process, `batch(false)`.
    Node,
    /// jshost-node, one process, `batch(true)`.
    NodeBatch,
}

impl Owned {
    const ALL: [Owned; 3] = [Owned::JsHost, Owned::Node, Owned::NodeBatch];

    fn label(self) -> &'static str {
        match self {
            Owned::JsHost => "js-host 0.12",
            Owned::Node => "jshost-node, one process, batching off (`batch(false)`)",
            Owned::NodeBatch => "jshost-node, one process, automatic batching (`batch(true)`, the default)",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Owned::JsHost => "js-host 0.12",
            Owned::Node => "jshost-node batch(false)",
            Owned::NodeBatch => "jshost-node batch(true)",
        }
    }

    fn settings(self, root: &Path, config: &Path) -> Settings {
        let base = Settings::default().source_root(root).config_file(config);
        match self {
            Owned::JsHost => base.path_to_bin(JS_HOST_BIN),
            Owned::Node => base
                .path_to_bin(JSHOST_NODE_BIN)
                .private_socket(false)
                .batch(false),
            Owned::NodeBatch => base
                .path_to_bin(JSHOST_NODE_BIN)
                .private_socket(false)
                .batch(true),
        }
    }
}

/// Who sends the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// `Function::call` through the host's `JsHost`.
    Sdk,
    /// `wrk -t1`, the same request bytes.
    Wrk,
    /// A bare hyper-util client posting the same request bytes (sequential only): about the best
    /// any client on hyper can do, beside which the SDK's own cost per call shows.
    Bare,
    /// The SDK called from a thread that is not one of the runtime's workers, blocking on the
    /// calls as the body of `#[tokio::main]` does (sequential, batching off only): each call
    /// crosses to the worker running its connection and back.
    SdkBlockOn,
}

impl Caller {
    fn label(self, in_flight: usize) -> String {
        match self {
            Caller::Sdk => "SDK".to_owned(),
            Caller::Wrk => wrk_label(in_flight),
            Caller::Bare => "bare hyper".to_owned(),
            Caller::SdkBlockOn => "SDK from block_on".to_owned(),
        }
    }
}

/// One caller against one host at one level (1: sequential / one connection), over all rounds.
#[derive(Debug, Clone)]
pub struct Run {
    pub host: Owned,
    pub caller: Caller,
    pub in_flight: usize,
    /// Calls/s: the median of the rounds.
    pub rate: f64,
    /// SDK, sequential: pooled over the rounds; wrk: the round nearest the median.
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    /// Calls made, all rounds (`None`: not in wrk's output).
    pub calls: Option<u64>,
    /// The host's CPU time (all its processes) during the runs.
    pub host_cpu: Option<Cpu>,
    /// This process's CPU time during the SDK runs.
    pub client_cpu: Option<Cpu>,
    /// The rest of the machine's CPU time during the runs (see `compare::Others`).
    pub others_cpu: Option<Duration>,
    pub steal: Option<Duration>,
    /// Wall time of the runs.
    pub wall: Duration,
}

impl Run {
    fn per_call(&self, cpu: Option<Cpu>) -> Option<Cpu> {
        let calls = usize::try_from(self.calls?).ok()?;
        Some(cpu?.per(calls))
    }
}

/// What [`run`] measured.
#[derive(Debug, Default)]
pub struct Outcome {
    pub runs: Vec<Run>,
    pub problems: Vec<String>,
    /// Each host: label, pid, URL, spawn time.
    pub hosts: Vec<String>,
    /// The request body's size.
    pub body_len: usize,
    /// Whether wrk ran.
    pub wrk: bool,
}

impl Outcome {
    pub fn get(&self, host: Owned, caller: Caller, in_flight: usize) -> Option<&Run> {
        self.runs
            .iter()
            .find(|r| r.host == host && r.caller == caller && r.in_flight == in_flight)
    }
}

/// A spawned host, ready to be measured.
struct Spawned {
    host: Owned,
    handle: JsHost,
    spawn_time: Duration,
}

/// Spawns the three hosts, measures them, and stops them (also on error).
pub async fn run(
    wrk_bin: Option<&Path>,
    root: &Path,
    config: &Path,
    work: &Path,
    plan: &Plan,
) -> Result<Outcome> {
    let mut spawned = Vec::new();
    let mut outcome = Outcome {
        wrk: wrk_bin.is_some(),
        ..Outcome::default()
    };
    let result = match spawn_all(root, config, &mut spawned).await {
        Ok(()) => measure(wrk_bin, work, plan, &spawned, &mut outcome).await,
        Err(e) => Err(e),
    };
    for s in spawned {
        outcome.hosts.push(format!(
            "{}: pid {}, {}, `JsHost::spawn` {}",
            s.host.short(),
            s.handle
                .pid()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "?".into()),
            s.handle.url(),
            dur(s.spawn_time)
        ));
        let procs = s.handle.pid().map(procfs::tree).unwrap_or_default();
        if let Err(e) = s.handle.stop().await {
            eprintln!("jshost-bench: stopping the sdk-node {} host: {e}", s.host.short());
            outcome.problems.push(format!("stopping {}: {e}", s.host.short()));
        }
        drop(s.handle);
        let left = procfs::leftovers(&procs).await;
        if !left.is_empty() {
            outcome.problems.push(format!(
                "{}: process(es) {} still ran 3 s after `JsHost::stop`; killed",
                s.host.short(),
                left.iter()
                    .map(|p| p.pid.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    result.map(|()| outcome)
}

async fn spawn_all(root: &Path, config: &Path, spawned: &mut Vec<Spawned>) -> Result<()> {
    for host in Owned::ALL {
        eprintln!("sdk-node: spawning {}...", host.short());
        let started = Instant::now();
        let handle = JsHost::spawn(host.settings(root, config))
            .await
            .with_context(|| format!("spawning {}", host.short()))?;
        spawned.push(Spawned {
            host,
            handle,
            spawn_time: started.elapsed(),
        });
    }
    Ok(())
}

/// Checks that `s` answers `echo` with its body through the SDK, listens on TCP 127.0.0.1, and is
/// the host it is meant to be (`GET /jshost/info`: jshost-node one process with `/batch`, or
/// js-host's 404).
async fn check(
    s: &Spawned,
    clients: &Clients,
    http: &HyperClient<HttpConnector, http_body_util::Full<Bytes>>,
) -> Result<()> {
    let url = s.handle.url();
    ensure!(
        url.starts_with("http://127.0.0.1:"),
        "{} listens at {url}, not on TCP 127.0.0.1 (wrk cannot reach it)",
        s.host.short()
    );
    let text = clients.sdk_text().await?;
    ensure!(
        text.as_bytes() == clients.body().as_ref(),
        "{}: echo answered {text:?}, expected {:?}",
        s.host.short(),
        String::from_utf8_lossy(clients.body())
    );
    let info_url = format!("{url}/jshost/info");
    let (status, _, body) = compare::request(http, Method::GET, &info_url, &Bytes::new()).await?;
    match s.host {
        Owned::JsHost => ensure!(
            status != StatusCode::OK,
            "GET {info_url} answered 200: not js-host 0.12"
        ),
        Owned::Node | Owned::NodeBatch => {
            let info: Value =
                serde_json::from_slice(&body).with_context(|| format!("GET {info_url}: HTTP {status}"))?;
            ensure!(
                status == StatusCode::OK && info["name"] == "jshost-node",
                "GET {info_url} answered {status} {info}: not jshost-node"
            );
            let workers = info["workers"].as_u64().unwrap_or(1);
            ensure!(
                workers <= 1,
                "GET {info_url} reports {workers} workers, not one process"
            );
            let batch = info["features"]
                .as_array()
                .is_some_and(|f| f.iter().any(|v| v == "batch"));
            ensure!(batch, "GET {info_url} does not offer batch: {info}");
        }
    }
    Ok(())
}

/// One round of one run: calls/s, calls made, latencies (wrk).
type Measured = (f64, Option<u64>, Option<Duration>, Option<Duration>);

/// One host, checked and warmed up.
struct Prepared<'a> {
    spawned: &'a Spawned,
    clients: Clients,
    procs: Vec<Proc>,
    script: PathBuf,
}

async fn measure(
    wrk_bin: Option<&Path>,
    work: &Path,
    plan: &Plan,
    spawned: &[Spawned],
    outcome: &mut Outcome,
) -> Result<()> {
    let data = Func::Echo.data();
    let http = crate::clients::bare_client();
    let warmup = Duration::from_secs(plan.warmup_seconds);
    let mut prepared = Vec::new();
    for s in spawned {
        let clients = Clients::new(
            s.handle.function(Func::Echo.name()),
            &s.handle.url(),
            data.clone(),
        )?;
        check(s, &clients, &http).await?;
        outcome.body_len = clients.body().len();
        let script = work.join(format!(
            "sdk-node-{}.lua",
            match s.host {
                Owned::JsHost => "js-host",
                Owned::Node => "jshost-node",
                Owned::NodeBatch => "jshost-node-batch",
            }
        ));
        std::fs::write(&script, wrk::script(clients.body()))
            .with_context(|| format!("writing {}", script.display()))?;
        eprintln!(
            "sdk-node: warming up {} ({} s SDK, {} s wrk, 64 in flight)...",
            s.host.short(),
            plan.warmup_seconds,
            plan.warmup_seconds
        );
        clients
            .for_duration(Side::Sdk, TARGET_LEVEL, warmup, &mut Vec::new())
            .await?;
        if let Some(w) = wrk_bin {
            wrk::run(
                w,
                &script,
                &clients.uri()?.to_string(),
                1,
                TARGET_LEVEL,
                plan.warmup_seconds,
            )
            .await
            .with_context(|| format!("warming up {} with wrk", s.host.short()))?;
        }
        let procs = s.handle.pid().map(procfs::tree).unwrap_or_default();
        prepared.push(Prepared {
            spawned: s,
            clients,
            procs,
            script,
        });
    }
    drop(http);

    let mut levels = vec![1];
    levels.extend(plan.levels.iter().copied().filter(|&l| l != 1));
    let mut callers = vec![Caller::Sdk, Caller::Bare, Caller::SdkBlockOn];
    if wrk_bin.is_some() {
        callers.push(Caller::Wrk);
    }
    // (host index, caller, level): by level, then host, then caller; bare hyper sequentially only.
    let runs: Vec<(usize, Caller, usize)> = levels
        .iter()
        .flat_map(|&l| {
            let (callers, prepared) = (&callers, &prepared);
            (0..prepared.len()).flat_map(move |h| {
                let host = prepared[h].spawned.host;
                callers
                    .iter()
                    .filter(move |&&c| match c {
                        Caller::Sdk | Caller::Wrk => true,
                        Caller::Bare => l == 1,
                        Caller::SdkBlockOn => l == 1 && host == Owned::Node,
                    })
                    .map(move |&c| (h, c, l))
            })
        })
        .collect();

    struct Acc {
        rates: Vec<f64>,
        wrk_latencies: Vec<(f64, Option<Duration>, Option<Duration>)>,
        sdk_latencies: Vec<u64>,
        calls: Option<u64>,
        host_cpu: Option<Cpu>,
        client_cpu: Option<Cpu>,
        others: Option<Duration>,
        steal: Option<Duration>,
        wall: Duration,
        failed: bool,
    }
    let add = |a: Option<Cpu>, b: Option<Cpu>| {
        a.zip(b).map(|(x, y)| Cpu {
            user: x.user + y.user,
            system: x.system + y.system,
        })
    };
    let mut acc: Vec<Acc> = runs
        .iter()
        .map(|_| Acc {
            rates: Vec::new(),
            wrk_latencies: Vec::new(),
            sdk_latencies: Vec::new(),
            calls: Some(0),
            host_cpu: Some(Cpu::default()),
            client_cpu: Some(Cpu::default()),
            others: Some(Duration::ZERO),
            steal: Some(Duration::ZERO),
            wall: Duration::ZERO,
            failed: false,
        })
        .collect();
    let seconds = Duration::from_secs(plan.seconds);
    for round in 0..plan.rounds {
        eprintln!(
            "sdk-node: round {}/{}: {} runs of {} s...",
            round + 1,
            plan.rounds,
            runs.len(),
            plan.seconds
        );
        for k in 0..runs.len() {
            let i = (round + k) % runs.len();
            let (h, caller, level) = runs[i];
            let p = &prepared[h];
            let a = &mut acc[i];
            if a.failed {
                continue;
            }
            let others = Others::start(&p.procs);
            let host0 = procfs::cpu_time_of_all(&p.procs);
            let me0 = procfs::cpu_time();
            let measured: Result<Measured> = match caller {
                Caller::Sdk | Caller::Bare | Caller::SdkBlockOn => {
                    let side = if caller == Caller::Bare {
                        Side::Bare
                    } else {
                        Side::Sdk
                    };
                    let calls = p.clients.for_duration(side, level, seconds, &mut a.sdk_latencies);
                    let ran = if caller == Caller::SdkBlockOn {
                        // This task's worker thread stops being a worker (block_in_place) and
                        // blocks on the calls: a thread outside the runtime's workers, as
                        // `block_on` is.
                        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(calls))
                    } else {
                        calls.await
                    };
                    ran.map(|(calls, took)| {
                        (calls as f64 / took.as_secs_f64(), Some(calls as u64), None, None)
                    })
                }
                Caller::Wrk => match wrk_bin {
                    Some(w) => wrk::run(
                        w,
                        &p.script,
                        &p.clients.uri()?.to_string(),
                        1,
                        level,
                        plan.seconds,
                    )
                    .await
                    .map(|r| (r.rate, r.requests, r.p50, r.p99)),
                    None => continue,
                },
            };
            let host1 = procfs::cpu_time_of_all(&p.procs);
            let me1 = procfs::cpu_time();
            let (other, steal, wall) = others.end(&p.procs);
            match measured {
                Ok((rate, calls, p50, p99)) => {
                    a.rates.push(rate);
                    a.calls = a.calls.zip(calls).map(|(x, y)| x + y);
                    a.host_cpu = add(a.host_cpu, host1.zip(host0).map(|(b, e)| b.since(e)));
                    if caller != Caller::Wrk {
                        a.client_cpu = add(a.client_cpu, me1.zip(me0).map(|(b, e)| b.since(e)));
                    }
                    a.others = a.others.zip(other).map(|(x, y)| x + y);
                    a.steal = a.steal.zip(steal).map(|(x, y)| x + y);
                    a.wall += wall;
                    if caller == Caller::Wrk {
                        a.wrk_latencies.push((rate, p50, p99));
                    }
                }
                Err(e) => {
                    a.failed = true;
                    outcome.problems.push(format!(
                        "{} against {}, {level} in flight: {e:#}",
                        caller.label(level),
                        p.spawned.host.short()
                    ));
                }
            }
        }
    }
    for ((h, caller, level), mut a) in runs.into_iter().zip(acc) {
        if a.failed || a.rates.is_empty() {
            continue;
        }
        let rate = median(&mut a.rates);
        let (p50, p99) = match caller {
            Caller::Sdk | Caller::Bare | Caller::SdkBlockOn => {
                a.sdk_latencies.sort_unstable();
                (percentile(&a.sdk_latencies, 50), percentile(&a.sdk_latencies, 99))
            }
            Caller::Wrk => a
                .wrk_latencies
                .iter()
                .min_by(|x, y| (x.0 - rate).abs().total_cmp(&(y.0 - rate).abs()))
                .map(|n| (n.1, n.2))
                .unwrap_or((None, None)),
        };
        outcome.runs.push(Run {
            host: prepared[h].spawned.host,
            caller,
            in_flight: level,
            rate,
            p50,
            p99,
            calls: a.calls,
            host_cpu: a.host_cpu,
            client_cpu: if caller == Caller::Wrk { None } else { a.client_cpu },
            others_cpu: a.others,
            steal: a.steal,
            wall: a.wall,
        });
    }
    Ok(())
}

fn in_flight(level: usize) -> String {
    if level == 1 {
        "sequential".into()
    } else {
        format!("{level} in flight")
    }
}

fn wrk_label(level: usize) -> String {
    format!("`wrk -t1 -c{level}`")
}

fn measurement(h: Owned, l: usize) -> String {
    format!("SDK `echo`, {}: {}", in_flight(l), h.label())
}

fn ratio(x: f64, target: Option<f64>) -> String {
    match target {
        Some(t) => format!("{}; {}", times(x, t), verdict(x >= t, &format!("≥ {t}×"))),
        None => format!("{x:.2}×"),
    }
}

/// A row: the SDK against host `h` beside the SDK against js-host 0.12, both at `l`.
fn vs_js_host(outcome: &Outcome, report: &mut Report, h: Owned, l: usize, target: Option<f64>) {
    let (Some(x), Some(y)) = (
        outcome.get(h, Caller::Sdk, l),
        outcome.get(Owned::JsHost, Caller::Sdk, l),
    ) else {
        return;
    };
    report.row(
        measurement(h, l),
        rate(x.rate),
        format!("SDK, {}: js-host 0.12: {}", in_flight(l), rate(y.rate)),
        ratio(x.rate / y.rate, target),
    );
}

/// A row: the SDK against host `h` beside wrk against the same host, both at `l`.
fn vs_wrk(plan: &Plan, outcome: &Outcome, report: &mut Report, h: Owned, l: usize, target: Option<f64>) {
    let Some(x) = outcome.get(h, Caller::Sdk, l) else {
        return;
    };
    let shown = |r: &Run| {
        if l == 1 {
            format!("{}{}", rate(r.rate), latencies(r.p50, r.p99))
        } else {
            rate(r.rate)
        }
    };
    let Some(w) = outcome.get(h, Caller::Wrk, l) else {
        report.row(measurement(h, l), shown(x), "wrk: –", "–");
        return;
    };
    let extra = if l == 1 {
        format!(" ({})", gap(x, w))
    } else {
        String::new()
    };
    report.row(
        measurement(h, l),
        shown(x),
        format!("{}, {} s, same host: {}", wrk_label(l), plan.seconds, shown(w)),
        format!("{}{extra}", ratio(x.rate / w.rate, target)),
    );
}

/// How much longer a call of run `x` takes than one of run `y` (sequential runs): `+7.7 µs per call`.
fn gap(x: &Run, y: &Run) -> String {
    format!("{:+.1} µs per call", (1.0 / x.rate - 1.0 / y.rate) * 1e6)
}

/// Two rows on the ceiling of the sequential target against host `h`: the SDK beside bare hyper,
/// and bare hyper beside wrk, all on the same host.
fn bare_ceiling(plan: &Plan, outcome: &Outcome, report: &mut Report, h: Owned) {
    let Some(b) = outcome.get(h, Caller::Bare, 1) else {
        return;
    };
    let bare = format!(
        "bare hyper (the same request bytes, a hyper-util `Client`), sequential, same host: {}{}",
        rate(b.rate),
        latencies(b.p50, b.p99)
    );
    if let Some(x) = outcome.get(h, Caller::Sdk, 1) {
        report.row(
            format!("{} (beside bare hyper)", measurement(h, 1)),
            rate(x.rate),
            bare.clone(),
            format!("{} ({})", ratio(x.rate / b.rate, None), gap(x, b)),
        );
    }
    if let Some(w) = outcome.get(h, Caller::Wrk, 1) {
        report.row(
            format!("bare hyper `echo`, sequential: {}", h.label()),
            rate(b.rate),
            format!(
                "{}, {} s, same host: {}",
                wrk_label(1),
                plan.seconds,
                rate(w.rate)
            ),
            format!(
                "{} ({}): about the best the SDK's ratio to `wrk -c1` can be",
                ratio(b.rate / w.rate, None),
                gap(b, w)
            ),
        );
    }
}

/// The rows (in the order of the targets) and notes.
pub fn rows(plan: &Plan, outcome: &Outcome, report: &mut Report, notes: &mut Vec<String>) {
    let mut levels: Vec<usize> = plan.levels.iter().copied().filter(|&l| l != 1).collect();
    levels.sort_unstable();
    levels.dedup();
    // The targets' level first.
    levels.sort_by_key(|&l| l != TARGET_LEVEL);
    for &l in &levels {
        let t = |v: f64| (l == TARGET_LEVEL).then_some(v);
        vs_js_host(outcome, report, Owned::Node, l, t(5.0));
        vs_wrk(plan, outcome, report, Owned::Node, l, t(0.8));
        vs_wrk(plan, outcome, report, Owned::NodeBatch, l, t(3.0));
        vs_js_host(outcome, report, Owned::NodeBatch, l, t(20.0));
    }
    for h in [Owned::Node, Owned::NodeBatch, Owned::JsHost] {
        vs_wrk(plan, outcome, report, h, 1, Some(0.9));
    }
    for h in [Owned::Node, Owned::NodeBatch, Owned::JsHost] {
        bare_ceiling(plan, outcome, report, h);
    }
    if let (Some(b), Some(x)) = (
        outcome.get(Owned::Node, Caller::SdkBlockOn, 1),
        outcome.get(Owned::Node, Caller::Sdk, 1),
    ) {
        report.row(
            format!(
                "SDK `echo`, sequential, from a thread blocking on the calls (as in the body of \
                 `#[tokio::main]`), not a worker: {}",
                Owned::Node.label()
            ),
            format!("{}{}", rate(b.rate), latencies(b.p50, b.p99)),
            format!("the same from a task on a worker thread: {}", rate(x.rate)),
            format!("{:.2}× ({})", b.rate / x.rate, gap(b, x)),
        );
    }
    for &l in &levels {
        vs_wrk(plan, outcome, report, Owned::JsHost, l, None);
    }

    // Every run, with CPU.
    let all: Vec<String> = outcome
        .runs
        .iter()
        .map(|r| {
            let host_cpu = r
                .per_call(r.host_cpu)
                .map(|c| format!(", host CPU {} per call", dur(c.total())))
                .unwrap_or_default();
            let client_cpu = r
                .per_call(r.client_cpu)
                .map(|c| format!(", client CPU {} per call", dur(c.total())))
                .unwrap_or_default();
            let busy = r
                .host_cpu
                .and_then(|c| compare::per_wall(Some(c.total()), r.wall))
                .map(|b| format!(", host {b:.2} cores busy"))
                .unwrap_or_default();
            let others = compare::per_wall(r.others_cpu, r.wall)
                .map(|o| format!(", rest of the machine {o:.2} cores"))
                .unwrap_or_default();
            format!(
                "{} → {}, {}: {}{}{host_cpu}{client_cpu}{busy}{others}",
                r.caller.label(r.in_flight),
                r.host.short(),
                in_flight(r.in_flight),
                rate(r.rate),
                latencies(r.p50, r.p99)
            )
        })
        .collect();
    if !all.is_empty() {
        notes.push(format!(
            "sdk-node: `echo` ({} B body) through the SDK (`Function::call`, `buffer_unordered` over \
             one `JsHost`; sequentially also from a thread blocking on the calls, through \
             `block_in_place` + `Handle::block_on`), sequentially through a bare hyper-util \
             `Client`, and with {} posting \
             the same bytes (`jshost::raw::function_url` of the \
             host's URL, the same body and content type), against three owned hosts from \
             bench/bench.config.js on 127.0.0.1; {} s per run, {} round(s) alternating between all \
             runs (median of the rounds; SDK sequential latencies pooled over the rounds, wrk's \
             from the round nearest the median; host CPU from /proc/PID/stat of the host and its \
             children, client CPU from /proc/self/stat, summed over the rounds, per call made; \
             rest of the machine as in the host comparison): {}",
            outcome.body_len,
            wrk_label(1).replace("-c1", "-cN"),
            plan.seconds,
            plan.rounds,
            all.join("; ")
        ));
        if let Some(compare::Quiet {
            average: o,
            steal: s,
            max,
            busiest: r,
        }) = compare::quiet(&outcome.runs, |r| (r.wall, r.others_cpu, r.steal))
        {
            notes.push(format!(
                "how quiet the machine was during sdk-node: the rest of the machine kept {o:.2} \
                 cores busy on average, at most {max:.2} during {} → {}, {}; steal time {s:.2} \
                 cores (see the host comparison's note for what is normal)",
                r.caller.label(r.in_flight),
                r.host.short(),
                in_flight(r.in_flight)
            ));
        }
    }
    if !outcome.wrk {
        notes.push("sdk-node: wrk not installed, no wrk references (apt-get install wrk)".into());
    }
    if !outcome.hosts.is_empty() {
        notes.push(format!(
            "sdk-node hosts (`JsHost::spawn`, `path_to_bin` = {JS_HOST_BIN} or {JSHOST_NODE_BIN}; \
             jshost-node with `private_socket(false)` so wrk reaches it over TCP): {}",
            outcome.hosts.join("; ")
        ));
    }
    for p in &outcome.problems {
        notes.push(format!("sdk-node: {p}"));
    }
}
