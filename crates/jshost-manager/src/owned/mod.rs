//! Hosts this process owns: a js-host child supervised on the SDK's runtime.

mod launch;

use crate::node::{self, NodeSetup};
use crate::private;
use jshost_client::driver;
use jshost_core::error::Build as _;
use jshost_core::{Error, Result, Settings, Status};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Preloaded into owned hosts (`node --require`):
/// - the host exits when its stdin, a pipe from the owning process, closes, so it never outlives
///   that process, even one killed with SIGKILL;
/// - after the status line, stdout (js-host's info log, three lines per call) is dropped: the
///   same lines are in the logfile, and piping them to the owner cost both processes a write, a
///   read and a wake-up per line. Errors still go to stderr, which the owner keeps a tail of.
pub const GUARD_JS: &str = r#"// jshost: exit when the owning process's pipe closes.
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

pub(crate) struct Running {
    pid: Option<u32>,
    exit: watch::Receiver<Option<ExitInfo>>,
    shutdown: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A js-host child process owned by this process: started with `--port 0 --json` (and
/// `--logfile FILE` when `Settings::log_file` asks for it: a 0600 file in this user's private
/// directory, removed on drop unless the host crashed), its output
/// drained (to `tracing`), its exit watched, killed when dropped, and exiting by itself if this
/// process dies.
///
/// The child is supervised on the SDK's own runtime: it lives exactly as long as this value (or
/// the process), whatever runtime started it. Restarts and stops are serialised.
pub struct OwnedHost {
    setup: NodeSetup,
    startup_timeout: Duration,
    status: Status,
    logfile: Option<PathBuf>,
    /// The private directory of its socket, removed on drop.
    private: Option<PrivateDir>,
    running: Mutex<Running>,
    /// Serialises `restart` and `stop`.
    ops: tokio::sync::Mutex<()>,
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
        let logfile = match settings.log_file {
            true => Some(new_logfile()?),
            false => None,
        };
        let private = match setup.jshost_node && settings.private_socket {
            true => Some(PrivateDir::create()?),
            false => None,
        };
        let socket = private.as_ref().map(PrivateDir::socket);
        let timeout = settings.startup_timeout;
        let (status, running) = {
            let (setup, logfile, socket) = (setup.clone(), logfile.clone(), socket.clone());
            let launching = async move {
                launch::launch(&setup, 0, socket.as_deref(), logfile.as_deref(), timeout).await
            };
            driver::run(launching).await?
        };
        Ok(OwnedHost {
            setup,
            startup_timeout: timeout,
            status,
            logfile,
            private,
            running: Mutex::new(running),
            ops: tokio::sync::Mutex::new(()),
        })
    }

    /// The Unix socket the host listens on (a jshost-node host with `Settings::private_socket`),
    /// in a directory only this user can enter; `None`: it listens on TCP (its status's port).
    pub fn socket(&self) -> Option<PathBuf> {
        self.private.as_ref().map(PrivateDir::socket)
    }

    /// The status the host reported (with its real port).
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The file the host logs to, when `Settings::log_file` asked for one.
    pub fn logfile(&self) -> Option<&Path> {
        self.logfile.as_deref()
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
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How the host exited, if it has.
    pub fn exited(&self) -> Option<ExitInfo> {
        self.lock().exit.borrow().clone()
    }

    /// Waits up to `within` for the host to exit; how it exited, if it did.
    pub async fn wait_exit(&self, within: Duration) -> Option<ExitInfo> {
        let mut rx = self.lock().exit.clone();
        let waited = driver::run(async move {
            let waited = tokio::time::timeout(within, rx.wait_for(Option::is_some))
                .await
                .ok()
                .and_then(|r| r.ok().and_then(|info| info.clone()));
            Ok(waited.or_else(|| rx.borrow().clone()))
        });
        waited.await.ok().flatten()
    }

    /// The process error a call gets when the host has exited.
    pub fn crash_error(&self, info: &ExitInfo) -> Error {
        let place = match self.socket() {
            Some(socket) => format!("socket {}", socket.display()),
            None => format!("port {}", self.status.port().unwrap_or_default()),
        };
        let mut message = format!(
            "the js-host process for {} ({place}) has exited ({})",
            self.setup.config.display(),
            info.status,
        );
        if let Some(logfile) = &self.logfile {
            message.push_str(&format!("; see its logfile {}", logfile.display()));
        }
        if !info.stderr_tail.is_empty() {
            message.push_str(&format!("; stderr: {}", node::tail(&info.stderr_tail, 2000)));
        }
        match &self.logfile {
            Some(logfile) => Error::process(message).with_logfile(logfile),
            None => Error::process(message),
        }
    }

    /// Kills the host and waits for it to exit.
    ///
    /// # Cancel safety
    /// The kill is requested before the first await; dropping the future only stops the wait.
    pub async fn stop(&self) {
        let _serialised = self.ops.lock().await;
        self.lock().shutdown.cancel();
        self.wait_exit(Duration::from_secs(5)).await;
    }

    /// Kills the host and starts it again on the same port and logfile (fresh JS state).
    ///
    /// # Errors
    /// As [`OwnedHost::spawn`].
    pub async fn restart(&self) -> Result<()> {
        let _serialised = self.ops.lock().await;
        self.lock().shutdown.cancel();
        self.wait_exit(Duration::from_secs(5)).await;
        let port = self.status.port().unwrap_or_default();
        let (setup, logfile, timeout) = (self.setup.clone(), self.logfile.clone(), self.startup_timeout);
        let socket = self.socket();
        if let Some(stale) = &socket {
            // A host that was killed leaves its socket file; listening would fail on it.
            let _ = std::fs::remove_file(stale);
        }
        let launched = driver::run(async move {
            launch::launch(&setup, port, socket.as_deref(), logfile.as_deref(), timeout).await
        });
        let (status, running) = launched.await?;
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
        let Some(logfile) = &self.logfile else { return };
        let crashed = self.exited().map(|e| !e.requested).unwrap_or(false);
        if crashed {
            tracing::info!(logfile = %logfile.display(), "keeping the crashed host's logfile");
        } else {
            let _ = std::fs::remove_file(logfile);
        }
    }
}

/// A directory only this user can enter (mode 0700, in this user's private directory), holding
/// an owned host's socket; removed (with the socket) when dropped.
#[derive(Debug)]
struct PrivateDir(PathBuf);

impl PrivateDir {
    /// In the private directory, or in the short `/tmp/jshost-UID` when the socket's path would
    /// be longer than a Unix socket address holds (Node would listen on a truncated path).
    fn create() -> Result<PrivateDir> {
        use std::os::unix::fs::DirBuilderExt;
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("sock-{}-{n}", std::process::id());
        let mut dir = private::dir()?.join(&name);
        if !private::fits_socket(&socket_in(&dir)) {
            let short = private::short_dir()?.join(&name);
            let socket = socket_in(&short);
            if !private::fits_socket(&socket) {
                return Err(Error::config(format!(
                    "the owned host's socket path {} is longer than {} bytes, the most a Unix socket address holds \
                     (set TMPDIR or XDG_RUNTIME_DIR to a shorter directory, or use private_socket(false))",
                    socket.display(),
                    private::MAX_SOCKET_PATH
                )));
            }
            tracing::debug!(private = %dir.display(), socket = %socket.display(), "socket path too long in the private directory; using the short one");
            dir = short;
        }
        std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| {
            Error::process(format!("cannot create the private directory {}", dir.display())).with_source(e)
        })?;
        Ok(PrivateDir(dir))
    }

    fn socket(&self) -> PathBuf {
        socket_in(&self.0)
    }
}

fn socket_in(dir: &Path) -> PathBuf {
    dir.join("host.sock")
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A new, empty 0600 logfile in the private directory (the host appends to it, keeping its mode).
fn new_logfile() -> Result<PathBuf> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let path = private::dir()?.join(format!("host-{}-{n}.log", std::process::id()));
    private::create_new(&path)?;
    Ok(path)
}
