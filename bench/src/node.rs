//! Node processes the bench starts itself (so that it knows their flags, pid and port), and what
//! they cost, read from `/proc`.

use anyhow::{bail, Context, Result};
use jshost::{JsHost, Settings};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a host may take to print its status line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Hosts started so far (names their stderr files).
static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// How long a host may take to exit once its stdin is closed, before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What kind of server a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// jshost-node (or another binary taking its flags): `--exit-on-stdin-close`.
    JshostNode,
    /// js-host 0.12, with the SDK's guard script preloaded (exit on stdin's end, no stdout), as
    /// the SDK runs an owned js-host.
    JsHost,
    /// bench/node-http-echo.js, with the guard.
    NodeHttp,
}

/// A server started by the bench on 127.0.0.1, port 0.
pub struct NodeHost {
    child: Child,
    pub label: String,
    pub bin: PathBuf,
    pub url: String,
    pub pid: u32,
}

impl NodeHost {
    /// Starts `node BIN bench/bench.config.js --port 0 --json` (with `extra` flags) and waits
    /// for its status line. An error carries the end of its stderr.
    pub async fn start(label: &str, kind: Kind, bin: &Path, extra: &[String]) -> Result<NodeHost> {
        let root = crate::root();
        let (guard, config) = (crate::work_dir().join("guard.js"), crate::bench_config());
        let args: Vec<PathBuf> = match kind {
            Kind::JshostNode => vec![bin.into(), config, "--exit-on-stdin-close".into()],
            Kind::JsHost => vec!["--require".into(), guard, bin.into(), config],
            Kind::NodeHttp => vec!["--require".into(), guard, root.join("bench/node-http-echo.js")],
        };
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stderr_path = crate::work_dir().join(format!("host-{n}.stderr"));
        let stderr = std::fs::File::create(&stderr_path)?;
        let mut child = Command::new("node")
            .args(args)
            .args(["--port", "0", "--json"])
            .args(extra)
            .current_dir(&root)
            .env("NODE_NO_WARNINGS", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {label} ({})", bin.display()))?;
        let pid = child.id().context("no pid")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let port = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                let status = serde_json::from_str::<serde_json::Value>(&line).unwrap_or_default();
                if let Some(port) = status["config"]["port"].as_u64() {
                    return Ok(port);
                }
            }
            bail!("its stdout ended before a status line")
        })
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("no status line within {START_TIMEOUT:?}")));
        let port = match port {
            Ok(port) => port,
            Err(e) => {
                let _ = child.kill().await;
                let tail = std::fs::read(&stderr_path).unwrap_or_default();
                let tail = String::from_utf8_lossy(&tail[tail.len().saturating_sub(1500)..]).into_owned();
                bail!("{label} ({}) did not start: {e}; stderr: {tail}", bin.display());
            }
        };
        // Keep reading stdout so that the host never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(NodeHost {
            child,
            label: label.to_owned(),
            bin: bin.to_owned(),
            url: format!("http://127.0.0.1:{port}"),
            pid,
        })
    }

    /// An SDK handle on this host (`root_url`), batching on or off.
    pub async fn sdk(&self, batch: bool) -> Result<JsHost> {
        let settings = Settings::default()
            .source_root(crate::root())
            .config_file(crate::bench_config())
            .path_to_bin(&self.bin)
            .root_url(&self.url)
            .batch(batch);
        JsHost::connect(settings)
            .await
            .with_context(|| format!("connecting to {} at {}", self.label, self.url))
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Closes its stdin (the host exits, workers too), waits, and kills it if it does not.
    pub async fn stop(mut self) -> Result<()> {
        drop(self.child.stdin.take());
        let exited = tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_ok();
        if !exited {
            self.child.kill().await?;
            bail!(
                "{} did not exit within {STOP_TIMEOUT:?} of its stdin's end: killed",
                self.label
            );
        }
        Ok(())
    }
}

/// The pids of `/proc`.
fn pids() -> impl Iterator<Item = u32> {
    let entries = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    entries.filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
}

/// The fields of `/proc/PID/stat` after the command name (which may hold spaces): state, ppid...
fn stat(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(
        rest.split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// `pid` and its descendants.
pub fn tree(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u64)> = pids().filter_map(|p| Some((p, *stat(p)?.first()?))).collect();
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = u64::from(out[i]);
        out.extend(parents.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    out
}

/// Resident memory of `pid` and its descendants, in MB.
pub fn tree_rss_mb(pid: u32) -> f64 {
    let kib: u64 = tree(pid)
        .iter()
        .filter_map(|p| {
            let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
            let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
            rss.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
        })
        .sum();
    kib as f64 / 1024.0
}

/// User + system CPU time of `pid` and its descendants so far.
pub fn tree_cpu(pid: u32) -> Duration {
    // utime and stime are fields 14 and 15 of stat, 10 and 11 here; USER_HZ is 100 on Linux.
    let ticks: u64 = tree(pid)
        .iter()
        .filter_map(|&p| Some(stat(p)?.get(10..12)?.iter().sum::<u64>()))
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Processes with `needle` in an argument (a config file name unique to this run).
pub fn with_arg(needle: &str) -> Vec<u32> {
    let has = |p: &u32| {
        std::fs::read(format!("/proc/{p}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
    };
    pids().filter(has).collect()
}
