//! Starting an owned host: the command, its output, its status line, and its supervision.

use super::{ExitInfo, Running, GUARD_JS};
use crate::node::{self, NodeSetup};
use crate::output::{self, BoundedLines, Records, Source};
use jshost_core::error::Build as _;
use jshost_core::{Error, ErrorKind, Result, Status};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::process::{Child, ChildStdout};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const STDERR_TAIL_LINES: usize = 40;
/// The most bytes of one line kept in the stderr tail (and of the lines printed before the
/// status line): with [`STDERR_TAIL_LINES`], what is kept of a host's output stays bounded.
const TAIL_LINE: usize = 4096;
/// How many lines printed before the status line are kept for a start-up error.
const PRINTED_LINES: usize = 20;
/// How long a stopped host may take to exit after its stdin closed, before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long a start-up failure waits for the rest of the host's stderr.
const STDERR_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The last lines a host printed on stderr.
#[derive(Clone, Default)]
struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<String>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, line: &str) {
        let mut t = self.lock();
        if t.len() == STDERR_TAIL_LINES {
            t.pop_front();
        }
        t.push_back(bounded(line));
    }

    fn text(&self) -> String {
        self.lock().iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// Starts `node BIN CONFIG --port PORT --json [--logfile LOGFILE]` (for js-host with a
/// preloaded guard script, for jshost-node with `--exit-on-stdin-close` and the settings'
/// `--workers`/`--watch`) and waits until it prints its status; then supervises it. Must run on the SDK's runtime (the child is reaped
/// and its pipes are read there).
pub(super) async fn launch(
    setup: &NodeSetup,
    port: u16,
    socket: Option<&Path>,
    logfile: Option<&Path>,
    timeout: Duration,
) -> Result<(Status, Running)> {
    let guard = if setup.jshost_node {
        None
    } else {
        Some(guard_script()?)
    };
    let mut child = command(setup, guard.as_deref(), port, socket, logfile)
        .spawn()
        .map_err(|e| setup.spawn_error(e))?;
    let pid = child.id();
    tracing::info!(pid, config = %setup.config.display(), logfile = ?logfile, "spawned an owned js-host");
    let tail = Tail::default();
    let stderr_done = drain_stderr(&mut child, pid, tail.clone(), setup.config.clone(), logfile);
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::process("no stdout pipe from the host"))?;
    let mut lines = BoundedLines::new(stdout);
    let mut printed = VecDeque::new();
    let status = match tokio::time::timeout(timeout, read_status(&mut lines, &mut printed)).await {
        Ok(Some(status)) => status,
        Ok(None) => {
            let printed = Vec::from(printed);
            return Err(exited_early(setup, &mut child, &printed, &tail, stderr_done, logfile).await);
        }
        Err(_) => return Err(startup_timeout(setup, timeout, &tail, logfile)),
    };
    node::check_version(&status, &format!("the js-host at {}", setup.bin.display()))?;
    tracing::info!(pid, port = status.port(), "owned js-host ready");
    Ok((status, supervise(child, lines, tail, pid)))
}

fn command(
    setup: &NodeSetup,
    guard: Option<&Path>,
    port: u16,
    socket: Option<&Path>,
    logfile: Option<&Path>,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&setup.node);
    if let Some(guard) = guard {
        cmd.arg("--require").arg(guard);
    }
    cmd.arg(&setup.bin)
        .arg(&setup.config)
        .arg("--port")
        .arg(port.to_string())
        .arg("--json")
        .current_dir(&setup.cwd)
        .env(node::NODE_ENV.0, node::NODE_ENV.1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // The last safety net: the supervising task kills the child on request, the guard
        // script when this process dies.
        .kill_on_drop(true);
    if let Some(logfile) = logfile {
        cmd.arg("--logfile").arg(logfile);
    }
    if setup.jshost_node {
        // The host (every worker) exits when our end of its stdin closes: on stop, on drop, and
        // when this process dies, even by SIGKILL.
        cmd.arg("--exit-on-stdin-close").args(&setup.host_flags);
        node::move_ca_aside(&mut cmd, true);
        if let Some(socket) = socket {
            cmd.arg("--socket").arg(socket);
        }
    }
    cmd
}

/// Reads the child's stderr in bounded lines into `tail`, and passes its log records on to
/// `tracing` (errors as errors: a syntax error, a reload failure, a crash), until it closes.
fn drain_stderr(
    child: &mut Child,
    pid: Option<u32>,
    tail: Tail,
    config: PathBuf,
    logfile: Option<&Path>,
) -> Option<JoinHandle<()>> {
    let stderr = child.stderr.take()?;
    let logfile = logfile.map(Path::to_path_buf);
    Some(tokio::spawn(async move {
        let source = Source {
            pid,
            config: &config,
            logfile: logfile.as_deref(),
        };
        let mut lines = BoundedLines::new(stderr);
        let mut records = Records::default();
        loop {
            // A record is passed on when the next one starts, or when nothing follows it.
            let line = match tokio::time::timeout(output::RECORD_IDLE, lines.next_line()).await {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(_) => {
                    if let Some(record) = records.flush() {
                        output::emit(&record, &source);
                    }
                    continue;
                }
            };
            tail.push(&line);
            for record in records.push(line) {
                output::emit(&record, &source);
            }
        }
        if let Some(record) = records.flush() {
            output::emit(&record, &source);
        }
    }))
}

