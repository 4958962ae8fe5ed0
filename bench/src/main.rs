//! `jshost-bench`: measures the jshost SDK against its ceilings and its seed, and the Node hosts
//! against each other, in one run, against hosts it starts itself from `bench/bench.config.js`.
//!
//! ```text
//! cargo run --release -p jshost-bench -- [--calls N] [--concurrency 1,8,64,256] [--function echo|render]
//!     [--hosts 1,2] [--workers-compare 1,2] [--scale-concurrency 8,64]
//!     [--hosts-compare all|none|LIST] [--soak-calls N]
//!     [--sdk-node-concurrency 64] [--only LIST] [--quick]
//! ```
//!
//! 1. the SDK: sequential calls/s with p50/p99 latency, and calls/s at each concurrency level
//!    (`buffer_unordered` over one `JsHost`), against an owned js-host 0.12 (`path_to_bin` set
//!    explicitly, whatever the SDK's default host is);
//! 2. the ceiling: the same request bytes from a bare hyper-util client (no SDK layers), and from
//!    `wrk` when it is installed;
//! 3. the seed: the Python client (js-host 0.2.0) when `python3 -c "import js_host"` works;
//! 4. cost: this process's CPU time per SDK call and its RSS before and after many calls;
//! 5. scale-out: the CPU-bound `render` function through one `JsHost` spawned with
//!    `Settings::hosts(n)` for each n of `--hosts` (default 1 and 2), at 8 and 64 in flight, with
//!    the ratio to the first n (whatever `--function` is); and the same through one `JsHost`
//!    spawned on jshost-node with `Settings::workers(n)` for each n of `--workers-compare`
//!    (default 1 and 2), with the SDK's automatic batching on (the default) and off;
//! 6. start-up: `JsHost::connect` to the first answer with a managed host already running (warm)
//!    and with nothing running (cold), for js-host 0.12 (beside Python's `settings.configure` +
//!    first call) and for jshost-node (the SDK's default host);
//! 7. hosts compared (`compare.rs`): `wrk` against js-host 0.12, a plain `node:http` echo server,
//!    jshost-node as one process and with `--workers 2`, at 1 and 64 connections, and jshost-node's
//!    `/batch` of 16 echo calls; the servers' CPU time per call;
//! 8. the SDK against jshost-node (`sdk_node.rs`, `--only sdk-node`): `JsHost::spawn` of
//!    jshost-node on TCP with batching off and on, and of js-host 0.12, each called through the
//!    SDK sequentially and at 64 in flight (`--sdk-node-concurrency`) beside `wrk` sending the
//!    same bytes to the same host;
//! 9. the soak (`--soak-calls N`, off by default): N `echo` calls through the SDK on an owned host
//!    spawned with the default settings, then the disk use of the host's files (`soak.rs`).
//!
//! It prints a markdown table on stdout (progress goes to stderr) and stops every process it
//! started.
#![allow(clippy::print_stdout)]

mod clients;
mod compare;
mod procfs;
mod python;
mod scale;
mod sdk_node;
mod soak;
mod startup;
mod wrk;

use anyhow::{bail, Context, Result};
use clients::{Clients, Side};
use compare::{Target, JSHOST_NODE_BIN, JS_HOST_BIN};
use jshost::{JsHost, Settings};
use python::Python;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: cargo run --release -p jshost-bench -- [OPTIONS]

  --calls N              calls per measurement and client (default 20000; 3000 with --quick)
  --concurrency LIST     in-flight levels, comma-separated (default 1,8,64,256)
  --function NAME        echo (small JSON in and out) or render (~10 KB of HTML) (default echo)
  --rss-calls N          SDK calls of the CPU/RSS run (default 200000; 20000 with --quick)
  --hosts LIST           scale-out: host counts for `render` through `Settings::hosts(n)`,
                         comma-separated, the first being the baseline (default 1,2; `none`
                         skips it)
  --workers-compare LIST scale-out: jshost-node worker counts for `render` through one host
                         spawned with `Settings::workers(n)`, comma-separated, the first being
                         the baseline; each with batching on (the default) and off (default
                         1,2; `none` skips it)
  --scale-concurrency LIST
                         scale-out in-flight levels (default 8,64)
  --scale-calls N        scale-out calls per configuration and level (default 10000; 3000 with
                         --quick)
  --scale-only           only the scale-out run (= --only scale)
  --hosts-compare LIST   hosts compared under wrk, comma-separated: js-host, node-http (a
                         plain node:http echo server), jshost-node (one process), workers
                         (jshost-node --workers N), batch (jshost-node /batch); `all`
                         (default) or `none`
  --compare-seconds N    seconds per wrk run of the host comparison (default 4; 2 with --quick)
  --compare-rounds N     rounds of the host comparison (default 3; 1 with --quick)
  --compare-workers N    --workers of the `workers` host (default 2)
  --batch-size N         echo calls per /batch request (default 16)
  --sdk-node-concurrency LIST
                         SDK against jshost-node: in-flight levels besides sequential, each
                         beside `wrk -cN` on the same host (default 64, the issue's targets);
                         run time and rounds from --compare-seconds and --compare-rounds
  --soak-calls N         the soak: N echo calls (64 in flight) through the SDK on an owned
                         host with the default settings, then the disk use of its files
                         (default 0: no soak; the issue's figure: 1000000)
  --soak-host HOST       the soak's host: default (Settings::default().path_to_bin),
                         js-host or jshost-node (default: default)
  --soak-log-file        the soak's host with `Settings::log_file(true)` (off by default, as
                         in the SDK)
  --only LIST            only these parts, comma-separated: sdk (the SDK beside bare hyper,
                         wrk and Python; CPU, RSS), sdk-node (the SDK against jshost-node with
                         batching off and on, and against js-host, beside wrk on the same
                         host), compare, scale, startup, soak
  --quick                fewer calls and shorter wrk runs: a smoke run in well under a minute
  --quiet-host           start the host with `silent: true` (no per-request log lines for its
                         stdout, which an owned host drops anyway; the logfile still gets them)
  --profile-loop SIDE    only run SIDE sequentially for --calls calls, for perf: sdk
                         (Function::call), raw (Function::call_raw) or bare (bare hyper)
  -h, --help             this text";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Echo,
    Render,
}

impl Func {
    fn name(self) -> &'static str {
        match self {
            Func::Echo => "echo",
            Func::Render => "render",
        }
    }

    /// The data every client sends.
    fn data(self) -> Value {
        match self {
            Func::Echo => json!({
                "title": "jshost-bench",
                "id": 42,
                "tags": ["alpha", "beta", "gamma"],
                "user": {"name": "Foo", "admin": false},
                "score": 1.5
            }),
            Func::Render => {
                let items: Vec<Value> = (0..100u32)
                    .map(|i| {
                        json!({
                            "id": i,
                            "name": format!("Item {i} & Co"),
                            "description": format!("Blue widget #{i}"),
                            "price": format!("{:.2}", f64::from(i) * 1.25 + 3.0),
                        })
                    })
                    .collect();
                json!({ "title": "jshost-bench <render>", "items": items })
            }
        }
    }
}

/// A part of the run (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Sdk,
    SdkNode,
    Compare,
    Scale,
    Startup,
    Soak,
}

impl Section {
    const ALL: [Section; 6] = [
        Section::Sdk,
        Section::SdkNode,
        Section::Compare,
        Section::Scale,
        Section::Startup,
        Section::Soak,
    ];

    fn name(self) -> &'static str {
        match self {
            Section::Sdk => "sdk",
            Section::SdkNode => "sdk-node",
            Section::Compare => "compare",
            Section::Scale => "scale",
            Section::Startup => "startup",
            Section::Soak => "soak",
        }
    }
}

#[derive(Debug, Clone)]
struct Args {
    calls: usize,
    concurrency: Vec<usize>,
    function: Func,
    quick: bool,
    quiet_host: bool,
    /// Only these parts (empty: all that are not turned off).
    only: Vec<Section>,
    rss_calls: usize,
    /// Scale-out host counts (empty: no `Settings::hosts` run).
    hosts: Vec<usize>,
    /// Scale-out jshost-node worker counts (empty: no `Settings::workers` run).
    workers_compare: Vec<usize>,
    scale_levels: Vec<usize>,
    scale_calls: usize,
    /// Hosts compared under wrk (empty: none).
    compare: Vec<Target>,
    compare_seconds: u64,
    compare_rounds: usize,
    compare_workers: usize,
    batch_size: usize,
    /// In-flight levels of the SDK against jshost-node (besides sequential).
    sdk_node_levels: Vec<usize>,
    /// Soak calls (0: no soak).
    soak_calls: usize,
    /// The soak's `path_to_bin` (`None`: the SDK's default).
    soak_bin: Option<&'static str>,
    /// The soak's host with `Settings::log_file(true)`.
    soak_log_file: bool,
    profile: Option<Side>,
    given: Vec<String>,
}

