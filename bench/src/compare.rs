//! Hosts side by side under `wrk`: js-host 0.12, a plain `node:http` echo server written for the
//! purpose, jshost-node as one process and with `--workers N`, and jshost-node's `/batch`.
//!
//! Every server is a node process started here (`--port 0` on 127.0.0.1, its status line read
//! from stdout) from `bench/bench.config.js`, and stopped at the end, also on error: its stdin
//! is closed (each exits when it reaches end of file, so none outlives a SIGKILLed bench either),
//! then it and every process it started are killed if they are still there after 3 s. Before
//! measuring, each answer is checked (the echo must send back the request's body; jshost-node
//! must identify itself with `X-Jshost-Node`, js-host must not; `--workers` must report its
//! workers). Every wrk run posts the same echo request bytes (the SDK's: same path with `?hash=`,
//! same JSON body) with `wrk -t1`; `/batch` posts 16 (`--batch-size`) echo items of the same data
//! per request. Rounds alternate between the runs (rotating which goes first), so all see the same
//! machine; requests/s is the median of the rounds. The server's CPU time (its process and every
//! descendant, from `/proc/PID/stat`) is summed over the rounds and divided by the requests wrk
//! completed.

use crate::procfs::{self, Cpu, Proc};
use crate::{dur, median, rate, thousands, times, verdict, wrk, Report};
use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// js-host 0.12's CLI, relative to the repository root.
pub const JS_HOST_BIN: &str = "node_modules/js-host/bin/js-host.js";
/// jshost-node's CLI, relative to the repository root.
pub const JSHOST_NODE_BIN: &str = "node_modules/jshost-node/bin/jshost-node.js";

/// How long a server may take to print its status.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit once its stdin is closed.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// What a wrk run is aimed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// js-host 0.12, `POST /function/echo`.
    JsHost,
    /// The plain `node:http` echo server.
    NodeHttp,
    /// jshost-node, one process, `POST /function/echo`.
    JshostNode,
    /// jshost-node `--workers N`, `POST /function/echo`.
    Workers,
    /// jshost-node, one process, `POST /batch` of `batch` echo items.
    Batch,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::JsHost,
        Target::NodeHttp,
        Target::JshostNode,
        Target::Workers,
        Target::Batch,
    ];

    /// The name `--hosts-compare` takes.
    pub fn name(self) -> &'static str {
        match self {
            Target::JsHost => "js-host",
            Target::NodeHttp => "node-http",
            Target::JshostNode => "jshost-node",
            Target::Workers => "workers",
            Target::Batch => "batch",
        }
    }

    pub fn parse(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    fn label(self, plan: &Plan) -> String {
        match self {
            Target::JsHost => "js-host 0.12".into(),
            Target::NodeHttp => "plain `node:http` echo server".into(),
            Target::JshostNode => "jshost-node, one process".into(),
            Target::Workers => format!("jshost-node `--workers {}`", plan.workers),
            Target::Batch => format!("jshost-node `/batch` of {} echo calls", plan.batch),
        }
    }

    /// The server that answers this target (`/batch` goes to the one-process jshost-node).
    fn server(self) -> Kind {
        match self {
            Target::JsHost => Kind::JsHost,
            Target::NodeHttp => Kind::NodeHttp,
            Target::JshostNode | Target::Batch => Kind::JshostNode,
            Target::Workers => Kind::Workers,
        }
    }
}

/// A server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    JsHost,
    NodeHttp,
    JshostNode,
    Workers,
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Plan {
    pub targets: Vec<Target>,
    pub connections: Vec<usize>,
    /// Seconds per wrk run.
    pub seconds: u64,
    pub rounds: usize,
    /// Seconds of the unmeasured wrk run at 64 connections each target gets first.
    pub warmup_seconds: u64,
    /// `--workers` of the workers target.
    pub workers: usize,
    /// Echo items per `/batch` request.
    pub batch: usize,
}

/// The `echo` request every single-call run sends.
#[derive(Debug, Clone)]
pub struct Echo {
    /// Path and query (`/function/echo?hash=...`).
    pub path: String,
    /// The JSON body; the echo answers it.
    pub body: Bytes,
    /// The data `body` encodes (the items of `/batch` carry it).
    pub data: Value,
}

