//! Test support for jshost's end-to-end tests: per-test config fixtures on their own ports, guards
//! that stop every process a test started (also when it fails), and polling with deadlines.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use anyhow::{bail, Context, Result};
use jshost::Settings;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The repository root (holds `node_modules`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ has a parent")
        .to_path_buf()
}

/// Which host the suite runs against: jshost-node (the default), or js-host 0.12 when
/// `JSHOST_IT_HOST=js-host` (CI runs the direct, managed and owned tests both ways).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// The project's own host, `node/` (npm `jshost-node`).
    JshostNode,
    /// js-host 0.12 from `node_modules/js-host`.
    JsHost,
}

/// The host under test (see [`Host`]).
pub fn host_under_test() -> Host {
    match std::env::var("JSHOST_IT_HOST").as_deref() {
        Ok("js-host") => Host::JsHost,
        _ => Host::JshostNode,
    }
}

/// The CLI script of the host under test, installed by `npm ci`.
pub fn host_bin() -> PathBuf {
    match host_under_test() {
        Host::JsHost => js_host_bin(),
        Host::JshostNode => repo_root().join(jshost_core::settings::DEFAULT_PATH_TO_BIN),
    }
}

/// The js-host 0.12 CLI script installed by `npm ci`.
pub fn js_host_bin() -> PathBuf {
    repo_root().join("node_modules/js-host/bin/js-host.js")
}

/// A port that was free a moment ago on 127.0.0.1, taken from 20000-31999: below the kernel's
/// ephemeral range (32768-60999), where any connection or port-0 listener (hosts started with
/// port 0, the managers' prepared hosts) may take a port handed out by the kernel before the
/// test binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let seed = std::process::id().wrapping_mul(2_654_435_761) ^ nanos;
    for _ in 0..2_000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let offset = seed.wrapping_add(n.wrapping_mul(7_919)) % 12_000;
        let port = 20_000 + u16::try_from(offset).unwrap_or(0);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-31999 on 127.0.0.1");
}

/// The config body of [`Fixture::new`]: `integration/fixtures/functions.js`'s functions, the
/// port, and `extra` JS object entries.
fn functions_config(extra: &str) -> impl FnOnce(u16, &str) -> String + '_ {
    move |port, functions| {
        format!(
            "module.exports = {{\n  port: {port},\n  {extra}\n  functions: require({functions:?})()\n}};\n"
        )
    }
}

/// A config file of a test's own, in a directory of its own, on a port of its own. Dropping it
/// kills every process whose command line names the directory (hosts and managers started for
/// it) and removes the directory.
pub struct Fixture {
    dir: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// The port in the config (the host's, or the manager's in managed mode).
    pub port: u16,
}

impl Fixture {
    /// A fixture serving `integration/fixtures/functions.js` with `extra` JS object entries
    /// (for example `"disconnectTimeout: 200,"`).
    pub fn new(name: &str, extra: &str) -> Fixture {
        Self::with_body(name, functions_config(extra))
    }

    /// As [`Fixture::new`], on a port the kernel hands out (in its ephemeral range), for the
    /// tests of what happens there.
    pub fn on_ephemeral_port(name: &str, extra: &str) -> Fixture {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        Self::at(name, port, functions_config(extra))
    }

    /// A fixture whose config file is `body(port, path of functions.js)`.
    pub fn with_body(name: &str, body: impl FnOnce(u16, &str) -> String) -> Fixture {
        Self::at(name, free_port(), body)
    }

