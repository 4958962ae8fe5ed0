//! [`ManagedConnection`]: one open connection to a managed host, and its whole lifecycle.

use crate::exit_watchdog;
use crate::expected::status_url;
use crate::locate::{locate_manager, Located};
use crate::lock::ConfigLock;
use crate::manager::{probe_status, HostInfo, Manager};
use crate::node::NodeSetup;
use jshost_core::error::Build as _;
use jshost_core::{Error, Result, Settings, Status};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::Mutex;

/// How long to wait for a manager to notice that its host has exited.
const CRASH_NOTICE: Duration = Duration::from_secs(2);
const CRASH_POLL: Duration = Duration::from_millis(50);

/// What [`ManagedConnection::connect`] found.
#[derive(Debug)]
pub enum Connected {
    /// A host for the config (started without a manager) answers at the config's address.
    Direct {
        /// Its URL.
        url: String,
        /// Its status.
        status: Status,
    },
    /// A connection to the manager's host.
    Managed(Box<ManagedConnection>, HostInfo),
}

/// A connection opened to a manager's host for one config.
///
/// It owns the manager client, the config, the connection id and the exit watchdog's record of
/// it. Closing is idempotent, and the id is forgotten only once the manager has confirmed: a
/// close or stop that fails or is cancelled leaves the safety nets in place (closing on drop,
/// and the watchdog closing it when this process exits). Everything asked of the config's
/// manager (connect, close, stop, restart) is serialised across tasks and processes, which also
/// works around js-host 0.12's manager races (see `lock.rs`).
#[derive(Debug)]
pub struct ManagedConnection {
    manager: Manager,
    config: PathBuf,
    node: PathBuf,
    /// Whether a manager found without a host for the config is stopped (see
    /// [`Located::Manager`]): never one another project may be using.
    stop_when_idle: bool,
    /// The open connection's id; `None` once closed (or the host stopped).
    id: Mutex<Option<String>>,
    /// Where the host answered last.
    host_url: std::sync::Mutex<String>,
    /// A copy of `id` readable while a close, stop or restart holds `id`.
    visible_id: std::sync::Mutex<Option<String>>,
    /// The host's logfile, followed (its errors passed on to `tracing`) while this connection
    /// lives.
    following: std::sync::Mutex<Option<(PathBuf, tokio_util::sync::DropGuard)>>,
}

impl ManagedConnection {
    /// Reuses (or starts) the config's manager, makes sure it runs a live host for the config
    /// (restarted first when it was started from an older version of the config), and opens a
    /// connection to it, registered with the exit watchdog. Serialised per config across tasks
    /// and processes: concurrent cold connects share one manager and one host.
    ///
    /// # Errors
    /// As locating the manager; process errors when the host cannot start; connection errors
    /// when the manager does not answer.
    ///
    /// # Cancel safety
    /// Once the manager has answered, the connection is owned by the returned value's safety
    /// nets; dropping the future earlier may leave a started host without a connection (the
    /// manager keeps it until asked to stop it).
    pub async fn connect(settings: &Settings, setup: &NodeSetup) -> Result<Connected> {
        let _lock = ConfigLock::acquire(&setup.config).await?;
        let (manager, expected, stop_when_idle, jshost_node) =
            match locate_manager(settings, setup, true).await? {
                Located::Host { url, status } => return Ok(Connected::Direct { url, status }),
                Located::Manager {
                    manager,
                    expected,
                    stop_when_idle,
                    jshost_node,
                } => (manager, expected, stop_when_idle, jshost_node),
            };
        // Started beside the requests below, so that it is up by the time the connection opens.
        exit_watchdog::prepare(&settings.path_to_node);
        let config = setup.config.as_path();
        let connection = ManagedConnection {
            manager,
            config: config.to_path_buf(),
            node: settings.path_to_node.clone(),
            stop_when_idle,
            id: Mutex::new(None),
            host_url: std::sync::Mutex::new(String::new()),
            visible_id: std::sync::Mutex::new(None),
            following: std::sync::Mutex::new(None),
        };
        let manager = &connection.manager;
        let mut id = connection.id.lock().await;
        // A warm jshost-node host is connected to at once (its manager forgets a host whose
        // process exited, so the host its answer describes runs): one request instead of a
        // status, a probe and a connect. The connection is kept unless the host must be started
        // or restarted first (then a new one replaces it). Recorded in `id` at once, so that an
        // error below closes it (on drop).
        let mut warm = None;
        if jshost_node {
            if let Some(opened) = manager.open_connection(config).await? {
                exit_watchdog::register(&connection.node, manager.url(), config, &opened.id);
                connection.show_id(Some(opened.id.clone()));
                *id = Some(opened.id);
                if !manager.options_differ(&opened.host) {
                    tracing::info!(url = ?opened.host.status.url(), logfile = %opened.host.logfile.display(), "reusing the warm managed js-host");
                    crate::manager::report_if_stale(&opened.host, config);
                    warm = Some(opened.host);
                }
            }
        }
        let mut keep = warm.is_some();
        let mut info = match warm {
            Some(info) => info,
            None => live_host(manager, config, jshost_node).await?,
        };
        if info.status != expected.with_port(info.status.port().unwrap_or_default()) {
            tracing::warn!(config = %config.display(), "the managed host was started from an older config; restarting it");
            match manager.restart_host(config).await? {
                Some(restarted) => info = restarted,
                None => keep = false,
            }
        }
        let info = if keep {
            connection.set_host_url(&info)?;
            info
        } else {
            connection.connect_locked(&mut id).await?
        };
        drop(id);
        Ok(Connected::Managed(Box::new(connection), info))
    }