/// One target at one connection count, over all rounds.
#[derive(Debug, Clone)]
pub struct Run {
    pub target: Target,
    pub connections: usize,
    /// Requests/s: the median of the rounds.
    pub rate: f64,
    /// Function calls per request (1, or the batch size).
    pub calls_per_request: usize,
    /// Requests wrk completed, all rounds (`None`: not in its output).
    pub requests: Option<u64>,
    /// Wall time of the wrk runs.
    pub elapsed: Duration,
    /// CPU time of the server (all its processes) during the wrk runs.
    pub host_cpu: Option<Cpu>,
    /// CPU time the rest of the machine used during the wrk runs: wall time × CPUs less idle and
    /// steal time (`/proc/stat`) less the server's, wrk's and this process's CPU time. Besides
    /// other processes, it holds kernel work charged to no process (interrupts).
    pub others_cpu: Option<Duration>,
    /// Steal time (the hypervisor ran someone else) during the wrk runs, all CPUs.
    pub steal: Option<Duration>,
    /// Wall time of the wrk runs, as measured here.
    pub wall: Duration,
    /// Latencies of the round whose rate is nearest the median.
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
}

impl Run {
    /// Function calls/s.
    pub fn calls_rate(&self) -> f64 {
        self.rate * self.calls_per_request as f64
    }

    /// The server's CPU time per function call.
    pub fn cpu_per_call(&self) -> Option<Cpu> {
        let calls = usize::try_from(self.requests?).ok()? * self.calls_per_request;
        Some(self.host_cpu?.per(calls))
    }

    /// Cores the server kept busy during the runs.
    pub fn busy_cores(&self) -> Option<f64> {
        let cpu = self.host_cpu?.total();
        (!self.elapsed.is_zero()).then(|| cpu.as_secs_f64() / self.elapsed.as_secs_f64())
    }
}

/// Cores kept busy by `cpu` over `wall`.
pub fn per_wall(cpu: Option<Duration>, wall: Duration) -> Option<f64> {
    (!wall.is_zero()).then(|| cpu.map(|c| c.as_secs_f64() / wall.as_secs_f64()))?
}

/// How busy the rest of the machine was over some runs, in cores: on average, in steal time,
/// and in the busiest run (returned with it).
pub struct Quiet<'a, R> {
    pub average: f64,
    pub steal: f64,
    pub max: f64,
    pub busiest: &'a R,
}

