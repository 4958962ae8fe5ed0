//! Reaching the hosts for a `Settings`: direct, managed and owned backends.

use crate::backend::Backend;
use jshost_client::HttpClient;
use jshost_core::{Error, Result, Settings};
use jshost_manager::{
    locate_manager, probe_status, Expected, Located, ManagedConnection, NodeSetup, OwnedHost,
};
use std::sync::Arc;

/// The backends `JsHost::connect` reaches: the running hosts at `root_urls` (or the config's
/// address), or a managed host.
pub(crate) async fn connect(
    settings: &Settings,
    setup: &NodeSetup,
    client: &HttpClient,
) -> Result<Vec<Arc<Backend>>> {
    if settings.hosts > 1 {
        return Err(Error::config(
            "hosts(n) starts owned hosts: use JsHost::spawn, or list running hosts with root_urls",
        ));
    }
    if settings.use_manager {
        return Ok(vec![managed(settings, setup).await?]);
    }
    // One expected status for every URL: computed (or read from the cache) once.
    let mut expected = Expected::resolve(setup, settings).await?;
    if settings.root_urls.is_empty() {
        return Ok(vec![direct(&mut expected, client, None).await?]);
    }
    let mut backends = Vec::with_capacity(settings.root_urls.len());
    for url in &settings.root_urls {
        backends.push(direct(&mut expected, client, Some(url)).await?);
    }
    Ok(backends)
}

/// The host at `root_url` (or the config's address) that reports the expected status; a cached
/// expected status that does not match is computed again (and stays fresh for later URLs).
async fn direct(
    expected: &mut Expected,
    client: &HttpClient,
    root_url: Option<&str>,
) -> Result<Arc<Backend>> {
    loop {
        let url = match root_url {
            Some(url) => url.to_owned(),
            None => expected.url()?,
        };
        let live = probe_status(client, &url).await?;
        match live {
            Some(live) if expected.matches(&live, root_url.is_some()) => {
                tracing::debug!(%url, "the host's status matches the config");
                return Ok(Backend::external(url, live));
            }
            _ if expected.refresh().await? => continue,
            live => return Err(expected.mismatch_error(&url, live.as_ref())),
        }
    }
}

/// Reuses or starts the config's manager, then its host, and opens a connection to it.
async fn managed(settings: &Settings, setup: &NodeSetup) -> Result<Arc<Backend>> {
    match locate_manager(settings, setup, true).await? {
        Located::Host { url, status } => {
            tracing::info!(%url, "a host for the config already answers; using it directly");
            Ok(Backend::external(url, status))
        }
        Located::Manager { manager, expected } => {
            let (connection, info) =
                ManagedConnection::open(manager, &setup.config, &settings.path_to_node, &expected).await?;
            tracing::info!(url = ?info.status.url(), logfile = %info.logfile.display(), "connected to the managed js-host");
            Backend::managed(connection, info)
        }
    }
}

/// Starts `settings.hosts` owned hosts (at least one), concurrently.
pub(crate) async fn spawn(settings: &Settings) -> Result<Vec<Arc<Backend>>> {
    if !settings.root_urls.is_empty() {
        return Err(Error::config(
            "root_url cannot be combined with JsHost::spawn: an owned host listens on a port the OS picks",
        ));
    }
    if settings.use_manager {
        return Err(Error::config(
            "use_manager cannot be combined with JsHost::spawn: the host is owned by this process",
        ));
    }
    let mut starting = tokio::task::JoinSet::new();
    for _ in 0..settings.hosts.max(1) {
        let settings = settings.clone();
        starting.spawn(async move { OwnedHost::spawn(&settings).await });
    }
    let mut backends = Vec::with_capacity(settings.hosts.max(1));
    while let Some(joined) = starting.join_next().await {
        let host = joined.map_err(|e| Error::process("a host start-up task failed").with_source(e))??;
        backends.push(Backend::owned(host)?);
    }
    Ok(backends)
}
