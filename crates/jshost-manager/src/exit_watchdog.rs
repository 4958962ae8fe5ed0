//! Closing managed connections when this process ends, however it ends.
//!
//! A `Drop` cannot do network I/O reliably at process exit: when `main` returns, the runtime (and
//! any task a `Drop` spawned) is torn down at once. So the first managed connection starts one
//! small helper, `node -e WATCHDOG_JS`, in its own process group, whose stdin is a pipe from this
//! process. Connections are registered with it and removed when closed normally. When the pipe
//! closes (this process exited, panicked or was SIGKILLed), the helper sends `/host/disconnect`
//! for every connection still registered and exits. Disconnecting twice is harmless.

use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

const WATCHDOG_JS: &str = r#"
const http = require('http');
const open = new Map();
let buffered = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  buffered += chunk;
  let i;
  while ((i = buffered.indexOf('\n')) >= 0) {
    const line = buffered.slice(0, i);
    buffered = buffered.slice(i + 1);
    try {
      const msg = JSON.parse(line);
      if (msg.op === 'add') open.set(msg.connection, msg);
      else open.delete(msg.connection);
    } catch (e) {}
  }
});
process.stdin.on('close', () => {
  let pending = open.size;
  if (!pending) process.exit(0);
  setTimeout(() => process.exit(0), 10000).unref();
  for (const c of open.values()) {
    let finished = false;
    const done = () => { if (!finished) { finished = true; if (--pending === 0) process.exit(0); } };
    const body = JSON.stringify({ config: c.config, connection: c.connection });
    const req = http.request(c.url + '/host/disconnect', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => { res.resume(); res.on('end', done); res.on('error', done); });
    req.on('error', done);
    req.setTimeout(5000, () => req.destroy());
    req.end(body);
  }
});
"#;

struct Watchdog {
    child: Child,
    stdin: ChildStdin,
}

/// The watchdog process, and the `add` line of every connection open now: a watchdog started
/// again (the first one died) is told all of them.
struct State {
    process: Option<Watchdog>,
    open: Vec<(String, String)>,
}

static STATE: Mutex<State> = Mutex::new(State {
    process: None,
    open: Vec::new(),
});

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl State {
    /// Starts the watchdog when none runs, telling it every open connection.
    fn ensure_running(&mut self, node: &Path) -> std::io::Result<()> {
        if self.process.is_none() {
            let mut w = start(node)?;
            for (_, line) in &self.open {
                w.stdin.write_all(line.as_bytes())?;
            }
            w.stdin.flush()?;
            self.process = Some(w);
        }
        Ok(())
    }

    /// Writes `line` to a running watchdog; forgets one that is gone (saying how it ended).
    fn write(&mut self, node: &Path, line: &str) -> bool {
        let Some(w) = self.process.as_mut() else {
            return false;
        };
        match w.stdin.write_all(line.as_bytes()).and_then(|()| w.stdin.flush()) {
            Ok(()) => true,
            Err(e) => {
                let exit = w.child.try_wait().ok().flatten();
                let exit = exit.map_or_else(|| "still running".to_owned(), |s| s.to_string());
                tracing::warn!(node = %node.display(), error = %e, %exit, "the connection watchdog is gone; starting another");
                self.process = None;
                false
            }
        }
    }
}

/// Starts `node -e WATCHDOG_JS`, then lowers its priority (`renice`, where there is one): its
/// Node start-up would otherwise take CPU from the connect that started it and the host
/// answering it, and its only work comes when this process has exited.
fn start(node: &Path) -> std::io::Result<Watchdog> {
    let watchdog = spawn(node)?;
    let renice = Command::new("renice")
        .args(["-n", "19", "-p", &watchdog.child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Err(e) = renice {
        tracing::debug!(error = %e, "cannot lower the connection watchdog's priority");
    }
    Ok(watchdog)
}

/// Spawns `node -e WATCHDOG_JS` with its pipes, in a process group of its own.
fn spawn(node: &Path) -> std::io::Result<Watchdog> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(node);
    cmd.arg("-e")
        .arg(WATCHDOG_JS)
        .env(crate::node::NODE_ENV.0, crate::node::NODE_ENV.1)
        // It only speaks plain HTTP to the local manager: no CA bundle to parse at start-up.
        .env_remove("NODE_EXTRA_CA_CERTS")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C to ours must not kill it before it disconnects.
        .process_group(0);
    let mut child = cmd.spawn()?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin pipe to the watchdog"))?;
    tracing::debug!(pid = child.id(), "connection watchdog started");
    Ok(Watchdog { child, stdin })
}

/// Starts the watchdog, if it is not running, on a thread of its own: spawning a process blocks
/// for milliseconds, which a connect spends on its requests to the manager meanwhile. A failure
/// is left to [`register`], which tries again and reports it.
pub(crate) fn prepare(node: &Path) {
    // Running, or being started (the lock is held meanwhile): nothing to do.
    if !matches!(STATE.try_lock().as_deref(), Ok(State { process: None, .. })) {
        return;
    }
    let node = node.to_path_buf();
    let started = std::thread::Builder::new()
        .name("jshost-watchdog-start".into())
        .spawn(move || {
            if let Err(e) = state().ensure_running(&node) {
                tracing::debug!(error = %e, "cannot start the connection watchdog yet");
            }
        });
    if let Err(e) = started {
        tracing::debug!(error = %e, "cannot start a thread to start the connection watchdog");
    }
}

/// Registers an open managed connection, to be closed if this process ends without closing it.
pub(crate) fn register(node: &Path, manager_url: &str, config: &Path, connection: &str) {
    let line = json!({"op": "add", "url": manager_url, "config": config, "connection": connection});
    let line = format!("{line}\n");
    let mut state = state();
    state.open.push((connection.to_owned(), line.clone()));
    // A watchdog that is gone is replaced, and the new one is told every open connection.
    let told = state.write(node, &line);
    if !told {
        if let Err(e) = state.ensure_running(node) {
            tracing::warn!(node = %node.display(), error = %e, "cannot start the connection watchdog; managed connections will not be closed at process exit");
        }
    }
}

/// Forgets a connection that was closed normally.
pub(crate) fn unregister(node: &Path, connection: &str) {
    let line = json!({"op": "remove", "connection": connection});
    let mut state = state();
    state.open.retain(|(id, _)| id != connection);
    state.write(node, &format!("{line}\n"));
}