/// [`Quiet`] for `runs`, given each run's wall time, other processes' CPU time and steal time;
/// `None` when a figure is missing.
pub fn quiet<R>(
    runs: &[R],
    figures: impl Fn(&R) -> (Duration, Option<Duration>, Option<Duration>),
) -> Option<Quiet<'_, R>> {
    let wall: Duration = runs.iter().map(|r| figures(r).0).sum();
    let others: Option<Duration> = runs.iter().map(|r| figures(r).1).sum();
    let steal: Option<Duration> = runs.iter().map(|r| figures(r).2).sum();
    let (max, busiest) = runs
        .iter()
        .filter_map(|r| {
            let (wall, others, _) = figures(r);
            Some((per_wall(others, wall)?, r))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    Some(Quiet {
        average: per_wall(others, wall)?,
        steal: per_wall(steal, wall)?,
        max,
        busiest,
    })
}

/// Machine-wide CPU use around one wrk run, to tell how much of it was not the bench's.
pub struct Others {
    machine: Option<procfs::Machine>,
    server: Option<Cpu>,
    me: Option<Cpu>,
    children: Option<Cpu>,
    started: Instant,
}

impl Others {
    pub fn start(procs: &[Proc]) -> Others {
        Others {
            machine: procfs::machine_cpu(),
            server: procfs::cpu_time_of_all(procs),
            me: procfs::cpu_time(),
            children: procfs::children_cpu_time(),
            started: Instant::now(),
        }
    }

    /// (CPU time of the rest of the machine, steal time, wall time) since [`Others::start`].
    pub fn end(self, procs: &[Proc]) -> (Option<Duration>, Option<Duration>, Duration) {
        let wall = self.started.elapsed();
        let used = |before: Option<Cpu>, after: Option<Cpu>| Some(after?.since(before?).total());
        let machine = procfs::machine_cpu().zip(self.machine).map(|(b, a)| b.since(a));
        let server = used(self.server, procfs::cpu_time_of_all(procs));
        let me = used(self.me, procfs::cpu_time());
        let children = used(self.children, procfs::children_cpu_time());
        let cpus =
            u32::try_from(std::thread::available_parallelism().map(usize::from).unwrap_or(1)).unwrap_or(1);
        let others = (|| {
            let busy = (wall * cpus).saturating_sub(machine?.idle + machine?.steal);
            Some(busy.saturating_sub(server? + me? + children?))
        })();
        (others, machine.map(|m| m.steal), wall)
    }
}

/// What [`run`] measured.
#[derive(Debug, Default)]
pub struct Outcome {
    pub runs: Vec<Run>,
    /// Servers that could not be started or checked, wrk runs that failed.
    pub problems: Vec<String>,
    /// Each server: label, pid and command line.
    pub servers: Vec<String>,
}

impl Outcome {
    pub fn get(&self, target: Target, connections: usize) -> Option<&Run> {
        self.runs
            .iter()
            .find(|r| r.target == target && r.connections == connections)
    }
}

/// The last lines a server printed on stderr.
#[derive(Clone, Default)]
struct Tail(Arc<Mutex<Vec<String>>>);

impl Tail {
    fn push(&self, line: String) {
        let mut lines = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if lines.len() == 20 {
            lines.remove(0);
        }
        lines.push(line);
    }

    fn text(&self) -> String {
        match self.0.lock() {
            Ok(g) => g.join("\n"),
            Err(p) => p.into_inner().join("\n"),
        }
    }
}

/// A node process serving on 127.0.0.1.
struct Server {
    kind: Kind,
    label: String,
    command: String,
    child: tokio::process::Child,
    pid: u32,
    url: String,
    stderr: Tail,
}

impl Server {
    /// Starts `node ARGS` in `cwd` and waits for its status line (a JSON object with
    /// `config.port`) on stdout; stdout and stderr are read to their end meanwhile.
    async fn start(kind: Kind, label: String, cwd: &Path, args: Vec<String>) -> Result<Server> {
        let command = format!("node {}", args.join(" "));
        let mut child = tokio::process::Command::new("node")
            .args(&args)
            .current_dir(cwd)
            .env("NODE_NO_WARNINGS", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {command}"))?;
        let pid = child.id().context("the server has no pid")?;
        let stderr = Tail::default();
        if let Some(err) = child.stderr.take() {
            let tail = stderr.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tail.push(line);
                }
            });
        }
        let out = child.stdout.take().context("no stdout pipe from the server")?;
        let mut lines = BufReader::new(out).lines();
        let port = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(port) = status_port(&line) {
                    return Some(port);
                }
            }
            None
        })
        .await;
        let port = match port {
            Ok(Some(port)) => port,
            Ok(None) => bail!("{command} exited before printing its status: {}", stderr.text()),
            Err(_) => bail!(
                "{command} printed no status within {START_TIMEOUT:?}: {}",
                stderr.text()
            ),
        };
        // Whatever it prints later is read and dropped.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server {
            kind,
            label,
            command,
            child,
            pid,
            url: format!("http://127.0.0.1:{port}"),
            stderr,
        })
    }

    fn procs(&self) -> Vec<Proc> {
        procfs::tree(self.pid)
    }

    /// Closes its stdin, waits for it to exit (kills it after [`STOP_TIMEOUT`]), and kills any
    /// process it started that is still there.
    async fn stop(mut self) -> Result<()> {
        let procs = self.procs();
        drop(self.child.stdin.take());
        let exited = tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await;
        let mut clean = true;
        if exited.is_err() {
            clean = false;
            let _ = self.child.start_kill();
            let _ = tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await;
        }
        // Waits up to 3 s (STOP_TIMEOUT) for them, then kills those still there.
        let left = procfs::leftovers(&procs).await;
        ensure!(
            clean && left.is_empty(),
            "{} ({}) did not exit within {STOP_TIMEOUT:?} of its stdin closing; killed{}",
            self.label,
            self.pid,
            if left.is_empty() {
                String::new()
            } else {
                format!(
                    " with {}",
                    left.iter()
                        .map(|p| p.pid.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        Ok(())
    }
}

/// The port in a status line (`{"config": {"port": N}}`, a number or a string).
fn status_port(line: &str) -> Option<u16> {
    let v: Value = serde_json::from_str(line.trim()).ok()?;
    let port = &v["config"]["port"];
    let port = port
        .as_u64()
        .or_else(|| port.as_str().and_then(|s| s.parse().ok()))?;
    u16::try_from(port).ok().filter(|p| *p != 0)
}

/// The plain `node:http` server: the floor for any host written on `node:http`.
const NODE_HTTP_SERVER: &str = r#"// jshost-bench: a plain node:http echo server, the floor for any Node host on node:http.
// It does the work of the bench config's `echo` function (parse the JSON body, send back
// JSON.stringify of it, which is the body itself) with no routing, no hashing, no extra header.
'use strict';
const http = require('node:http');
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    let body;
    try {
      body = JSON.stringify(JSON.parse(Buffer.concat(chunks).toString('utf8')));
    } catch (err) {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end(String(err));
      return;
    }
    res.writeHead(200, { 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ type: 'node:http', config: { address: '127.0.0.1', port: server.address().port } }));
});
process.stdin.on('data', () => {});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
"#;

