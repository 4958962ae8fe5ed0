//! The seed: the Python client (`pip install js-host==0.2.0`) that jshost replaces.
//!
//! A small script is written to a temporary directory and run with `python3`; it prints one JSON
//! line with its measurements. Python's `Function.call` sends each call with `requests.post`
//! (a new TCP connection per call), after `settings.configure(...)` connected to the host.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Printed when the Python client is not importable.
pub const NOT_INSTALLED: &str =
    "python js-host not installed (pip install js-host==0.2.0 requests optional-django)";

const SCRIPT: &str = r#"# jshost-bench: the Python js-host client, measured. Usage: python3 SCRIPT MODE JSON-ARGS
import json, sys, time
from concurrent.futures import ThreadPoolExecutor

mode = sys.argv[1]
args = json.loads(sys.argv[2])
with open(args['data_file']) as f:
    data = json.load(f)

from js_host.conf import settings
from js_host.function import Function

if mode == 'throughput':
    settings.configure(
        ROOT_URL=args['url'],
        CONFIG_FILE=args['config'],
        SOURCE_ROOT=args['source_root'],
        VERBOSITY=0,
    )
    function = Function(args['function'])
    size = len(function.call(**data))
    for _ in range(args['warmup']):
        function.call(**data)
    latencies = []
    started = time.perf_counter()
    for _ in range(args['seq_calls']):
        t = time.perf_counter()
        function.call(**data)
        latencies.append(time.perf_counter() - t)
    seq_seconds = time.perf_counter() - started
    latencies.sort()
    with ThreadPoolExecutor(max_workers=args['threads']) as pool:
        list(pool.map(lambda _: function.call(**data), range(args['threads'])))
        started = time.perf_counter()
        list(pool.map(lambda _: function.call(**data), range(args['thread_calls'])))
        thread_seconds = time.perf_counter() - started
    print(json.dumps({
        'size': size,
        'seq_rate': args['seq_calls'] / seq_seconds,
        'seq_p50': latencies[len(latencies) // 2],
        'seq_p99': latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)],
        'thread_rate': args['thread_calls'] / thread_seconds,
    }))
elif mode == 'startup':
    started = time.perf_counter()
    settings.configure(
        CONFIG_FILE=args['config'],
        SOURCE_ROOT=args['source_root'],
        USE_MANAGER=True,
        VERBOSITY=0,
    )
    output = Function(args['function']).call(**data)
    seconds = time.perf_counter() - started
    print(json.dumps({'size': len(output), 'seconds': seconds}))
else:
    raise SystemExit('unknown mode ' + mode)
"#;

/// The Python client, ready to run.
#[derive(Debug, Clone)]
pub struct Python {
    script: PathBuf,
    data_file: PathBuf,
    source_root: PathBuf,
    function: String,
    /// `Python 3.x.y`.
    pub version: String,
}

/// Python's throughput against a host.
#[derive(Debug, Clone)]
pub struct Throughput {
    pub seq_calls: usize,
    pub seq_rate: f64,
    pub seq_p50: Duration,
    pub seq_p99: Duration,
    pub threads: usize,
    pub thread_calls: usize,
    pub thread_rate: f64,
}

impl Python {
    /// The Python client when `python3 -c "import js_host"` works (the message to print otherwise).
    pub async fn detect(
        dir: &Path,
        source_root: &Path,
        function: &str,
        data: &Value,
    ) -> Result<Python, String> {
        let check = tokio::process::Command::new("python3")
            .args([
                "-c",
                "import js_host, requests, optional_django, sys; print(sys.version.split()[0])",
            ])
            .output()
            .await;
        let version = match check {
            Ok(out) if out.status.success() => {
                format!("Python {}", String::from_utf8_lossy(&out.stdout).trim())
            }
            _ => return Err(NOT_INSTALLED.to_owned()),
        };
        let script = dir.join("python_client_bench.py");
        let data_file = dir.join(format!("{function}.data.json"));
        std::fs::write(&script, SCRIPT)
            .and_then(|()| std::fs::write(&data_file, data.to_string()))
            .map_err(|e| format!("cannot write the Python script in {}: {e}", dir.display()))?;
        Ok(Python {
            script,
            data_file,
            source_root: source_root.to_path_buf(),
            function: function.to_owned(),
            version,
        })
    }

    async fn run(&self, mode: &str, mut args: Value) -> Result<Value> {
        args["data_file"] = json!(self.data_file);
        args["source_root"] = json!(self.source_root);
        args["function"] = json!(self.function);
        let out = tokio::process::Command::new("python3")
            .arg(&self.script)
            .arg(mode)
            .arg(args.to_string())
            // js-host 0.2.0 treats anything node prints on stderr as a failure.
            .env("NODE_NO_WARNINGS", "1")
            .current_dir(&self.source_root)
            .kill_on_drop(true)
            .output()
            .await
            .context("running python3")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "the Python client failed ({}): {}{}",
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let line = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(line)
            .with_context(|| format!("unexpected output from the Python client: {stdout}"))
    }

    /// Sequential calls, then calls from `threads` threads, against the host at `url` whose config
    /// file (with the host's port in it) is `config`.
    pub async fn throughput(
        &self,
        url: &str,
        config: &Path,
        seq_calls: usize,
        threads: usize,
        thread_calls: usize,
    ) -> Result<Throughput> {
        let v = self
            .run(
                "throughput",
                json!({
                    "url": url,
                    "config": config,
                    "warmup": (seq_calls / 10).max(20),
                    "seq_calls": seq_calls,
                    "threads": threads,
                    "thread_calls": thread_calls,
                }),
            )
            .await?;
        let num = |k: &str| v[k].as_f64().with_context(|| format!("no {k} in {v}"));
        Ok(Throughput {
            seq_calls,
            seq_rate: num("seq_rate")?,
            seq_p50: Duration::from_secs_f64(num("seq_p50")?),
            seq_p99: Duration::from_secs_f64(num("seq_p99")?),
            threads,
            thread_calls,
            thread_rate: num("thread_rate")?,
        })
    }

    /// `settings.configure(USE_MANAGER=True, ...)` + the first call, timed inside Python (the
    /// interpreter's own start-up and imports are not counted).
    pub async fn startup(&self, config: &Path) -> Result<Duration> {
        let v = self.run("startup", json!({ "config": config })).await?;
        let seconds = v["seconds"]
            .as_f64()
            .with_context(|| format!("no seconds in {v}"))?;
        Ok(Duration::from_secs_f64(seconds))
    }
}