    /// A fixture on `port` whose config file is `body(port, path of functions.js)`.
    fn at(name: &str, port: u16, body: impl FnOnce(u16, &str) -> String) -> Fixture {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = repo_root()
            .join("target/jshost-fixtures")
            .join(format!("{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create fixture dir");
        let functions = repo_root().join("integration/fixtures/functions.js");
        let config = dir.join("host.config.js");
        std::fs::write(&config, body(port, functions.to_str().expect("utf-8 path"))).expect("write config");
        Fixture { dir, config, port }
    }

    /// The fixture's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Settings for this fixture: source root = the repository, config = the fixture's, and the
    /// status cache off (tests must see their own config, not a cached one).
    pub fn settings(&self) -> Settings {
        Settings::default()
            .source_root(repo_root())
            .config_file(&self.config)
            .path_to_bin(host_bin())
            .status_cache(false)
    }

    /// The fixture's URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts a plain host for this fixture (`node js-host.js CONFIG --json`) and waits for it.
    pub fn start_host(&self) -> HostProcess {
        HostProcess::start(&self.config, &[]).expect("start js-host")
    }

    /// Stops whatever still runs for this fixture.
    pub fn kill_all(&self) {
        let _ = Command::new("pkill")
            .arg("-9")
            .arg("-f")
            .arg(self.dir.as_os_str())
            .status();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // A manager first, politely, so it stops its hosts; then anything left.
        let _ = http_post(self.port, "/manager/stop", "{}");
        self.kill_all();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A js-host process started by a test; killed on drop.
pub struct HostProcess {
    child: Child,
    /// The status line it printed.
    pub status: String,
}

impl HostProcess {
    /// `node js-host.js CONFIG --json ARGS...`, waiting until it prints its status.
    pub fn start(config: &Path, args: &[&str]) -> Result<HostProcess> {
        let mut child = Command::new("node")
            .arg(host_bin())
            .arg(config)
            .arg("--json")
            .args(args)
            .env("NODE_NO_WARNINGS", "1")
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn node")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let status = match lines.next() {
            Some(Ok(line)) if line.starts_with('{') => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("js-host did not start: {other:?}");
            }
        };
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(HostProcess { child, status })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited (reaped if so).
    pub fn try_wait(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns `Some` or `within` passes.
pub async fn wait_for<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Whether a process is alive (exists and is not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .map(|rest| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// SIGKILLs a process.
pub fn kill9(pid: u32) {
    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
}

/// A blocking `POST path` with a JSON body to 127.0.0.1:port (used from `Drop`). Returns the body.
pub fn http_post(port: u16, path: &str, body: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    Ok(out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
}

/// Names of the processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let Ok(out) = Command::new("pgrep").arg("-af").arg(needle).output() else {
        return vec![];
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("pgrep"))
        .map(str::to_owned)
        .collect()
}

/// How many established TCP connections on this machine have `port` as their remote port (the
/// client side of connections to a server on `port`), from `/proc/net/tcp` and `/proc/net/tcp6`.
pub fn established_connections(port: u16) -> usize {
    let wanted = format!("{port:04X}");
    let mut count = 0;
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(table) = std::fs::read_to_string(path) else {
            continue;
        };
        for line in table.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 3 && cols[3] == "01" && cols[2].rsplit(':').next() == Some(wanted.as_str()) {
                count += 1;
            }
        }
    }
    count
}

/// Runs the test `name` (its full path, `module::test`) of the running test binary alone in a
/// child process, with `set` added to and `unset` removed from its environment, and returns its
/// output. The test is `#[ignore]`d so that it runs only this way: for tests that measure their
/// process (RSS) or need an environment of their own (`TMPDIR`), which tests running in
/// parallel threads of one process would disturb.
pub fn run_isolated(name: &str, set: &[(&str, &std::ffi::OsStr)], unset: &[&str]) -> std::process::Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    cmd.args([name, "--exact", "--ignored", "--nocapture", "--test-threads=1"]);
    for (key, value) in set {
        cmd.env(key, value);
    }
    for key in unset {
        cmd.env_remove(key);
    }
    let output = cmd.output().expect("run the test binary");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    print!("{text}");
    assert!(
        text.contains("1 passed"),
        "the isolated test {name} did not pass ({}):\n{text}",
        output.status
    );
    output
}

/// Waits (up to `within`) until no node process mentions `needle` (a fixture's directory, a
/// config path), and returns how many are left then (0 unless they outlived the wait).
pub async fn node_processes_left(needle: &str, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<String> = processes_mentioning(needle)
            .into_iter()
            .filter(|l| l.contains("node"))
            .collect();
        if left.is_empty() || Instant::now() >= deadline {
            if !left.is_empty() {
                println!("node processes left for {needle}: {left:?}");
            }
            return left.len();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The resident set size of this process in KiB (`VmRSS` in `/proc/self/status`).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// The host process a function's `process.pid` belongs to: for a jshost-node worker
/// (`node .../worker-main.js`, forked by the host's supervising primary) its primary, else the
/// process itself.
pub fn host_process_of(pid: u32) -> u32 {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let parent = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse::<u32>()
                .ok()
        });
    match parent {
        Some(ppid) if String::from_utf8_lossy(&cmdline).contains("worker-main.js") => ppid,
        _ => pid,
    }
}
