//! Hosts this process owns: a js-host child supervised with `tokio::process`.

use crate::node::{self, NodeSetup};
use jshost_core::{Error, ErrorKind, Result, Settings, Status};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Preloaded into owned hosts (`node --require`):
/// - the host exits when its stdin, a pipe from the owning process, closes, so it never outlives
///   that process, even one killed with SIGKILL;
/// - after the status line, stdout (js-host's info log, three lines per call) is dropped: the
///   same lines are in the logfile, and piping them to the owner cost both processes a write, a
///   read and a wake-up per line. Errors still go to stderr, which the owner keeps a tail of.
const GUARD_JS: &str = r#"// jshost: exit when the owning process's pipe closes.
process.stdin.on('data', function () {});
process.stdin.on('end', function () { process.exit(0); });
process.stdin.on('close', function () { process.exit(0); });
process.stdin.on('error', function () { process.exit(0); });
process.stdin.resume();
// jshost: after the status line, stdout goes to the logfile only.
(function () {
  var write = process.stdout.write;
  var ready = false;
  process.stdout.write = function (chunk, encoding, cb) {
    if (!ready) {
      ready = String(chunk).charAt(0) === '{';
      return write.apply(process.stdout, arguments);
    }
    var done = typeof encoding === 'function' ? encoding : cb;
    if (typeof done === 'function') process.nextTick(done);
    return true;
  };
})();
"#;

const STDERR_TAIL_LINES: usize = 40;

/// How an owned host ended.
#[derive(Debug, Clone)]
pub struct ExitInfo {
    /// The exit status as the OS reports it (`exit status: 1`, `signal: 9 (SIGKILL)`).
    pub status: String,
    /// Whether the exit was asked for by this process (`stop`, drop).
    pub requested: bool,
    /// The last lines the host printed on stderr.
    pub stderr_tail: String,
}

struct Running {
    pid: Option<u32>,
    exit: watch::Receiver<Option<ExitInfo>>,
    shutdown: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A js-host child process owned by this process: started with `--port 0 --json --logfile FILE`
/// (a file in the temporary directory, removed on drop unless the host crashed), its output
/// drained (to `tracing`), its exit watched, killed when dropped, and exiting by itself if this
/// process dies.
pub struct OwnedHost {
    setup: NodeSetup,
    startup_timeout: Duration,
    status: Status,
    logfile: PathBuf,
    running: Mutex<Running>,
}

impl std::fmt::Debug for OwnedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedHost")
            .field("config", &self.setup.config)
            .field("port", &self.status.port())
            .field("logfile", &self.logfile)
            .field("pid", &self.pid())
            .finish()
    }
}

impl OwnedHost {
    /// Starts a host for `settings` on a port the OS picks and waits until it reports its status.
    ///
    /// # Errors
    /// Config errors (missing node, js-host, config file); a process error carrying the exit
    /// status, output and stderr tail when the host exits before reporting its status; a timeout
    /// error after `settings.startup_timeout`.
    ///
    /// # Cancel safety
    /// Dropping the future kills the child being started.
    pub async fn spawn(settings: &Settings) -> Result<Self> {
        let setup = NodeSetup::check(settings)?;
        let logfile = new_logfile_path();
        let (status, running) = launch(&setup, 0, &logfile, settings.startup_timeout).await?;
        Ok(OwnedHost {
            setup,
            startup_timeout: settings.startup_timeout,
            status,
            logfile,
            running: Mutex::new(running),
        })
    }

    /// The status the host reported (with its real port).
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The file the host logs to.
    pub fn logfile(&self) -> &Path {
        &self.logfile
    }

    /// The absolute config file.
    pub fn config_file(&self) -> &Path {
        &self.setup.config
    }

    /// The child's process id (`None` once it has been reaped).
    pub fn pid(&self) -> Option<u32> {
        self.lock().pid
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Running> {
        match self.running.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// How the host exited, if it has.
    pub fn exited(&self) -> Option<ExitInfo> {
        self.lock().exit.borrow().clone()
    }

    /// Waits up to `within` for the host to exit; how it exited, if it did.
    pub async fn wait_exit(&self, within: Duration) -> Option<ExitInfo> {
        let mut rx = self.lock().exit.clone();
        let waited = tokio::time::timeout(within, rx.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|info| info.clone()));
        waited.or_else(|| rx.borrow().clone())
    }

    /// The process error a call gets when the host has exited.
    pub fn crash_error(&self, info: &ExitInfo) -> Error {
        let mut message = format!(
            "the js-host process for {} (port {}) has exited ({}); see its logfile {}",
            self.setup.config.display(),
            self.status.port().unwrap_or_default(),
            info.status,
            self.logfile.display()
        );
        if !info.stderr_tail.is_empty() {
            message.push_str(&format!("; stderr: {}", node::tail(&info.stderr_tail, 800)));
        }
        Error::process(message).with_logfile(&self.logfile)
    }

    /// Kills the host and waits for it to exit.
    ///
    /// # Cancel safety
    /// The kill is requested before the first await; dropping the future only stops the wait.
    pub async fn stop(&self) {
        self.lock().shutdown.cancel();
        self.wait_exit(Duration::from_secs(5)).await;
    }

    /// Kills the host and starts it again on the same port and logfile (fresh JS state).
    ///
    /// # Errors
    /// As [`OwnedHost::spawn`].
    pub async fn restart(&self) -> Result<()> {
        self.stop().await;
        let port = self.status.port().unwrap_or_default();
        let (status, running) = launch(&self.setup, port, &self.logfile, self.startup_timeout).await?;
        if status != self.status {
            tracing::warn!(config = %self.setup.config.display(), "the restarted host reports another status");
        }
        *self.lock() = running;
        Ok(())
    }
}

impl Drop for OwnedHost {
    /// Kills the host (through its supervising task, or `kill_on_drop` if the runtime is gone).
    /// The logfile is removed unless the host crashed: then it is kept for post-mortems.
    fn drop(&mut self) {
        let crashed = self.exited().map(|e| !e.requested).unwrap_or(false);
        if crashed {
            tracing::info!(logfile = %self.logfile.display(), "keeping the crashed host's logfile");
        } else {
            let _ = std::fs::remove_file(&self.logfile);
        }
    }
}

fn new_logfile_path() -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("jshost-host-{}-{n}.log", std::process::id()))
}