/// Starts the servers `targets` need, in `root` (node_modules), from `config`.
async fn start_servers(
    plan: &Plan,
    root: &Path,
    config: &Path,
    work: &Path,
    servers: &mut Vec<Server>,
    problems: &mut Vec<String>,
) -> Result<()> {
    let config = config.display().to_string();
    let guard = work.join("js-host-guard.js");
    // The script the SDK preloads into an owned js-host: exit when stdin closes; after the status
    // line, drop stdout (js-host's three log lines per call).
    std::fs::write(&guard, jshost::raw::GUARD_JS).with_context(|| format!("writing {}", guard.display()))?;
    let plain = work.join("node-http-echo.js");
    std::fs::write(&plain, NODE_HTTP_SERVER).with_context(|| format!("writing {}", plain.display()))?;
    let mut kinds: Vec<Kind> = Vec::new();
    for t in &plan.targets {
        if !kinds.contains(&t.server()) {
            kinds.push(t.server());
        }
    }
    let jshost_node = root.join(JSHOST_NODE_BIN).display().to_string();
    for kind in kinds {
        let (label, args) = match kind {
            Kind::JsHost => (
                "js-host 0.12".to_owned(),
                vec![
                    "--require".into(),
                    guard.display().to_string(),
                    root.join(JS_HOST_BIN).display().to_string(),
                    config.clone(),
                    "--port".into(),
                    "0".into(),
                    "--json".into(),
                ],
            ),
            Kind::NodeHttp => (
                "plain node:http echo server".to_owned(),
                vec![plain.display().to_string()],
            ),
            Kind::JshostNode | Kind::Workers => {
                let mut args = vec![
                    jshost_node.clone(),
                    config.clone(),
                    "--port".into(),
                    "0".into(),
                    "--json".into(),
                    "--exit-on-stdin-close".into(),
                ];
                let label = if kind == Kind::Workers {
                    args.extend(["--workers".into(), plan.workers.to_string()]);
                    format!("jshost-node --workers {}", plan.workers)
                } else {
                    "jshost-node".to_owned()
                };
                (label, args)
            }
        };
        eprintln!("hosts compared: starting {label}...");
        match Server::start(kind, label.clone(), root, args).await {
            Ok(s) => servers.push(s),
            Err(e) => problems.push(format!("{label} did not start: {e:#}")),
        }
    }
    Ok(())
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub async fn request(
    client: &HttpClient,
    method: Method,
    url: &str,
    body: &Bytes,
) -> Result<(StatusCode, http::HeaderMap, Bytes)> {
    let mut req = Request::new(Full::new(body.clone()));
    *req.method_mut() = method;
    *req.uri_mut() = url.parse().with_context(|| format!("invalid URL {url}"))?;
    if !body.is_empty() {
        req.headers_mut()
            .insert(CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    }
    let res = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .with_context(|| format!("{url} did not answer within 10 s"))?
        .with_context(|| format!("requesting {url}"))?;
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, headers, body))
}

