//! The soak: many `echo` calls through the SDK on one owned host, then the disk use of the host's
//! files.
//!
//! The host is `JsHost::spawn(settings)` with the SDK's default settings (unless `--soak-host`
//! names a host), so it writes a logfile only if the defaults ask for one. Counted as the host's
//! disk use, measured after the calls and before the host is stopped (stopping removes the
//! logfile):
//! - its logfile (`JsHost::logfile`), if any;
//! - what appeared or grew in the temporary directory among the `jshost-*` entries the SDK writes
//!   for this process (names carrying this process's id, the guard script, the status cache);
//!   growth of other `jshost-*` entries (other processes' managers and tests) is reported apart;
//! - regular files the host process holds open for writing.

use crate::procfs;
use anyhow::{ensure, Context, Result};
use futures::StreamExt;
use jshost::{JsHost, Settings};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the soak measured.
#[derive(Debug, Clone)]
pub struct Soak {
    /// `Settings::path_to_bin` of the host.
    pub bin: PathBuf,
    pub calls: usize,
    pub in_flight: usize,
    pub ok: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub logfile: Option<(PathBuf, u64)>,
    /// Growth, in bytes, of each file counted as the host's (logfile included).
    pub counted: BTreeMap<PathBuf, u64>,
    /// Growth of other `jshost-*` entries of the temporary directory meanwhile.
    pub others: BTreeMap<PathBuf, u64>,
    /// The host process's RSS before and after the calls, KiB.
    pub rss_kib: [Option<u64>; 2],
}

impl Soak {
    /// Bytes counted as the host's disk use.
    pub fn disk_use(&self) -> u64 {
        self.counted.values().sum()
    }
}

/// Size of a file, or of every file under a directory (symbolic links are not followed).
fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .map(|d| d.flatten().map(|e| size_of(&e.path())).sum())
            .unwrap_or(0)
    } else if meta.is_file() {
        meta.len()
    } else {
        0
    }
}

/// The temporary directory's `jshost-*` entries and their sizes, but `skip` (the bench's own work
/// directory).
fn snapshot(skip: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) {
        for e in dir.flatten() {
            let path = e.path();
            if path == skip || !e.file_name().to_string_lossy().starts_with("jshost-") {
                continue;
            }
            out.insert(path.clone(), size_of(&path));
        }
    }
    out
}

/// Whether a `jshost-*` entry of the temporary directory is one the SDK writes for this process.
fn ours(name: &str, pid: u32) -> bool {
    let id = pid.to_string();
    name.starts_with("jshost-guard-")
        || name.starts_with("jshost-status-cache")
        || name.split(['-', '.']).any(|part| part == id)
}

/// Runs `calls` `echo` calls with `in_flight` at a time on a host spawned from `settings`, then
/// measures its disk use; the host is stopped at the end, also on error.
pub async fn run(
    settings: Settings,
    data: &Value,
    calls: usize,
    in_flight: usize,
    work: &Path,
) -> Result<Soak> {
    let before = snapshot(work);
    let bin = settings.path_to_bin.clone();
    let host = JsHost::spawn(settings)
        .await
        .with_context(|| format!("spawning the soak's host ({})", bin.display()))?;
    let result = soak(&host, bin, before, data, calls, in_flight, work).await;
    if let Err(e) = host.stop().await {
        eprintln!("jshost-bench: stopping the soak's host: {e}");
    }
    result
}

async fn soak(
    host: &JsHost,
    bin: PathBuf,
    before: BTreeMap<PathBuf, u64>,
    data: &Value,
    calls: usize,
    in_flight: usize,
    work: &Path,
) -> Result<Soak> {
    let function = host.function("echo");
    let expected = serde_json::to_string(data)?;
    let answer = function.call(data).await.context("the soak's first call")?;
    ensure!(
        answer == expected,
        "echo answered {answer:?}, expected {expected:?}"
    );
    let pid = host.pid();
    let rss0 = pid.and_then(procfs::rss_kib_of);
    eprintln!(
        "soak: {calls} `echo` calls, {in_flight} in flight, on {} (pid {})...",
        bin.display(),
        pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
    );
    let step = (calls / 10).max(1);
    let started = Instant::now();
    let mut results = futures::stream::iter(0..calls)
        .map(|_| function.call(data))
        .buffer_unordered(in_flight.max(1));
    let (mut ok, mut failed, mut first_error) = (0usize, 0usize, None);
    while let Some(r) = results.next().await {
        match r {
            Ok(_) => ok += 1,
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
                if failed >= 100 {
                    break;
                }
            }
        }
        let done = ok + failed;
        if done % step == 0 {
            eprintln!(
                "soak: {done} calls ({:.0} calls/s)",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    drop(results);
    let elapsed = started.elapsed();
    let rss1 = pid.and_then(procfs::rss_kib_of);

    let after = snapshot(work);
    let me = std::process::id();
    let mut counted = BTreeMap::new();
    let mut others = BTreeMap::new();
    for (path, size) in &after {
        let grown = size.saturating_sub(before.get(path).copied().unwrap_or(0));
        if grown == 0 {
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if ours(&name, me) {
            counted.insert(path.clone(), grown);
        } else {
            others.insert(path.clone(), grown);
        }
    }
    let logfile = host.logfile().map(|p| {
        let size = size_of(&p);
        (p, size)
    });
    if let Some((path, size)) = &logfile {
        others.remove(path);
        counted.entry(path.clone()).or_insert(*size);
    }
    if let Some(pid) = pid {
        for (path, size) in procfs::files_open_for_writing(pid) {
            others.remove(&path);
            counted.entry(path).or_insert(size);
        }
    }
    Ok(Soak {
        bin,
        calls,
        in_flight,
        ok,
        failed,
        first_error,
        elapsed,
        logfile,
        counted,
        others,
        rss_kib: [rss0, rss1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_this_process_files_from_others() {
        assert!(ours("jshost-host-1234-0.log", 1234));
        assert!(ours("jshost-manager-0ce0fd56853b-1234-2.log", 1234));
        assert!(ours("jshost-guard-6a71cb7106e8.js", 1));
        assert!(ours("jshost-status-cache", 1));
        assert!(!ours("jshost-host-12345-0.log", 1234));
        assert!(!ours("jshost-manager-0ce0fd56853b.lock", 1234));
    }
}