fn guard_script() -> Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("jshost-guard-{}.js", jshost_core::hash(GUARD_JS)));
    if std::fs::read_to_string(&path)
        .map(|s| s == GUARD_JS)
        .unwrap_or(false)
    {
        return Ok(path);
    }
    // Unique temporary name: tests in one process may write it concurrently.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("{}-{n}.tmp", std::process::id()));
    std::fs::write(&tmp, GUARD_JS)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| Error::process(format!("cannot write {}", path.display())).with_source(e))?;
    Ok(path)
}

fn push_tail(tail: &Mutex<VecDeque<String>>, line: String) {
    let mut t = match tail.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if t.len() == STDERR_TAIL_LINES {
        t.pop_front();
    }
    t.push_back(line);
}

fn read_tail(tail: &Mutex<VecDeque<String>>) -> String {
    let t = match tail.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    t.iter().cloned().collect::<Vec<_>>().join("\n")
}

async fn launch(
    setup: &NodeSetup,
    port: u16,
    logfile: &Path,
    timeout: Duration,
) -> Result<(Status, Running)> {
    let guard = guard_script()?;
    let port_arg = port.to_string();
    let logfile_arg = logfile.to_string_lossy().into_owned();
    let mut cmd = tokio::process::Command::new(&setup.node);
    cmd.arg("--require")
        .arg(&guard)
        .arg(&setup.bin)
        .arg(&setup.config)
        .args(["--port", &port_arg, "--json", "--logfile", &logfile_arg])
        .current_dir(&setup.cwd)
        .env(node::NODE_ENV.0, node::NODE_ENV.1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| setup.spawn_error(e))?;
    let pid = child.id();
    tracing::info!(pid, config = %setup.config.display(), logfile = %logfile.display(), "spawned an owned js-host");

    let stdin = child.stdin.take();
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    if let Some(stderr) = child.stderr.take() {
        let tail = tail.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(pid, target_stream = "stderr", "{line}");
                push_tail(&tail, line);
            }
        });
    }
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::process("no stdout pipe from the host"))?;
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    let read_status = async {
        loop {
            match lines.next_line().await {
                Ok(Some(line)) => {
                    if let Ok(status) = Status::parse(&line) {
                        return Some(status);
                    }
                    printed.push(line);
                }
                _ => return None,
            }
        }
    };
    let status = match tokio::time::timeout(timeout, read_status).await {
        Ok(Some(status)) => status,
        Ok(None) => {
            let exit = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            let exit = match exit {
                Ok(Ok(s)) => s.to_string(),
                _ => "still running".to_owned(),
            };
            // Give the stderr reader a moment to reach the end of the pipe.
            let stderr = read_tail(&tail);
            return Err(Error::process(format!(
                "the js-host process for {} exited before it was ready ({exit}); stdout: {}; stderr: {}",
                setup.config.display(),
                node::tail(&printed.join("\n"), 800),
                node::tail(&stderr, 1500)
            ))
            .with_logfile(logfile));
        }
        Err(_) => {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "the js-host process for {} did not report its status within {timeout:?} (start-up timeout); stderr: {}",
                    setup.config.display(),
                    node::tail(&read_tail(&tail), 1500)
                ),
            )
            .with_logfile(logfile));
        }
    };
    node::check_version(&status, &format!("the js-host at {}", setup.bin.display()))?;
    tracing::info!(pid, port = status.port(), "owned js-host ready");

    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::trace!(pid, "{line}");
        }
    });
    let (tx, rx) = watch::channel(None);
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        let _stdin: Option<ChildStdin> = stdin;
        let mut child: Child = child;
        let (result, requested) = tokio::select! {
            r = child.wait() => (r, false),
            _ = token.cancelled() => {
                let _ = child.start_kill();
                (child.wait().await, true)
            }
        };
        let status = match result {
            Ok(s) => s.to_string(),
            Err(e) => format!("unknown ({e})"),
        };
        if requested {
            tracing::info!(pid, %status, "owned js-host stopped");
        } else {
            tracing::warn!(pid, %status, "owned js-host exited unexpectedly");
        }
        let _ = tx.send(Some(ExitInfo {
            status,
            requested,
            stderr_tail: read_tail(&tail),
        }));
    });
    Ok((
        status,
        Running {
            pid,
            exit: rx,
            shutdown,
        },
    ))
}