impl Args {
    fn parse(given: Vec<String>) -> Result<Option<Args>> {
        let mut calls = None;
        let mut rss_calls = None;
        let mut concurrency = vec![1, 8, 64, 256];
        let mut hosts = vec![1, 2];
        let mut workers_compare = vec![1, 2];
        let mut scale_levels = vec![8, 64];
        let mut scale_calls = None;
        let mut function = Func::Echo;
        let mut quick = false;
        let mut quiet_host = false;
        let mut only = Vec::new();
        let mut compare = Target::ALL.to_vec();
        let mut compare_seconds = None;
        let mut compare_rounds = None;
        let mut compare_workers = 2;
        let mut batch_size = 16;
        let mut sdk_node_levels = vec![64];
        let mut soak_calls = 0;
        let mut soak_bin = None;
        let mut soak_log_file = false;
        let mut profile = None;
        let mut it = given.iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
                _ => (arg.as_str(), None),
            };
            let mut value = || -> Result<String> {
                match inline.clone() {
                    Some(v) => Ok(v),
                    None => it
                        .next()
                        .cloned()
                        .with_context(|| format!("{flag} needs a value")),
                }
            };
            match flag {
                "-h" | "--help" => return Ok(None),
                "--quick" => quick = true,
                "--quiet-host" => quiet_host = true,
                "--scale-only" => only.push(Section::Scale),
                "--only" => {
                    for name in value()?.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                        match Section::ALL.into_iter().find(|s| s.name() == name) {
                            Some(s) => only.push(s),
                            None => bail!(
                                "--only takes sdk, sdk-node, compare, scale, startup or soak, got {name:?}"
                            ),
                        }
                    }
                }
                "--hosts-compare" => {
                    let v = value()?;
                    compare = match v.as_str() {
                        "all" => Target::ALL.to_vec(),
                        "none" => Vec::new(),
                        _ => v
                            .split(',')
                            .map(str::trim)
                            .filter(|n| !n.is_empty())
                            .map(|n| {
                                Target::parse(n).with_context(|| {
                                    format!(
                                        "--hosts-compare takes all, none or a list of js-host, \
                                         node-http, jshost-node, workers, batch; got {n:?}"
                                    )
                                })
                            })
                            .collect::<Result<_>>()?,
                    };
                    if compare.is_empty() && v != "none" {
                        bail!("--hosts-compare needs at least one host, got {v:?}");
                    }
                }
                "--compare-seconds" => {
                    compare_seconds = Some(parse_count(&value()?, flag)? as u64);
                }
                "--compare-rounds" => compare_rounds = Some(parse_count(&value()?, flag)?),
                "--compare-workers" => compare_workers = parse_count(&value()?, flag)?,
                "--batch-size" => batch_size = parse_count(&value()?, flag)?,
                "--sdk-node-concurrency" => sdk_node_levels = parse_list(&value()?, flag)?,
                "--soak-calls" => {
                    let v = value()?;
                    soak_calls = if v.trim() == "0" {
                        0
                    } else {
                        parse_count(&v, flag)?
                    };
                }
                "--soak-log-file" => soak_log_file = true,
                "--soak-host" => {
                    soak_bin = match value()?.as_str() {
                        "default" => None,
                        "js-host" => Some(JS_HOST_BIN),
                        "jshost-node" => Some(JSHOST_NODE_BIN),
                        other => bail!("--soak-host must be default, js-host or jshost-node, got {other:?}"),
                    }
                }
                "--calls" => calls = Some(parse_count(&value()?, flag)?),
                "--rss-calls" => rss_calls = Some(parse_count(&value()?, flag)?),
                "--concurrency" => concurrency = parse_list(&value()?, flag)?,
                "--scale-concurrency" => scale_levels = parse_list(&value()?, flag)?,
                "--scale-calls" => scale_calls = Some(parse_count(&value()?, flag)?),
                "--hosts" => hosts = parse_list_or_none(&value()?, flag)?,
                "--workers-compare" => workers_compare = parse_list_or_none(&value()?, flag)?,
                "--function" => {
                    function = match value()?.as_str() {
                        "echo" => Func::Echo,
                        "render" => Func::Render,
                        other => bail!("--function must be echo or render, got {other:?}"),
                    }
                }
                "--profile-loop" => {
                    profile = Some(match value()?.as_str() {
                        "sdk" => Side::Sdk,
                        "raw" => Side::SdkRaw,
                        "bare" => Side::Bare,
                        other => bail!("--profile-loop must be sdk, raw or bare, got {other:?}"),
                    })
                }
                other => bail!("unknown argument {other:?}"),
            }
        }
        if only.contains(&Section::Scale) && hosts.is_empty() && workers_compare.is_empty() {
            bail!(
                "--scale-only and --only scale need host or worker counts, not --hosts none \
                 --workers-compare none"
            );
        }
        if only.contains(&Section::Compare) && compare.is_empty() {
            bail!("--only compare needs hosts to compare, not --hosts-compare none");
        }
        if only.contains(&Section::Soak) && soak_calls == 0 {
            bail!("--only soak needs --soak-calls N");
        }
        let calls = calls.unwrap_or(if quick { 3_000 } else { 20_000 });
        Ok(Some(Args {
            calls,
            concurrency,
            function,
            quick,
            quiet_host,
            only,
            rss_calls: rss_calls.unwrap_or(if quick { 20_000 } else { 200_000 }),
            hosts,
            workers_compare,
            scale_levels,
            scale_calls: scale_calls.unwrap_or(if quick { 3_000 } else { 10_000 }),
            compare,
            compare_seconds: compare_seconds.unwrap_or(if quick { 2 } else { 4 }),
            compare_rounds: compare_rounds.unwrap_or(if quick { 1 } else { 3 }),
            compare_workers,
            batch_size,
            sdk_node_levels,
            soak_calls,
            soak_bin,
            soak_log_file,
            profile,
            given,
        }))
    }

    /// Whether `section` runs.
    fn runs(&self, section: Section) -> bool {
        if self.profile.is_some() {
            return section == Section::Sdk;
        }
        let on = match section {
            Section::Compare => !self.compare.is_empty(),
            Section::Scale => !self.hosts.is_empty() || !self.workers_compare.is_empty(),
            Section::Soak => self.soak_calls > 0,
            Section::Sdk | Section::SdkNode | Section::Startup => true,
        };
        on && (self.only.is_empty() || self.only.contains(&section))
    }

    fn rounds(&self) -> usize {
        if self.quick {
            3
        } else {
            5
        }
    }

    fn reproduce(&self) -> String {
        let mut cmd = String::from("cargo run --release -p jshost-bench --");
        for arg in &self.given {
            cmd.push(' ');
            if arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=,./".contains(c))
            {
                cmd.push_str(arg);
            } else {
                cmd.push_str(&format!("'{}'", arg.replace('\'', r"'\''")));
            }
        }
        cmd
    }
}

/// A comma-separated list of positive counts, e.g. `1,8,64`.
fn parse_list(text: &str, flag: &str) -> Result<Vec<usize>> {
    let list: Vec<usize> = text
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_count(s.trim(), flag))
        .collect::<Result<_>>()?;
    if list.is_empty() {
        bail!("{flag} needs at least one number, got {text:?}");
    }
    Ok(list)
}

/// [`parse_list`], or `none`: an empty list.
fn parse_list_or_none(text: &str, flag: &str) -> Result<Vec<usize>> {
    if text.trim() == "none" {
        Ok(Vec::new())
    } else {
        parse_list(text, flag)
    }
}

fn parse_count(text: &str, flag: &str) -> Result<usize> {
    match text.replace('_', "").parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("{flag} needs a positive whole number, got {text:?}"),
    }
}

