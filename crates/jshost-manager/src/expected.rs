//! The one expected-status resolver: the status a config's hosts must report, read from the
//! cache or computed by node, recomputed when a cached value does not match what runs, and the
//! errors that explain a mismatch.

use crate::node::{manager_status_for, NodeSetup, StatusCache};
use jshost_core::error::Build as _;
use jshost_core::{Error, Result, Settings, Status};
use std::time::Duration;

/// How the expected status was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Read from the [`StatusCache`]: it only ever proposes.
    Cache,
    /// Computed by running node now.
    Node,
}

/// The status the hosts of a config must report.
#[derive(Debug, Clone)]
pub struct Expected {
    setup: NodeSetup,
    status: Status,
    source: Source,
    timeout: Duration,
}

/// The root URL a status names (`http://ADDRESS:PORT`, IPv6 addresses bracketed).
///
/// # Errors
/// A config error when the status has no usable port.
pub fn status_url(status: &Status) -> Result<String> {
    status
        .url()
        .ok_or_else(|| Error::config(format!("the js-host status has no usable port: {status}")))
}

impl Expected {
    /// The expected status for `setup`: from the cache when `settings.status_cache` allows and
    /// it has an entry, else from node (and then cached).
    ///
    /// # Errors
    /// As [`NodeSetup::expected_status`]; a config error when the status cache is on and this
    /// user's private directory is refused.
    pub async fn resolve(setup: &NodeSetup, settings: &Settings) -> Result<Expected> {
        // A refused private directory is an error here: a planted cache must be reported, not
        // silently skipped. (Without the cache, nothing is read from or written there.)
        let cache = match settings.status_cache {
            true => Some(StatusCache::private()?),
            false => None,
        };
        if let Some(cache) = &cache {
            if let Some(status) = cache.get(setup) {
                tracing::debug!(config = %setup.config.display(), "expected status read from the cache");
                return Ok(Expected {
                    setup: setup.clone(),
                    status,
                    source: Source::Cache,
                    timeout: settings.startup_timeout,
                });
            }
        }
        let status = setup.expected_status(false, settings.startup_timeout).await?;
        if let Some(cache) = &cache {
            cache.put(setup, &status);
        }
        Ok(Expected {
            setup: setup.clone(),
            status,
            source: Source::Node,
            timeout: settings.startup_timeout,
        })
    }

    /// The status hosts of the config report.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The status a manager started with the config reports.
    pub fn manager_status(&self) -> Status {
        manager_status_for(&self.status)
    }

    /// The config's URL (`http://ADDRESS:PORT`).
    ///
    /// # Errors
    /// A config error when the status has no usable port.
    pub fn url(&self) -> Result<String> {
        status_url(&self.status)
    }

    /// The config's port (0 when it has none).
    pub fn port(&self) -> u16 {
        self.status.port().unwrap_or_default()
    }

    /// Whether the status came from the cache (and so may be stale).
    pub fn is_cached(&self) -> bool {
        self.source == Source::Cache
    }

    /// Computes the status again with node when it came from the cache; `true` when it did (a
    /// caller that saw a mismatch then tries again), `false` when it was already fresh.
    ///
    /// # Errors
    /// As [`NodeSetup::expected_status`].
    pub async fn refresh(&mut self) -> Result<bool> {
        if self.source == Source::Node {
            return Ok(false);
        }
        tracing::debug!("the cached status does not match what runs; computing it again");
        self.status = self.setup.expected_status(false, self.timeout).await?;
        if let Ok(cache) = StatusCache::private() {
            cache.put(&self.setup, &self.status);
        }
        self.source = Source::Node;
        Ok(true)
    }

    /// Whether `live` is a host of this config. Behind `root_url`, hosts may run with `--port N`
    /// (several under a supervisor, or behind a proxy): then only the port may differ.
    pub fn matches(&self, live: &Status, any_port: bool) -> bool {
        if any_port {
            live.with_port(0) == self.status.with_port(0)
        } else {
            live == &self.status
        }
    }

    /// Why the process at `url` is not this config's host (`live`: what it reported, if anything).
    pub fn mismatch_error(&self, url: &str, live: Option<&Status>) -> Error {
        let config = self.setup.config.display();
        match live {
            None => Error::connection(format!(
                "nothing answers at {url}: start a host with `node {} {config}`, or use_manager(true) in development",
                self.setup.bin.display(),
            )),
            Some(status) if !status.is_supported_version() => Error::config(format!(
                "the js-host at {url} is version {}; this SDK speaks js-host 0.12.x",
                status.version()
            )),
            Some(status) => Error::config(format!(
                "the process at {url} is not the host for {config}: it reports {status}, expected {}",
                self.status
            )),
        }
        .with_url(url)
    }
}