/// The request a target's wrk runs send: (path and query, body).
fn target_request(target: Target, plan: &Plan, echo: &Echo) -> Result<(String, Bytes)> {
    Ok(match target {
        Target::Batch => {
            let items: Vec<Value> = (0..plan.batch)
                .map(|_| json!({"function": "echo", "data": echo.data}))
                .collect();
            ("/batch".to_owned(), Bytes::from(serde_json::to_vec(&items)?))
        }
        _ => (echo.path.clone(), echo.body.clone()),
    })
}

/// Checks that `server` answers `target`'s request as expected (and is what it is said to be).
async fn check(
    client: &HttpClient,
    server: &Server,
    target: Target,
    plan: &Plan,
    path: &str,
    req_body: &Bytes,
    echo: &Bytes,
) -> Result<()> {
    let url = format!("{}{path}", server.url);
    let (status, headers, body) = request(client, Method::POST, &url, req_body).await?;
    let text = String::from_utf8_lossy(&body);
    ensure!(status == StatusCode::OK, "POST {url}: HTTP {status}: {text}");
    let identity = headers.get("x-jshost-node").is_some();
    match server.kind {
        Kind::JsHost | Kind::NodeHttp => ensure!(!identity, "{url} answered with an X-Jshost-Node header"),
        Kind::JshostNode | Kind::Workers => {
            ensure!(identity, "{url} answered without X-Jshost-Node: not jshost-node")
        }
    }
    if target == Target::Batch {
        let items: Vec<Value> =
            serde_json::from_slice(&body).with_context(|| format!("/batch answered {text}"))?;
        ensure!(
            items.len() == plan.batch,
            "/batch answered {} items, not {}",
            items.len(),
            plan.batch
        );
        let echo = String::from_utf8_lossy(echo);
        for item in &items {
            ensure!(
                item["status"] == 200 && item["output"].as_str() == Some(echo.as_ref()),
                "/batch answered an item {item}, expected status 200 and output {echo}"
            );
        }
    } else {
        ensure!(
            body == *echo,
            "{url} answered {text}, not the echo {}",
            String::from_utf8_lossy(echo)
        );
    }
    if server.kind == Kind::Workers {
        let info_url = format!("{}/jshost/info", server.url);
        let (status, _, info) = request(client, Method::GET, &info_url, &Bytes::new()).await?;
        let info: Value =
            serde_json::from_slice(&info).with_context(|| format!("GET {info_url}: HTTP {status}"))?;
        ensure!(
            info["workers"].as_u64() == Some(plan.workers as u64),
            "GET {info_url} reports {} workers, not {}",
            info["workers"],
            plan.workers
        );
    }
    Ok(())
}

/// One target, ready for wrk.
struct Prepared {
    target: Target,
    server: usize,
    url: String,
    script: PathBuf,
    calls_per_request: usize,
}

/// Starts the servers, measures every target at every connection count, and stops the servers
/// (also on error).
pub async fn run(
    wrk_bin: &Path,
    root: &Path,
    config: &Path,
    work: &Path,
    echo: &Echo,
    plan: &Plan,
) -> Result<Outcome> {
    let mut servers = Vec::new();
    let mut outcome = Outcome::default();
    let result = match start_servers(plan, root, config, work, &mut servers, &mut outcome.problems).await {
        Ok(()) => measure(wrk_bin, work, echo, plan, &servers, &mut outcome).await,
        Err(e) => Err(e),
    };
    for s in servers {
        outcome
            .servers
            .push(format!("{}: pid {}, `{}`", s.label, s.pid, s.command));
        let label = s.label.clone();
        if let Err(e) = s.stop().await {
            eprintln!("jshost-bench: stopping {label}: {e:#}");
            outcome.problems.push(format!("stopping {label}: {e:#}"));
        }
    }
    result.map(|()| outcome)
}