/// At most [`TAIL_LINE`] bytes of `line`.
fn bounded(line: &str) -> String {
    if line.len() <= TAIL_LINE {
        return line.to_owned();
    }
    let mut end = TAIL_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} [... cut]", &line[..end])
}

/// The first status line on stdout (the last other lines go to `printed`); `None` when stdout
/// closes.
async fn read_status(
    lines: &mut BoundedLines<ChildStdout>,
    printed: &mut VecDeque<String>,
) -> Option<Status> {
    while let Some(line) = lines.next_line().await {
        if let Ok(status) = Status::parse(&line) {
            return Some(status);
        }
        if printed.len() == PRINTED_LINES {
            printed.pop_front();
        }
        printed.push_back(bounded(&line));
    }
    None
}

/// The error for a host that closed stdout before reporting its status: its exit status, and
/// everything it wrote on stderr (read to the end first).
async fn exited_early(
    setup: &NodeSetup,
    child: &mut Child,
    printed: &[String],
    tail: &Tail,
    stderr_done: Option<JoinHandle<()>>,
    logfile: Option<&Path>,
) -> Error {
    let exit = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(Ok(s)) => s.to_string(),
        _ => "still running".to_owned(),
    };
    if let Some(done) = stderr_done {
        let _ = tokio::time::timeout(STDERR_DRAIN_TIMEOUT, done).await;
    }
    let error = Error::process(format!(
        "the js-host process for {} exited before it was ready ({exit}); stdout: {}; stderr: {}",
        setup.config.display(),
        node::tail(&printed.join("\n"), 800),
        node::tail(&tail.text(), 1500)
    ));
    with_logfile(error, logfile)
}

fn with_logfile(error: Error, logfile: Option<&Path>) -> Error {
    match logfile {
        Some(path) => error.with_logfile(path),
        None => error,
    }
}

fn startup_timeout(setup: &NodeSetup, timeout: Duration, tail: &Tail, logfile: Option<&Path>) -> Error {
    let error = Error::new(
        ErrorKind::Timeout,
        format!(
            "the js-host process for {} did not report its status within {timeout:?} (start-up timeout); stderr: {}",
            setup.config.display(),
            node::tail(&tail.text(), 1500)
        ),
    );
    with_logfile(error, logfile)
}

/// Drains the rest of stdout, and waits for the child's exit or a request to stop it; the exit
/// is published on the returned [`Running`]'s channel.
fn supervise(
    mut child: Child,
    mut lines: BoundedLines<ChildStdout>,
    tail: Tail,
    pid: Option<u32>,
) -> Running {
    tokio::spawn(async move {
        // After the status line, stdout is the host's info log (js-host) or nothing.
        while let Some(line) = lines.next_line().await {
            tracing::trace!(pid, "{line}");
        }
    });
    let (tx, rx) = watch::channel(None);
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        // Holding stdin open keeps the host running (guard script, --exit-on-stdin-close).
        let mut stdin = child.stdin.take();
        let (result, requested) = tokio::select! {
            r = child.wait() => (r, false),
            _ = token.cancelled() => {
                // Closing stdin lets the host (and every jshost-node worker) exit by itself;
                // SIGKILL if it has not within STOP_GRACE.
                drop(stdin.take());
                match tokio::time::timeout(STOP_GRACE, child.wait()).await {
                    Ok(r) => (r, true),
                    Err(_) => {
                        let _ = child.start_kill();
                        (child.wait().await, true)
                    }
                }
            }
        };
        drop(stdin);
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
            stderr_tail: node::strip_ansi(&tail.text()),
        }));
    });
    Running {
        pid,
        exit: rx,
        shutdown,
    }
}

/// Writes the guard script once per content, in this user's private directory (atomically:
/// tests in one process may race). Only this user can write there, so the file node loads is
/// the one checked here.
fn guard_script() -> Result<PathBuf> {
    let path = crate::private::dir()?.join(format!("guard-{}.js", jshost_core::hash(GUARD_JS)));
    if crate::private::read_trusted(&path).as_deref() == Some(GUARD_JS) {
        return Ok(path);
    }
    crate::private::write_atomic(&path, GUARD_JS.as_bytes())?;
    Ok(path)
}
