//! [`ManagedConnection`]: one open connection to a managed host, and its whole lifecycle.

use crate::expected::status_url;
use crate::manager::{HostInfo, Manager};
use crate::watchdog;
use jshost_core::{Error, Result, Status};
use std::path::{Path, PathBuf};
use tokio::sync::Mutex;

/// A connection opened to a manager's host for one config.
///
/// It owns the manager client, the config, the connection id and the exit watchdog's record of
/// it. Closing is idempotent, and the id is forgotten only once the manager has confirmed: a
/// close or stop that fails or is cancelled leaves the safety nets in place (closing on drop,
/// and the watchdog closing it when this process exits). Closing, stopping and restarting are
/// serialised.
#[derive(Debug)]
pub struct ManagedConnection {
    manager: Manager,
    config: PathBuf,
    node: PathBuf,
    /// The open connection's id; `None` once closed (or the host stopped).
    id: Mutex<Option<String>>,
}

impl ManagedConnection {
    /// Makes sure `manager` runs the host for `config`, opens a connection to it, and registers
    /// the connection with the exit watchdog (run with `node`). A host that reports another
    /// status than `expected` (it was started from an older version of the config) is restarted
    /// first.
    ///
    /// # Errors
    /// Process errors when the host cannot start; connection errors when the manager does not
    /// answer.
    ///
    /// # Cancel safety
    /// Once the manager has answered, the connection is owned by the returned value's safety
    /// nets; dropping the future earlier may leave a started host without a connection (the
    /// manager keeps it until asked to stop it).
    pub async fn open(
        manager: Manager,
        config: &Path,
        node: &Path,
        expected: &Status,
    ) -> Result<(Self, HostInfo)> {
        let info = manager.ensure_host(config).await?;
        if info.status != expected.with_port(info.status.port().unwrap_or_default()) {
            tracing::warn!(config = %config.display(), "the managed host was started from an older config; restarting it");
            manager.restart_host(config).await?;
        }
        let connection = ManagedConnection {
            manager,
            config: config.to_path_buf(),
            node: node.to_path_buf(),
            id: Mutex::new(None),
        };
        let info = connection.connect().await?;
        Ok((connection, info))
    }

    /// Opens the connection (the host must run) and records it.
    async fn connect(&self) -> Result<HostInfo> {
        let mut id = self.id.lock().await;
        self.connect_locked(&mut id).await
    }

    /// Opens a connection (the host must run) and records it in `id`, replacing (and closing) a
    /// previous one.
    async fn connect_locked(&self, id: &mut Option<String>) -> Result<HostInfo> {
        let opened = self.manager.open_connection(&self.config).await?.ok_or_else(|| {
            Error::process(format!(
                "the manager at {} stopped the host for {} while connecting",
                self.manager.url(),
                self.config.display()
            ))
        })?;
        watchdog::register(&self.node, self.manager.url(), &self.config, &opened.id);
        if let Some(old) = id.replace(opened.id) {
            // Usually already gone with a crashed host; closing it again is harmless.
            if let Err(e) = self.manager.close_connection(&self.config, &old).await {
                tracing::debug!(connection = %old, error = %e, "cannot close the replaced connection");
            }
            watchdog::unregister(&self.node, &old);
        }
        status_url(&opened.host.status)?;
        Ok(opened.host)
    }

    /// The manager this connection goes through.
    pub fn manager(&self) -> &Manager {
        &self.manager
    }

    /// The config file the manager knows the host by.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// The connection id the manager knows this connection by (`None` once closed, or while a
    /// close, stop or restart is under way).
    pub fn id(&self) -> Option<String> {
        self.id.try_lock().ok().and_then(|id| id.clone())
    }

    /// Whether the connection is still open (not closed, its host not stopped through it).
    pub fn is_open(&self) -> bool {
        match self.id.try_lock() {
            Ok(id) => id.is_some(),
            // Someone is closing, stopping or restarting it right now.
            Err(_) => true,
        }
    }

    /// Closes the connection (the manager stops the host `disconnectTimeout` after its last
    /// connection closes). Closing a closed connection does nothing.
    ///
    /// # Errors
    /// Connection errors when the manager does not answer; the connection then stays registered
    /// and is closed on drop or at process exit.
    pub async fn close(&self) -> Result<()> {
        let mut id = self.id.lock().await;
        let Some(current) = id.clone() else {
            return Ok(());
        };
        let answer = self.manager.close_connection(&self.config, &current).await?;
        *id = None;
        watchdog::unregister(&self.node, &current);
        tracing::info!(connection = %current, stop_timeout_ms = answer.stop_timeout, "disconnected from the managed js-host");
        Ok(())
    }

    /// Stops the host now (every connection to it loses it); this connection is then closed.
    ///
    /// # Errors
    /// A process error when the manager no longer runs the host; connection errors.
    pub async fn stop(&self) -> Result<()> {
        let mut id = self.id.lock().await;
        let stopped = self.manager.stop_host(&self.config).await?;
        if let Some(current) = id.take() {
            watchdog::unregister(&self.node, &current);
        }
        match stopped {
            Some(_) => Ok(()),
            None => Err(Error::process(format!(
                "the manager at {} runs no host for {} (it crashed or was stopped already)",
                self.manager.url(),
                self.config.display()
            ))),
        }
    }

    /// Restarts the host (same port and logfile, fresh JavaScript state). A host the manager
    /// no longer runs (it crashed, or was stopped) is started again and connected to.
    ///
    /// # Errors
    /// Process errors when the host cannot start; connection errors.
    pub async fn restart(&self) -> Result<HostInfo> {
        let mut id = self.id.lock().await;
        if let Some(info) = self.manager.restart_host(&self.config).await? {
            return Ok(info);
        }
        tracing::info!(config = %self.config.display(), "the managed host is gone; starting it again");
        self.manager.ensure_host(&self.config).await?;
        self.connect_locked(&mut id).await
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
        jshost_client::driver::spawn(async move {
            match manager.close_connection(&config, &id).await {
                Ok(_) => {
                    tracing::info!(connection = %id, "closed the managed connection of a dropped handle");
                    watchdog::unregister(&node, &id);
                }
                Err(e) => {
                    tracing::warn!(connection = %id, error = %e, "cannot close a dropped handle's managed connection; the exit watchdog will")
                }
            }
        });
    }
}