async fn measure(
    wrk_bin: &Path,
    work: &Path,
    echo: &Echo,
    plan: &Plan,
    servers: &[Server],
    outcome: &mut Outcome,
) -> Result<()> {
    let client: HttpClient = crate::clients::bare_client();
    let mut prepared = Vec::new();
    for &target in &plan.targets {
        let Some(server) = servers.iter().position(|s| s.kind == target.server()) else {
            continue; // it did not start: already a problem
        };
        let (path, req_body) = target_request(target, plan, echo)?;
        if let Err(e) = check(
            &client,
            &servers[server],
            target,
            plan,
            &path,
            &req_body,
            &echo.body,
        )
        .await
        {
            outcome.problems.push(format!("{}: {e:#}", target.label(plan)));
            continue;
        }
        let script = work.join(format!("compare-{}.lua", target.name()));
        std::fs::write(&script, wrk::script(&req_body))
            .with_context(|| format!("writing {}", script.display()))?;
        prepared.push(Prepared {
            target,
            server,
            url: format!("{}{path}", servers[server].url),
            script,
            calls_per_request: if target == Target::Batch { plan.batch } else { 1 },
        });
    }
    drop(client);

    let mut warm = Vec::with_capacity(prepared.len());
    for p in prepared {
        eprintln!(
            "hosts compared: warming up {} ({} s, 64 connections)...",
            p.target.label(plan),
            plan.warmup_seconds
        );
        match wrk::run(wrk_bin, &p.script, &p.url, 1, 64, plan.warmup_seconds).await {
            Ok(_) => warm.push(p),
            Err(e) => {
                let s = &servers[p.server];
                outcome.problems.push(format!(
                    "warming up {}: {e:#}; {} stderr: {}",
                    p.target.label(plan),
                    s.label,
                    s.stderr.text()
                ));
            }
        }
    }
    let prepared = warm;

    struct Acc {
        rates: Vec<f64>,
        latencies: Vec<(f64, Option<Duration>, Option<Duration>)>,
        requests: Option<u64>,
        elapsed: Duration,
        cpu: Option<Cpu>,
        others: Option<Duration>,
        steal: Option<Duration>,
        wall: Duration,
        failed: bool,
    }
    let runs: Vec<(usize, usize)> = prepared
        .iter()
        .enumerate()
        .flat_map(|(i, _)| plan.connections.iter().map(move |&c| (i, c)))
        .collect();
    let mut acc: Vec<Acc> = runs
        .iter()
        .map(|_| Acc {
            rates: Vec::new(),
            latencies: Vec::new(),
            requests: Some(0),
            elapsed: Duration::ZERO,
            cpu: Some(Cpu::default()),
            others: Some(Duration::ZERO),
            steal: Some(Duration::ZERO),
            wall: Duration::ZERO,
            failed: false,
        })
        .collect();
    for round in 0..plan.rounds {
        eprintln!(
            "hosts compared: round {}/{}: {} wrk runs of {} s...",
            round + 1,
            plan.rounds,
            runs.len(),
            plan.seconds
        );
        for k in 0..runs.len() {
            let i = (round + k) % runs.len();
            let (p, connections) = (&prepared[runs[i].0], runs[i].1);
            let a = &mut acc[i];
            if a.failed {
                continue;
            }
            let server = &servers[p.server];
            let procs = server.procs();
            let others = Others::start(&procs);
            let cpu0 = procfs::cpu_time_of_all(&procs);
            match wrk::run(wrk_bin, &p.script, &p.url, 1, connections, plan.seconds).await {
                Ok(r) => {
                    let cpu1 = procfs::cpu_time_of_all(&procs);
                    let (other, steal, wall) = others.end(&procs);
                    a.others = a.others.zip(other).map(|(x, y)| x + y);
                    a.steal = a.steal.zip(steal).map(|(x, y)| x + y);
                    a.wall += wall;
                    let used = cpu0.zip(cpu1).map(|(a, b)| b.since(a));
                    a.cpu = a.cpu.zip(used).map(|(x, y)| Cpu {
                        user: x.user + y.user,
                        system: x.system + y.system,
                    });
                    a.requests = a.requests.zip(r.requests).map(|(x, y)| x + y);
                    a.elapsed += Duration::from_secs(r.seconds);
                    a.rates.push(r.rate);
                    a.latencies.push((r.rate, r.p50, r.p99));
                }
                Err(e) => {
                    a.failed = true;
                    outcome.problems.push(format!(
                        "wrk against {}, {connections} connection(s): {e:#}; {} stderr: {}",
                        p.target.label(plan),
                        server.label,
                        server.stderr.text()
                    ));
                }
            }
        }
    }
    for ((i, connections), mut a) in runs.into_iter().zip(acc) {
        if a.failed || a.rates.is_empty() {
            continue;
        }
        let p = &prepared[i];
        let rate = median(&mut a.rates);
        let nearest = a
            .latencies
            .iter()
            .min_by(|x, y| (x.0 - rate).abs().total_cmp(&(y.0 - rate).abs()))
            .copied();
        outcome.runs.push(Run {
            target: p.target,
            connections,
            rate,
            calls_per_request: p.calls_per_request,
            requests: a.requests,
            elapsed: a.elapsed,
            host_cpu: a.cpu,
            others_cpu: a.others,
            steal: a.steal,
            wall: a.wall,
            p50: nearest.and_then(|n| n.1),
            p99: nearest.and_then(|n| n.2),
        });
    }
    Ok(())
}