    /// Opens a connection (the host must run) and records it in `id`, replacing (and closing)
    /// a previous one.
    async fn connect_locked(&self, id: &mut Option<String>) -> Result<HostInfo> {
        let opened = self.manager.open_connection(&self.config).await?.ok_or_else(|| {
            Error::process(format!(
                "the manager at {} stopped the host for {} while connecting",
                self.manager.url(),
                self.config.display()
            ))
        })?;
        exit_watchdog::register(&self.node, self.manager.url(), &self.config, &opened.id);
        self.show_id(Some(opened.id.clone()));
        if let Some(old) = id.replace(opened.id) {
            // Usually already gone with a crashed host; closing it again is harmless.
            if let Err(e) = self.manager.close_connection(&self.config, &old).await {
                tracing::debug!(connection = %old, error = %e, "cannot close the replaced connection");
            }
            exit_watchdog::unregister(&self.node, &old);
        }
        self.set_host_url(&opened.host)?;
        Ok(opened.host)
    }

    fn set_host_url(&self, info: &HostInfo) -> Result<()> {
        let url = status_url(&info.status)?;
        let mut following = self
            .following
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if following.as_ref().map(|(path, _)| path) != Some(&info.logfile) {
            let guard = crate::output::follow(info.logfile.clone(), self.config.clone());
            *following = Some((info.logfile.clone(), guard));
        }
        drop(following);
        *self
            .host_url
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = url;
        Ok(())
    }