/// The repository root: `node_modules` is there.
fn repo_root() -> PathBuf {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    bench.parent().unwrap_or(bench).to_path_buf()
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

// ---------------------------------------------------------------------------------------------
// Machine information

struct Machine {
    cores: usize,
    cpu: String,
    kernel: String,
    node: String,
    js_host: String,
    jshost_node: String,
    wrk: Option<(PathBuf, String)>,
    python: Result<Python, String>,
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Machine {
    async fn detect(root: &Path, work: &Path, function: Func) -> Machine {
        let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.strip_prefix("model name")
                        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
                })
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.into());
        let node = command_output("node", &["--version"]).unwrap_or_else(|| "node not found".into());
        let version = |package: &str| {
            std::fs::read_to_string(root.join("node_modules").join(package).join("package.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .and_then(|v| v["version"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "?".into())
        };
        let js_host = version("js-host");
        let jshost_node = version("jshost-node");
        let wrk = wrk::find().map(|p| {
            let v = wrk::version(&p).unwrap_or_else(|| "wrk".into());
            (p, v)
        });
        let python = Python::detect(work, root, function.name(), &function.data()).await;
        Machine {
            cores,
            cpu,
            kernel,
            node,
            js_host,
            jshost_node,
            wrk,
            python,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Measurements

#[derive(Debug, Clone, Default)]
struct SideStat {
    rate: f64,
    p50: Option<Duration>,
    p99: Option<Duration>,
}

#[derive(Debug, Clone)]
struct Compared {
    level: Option<usize>,
    sdk: SideStat,
    bare: SideStat,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn percentile(sorted_ns: &[u64], p: usize) -> Option<Duration> {
    if sorted_ns.is_empty() {
        return None;
    }
    let i = (sorted_ns.len() * p / 100).min(sorted_ns.len() - 1);
    Some(Duration::from_nanos(sorted_ns[i]))
}

/// The clients `sides`, `rounds` rounds each, rotating which goes first; calls/s is the median
/// of the rounds, latencies are pooled over them. `level` `None`: sequential.
async fn measure(
    c: &Clients,
    sides: &[Side],
    level: Option<usize>,
    calls: usize,
    rounds: usize,
) -> Result<Vec<SideStat>> {
    let per_round = (calls / rounds).max(1);
    let mut rates = vec![Vec::new(); sides.len()];
    let mut latencies = vec![Vec::new(); sides.len()];
    for round in 0..rounds {
        for k in 0..sides.len() {
            let i = (round + k) % sides.len();
            let elapsed = match level {
                None => c.sequential(sides[i], per_round, &mut latencies[i]).await?,
                Some(n) => c.concurrent(sides[i], per_round, n).await?,
            };
            rates[i].push(per_round as f64 / elapsed.as_secs_f64());
        }
    }
    Ok(rates
        .iter_mut()
        .zip(&mut latencies)
        .map(|(rates, latencies)| {
            latencies.sort_unstable();
            SideStat {
                rate: median(rates),
                p50: percentile(latencies, 50),
                p99: percentile(latencies, 99),
            }
        })
        .collect())
}

/// SDK and bare hyper (see [`measure`]).
async fn compare(c: &Clients, level: Option<usize>, calls: usize, rounds: usize) -> Result<Compared> {
    let mut stats = measure(c, &[Side::Sdk, Side::Bare], level, calls, rounds)
        .await?
        .into_iter();
    let sdk = stats.next().unwrap_or_default();
    let bare = stats.next().unwrap_or_default();
    Ok(Compared { level, sdk, bare })
}

/// SDK calls/s at `level` in flight (median of rounds).
async fn sdk_rate(c: &Clients, level: usize, calls: usize, rounds: usize) -> Result<f64> {
    let per_round = (calls / rounds).max(1);
    let mut rates = Vec::new();
    for _ in 0..rounds {
        let elapsed = c.concurrent(Side::Sdk, per_round, level).await?;
        rates.push(per_round as f64 / elapsed.as_secs_f64());
    }
    Ok(median(&mut rates))
}

#[derive(Debug, Clone)]
struct Cost {
    sdk_calls: usize,
    sdk_cpu: Option<procfs::Cpu>,
    sdk_rate: f64,
    bare_calls: usize,
    bare_cpu: Option<procfs::Cpu>,
    rss_kib: [Option<u64>; 3],
    /// `serde_json::to_vec(data)`, per call.
    serialise: Duration,
    /// `function_url` (SHA-1 of the body, hex, URL), per call.
    url: Duration,
}

fn cpu_since(before: Option<procfs::Cpu>) -> Option<procfs::Cpu> {
    Some(procfs::cpu_time()?.since(before?))
}

fn cpu(c: procfs::Cpu) -> String {
    format!(
        "{} (user {}, system {})",
        dur(c.total()),
        dur(c.user),
        dur(c.system)
    )
}

/// Client CPU per call (sequential), RSS across many SDK calls, and the SDK's per-call encoding
/// work (serialise + SHA-1 + URL) without I/O.
async fn cost(
    c: &Clients,
    host_url: &str,
    function: &str,
    sdk_calls: usize,
    bare_calls: usize,
) -> Result<Cost> {
    for _ in 0..2_000 {
        c.call(Side::Sdk).await?;
    }
    // In 10 slices, alternating SDK and bare hyper, so both see the same machine (other load,
    // node's state); CPU time is summed per client, RSS read before, halfway and after.
    const SLICES: usize = 10;
    let mut sdk_cpu = Some(procfs::Cpu::default());
    let mut bare_cpu = Some(procfs::Cpu::default());
    let mut sdk_time = Duration::ZERO;
    let add = |sum: &mut Option<procfs::Cpu>, used: Option<procfs::Cpu>| {
        *sum = sum.zip(used).map(|(a, b)| procfs::Cpu {
            user: a.user + b.user,
            system: a.system + b.system,
        });
    };
    let rss0 = procfs::rss_kib();
    let mut rss_half = None;
    for slice in 0..SLICES {
        if slice == SLICES / 2 {
            rss_half = procfs::rss_kib();
        }
        let n = sdk_calls / SLICES + usize::from(slice < sdk_calls % SLICES);
        let cpu0 = procfs::cpu_time();
        let started = Instant::now();
        for _ in 0..n {
            c.call(Side::Sdk).await?;
        }
        sdk_time += started.elapsed();
        add(&mut sdk_cpu, cpu_since(cpu0));

        let n = bare_calls / SLICES + usize::from(slice < bare_calls % SLICES);
        let cpu0 = procfs::cpu_time();
        for _ in 0..n {
            c.call(Side::Bare).await?;
        }
        add(&mut bare_cpu, cpu_since(cpu0));
    }
    let rss1 = procfs::rss_kib();
    let elapsed = sdk_time;

    let n = 20_000u32;
    let data = c.data();
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(serde_json::to_vec(std::hint::black_box(data))?);
    }
    let serialise = started.elapsed() / n;
    let body = c.body();
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(jshost::raw::function_url(
            host_url,
            function,
            std::hint::black_box(body),
        ));
    }
    let url = started.elapsed() / n;
    Ok(Cost {
        sdk_calls,
        sdk_cpu,
        sdk_rate: sdk_calls as f64 / elapsed.as_secs_f64(),
        bare_calls,
        bare_cpu,
        rss_kib: [rss0, rss_half, rss1],
        serialise,
        url,
    })
}

// ---------------------------------------------------------------------------------------------
// The report

fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn rate(r: f64) -> String {
    format!("{} calls/s", thousands(r))
}

fn dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.1} µs")
    } else if us < 1_000_000.0 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn latencies(p50: Option<Duration>, p99: Option<Duration>) -> String {
    match (p50, p99) {
        (Some(a), Some(b)) => format!(" (p50 {}, p99 {})", dur(a), dur(b)),
        _ => String::new(),
    }
}

fn verdict(met: bool, target: &str) -> String {
    format!("target {target}: {}", if met { "met" } else { "**MISSED**" })
}

/// `x` as a ratio (`1.23×`) to hold against `min`: with two decimals, or more where fewer would
/// read as the target's own value on the wrong side of it (0.897 is "0.897×", not "0.90×").
fn times(x: f64, min: f64) -> String {
    for decimals in 2..=6 {
        let shown = format!("{x:.decimals$}");
        if shown.parse::<f64>().is_ok_and(|v| (v >= min) == (x >= min)) {
            return format!("{shown}×");
        }
    }
    format!("{x}×")
}

fn median_duration(values: &[Duration]) -> Option<Duration> {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

fn spread(values: &[Duration]) -> String {
    match (median_duration(values), values.iter().min(), values.iter().max()) {
        (Some(m), Some(lo), Some(hi)) if values.len() > 1 => {
            format!("{} (median of {}; {}–{})", ms(m), values.len(), ms(*lo), ms(*hi))
        }
        (Some(m), _, _) => ms(m),
        _ => "–".into(),
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

struct Report {
    rows: Vec<[String; 4]>,
}

impl Report {
    fn row(
        &mut self,
        a: impl Into<String>,
        b: impl Into<String>,
        c: impl Into<String>,
        d: impl Into<String>,
    ) {
        self.rows.push([a.into(), b.into(), c.into(), d.into()]);
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> Result<()> {
    let args = match Args::parse(std::env::args().skip(1).collect()) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return Ok(());
        }
        Err(e) => {
            eprintln!("jshost-bench: {e:#}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let root = repo_root();
    let work = std::env::temp_dir().join(format!("jshost-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    // On a worker thread, as calls made from a server's handlers are, rather than on the thread
    // that blocks on `main`, so each call does not cross threads twice.
    let task = {
        let work = work.clone();
        tokio::spawn(async move { run(&args, &root, &work).await })
    };
    let result = task.await.context("the bench task panicked");
    let _ = std::fs::remove_dir_all(&work);
    result?
}

async fn run(args: &Args, root: &Path, work: &Path) -> Result<()> {
    let bench_config = root.join("bench").join("bench.config.js");
    let machine = Machine::detect(root, work, args.function).await;

    let host_config = if args.quiet_host {
        let quiet = work.join("bench-quiet.config.js");
        std::fs::write(
            &quiet,
            format!(
                "// jshost-bench --quiet-host: the bench config without per-request log lines on stdout.\n\
                 module.exports = Object.assign({{}}, require({}), {{ silent: true }});\n",
                serde_json::to_string(&bench_config)?
            ),
        )?;
        quiet
    } else {
        bench_config.clone()
    };
    let mut report = Report { rows: Vec::new() };
    let mut notes = Vec::new();

    let mut spawn_time = None;
    if args.runs(Section::Sdk) {
        match sdk(args, &machine, root, &host_config, work).await? {
            Some((took, r, n)) => {
                spawn_time = Some(took);
                report.rows.extend(r.rows);
                notes.extend(n);
            }
            None => return Ok(()), // --profile-loop
        }
    }

    if args.runs(Section::SdkNode) {
        sdk_node_section(args, &machine, root, &bench_config, work, &mut report, &mut notes).await?;
    }

    if args.runs(Section::Compare) {
        hosts_compared(args, &machine, root, &bench_config, work, &mut report, &mut notes).await?;
    }

    let scale_spawns = if args.runs(Section::Scale) {
        scale_out(args, machine.cores, root, &host_config, &mut report, &mut notes).await?
    } else {
        Vec::new()
    };

    if args.runs(Section::Startup) {
        let python = machine.python.as_ref().ok();
        let (warm_runs, cold_runs, python_runs) = if args.quick { (5, 1, 1) } else { (9, 3, 3) };
        let plan = startup::Plan {
            function: args.function,
            warm_runs,
            cold_runs,
            python_runs,
        };
        let s = startup::run(&plan, root, &bench_config, work, python).await?;
        startup_rows(&plan, &s, &mut report, &mut notes);
    }
    if let Some(took) = spawn_time {
        report.row(
            "start-up, owned: `JsHost::spawn` (node + js-host 0.12, port 0)",
            ms(took),
            "–",
            "–",
        );
    }
    for (what, took) in scale_spawns {
        report.row(what, ms(took), "–", "–");
    }

    if args.runs(Section::Soak) {
        soak_section(args, root, &bench_config, work, &mut report, &mut notes).await?;
    }

    print_report(args, &machine, &report, &notes);
    Ok(())
}

/// The SDK against an owned js-host 0.12, beside bare hyper, wrk and Python: its rows and notes
/// and the host's spawn time; `None` in `--profile-loop` mode.
async fn sdk(
    args: &Args,
    machine: &Machine,
    root: &Path,
    host_config: &Path,
    work: &Path,
) -> Result<Option<(Duration, Report, Vec<String>)>> {
    eprintln!(
        "jshost-bench: starting an owned js-host for {}",
        host_config.display()
    );
    let started = Instant::now();
    let host = JsHost::spawn(
        Settings::default()
            .source_root(root)
            .config_file(host_config)
            .path_to_bin(JS_HOST_BIN),
    )
    .await?;
    let logfile = host.logfile();
    let spawn_time = started.elapsed();
    let function = args.function.name();
    let outcome = match Clients::new(host.function(function), &host.url(), args.function.data()) {
        Ok(clients) => throughput(args, machine, &host, &clients, work).await,
        Err(e) => Err(e),
    };
    if let Err(e) = host.stop().await {
        eprintln!("jshost-bench: stopping the owned host: {e}");
    }
    drop(host);
    // With `Settings::log_file(true)` js-host logs every call: ~350 bytes per call.
    if let Some(logfile) = logfile {
        let _ = std::fs::remove_file(logfile);
    }
    Ok(outcome?.map(|(report, notes)| (spawn_time, report, notes)))
}

/// The start-up rows: js-host 0.12 beside Python, jshost-node beside js-host.
fn startup_rows(
    plan: &startup::Plan,
    all: &[startup::Startup],
    report: &mut Report,
    notes: &mut Vec<String>,
) {
    use startup::Managed;
    let js_host = all.iter().find(|s| s.host == Managed::JsHost);
    for s in all {
        let label = s.host.label();
        let python = "Python configure + first call";
        let (warm_ref, cold_ref, first_ref, warm_max, warm_ratio, cold_max) = match s.host {
            Managed::JsHost => (
                Some((python, &s.python_warm[..])),
                Some((python, &s.python_cold[..])),
                None,
                (Duration::from_millis(25), "≤ 25 ms"),
                Some((10.0, "≥ 10× Python")),
                None,
            ),
            Managed::JshostNode => {
                let reference = |runs: fn(&startup::Startup) -> &[Duration]| {
                    js_host.map(|j| (Managed::JsHost.label(), runs(j)))
                };
                (
                    reference(|j| &j.warm),
                    reference(|j| &j.cold),
                    reference(|j| j.first_ever.as_slice()),
                    (Duration::from_millis(10), "≤ 10 ms"),
                    None,
                    Some((Duration::from_millis(200), "≤ 200 ms")),
                )
            }
        };
        startup_row(
            report,
            format!("start-up, warm: `JsHost::connect` → first answer (managed {label} running)"),
            &s.warm,
            warm_ref,
            Some(warm_max),
            warm_ratio,
        );
        startup_row(
            report,
            format!("start-up, cold: {label} manager + host + first answer, nothing running (status cached)"),
            &s.cold,
            cold_ref,
            cold_max,
            None,
        );
        startup_row(
            report,
            format!("start-up, first ever: {label}, nothing running, nothing cached"),
            s.first_ever.as_slice(),
            first_ref,
            None,
            None,
        );
        if let Some(e) = &s.python_error {
            notes.push(format!("Python start-up failed: {e}"));
        }
    }
    notes.push(format!(
        "start-up: `JsHost::connect` with `use_manager(true)` until the first `{}` answer, for {}, \
         each with a manager of its own (a config of its own requiring the bench config, on \
         ports {}); warm: {} each with a managed host running; cold: {} each, before \
         each of which (and before the first-ever run) every manager was stopped and the run \
         waited, polling with a 10 s deadline, until no process with either config file as an \
         argument (manager, hosts, `--config` runs) was left and both ports were free; the runs \
         alternate between the hosts; Python's runs ({} each) beside js-host only",
        plan.function.name(),
        all.iter()
            .map(|s| s.host.label())
            .collect::<Vec<_>>()
            .join(" and "),
        all.iter()
            .map(|s| s.port.to_string())
            .collect::<Vec<_>>()
            .join(" and "),
        count(plan.warm_runs, "run"),
        count(plan.cold_runs, "run"),
        plan.python_runs,
    ));
}

/// A start-up row: the median of `runs` (and their spread), against `reference` (its name and
/// runs) with how many times faster, and the verdicts: a median of at most `max`, at least
/// `min_ratio` times faster than the reference.
fn startup_row(
    report: &mut Report,
    what: String,
    runs: &[Duration],
    reference: Option<(&str, &[Duration])>,
    max: Option<(Duration, &str)>,
    min_ratio: Option<(f64, &str)>,
) {
    let median = median_duration(runs);
    let reference_median = reference.and_then(|(_, r)| median_duration(r));
    let ratio = median
        .zip(reference_median)
        .map(|(m, r)| r.as_secs_f64() / m.as_secs_f64());
    let mut verdicts = Vec::new();
    if let Some(x) = ratio {
        verdicts.push(if x >= 10.0 {
            format!("{x:.0}× faster")
        } else {
            format!("{x:.1}× faster")
        });
    }
    if let (Some(m), Some((max, target))) = (median, max) {
        verdicts.push(verdict(m <= max, target));
    }
    if let (Some(x), Some((min, target))) = (ratio, min_ratio) {
        verdicts.push(verdict(x >= min, target));
    }
    report.row(
        what,
        spread(runs),
        match reference {
            Some((name, r)) => format!("{name}: {}", spread(r)),
            None => "–".into(),
        },
        if verdicts.is_empty() {
            "–".into()
        } else {
            verdicts.join("; ")
        },
    );
}

/// wrk against js-host 0.12, a plain node:http server, jshost-node (one process, workers,
/// `/batch`): rows and notes (see `compare.rs`).
async fn hosts_compared(
    args: &Args,
    machine: &Machine,
    root: &Path,
    bench_config: &Path,
    work: &Path,
    report: &mut Report,
    notes: &mut Vec<String>,
) -> Result<()> {
    let Some((wrk_bin, _)) = &machine.wrk else {
        notes.push("wrk not installed: no host comparison (apt-get install wrk)".into());
        return Ok(());
    };
    let plan = compare::Plan {
        targets: args.compare.clone(),
        connections: vec![1, 64],
        seconds: args.compare_seconds,
        rounds: args.compare_rounds,
        warmup_seconds: if args.quick { 1 } else { 2 },
        workers: args.compare_workers,
        batch: args.batch_size,
    };
    // The same request bytes as the SDK's `echo` call (whatever `--function` is).
    let data = Func::Echo.data();
    let body = bytes::Bytes::from(serde_json::to_vec(&data)?);
    let url = jshost::raw::function_url("http://127.0.0.1", Func::Echo.name(), &body);
    let path = url.strip_prefix("http://127.0.0.1").unwrap_or(&url).to_owned();
    let echo = compare::Echo { path, body, data };
    let outcome = compare::run(wrk_bin, root, bench_config, work, &echo, &plan).await?;
    compare::rows(&plan, &outcome, report, notes);
    Ok(())
}

/// The SDK against jshost-node (batching off and on) and js-host 0.12, beside wrk on the same
/// hosts: rows and notes (see `sdk_node.rs`).
async fn sdk_node_section(
    args: &Args,
    machine: &Machine,
    root: &Path,
    bench_config: &Path,
    work: &Path,
    report: &mut Report,
    notes: &mut Vec<String>,
) -> Result<()> {
    let plan = sdk_node::Plan {
        levels: args.sdk_node_levels.clone(),
        seconds: args.compare_seconds,
        rounds: args.compare_rounds,
        warmup_seconds: if args.quick { 1 } else { 2 },
    };
    let wrk_bin = machine.wrk.as_ref().map(|(p, _)| p.as_path());
    let outcome = sdk_node::run(wrk_bin, root, bench_config, work, &plan).await?;
    sdk_node::rows(&plan, &outcome, report, notes);
    Ok(())
}

/// The soak (`--soak-calls N`): its row and note.
async fn soak_section(
    args: &Args,
    root: &Path,
    bench_config: &Path,
    work: &Path,
    report: &mut Report,
    notes: &mut Vec<String>,
) -> Result<()> {
    let mut settings = Settings::default().source_root(root).config_file(bench_config);
    if let Some(bin) = args.soak_bin {
        settings = settings.path_to_bin(bin);
    }
    if args.soak_log_file {
        settings = settings.log_file(true);
    }
    let in_flight = 64;
    let s = soak::run(settings, &Func::Echo.data(), args.soak_calls, in_flight, work).await?;
    let disk = s.disk_use();
    let rss = match s.rss_kib {
        [Some(a), Some(b)] => format!("; host RSS {} → {}", mib(a), mib(b)),
        _ => String::new(),
    };
    report.row(
        format!(
            "soak: {} `echo` calls through the SDK, {} in flight, on an owned host \
             (`JsHost::spawn`, {}: `{}`): disk use of the host's files",
            thousands(s.calls as f64),
            s.in_flight,
            match (args.soak_bin.is_some(), args.soak_log_file) {
                (false, false) => "default settings",
                (true, false) => "`--soak-host`",
                (false, true) => "`log_file(true)`",
                (true, true) => "`--soak-host`, `log_file(true)`",
            },
            s.bin.display()
        ),
        format!("{} B", thousands(disk as f64)),
        format!(
            "{} calls answered, {} failed, in {:.1} s ({}){rss}",
            thousands(s.ok as f64),
            s.failed,
            s.elapsed.as_secs_f64(),
            rate(s.ok as f64 / s.elapsed.as_secs_f64())
        ),
        verdict(
            disk < 1_000_000 && s.failed == 0 && s.ok == s.calls,
            "< 1 MB, every call answered",
        ),
    );
    let files = |m: &std::collections::BTreeMap<PathBuf, u64>| {
        m.iter()
            .map(|(p, n)| format!("{} +{} B", p.display(), thousands(*n as f64)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    notes.push(format!(
        "soak: disk use = the host's logfile ({}) + growth of the temporary directory's `jshost-*` \
         entries the SDK writes for this process + files the host holds open for writing, measured \
         before the host is stopped: {}{}{}",
        match &s.logfile {
            Some((p, n)) => format!("{}, {} B", p.display(), thousands(*n as f64)),
            None => "none: `Settings::log_file` is off".into(),
        },
        if s.counted.is_empty() {
            "nothing grew".into()
        } else {
            files(&s.counted)
        },
        if s.others.is_empty() {
            String::new()
        } else {
            format!(
                "; other processes' `jshost-*` entries grew meanwhile (not counted): {}",
                files(&s.others)
            )
        },
        match &s.first_error {
            Some(e) => format!("; first failure: {e}"),
            None => String::new(),
        }
    ));
    Ok(())
}

/// The scale-out runs: `Settings::hosts(n)` on js-host 0.12 (unless `--hosts none`), then
/// `Settings::workers(n)` on jshost-node (unless `--workers-compare none`). Their rows and notes;
/// the start-up rows of their pools (label, `JsHost::spawn` time).
async fn scale_out(
    args: &Args,
    cores: usize,
    root: &Path,
    host_config: &Path,
    report: &mut Report,
    notes: &mut Vec<String>,
) -> Result<Vec<(String, Duration)>> {
    let plan = |setups| scale::Plan {
        setups,
        levels: args.scale_levels.clone(),
        calls: args.scale_calls,
        rounds: args.rounds(),
        warmup: if args.quick { 500 } else { 2_000 },
    };
    let settings = Settings::default().source_root(root).config_file(host_config);
    let mut spawns = Vec::new();

    if !args.hosts.is_empty() {
        let plan = plan(
            args.hosts
                .iter()
                .map(|&n| scale::Setup {
                    name: count(n, "host"),
                    row: format!(
                        "`render` scale-out, {} (`Settings::hosts({n})`)",
                        count(n, "host")
                    ),
                    settings: settings.clone().path_to_bin(JS_HOST_BIN).hosts(n),
                    hosts: n,
                    workers: 0,
                    baseline: 0,
                    target: None,
                })
                .collect(),
        );
        let measured = scale::run(&plan).await?;
        scale_rows(&plan, &measured, report);
        notes.push(format!(
            "scale-out: `render` (the bench config, whatever `--function` is) through one `JsHost` \
             per host count, `JsHost::spawn(settings.hosts(n))` on js-host 0.12, which sends each \
             call to the host with the fewest in flight; {}",
            scale_method(&plan, &measured, cores, "host count")
        ));
        spawns.extend(measured.iter().filter(|m| m.setup.hosts > 1).map(|m| {
            (
                format!(
                    "start-up, owned pool: `JsHost::spawn` with `hosts({})` (started concurrently)",
                    m.setup.hosts
                ),
                m.spawn_time,
            )
        }));
    }

    if !args.workers_compare.is_empty() {
        let first = args.workers_compare[0];
        let mut setups = Vec::new();
        for batch in [true, false] {
            let baseline = setups.len();
            for &n in &args.workers_compare {
                setups.push(scale::Setup {
                    name: format!(
                        "{}, batching {}",
                        count(n, "worker"),
                        if batch { "on" } else { "off" }
                    ),
                    row: format!(
                        "`render` with `Settings::workers({n})` on jshost-node, {}",
                        if batch {
                            "automatic batching (`batch(true)`, the SDK default)"
                        } else {
                            "batching off (`batch(false)`)"
                        }
                    ),
                    settings: settings
                        .clone()
                        .path_to_bin(JSHOST_NODE_BIN)
                        .workers(n)
                        .batch(batch),
                    hosts: 1,
                    workers: n,
                    baseline,
                    target: (first == 1 && n == 2).then_some((1.3, "≥ 1.3× one worker")),
                });
            }
        }
        let plan = plan(setups);
        let measured = scale::run(&plan).await?;
        scale_rows(&plan, &measured, report);
        notes.push(format!(
            "workers: `render` through one `JsHost` per worker count and batching setting, \
             `JsHost::spawn(settings.workers(n).batch(b))` of jshost-node (`path_to_bin` {JSHOST_NODE_BIN}, \
             the SDK's default; on its private Unix socket, the default), one host whose primary \
             process hands each new connection to a worker, round robin: the SDK's connections, \
             not its calls, are spread over the workers. With automatic batching (the default), \
             calls of a function whose answers average 4 KB or more go out plain, as `render`'s \
             (10 KB) do once its first answers are in, so its batching-on and batching-off rows \
             measure the same path; a function with small answers has its calls made while \
             others are in flight leave together as `POST /batch` requests, at least one per \
             worker and at most 4 per worker in flight. Plain calls: one request per call on up \
             to 128 connections, the SDK's connections taken in turn. \
             {}",
            scale_method(&plan, &measured, cores, "configuration")
        ));
        spawns.extend(measured.iter().filter(|m| m.setup.settings.batch).map(|m| {
            (
                format!(
                    "start-up, owned: `JsHost::spawn` of jshost-node with `workers({})`",
                    m.setup.workers
                ),
                m.spawn_time,
            )
        }));
    }
    Ok(spawns)
}

/// `1 host`, `2 hosts`.
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The scale-out rows: each configuration against its baseline, per level (a baseline alone in
/// its group gets a row of its own).
fn scale_rows(plan: &scale::Plan, measured: &[scale::Measured], report: &mut Report) {
    for (l, &level) in plan.levels.iter().enumerate() {
        let rate_of = |m: &scale::Measured| m.levels.get(l).map(|s| s.rate).unwrap_or_default();
        for (i, m) in measured.iter().enumerate() {
            let Some(base) = measured.get(m.setup.baseline) else {
                continue;
            };
            let alone = !measured
                .iter()
                .enumerate()
                .any(|(j, o)| j != i && o.setup.baseline == m.setup.baseline);
            if m.setup.baseline == i && !alone {
                continue; // the reference of the others' rows
            }
            let r = rate_of(m);
            if m.setup.baseline == i {
                report.row(format!("{}, {level} in flight", m.setup.row), rate(r), "–", "–");
                continue;
            }
            let base_rate = rate_of(base);
            let x = r / base_rate;
            let shown = m
                .setup
                .target
                .map_or_else(|| format!("{x:.2}×"), |(min, _)| times(x, min));
            let mut ratio = format!("{shown} ({} / {})", m.setup.name, base.setup.name);
            if let Some((min, target)) = m.setup.target {
                ratio.push_str(&format!("; {}", verdict(x >= min, target)));
            }
            report.row(
                format!("{}, {level} in flight", m.setup.row),
                rate(r),
                format!("{}, {level} in flight: {}", base.setup.name, rate(base_rate)),
                ratio,
            );
        }
    }
}

/// How a scale-out run measured, and where the CPU went, per level and configuration.
fn scale_method(plan: &scale::Plan, measured: &[scale::Measured], cores: usize, per: &str) -> String {
    let per_level: Vec<String> = plan
        .levels
        .iter()
        .enumerate()
        .map(|(l, level)| {
            let configs: Vec<String> = measured
                .iter()
                .filter_map(|m| Some((&m.setup.name, m.levels.get(l)?)))
                .map(|(name, m)| {
                    let node = m.node_cpu_per_call().map(dur).unwrap_or_else(|| "?".into());
                    let split = match m.node_shares() {
                        Some(shares) if shares.len() > 1 => format!(
                            " ({})",
                            shares
                                .iter()
                                .map(|s| format!("{s:.0}%"))
                                .collect::<Vec<_>>()
                                .join(" / ")
                        ),
                        _ => String::new(),
                    };
                    let client = m.client_cpu_per_call().map(dur).unwrap_or_else(|| "?".into());
                    let busy = m
                        .busy_cores()
                        .map(|b| format!(", {b:.2} cores busy"))
                        .unwrap_or_default();
                    let rest = m
                        .rest_cores()
                        .map(|r| format!(", rest of the machine {r:.2} cores"))
                        .unwrap_or_default();
                    format!("{name} node {node}{split} + client {client}{busy}{rest}")
                })
                .collect();
            format!("{level} in flight: {}", configs.join("; "))
        })
        .collect();
    format!(
        "`buffer_unordered` over that one `JsHost`, {} calls per {per} and level in {} rounds \
         alternating between them (median of the rounds); the client shares the machine's {} \
         cores with the hosts, and one node process uses at most one. CPU per call in those runs \
         (/proc/PID/stat; node's split between its processes, a host with workers being its \
         primary first, then each worker; cores busy: node + client CPU time / wall time; rest of \
         the machine: wall time × cores less idle and steal time (/proc/stat) less node's and the \
         bench's CPU time, per wall second, as in the host comparison: well above 0.1, other work \
         competed for the cores and the ratios are disturbed): {}",
        thousands(plan.calls as f64),
        plan.rounds,
        cores,
        per_level.join(". ")
    )
}

/// Everything measured against the owned host. `None` in `--profile-loop` mode.
async fn throughput(
    args: &Args,
    machine: &Machine,
    host: &JsHost,
    clients: &Clients,
    work: &Path,
) -> Result<Option<(Report, Vec<String>)>> {
    let function = args.function.name();
    let rounds = args.rounds();
    let warmup = if args.quick { 500 } else { 3_000 };

    // The SDK must send exactly what the bare client sends, and get the expected answer.
    let text = clients.sdk_text().await?;
    if args.function == Func::Echo && text.as_bytes() != clients.body().as_ref() {
        bail!(
            "echo answered {text:?}, expected {:?}",
            String::from_utf8_lossy(clients.body())
        );
    }
    let answer_size = text.len();
    eprintln!("warm-up: {warmup} calls per client...");
    clients.concurrent(Side::Sdk, warmup, 8).await?;
    clients.concurrent(Side::Bare, warmup, 8).await?;
    clients.sequential(Side::Sdk, warmup, &mut Vec::new()).await?;
    clients.sequential(Side::Bare, warmup, &mut Vec::new()).await?;

    if let Some(side) = args.profile {
        eprintln!("profile loop: {} x{} sequential...", side.label(), args.calls);
        let switches0 = procfs::context_switches();
        let cpu0 = procfs::cpu_time();
        let elapsed = clients.sequential(side, args.calls, &mut Vec::new()).await?;
        let used = cpu_since(cpu0).unwrap_or_default();
        let switches = procfs::context_switches()
            .zip(switches0)
            .map(|(after, before)| after.saturating_sub(before) as f64 / args.calls as f64);
        println!(
            "{}: {} sequential, {} CPU per call, {} context switches per call",
            side.label(),
            rate(args.calls as f64 / elapsed.as_secs_f64()),
            cpu(used.per(args.calls)),
            switches.map(|s| format!("{s:.2}")).unwrap_or_else(|| "?".into())
        );
        return Ok(None);
    }

    let mut report = Report { rows: Vec::new() };
    let mut notes = Vec::new();

    eprintln!(
        "sequential: {} calls per client in {rounds} rounds...",
        args.calls
    );
    let seq = measure(
        clients,
        &[Side::Sdk, Side::SdkRaw, Side::Bare],
        None,
        args.calls,
        rounds,
    )
    .await?;
    let raw = seq.get(1).cloned().unwrap_or_default();
    let seq = Compared {
        level: None,
        sdk: seq.first().cloned().unwrap_or_default(),
        bare: seq.get(2).cloned().unwrap_or_default(),
    };
    report.row(
        "SDK sequential",
        format!("{}{}", rate(seq.sdk.rate), latencies(seq.sdk.p50, seq.sdk.p99)),
        format!(
            "bare hyper: {}{}",
            rate(seq.bare.rate),
            latencies(seq.bare.p50, seq.bare.p99)
        ),
        format!(
            "{:.2}×; {}",
            seq.sdk.rate / seq.bare.rate,
            verdict(seq.sdk.rate >= 0.95 * seq.bare.rate, "≥ 0.95×")
        ),
    );
    report.row(
        "SDK `call_raw` sequential (body already serialised)",
        format!("{}{}", rate(raw.rate), latencies(raw.p50, raw.p99)),
        format!("bare hyper: {}", rate(seq.bare.rate)),
        format!("{:.2}×", raw.rate / seq.bare.rate),
    );

    let bare_calls = (args.rss_calls / 4).max(args.calls);
    eprintln!(
        "cost: {} SDK calls (CPU, RSS), {bare_calls} bare calls (CPU)...",
        args.rss_calls
    );
    let cost = cost(clients, &host.url(), function, args.rss_calls, bare_calls).await?;

    let mut levels = Vec::new();
    for &level in &args.concurrency {
        eprintln!(
            "{level} in flight: {} calls per client in {rounds} rounds...",
            args.calls
        );
        levels.push(compare(clients, Some(level), args.calls, rounds).await?);
    }

    let mut wrk_results = Vec::new();
    if let Some((wrk_bin, _)) = &machine.wrk {
        let script = work.join("jshost-bench.lua");
        std::fs::write(&script, wrk::script(clients.body()))?;
        let seconds = if args.quick { 2 } else { 3 };
        for connections in [1, 64] {
            eprintln!("wrk: {connections} connection(s), {seconds} s...");
            match wrk::run(
                wrk_bin,
                &script,
                &clients.uri()?.to_string(),
                connections.clamp(1, 2),
                connections,
                seconds,
            )
            .await
            {
                Ok(r) => wrk_results.push(r),
                Err(e) => notes.push(format!("wrk -c{connections} failed: {e:#}")),
            }
        }
    } else {
        notes.push("wrk not installed: no wrk reference (apt-get install wrk)".into());
    }

    let mut python_result = None;
    let mut sdk_at_threads = None;
    match &machine.python {
        Ok(py) => {
            let port = host.status().port().unwrap_or_default();
            let config = work.join("python-direct.config.js");
            std::fs::write(
                &config,
                format!(
                    "// jshost-bench: the bench config with the owned host's port, for the Python client.\n\
                     module.exports = Object.assign({{}}, require({}), {{ port: {port} }});\n",
                    serde_json::to_string(&host.config_file())?
                ),
            )?;
            let (seq_calls, thread_calls) = if args.quick { (300, 600) } else { (1_500, 3_000) };
            let threads = 32;
            eprintln!("Python: {seq_calls} sequential calls, {thread_calls} calls from {threads} threads...");
            match py
                .throughput(&host.url(), &config, seq_calls, threads, thread_calls)
                .await
            {
                Ok(r) => python_result = Some(r),
                Err(e) => notes.push(format!("the Python client failed: {e:#}")),
            }
            eprintln!("SDK at {threads} in flight (beside Python's {threads} threads)...");
            sdk_at_threads = Some((threads, sdk_rate(clients, threads, args.calls, rounds).await?));
        }
        Err(message) => notes.push(message.clone()),
    }

    // Rows, in the order of the issue's targets.
    let wrk1 = wrk_results.iter().find(|r| r.connections == 1);
    match wrk1 {
        Some(w) => report.row(
            "SDK sequential",
            rate(seq.sdk.rate),
            format!(
                "wrk, 1 connection, {} s: {}{}",
                w.seconds,
                rate(w.rate),
                latencies(w.p50, w.p99)
            ),
            format!("{:.2}×", seq.sdk.rate / w.rate),
        ),
        None => report.row("SDK sequential", rate(seq.sdk.rate), "wrk: –", "–"),
    }
    match &python_result {
        Some(p) => report.row(
            "SDK sequential",
            rate(seq.sdk.rate),
            format!(
                "Python `Function.call`, sequential, {} calls: {}{}",
                thousands(p.seq_calls as f64),
                rate(p.seq_rate),
                latencies(Some(p.seq_p50), Some(p.seq_p99))
            ),
            format!(
                "{:.1}×; {}{}",
                seq.sdk.rate / p.seq_rate,
                verdict(seq.sdk.rate >= 8.0 * p.seq_rate, "≥ 8×"),
                match wrk1 {
                    Some(w) => format!(" (the ceiling, wrk -c1, is {:.1}× Python)", w.rate / p.seq_rate),
                    None => String::new(),
                }
            ),
        ),
        None => report.row("SDK sequential", rate(seq.sdk.rate), "Python: –", "–"),
    }
    for c in &levels {
        let level = c.level.unwrap_or(1);
        let ratio = c.sdk.rate / c.bare.rate;
        let target = if level == 64 {
            format!("; {}", verdict(ratio >= 0.95, "≥ 0.95×"))
        } else {
            String::new()
        };
        report.row(
            format!("SDK, {level} in flight"),
            rate(c.sdk.rate),
            format!("bare hyper, {level} in flight: {}", rate(c.bare.rate)),
            format!("{ratio:.2}×{target}"),
        );
    }
    if let Some(w) = wrk_results.iter().find(|r| r.connections == 64) {
        match levels.iter().find(|c| c.level == Some(64)) {
            Some(c) => report.row(
                "SDK, 64 in flight",
                rate(c.sdk.rate),
                format!(
                    "wrk, 64 connections, {} threads, {} s: {}",
                    w.threads,
                    w.seconds,
                    rate(w.rate)
                ),
                format!("{:.2}×", c.sdk.rate / w.rate),
            ),
            None => notes.push(format!(
                "wrk, 64 connections: {} (add 64 to --concurrency to compare)",
                rate(w.rate)
            )),
        }
    }
    if let (Some(p), Some((threads, sdk))) = (&python_result, sdk_at_threads) {
        report.row(
            format!("SDK, {threads} in flight"),
            rate(sdk),
            format!(
                "Python `Function.call`, {} threads, {} calls: {}",
                p.threads,
                thousands(p.thread_calls as f64),
                rate(p.thread_rate)
            ),
            format!("{:.1}×", sdk / p.thread_rate),
        );
    }
    let sdk_cpu = cost.sdk_cpu.map(|c| c.per(cost.sdk_calls));
    let bare_cpu = cost.bare_cpu.map(|c| c.per(cost.bare_calls));
    match sdk_cpu {
        Some(sdk) => report.row(
            format!(
                "client CPU per SDK call (sequential, {} calls)",
                thousands(cost.sdk_calls as f64)
            ),
            cpu(sdk),
            match bare_cpu {
                Some(b) => format!(
                    "bare hyper, {} calls: {}",
                    thousands(cost.bare_calls as f64),
                    cpu(b)
                ),
                None => "bare hyper: –".into(),
            },
            match bare_cpu {
                Some(b) if !b.total().is_zero() => format!(
                    "{:.2}× ({:+.1} µs); {}",
                    sdk.total().as_secs_f64() / b.total().as_secs_f64(),
                    (sdk.total().as_secs_f64() - b.total().as_secs_f64()) * 1e6,
                    verdict(sdk.total() <= Duration::from_micros(15), "≤ 15 µs")
                ),
                _ => verdict(sdk.total() <= Duration::from_micros(15), "≤ 15 µs"),
            },
        ),
        None => notes.push("cannot read /proc/self/stat: no CPU measurement".into()),
    }
    report.row(
        "SDK per-call encoding, no I/O: `serde_json::to_vec(data)` + SHA-1 hash and URL",
        format!("{} + {}", dur(cost.serialise), dur(cost.url)),
        "–",
        "–",
    );
    if let [Some(before), Some(half), Some(after)] = cost.rss_kib {
        let growth = i128::from(after) - i128::from(before);
        report.row(
            format!(
                "RSS growth over {} SDK calls (sequential, with the {} bare calls in between)",
                thousands(cost.sdk_calls as f64),
                thousands(cost.bare_calls as f64)
            ),
            format!(
                "{:+.2} MB ({} → {} → {})",
                growth as f64 / 1024.0,
                mib(before),
                mib(half),
                mib(after)
            ),
            "before → halfway → after",
            verdict(growth <= 2 * 1024, "≤ 2 MB"),
        );
    }
    notes.push(format!(
        "the CPU/RSS run made {} sequential SDK calls at {}, in 10 slices alternating with bare \
         hyper's; CPU time is read from /proc/self/stat \
         (utime + stime, {} resolution, all threads of this process, node excluded). On loopback \
         the system part includes the kernel's TCP work for both ends of each packet sent, and the \
         bare hyper figure is about the best any hyper-based client can do on this machine",
        thousands(cost.sdk_calls as f64),
        rate(cost.sdk_rate),
        dur(procfs::CPU_TIME_RESOLUTION)
    ));
    if !args.quiet_host {
        notes.push(
            "js-host logs 3 lines per call, to its logfile and to stdout (an owned host drops the \
             stdout copy in node, so none reach this process); `--quiet-host` starts the hosts \
             with `silent: true`, which leaves only the logfile's"
                .into(),
        );
    }
    notes.push(format!(
        "`{function}`: a {} B request body, a {} B answer; every figure but the scale-out rows is from \
         one owned host ({})",
        clients.body().len(),
        answer_size,
        host.url()
    ));
    notes.push(format!(
        "calls/s are the median of {rounds} rounds per client, rotating which client goes first; \
         SDK and bare hyper share one tokio runtime ({} worker threads) and one node process",
        machine.cores
    ));
    Ok(Some((report, notes)))
}

fn print_report(args: &Args, m: &Machine, report: &Report, notes: &[String]) {
    println!("## jshost-bench: `{}`", args.function.name());
    println!();
    let wrk = m
        .wrk
        .as_ref()
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "wrk not installed".into());
    let python = match &m.python {
        Ok(p) => format!("{}, js-host 0.2.0 (Python)", p.version),
        Err(_) => "Python client not installed".into(),
    };
    println!(
        "machine: {} cores (available_parallelism), {}, {}; node {}, js-host {}, jshost-node {}; {}; {}{}",
        m.cores,
        m.cpu,
        m.kernel,
        m.node,
        m.js_host,
        m.jshost_node,
        wrk,
        python,
        if cfg!(debug_assertions) {
            "; **debug build: use --release**"
        } else {
            ""
        }
    );
    println!();
    println!("| measurement | calls/s or ms | reference | ratio |");
    println!("| --- | --- | --- | --- |");
    for [a, b, c, d] in &report.rows {
        println!("| {a} | {b} | {c} | {d} |");
    }
    println!();
    for n in notes {
        println!("- {n}");
    }
    println!();
    println!("reproduce: `{}`", args.reproduce());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>> {
        Args::parse(args.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn parses_the_command_line() {
        let a = parse(&[]).expect("valid").expect("not help");
        assert_eq!((a.calls, a.rss_calls, a.function), (20_000, 200_000, Func::Echo));
        assert_eq!(a.concurrency, vec![1, 8, 64, 256]);
        let a = parse(&[
            "--quick",
            "--calls=500",
            "--concurrency",
            "4,16",
            "--function",
            "render",
        ])
        .expect("valid")
        .expect("not help");
        assert_eq!(
            (a.calls, a.rss_calls, a.function, a.quick),
            (500, 20_000, Func::Render, true)
        );
        assert_eq!(a.concurrency, vec![4, 16]);
        assert_eq!(
            (a.hosts.clone(), a.scale_levels.clone(), a.scale_calls),
            (vec![1, 2], vec![8, 64], 3_000)
        );
        assert_eq!(
            a.reproduce(),
            "cargo run --release -p jshost-bench -- --quick --calls=500 --concurrency 4,16 --function render"
        );
        let a = parse(&[
            "--hosts",
            "1,2,4",
            "--scale-concurrency=16",
            "--scale-calls",
            "900",
        ])
        .expect("valid")
        .expect("not help");
        assert_eq!(
            (a.hosts, a.scale_levels, a.scale_calls),
            (vec![1, 2, 4], vec![16], 900)
        );
        let a = parse(&["--hosts", "none"]).expect("valid").expect("not help");
        assert!(a.hosts.is_empty());
        assert_eq!(a.workers_compare, vec![1, 2]);
        assert!(a.runs(Section::Scale));
        let a = parse(&["--only", "scale", "--hosts", "none", "--workers-compare=1,2,3"])
            .expect("valid")
            .expect("not help");
        assert_eq!(a.workers_compare, vec![1, 2, 3]);
        assert!(a.runs(Section::Scale) && !a.runs(Section::Startup));
        let a = parse(&["--hosts", "none", "--workers-compare", "none"])
            .expect("valid")
            .expect("not help");
        assert!(!a.runs(Section::Scale));
        assert!(parse(&["--only", "scale", "--hosts", "none", "--workers-compare", "none"]).is_err());
        assert!(parse(&["--hosts", "0,2"]).is_err());
        assert!(parse(&["--hosts", ""]).is_err());
        assert!(parse(&["--help"]).expect("valid").is_none());
        assert!(parse(&["--calls", "0"]).is_err());
        assert!(parse(&["--function", "nope"]).is_err());
        assert!(parse(&["--calls"]).is_err());
    }

    #[test]
    fn parses_the_comparison_and_soak_options() {
        let a = parse(&[]).expect("valid").expect("not help");
        assert_eq!(a.compare, Target::ALL.to_vec());
        assert_eq!(
            (a.compare_seconds, a.compare_rounds, a.compare_workers),
            (4, 3, 2)
        );
        assert_eq!(
            (a.batch_size, a.soak_calls, a.soak_bin, a.soak_log_file),
            (16, 0, None, false)
        );
        assert!(a.runs(Section::Sdk) && a.runs(Section::Compare) && a.runs(Section::Startup));
        assert!(!a.runs(Section::Soak));
        let a = parse(&["--quick"]).expect("valid").expect("not help");
        assert_eq!((a.compare_seconds, a.compare_rounds), (2, 1));
        let a = parse(&["--hosts-compare", "none", "--soak-calls", "1_000_000"])
            .expect("valid")
            .expect("not help");
        assert!(a.compare.is_empty() && !a.runs(Section::Compare));
        assert_eq!(a.soak_calls, 1_000_000);
        assert!(a.runs(Section::Soak));
        let a = parse(&[
            "--hosts-compare=jshost-node,batch",
            "--batch-size",
            "8",
            "--compare-workers=3",
            "--only",
            "compare,soak",
            "--soak-calls",
            "20000",
            "--soak-host",
            "js-host",
            "--soak-log-file",
        ])
        .expect("valid")
        .expect("not help");
        assert_eq!(a.compare, vec![Target::JshostNode, Target::Batch]);
        assert_eq!((a.batch_size, a.compare_workers), (8, 3));
        assert_eq!((a.soak_bin, a.soak_log_file), (Some(JS_HOST_BIN), true));
        assert!(a.runs(Section::Compare) && a.runs(Section::Soak));
        assert!(!a.runs(Section::Sdk) && !a.runs(Section::Scale) && !a.runs(Section::Startup));
        let a = parse(&[]).expect("valid").expect("not help");
        assert_eq!(a.sdk_node_levels, vec![64]);
        assert!(a.runs(Section::SdkNode));
        let a = parse(&["--only", "sdk-node", "--sdk-node-concurrency", "8,64"])
            .expect("valid")
            .expect("not help");
        assert_eq!(a.sdk_node_levels, vec![8, 64]);
        assert!(a.runs(Section::SdkNode) && !a.runs(Section::Sdk) && !a.runs(Section::Compare));
        assert!(parse(&["--sdk-node-concurrency", "0"]).is_err());
        let a = parse(&["--scale-only"]).expect("valid").expect("not help");
        assert_eq!(a.only, vec![Section::Scale]);
        let a = parse(&["--profile-loop", "sdk", "--soak-calls", "5"])
            .expect("valid")
            .expect("not help");
        assert!(a.runs(Section::Sdk) && !a.runs(Section::Compare) && !a.runs(Section::Soak));
        assert!(parse(&["--hosts-compare", "nope"]).is_err());
        assert!(parse(&["--hosts-compare", ","]).is_err());
        assert!(parse(&["--only", "soak"]).is_err());
        assert!(parse(&["--only", "compare", "--hosts-compare", "none"]).is_err());
        assert!(parse(&["--only", "everything"]).is_err());
        assert!(parse(&["--soak-host", "deno"]).is_err());
        assert!(parse(&["--compare-seconds", "0"]).is_err());
    }

    #[test]
    fn a_ratio_just_under_its_target_does_not_read_as_the_target() {
        assert_eq!(times(0.8953, 0.9), "0.895×");
        assert_eq!(times(0.9012, 0.9), "0.90×");
        assert_eq!(times(1.2981, 1.3), "1.298×");
        assert_eq!(times(1.53, 1.3), "1.53×");
        assert_eq!(times(0.8996, 0.9), "0.8996×");
    }

    #[test]
    fn render_data_has_100_items() {
        let items = Func::Render.data()["items"].as_array().map(Vec::len);
        assert_eq!(items, Some(100));
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(dur(Duration::from_micros(1500)), "1.5 ms");
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
    }
}
