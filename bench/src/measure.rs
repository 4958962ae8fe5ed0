//! Load loops, figures, medians, steal time and the printing of rows.

use crate::Rounds;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use jshost::Function;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A round whose steal time (the hypervisor running someone else on our cores) is above this
/// share of the machine's CPU time is measured again, up to [`ATTEMPTS`] times, then flagged.
pub const STEAL_LIMIT: f64 = 3.0;
const ATTEMPTS: usize = 3;
/// How long each run is warmed up before the first round.
pub const WARM_UP: Duration = Duration::from_millis(500);

/// What one measurement (or the median of several) gave.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fig {
    /// Answered calls per second.
    pub rate: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Calls that failed.
    pub failed: u64,
    /// Host CPU time per answered call, in µs (0 when not measured).
    pub cpu: f64,
    /// Steal time in % of the machine's CPU time during the measurement (the most of the rounds
    /// for a median).
    pub steal: f64,
    /// For a median of several rounds: max − min of their calls/s, in % of the median (shown
    /// as ± half of it).
    pub spread: f64,
}

impl Fig {
    /// `12345 calls/s ±4% (p50 1.2 ms, p99 3.4 ms)`.
    pub fn show(&self) -> String {
        let (p50, p99) = (dur(self.p50), dur(self.p99));
        let failed = Some(self.failed)
            .filter(|&n| n > 0)
            .map(|n| format!(", **{n} failed**"));
        let spread = Some(self.spread)
            .filter(|&s| s > 0.0)
            .map(|s| format!(" ±{:.0}%", s / 2.0));
        let (failed, spread) = (failed.unwrap_or_default(), spread.unwrap_or_default());
        let rate = rate(self.rate);
        format!("{rate} calls/s{spread} (p50 {p50}, p99 {p99}{failed})")
    }

    /// The steal column: the most of the rounds, flagged when over the limit.
    pub fn steal_note(&self) -> String {
        let flag = if self.steal > STEAL_LIMIT { " (!)" } else { "" };
        format!("{:.1}%{flag}", self.steal)
    }
}

/// The median of each figure over rounds (failed calls summed, the most steal).
pub fn median(rounds: &[Fig]) -> Fig {
    let pick = |f: fn(&Fig) -> f64| median_f64(rounds.iter().map(f).collect());
    let rates = rounds.iter().map(|f| f.rate);
    let (min, max) = (rates.clone().fold(f64::MAX, f64::min), rates.fold(0.0, f64::max));
    Fig {
        rate: pick(|f| f.rate),
        cpu: pick(|f| f.cpu),
        p50: Duration::from_secs_f64(pick(|f| f.p50.as_secs_f64())),
        p99: Duration::from_secs_f64(pick(|f| f.p99.as_secs_f64())),
        failed: rounds.iter().map(|f| f.failed).sum(),
        steal: rounds.iter().map(|f| f.steal).fold(0.0, f64::max),
        spread: 100.0 * (max - min).max(0.0) / pick(|f| f.rate).max(1e-9),
    }
}

/// The median of numbers (0 for none).
pub fn median_f64(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// `(steal, total)` clock ticks of the machine so far, from the `cpu` line of `/proc/stat`.
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().find(|l| l.starts_with("cpu ")).unwrap_or_default();
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is counted
    // in user already.
    let total = fields.iter().take(8).sum();
    (fields.get(7).copied().unwrap_or(0), total)
}

/// A bare hyper-util client posting fixed bytes: the floor for any client built on hyper.
pub struct Bare {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    body: Bytes,
}