    /// Stops following the host's logfile.
    fn unfollow(&self) {
        self.following
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    fn host_url(&self) -> String {
        self.host_url
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The manager this connection goes through.
    pub fn manager(&self) -> &Manager {
        &self.manager
    }

    /// The config file the manager knows the host by.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// The connection id the manager knows this connection by (`None` once closed).
    pub fn id(&self) -> Option<String> {
        self.visible_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn show_id(&self, id: Option<String>) {
        *self
            .visible_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = id;
    }

    /// Closes the connection (the manager stops the host `disconnectTimeout` after its last
    /// connection closes). Closing a closed connection does nothing. After a crash, the
    /// manager is given time to notice it first, and a manager left without hosts is stopped.
    ///
    /// # Errors
    /// Connection errors when the manager does not answer; the connection then stays registered
    /// and is closed on drop or at process exit.
    pub async fn close(&self) -> Result<()> {
        let mut id = self.id.lock().await;
        let Some(current) = id.clone() else {
            return Ok(());
        };
        let _lock = ConfigLock::acquire(&self.config).await?;
        close(
            &self.manager,
            &self.config,
            &current,
            &self.host_url(),
            self.stop_when_idle,
        )
        .await?;
        *id = None;
        self.show_id(None);
        self.unfollow();
        exit_watchdog::unregister(&self.node, &current);
        Ok(())
    }

    /// Stops the host now (every connection to it loses it); this connection is then closed.
    ///
    /// # Errors
    /// A process error when the manager no longer runs the host (the manager, left with no
    /// host, is stopped); connection errors.
    pub async fn stop(&self) -> Result<()> {
        let mut id = self.id.lock().await;
        let _lock = ConfigLock::acquire(&self.config).await?;
        settle_crash(&self.manager, &self.config, &self.host_url()).await;
        let stopped = self.manager.stop_host(&self.config).await?;
        self.show_id(None);
        self.unfollow();
        if let Some(current) = id.take() {
            exit_watchdog::unregister(&self.node, &current);
        }
        match stopped {
            Some(_) => Ok(()),
            None => {
                if self.stop_when_idle {
                    stop_if_idle(&self.manager, &self.config).await;
                }
                Err(Error::process(format!(
                    "the manager at {} runs no host for {} (it crashed or was stopped already)",
                    self.manager.url(),
                    self.config.display()
                )))
            }
        }
    }

    /// Restarts the host (same port and logfile, fresh JavaScript state). A host the manager
    /// no longer runs (it crashed, or was stopped) is started again and connected to.
    ///
    /// # Errors
    /// Process errors when the host cannot start; connection errors.
    pub async fn restart(&self) -> Result<HostInfo> {
        let mut id = self.id.lock().await;
        let _lock = ConfigLock::acquire(&self.config).await?;
        settle_crash(&self.manager, &self.config, &self.host_url()).await;
        if let Some(info) = self.manager.restart_host(&self.config).await? {
            self.set_host_url(&info)?;
            return Ok(info);
        }
        tracing::info!(config = %self.config.display(), "the managed host is gone; starting it again");
        self.manager.ensure_host(&self.config).await?;
        self.connect_locked(&mut id).await
    }
}

/// The manager's host for `config`, started if it does not run; a recorded host that does not
/// answer (it crashed and the manager has not noticed yet) is waited out, then started again.
/// jshost-node's manager forgets a host as soon as its process exits (`trusted`): its record
/// is not probed.
async fn live_host(manager: &Manager, config: &Path, trusted: bool) -> Result<HostInfo> {
    let info = manager.ensure_host(config).await?;
    let url = status_url(&info.status)?;
    if trusted || matches!(probe_status(&url).await, Ok(Some(_))) {
        return Ok(info);
    }
    tracing::info!(%url, "the managed host does not answer; waiting for its manager to notice");
    settle_crash(manager, config, &url).await;
    let info = manager.ensure_host(config).await?;
    let url = status_url(&info.status)?;
    if matches!(probe_status(&url).await, Ok(Some(_))) {
        return Ok(info);
    }
    Ok(manager.restart_host(config).await?.unwrap_or(info))
}

/// When the host at `host_url` does not answer, waits (up to [`CRASH_NOTICE`]) until its manager
/// has forgotten it. js-host 0.12 forgets a host when its process exits, but a disconnect that
/// arrives first arms a stop timer on the dead host's record that is never cleared, and later
/// deletes the record of the host started after it (orphaning that host).
async fn settle_crash(manager: &Manager, config: &Path, host_url: &str) {
    if matches!(probe_status(host_url).await, Ok(Some(_))) {
        return;
    }
    let deadline = tokio::time::Instant::now() + CRASH_NOTICE;
    while tokio::time::Instant::now() < deadline {
        match manager.host_status(config).await {
            Ok(Some(info)) if info.status.url().as_deref() == Some(host_url) => {}
            // Forgotten (or replaced), or the manager itself is gone.
            _ => return,
        }
        tokio::time::sleep(CRASH_POLL).await;
    }
    tracing::warn!(host_url, "the manager still records a host that does not answer");
}

/// Closes connection `id`, after letting the manager notice a crash; a manager left without a
/// host for the config is asked to stop when `stop_when_idle` (js-host 0.12's would linger).
async fn close(
    manager: &Manager,
    config: &Path,
    id: &str,
    host_url: &str,
    stop_when_idle: bool,
) -> Result<()> {
    settle_crash(manager, config, host_url).await;
    let answer = manager.close_connection(config, id).await?;
    tracing::info!(connection = %id, stop_timeout_ms = answer.stop_timeout, "disconnected from the managed js-host");
    if !answer.started && stop_when_idle {
        stop_if_idle(manager, config).await;
    }
    Ok(())
}

/// Stops the manager when it runs no host for `config` (a js-host 0.12 manager whose host
/// crashed never exits by itself). Only for a manager started from `config` itself: another
/// project's manager may run that project's hosts.
async fn stop_if_idle(manager: &Manager, config: &Path) {
    if let Ok(None) = manager.host_status(config).await {
        tracing::info!(
            url = manager.url(),
            "stopping the managed host's manager: it runs no host any more"
        );
        if let Err(e) = manager.stop().await {
            tracing::debug!(error = %e, "cannot stop the idle manager");
        }
    }
}

impl Drop for ManagedConnection {
    /// Closes a connection that is still open, in the background on the SDK's runtime (which
    /// outlives the caller's). If this process exits first, the watchdog closes it.
    fn drop(&mut self) {
        let Some(id) = self.id.get_mut().take() else {
            return;
        };
        let manager = self.manager.clone();
        let config = self.config.clone();
        let node = self.node.clone();
        let host_url = self.host_url();
        let stop_when_idle = self.stop_when_idle;
        jshost_client::driver::spawn(async move {
            let closed = match ConfigLock::acquire(&config).await {
                Ok(_lock) => close(&manager, &config, &id, &host_url, stop_when_idle).await,
                Err(e) => Err(e),
            };
            match closed {
                Ok(()) => {
                    tracing::info!(connection = %id, "closed the managed connection of a dropped handle");
                    exit_watchdog::unregister(&node, &id);
                }
                Err(e) => {
                    tracing::warn!(connection = %id, error = %e, "cannot close a dropped handle's managed connection; the exit watchdog will")
                }
            }
        });
    }
}