fn connections(n: usize) -> String {
    if n == 1 {
        "1 connection".into()
    } else {
        format!("{n} connections")
    }
}

fn cpu_text(c: Cpu) -> String {
    format!(
        "{} (user {}, system {})",
        dur(c.total()),
        dur(c.user),
        dur(c.system)
    )
}

/// The comparison's rows and notes.
pub fn rows(plan: &Plan, outcome: &Outcome, report: &mut Report, notes: &mut Vec<String>) {
    let label = |t: Target| t.label(plan);
    let mut ratio_row = |a: Target, b: Target, c: usize, target: Option<f64>| {
        let (Some(x), Some(y)) = (outcome.get(a, c), outcome.get(b, c)) else {
            return;
        };
        let ratio = x.calls_rate() / y.calls_rate();
        report.row(
            format!("wrk `echo`: {}, {}", label(a), connections(c)),
            rate(x.calls_rate()),
            format!("{}, {}: {}", label(b), connections(c), rate(y.calls_rate())),
            match target {
                Some(t) => format!("{}; {}", times(ratio, t), verdict(ratio >= t, &format!("≥ {t}×"))),
                None => format!("{ratio:.2}×"),
            },
        );
    };
    ratio_row(Target::JshostNode, Target::JsHost, 64, Some(5.0));
    ratio_row(Target::JshostNode, Target::NodeHttp, 64, Some(0.9));
    ratio_row(Target::JshostNode, Target::JsHost, 1, Some(1.5));
    ratio_row(Target::JshostNode, Target::NodeHttp, 1, None);
    ratio_row(Target::Workers, Target::JshostNode, 64, Some(1.3));
    ratio_row(Target::Workers, Target::JshostNode, 1, None);
    for &c in &plan.connections {
        let Some(b) = outcome.get(Target::Batch, c) else {
            continue;
        };
        let calls = b.calls_rate();
        let single = outcome.get(Target::JshostNode, c);
        report.row(
            format!("wrk `/batch`: {}, {}", label(Target::Batch), connections(c)),
            format!(
                "{} ({} requests/s × {})",
                rate(calls),
                thousands(b.rate),
                plan.batch
            ),
            match single {
                Some(s) => format!(
                    "{}, {}: {}",
                    label(Target::JshostNode),
                    connections(c),
                    rate(s.calls_rate())
                ),
                None => "–".into(),
            },
            {
                // The issue's target is a throughput: judged with 64 connections, as the others.
                let ratio = single
                    .map(|s| format!("{:.1}× single calls", calls / s.calls_rate()))
                    .unwrap_or_else(|| "–".into());
                if c == 64 {
                    format!("{ratio}; {}", verdict(calls >= 150_000.0, "≥ 150,000 calls/s"))
                } else {
                    ratio
                }
            },
        );
    }
    if let Some(x) = outcome.get(Target::JshostNode, 64) {
        if let Some(cpu) = x.cpu_per_call() {
            let reference = outcome.get(Target::JsHost, 64).and_then(Run::cpu_per_call);
            report.row(
                format!(
                    "host CPU per call: {}, 64 connections (/proc/PID/stat over the wrk runs)",
                    label(Target::JshostNode)
                ),
                cpu_text(cpu),
                match reference {
                    Some(r) => format!("{}, 64 connections: {}", label(Target::JsHost), cpu_text(r)),
                    None => "–".into(),
                },
                {
                    let ratio = reference
                        .filter(|r| !r.total().is_zero())
                        .map(|r| format!("{:.2}×; ", cpu.total().as_secs_f64() / r.total().as_secs_f64()))
                        .unwrap_or_default();
                    format!(
                        "{ratio}{}",
                        verdict(cpu.total() <= Duration::from_micros(20), "≤ 20 µs")
                    )
                },
            );
        }
    }
    // Every run: rate, latencies, CPU per call and cores busy.
    let all: Vec<String> = outcome
        .runs
        .iter()
        .map(|r| {
            let lat = match (r.p50, r.p99) {
                (Some(a), Some(b)) => format!(" (p50 {}, p99 {})", dur(a), dur(b)),
                _ => String::new(),
            };
            let per_request = if r.calls_per_request > 1 {
                format!(" = {} requests/s", thousands(r.rate))
            } else {
                String::new()
            };
            let cpu = r
                .cpu_per_call()
                .map(|c| format!(", host CPU {} per call", dur(c.total())))
                .unwrap_or_default();
            let busy = r
                .busy_cores()
                .map(|b| format!(", {b:.2} cores busy"))
                .unwrap_or_default();
            let others = per_wall(r.others_cpu, r.wall)
                .map(|o| format!(", rest of the machine {o:.2} cores"))
                .unwrap_or_default();
            format!(
                "{}, {}: {}{per_request}{lat}{cpu}{busy}{others}",
                label(r.target),
                connections(r.connections),
                rate(r.calls_rate())
            )
        })
        .collect();
    if !all.is_empty() {
        notes.push(format!(
            "hosts compared with `wrk -t1`, {} s per run, {} round(s) alternating between the runs \
             (median of the rounds; latencies from the round nearest the median; host CPU from \
             /proc/PID/stat of the server and its workers, summed over the rounds, per call wrk \
             completed; cores busy: that CPU time / wall time; wrk itself takes up to one core; \
             rest of the machine: wall time × cores less idle and steal time (/proc/stat) less \
             the server's, wrk's and the bench's CPU time, per wall second): {}",
            plan.seconds,
            plan.rounds,
            all.join("; ")
        ));
        if let Some(Quiet {
            average: o,
            steal: s,
            max,
            busiest: r,
        }) = quiet(&outcome.runs, |r| (r.wall, r.others_cpu, r.steal))
        {
            notes.push(format!(
                "how quiet the machine was during the host comparison: the rest of the machine \
                 (other processes, and kernel work charged to no process, such as loopback \
                 interrupts) kept {o:.2} of its {} cores busy on average, at most {max:.2} during \
                 the runs of {}, {}; steal time {s:.2} cores. With nothing else running this was \
                 0.04 – 0.13 cores in test runs: well above that, other work competed with the \
                 servers and wrk, and the ratios and CPU figures are disturbed",
                std::thread::available_parallelism().map(usize::from).unwrap_or(1),
                label(r.target),
                connections(r.connections)
            ));
        }
    }
    if !outcome.servers.is_empty() {
        notes.push(format!(
            "servers compared, each from bench/bench.config.js on 127.0.0.1 (js-host with the \
             preload the SDK gives an owned js-host: no stdout after the status line; the plain \
             server parses the JSON body and sends back JSON.stringify of it, as the `echo` \
             function does): {}",
            outcome.servers.join("; ")
        ));
    }
    for p in &outcome.problems {
        notes.push(format!("hosts compared: {p}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_port_of_a_status_line() {
        assert_eq!(
            status_port(r#"{"type":"Host","config":{"port":43123}}"#),
            Some(43123)
        );
        assert_eq!(
            status_port(r#"{"type":"Host","config":{"port":"9009"}}"#),
            Some(9009)
        );
        assert_eq!(status_port(r#"{"config":{"port":0}}"#), None);
        assert_eq!(status_port("Host listening at http://127.0.0.1:9009"), None);
    }

    #[test]
    fn names_round_trip() {
        for t in Target::ALL {
            assert_eq!(Target::parse(t.name()), Some(t));
        }
        assert_eq!(Target::parse("nope"), None);
    }
}