impl Bare {
    /// Posts `body` to `url` (an `http://` function URL), as the SDK would.
    pub fn new(url: &str, body: Bytes) -> Result<Bare> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        // Below Node's 5 s keep-alive timeout, as the SDK's pool.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_millis(3_500))
            .build(connector);
        let uri = url.parse().with_context(|| format!("invalid URL {url}"))?;
        Ok(Bare { client, uri, body })
    }

    /// One call; an answer other than 2xx is an error.
    pub async fn call(&self) -> Result<()> {
        let request = Request::post(self.uri.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(self.body.clone()))?;
        let response = self.client.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("bare hyper: HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }
}

/// Who makes the calls of a measurement.
pub enum Caller {
    /// `Function::call` with this data (serialised on every call, as a user's code does).
    Sdk(Function, Value),
    Bare(Bare),
    /// `wrk -t1` posting these bytes to this URL, one connection per call in flight.
    Wrk(String, Vec<u8>),
}

impl Caller {
    async fn call(&self) -> Result<()> {
        match self {
            Caller::Sdk(f, data) => f.call(data).await.map(drop).map_err(Into::into),
            Caller::Bare(b) => b.call().await,
            Caller::Wrk(..) => bail!("wrk makes its own calls"),
        }
    }
}

/// A measurement repeated in every round: who calls, how many in flight, and whose CPU time
/// counts (a host's pid).
pub struct Run {
    pub label: String,
    pub caller: Arc<Caller>,
    pub in_flight: usize,
    pub host: Option<u32>,
}

impl Run {
    pub fn new(label: impl Into<String>, caller: Arc<Caller>, in_flight: usize, host: Option<u32>) -> Run {
        let label = label.into();
        Run {
            label,
            caller,
            in_flight,
            host,
        }
    }

    /// Measures for `length`, reading the steal time around it (and the CPU time of the host and
    /// its descendants); measures again when the steal time was over [`STEAL_LIMIT`], and flags
    /// the figure if every attempt was.
    async fn measure(&self, length: Duration) -> Result<Fig> {
        let what = &self.label;
        for attempt in 1.. {
            let (steal0, total0) = cpu_ticks();
            let (cpu0, started) = (self.host.map(crate::node::tree_cpu), Instant::now());
            let mut fig = match &*self.caller {
                Caller::Wrk(url, body) => crate::wrk::run(url, body, self.in_flight, length).await,
                _ => load(&self.caller, self.in_flight, length).await,
            }
            .with_context(|| what.clone())?;
            if let (Some(pid), Some(cpu0)) = (self.host, cpu0) {
                let calls = (fig.rate * started.elapsed().as_secs_f64()).max(1.0);
                fig.cpu = crate::node::tree_cpu(pid).saturating_sub(cpu0).as_secs_f64() * 1e6 / calls;
            }
            let (steal1, total1) = cpu_ticks();
            fig.steal =
                100.0 * steal1.saturating_sub(steal0) as f64 / total1.saturating_sub(total0).max(1) as f64;
            if fig.steal <= STEAL_LIMIT || attempt == ATTEMPTS {
                if fig.steal > STEAL_LIMIT {
                    eprintln!("  {what}: steal {:.1}%, {ATTEMPTS} attempts: flagged", fig.steal);
                }
                return Ok(fig);
            }
            eprintln!("  {what}: steal {:.1}%: measured again", fig.steal);
        }
        unreachable!("the loop returns at its last attempt")
    }
}

/// Warms up every run but wrk's ([`WARM_UP`] each), then measures them all in each round, in
/// order in even rounds and in reverse in odd ones (A B, B A...). The figures of each run, per
/// round.
pub async fn rounds(rounds: &Rounds, runs: &[Run]) -> Result<Vec<Vec<Fig>>> {
    for r in runs.iter().filter(|r| !matches!(*r.caller, Caller::Wrk(..))) {
        load(&r.caller, r.in_flight, WARM_UP).await?;
    }
    let mut out = vec![Vec::new(); runs.len()];
    for round in 0..rounds.rounds {
        eprintln!("round {} of {}...", round + 1, rounds.rounds);
        for k in 0..runs.len() {
            let i = if round % 2 == 0 { k } else { runs.len() - 1 - k };
            out[i].push(runs[i].measure(rounds.duration()).await?);
        }
    }
    Ok(out)
}

/// Keeps `in_flight` calls going for `length` (each loop starts no call after it), and counts
/// answers, failures and latencies.
pub async fn load(caller: &Arc<Caller>, in_flight: usize, length: Duration) -> Result<Fig> {
    let started = Instant::now();
    let deadline = started + length;
    let tasks: Vec<_> = (0..in_flight.max(1))
        .map(|_| {
            let caller = Arc::clone(caller);
            tokio::spawn(async move {
                let (mut lat, mut failed, mut error) = (Vec::new(), 0u64, None);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match caller.call().await {
                        Ok(()) => lat.push(t.elapsed()),
                        Err(e) => {
                            failed += 1;
                            error.get_or_insert_with(|| format!("{e:#}"));
                        }
                    }
                }
                (lat, failed, error)
            })
        })
        .collect();
    let (mut lat, mut failed, mut error) = (Vec::new(), 0, None);
    for task in tasks {
        let (l, f, e) = task.await?;
        lat.extend(l);
        failed += f;
        error = error.or(e);
    }
    let elapsed = started.elapsed();
    if let Some(e) = error {
        eprintln!("  {failed} call(s) failed; the first: {e}");
    }
    lat.sort();
    let at = |p: f64| {
        lat.get((lat.len() as f64 * p) as usize)
            .or(lat.last())
            .copied()
            .unwrap_or_default()
    };
    Ok(Fig {
        rate: lat.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        failed,
        ..Fig::default()
    })
}

/// `12345` (or `3.2` under 100).
pub fn rate(v: f64) -> String {
    format!("{:.*}", usize::from(v < 100.0), v)
}

/// `812 µs`, `3.4 ms`, `1.20 s`.
pub fn dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// `a / b` as `1.23×` (`–` without a reference).
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

/// The SHA-1 of `body` in hex: the `hash` query parameter of js-host's function URLs.
pub fn function_url(root_url: &str, function: &str, body: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    let hash: String = Sha1::digest(body).iter().map(|b| format!("{b:02x}")).collect();
    format!("{root_url}/function/{function}?hash={hash}")
}
