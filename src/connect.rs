//! Reaching the hosts for a `Settings`: direct, managed and owned backends.

use crate::backend::Backend;
use jshost_client::HttpClient;
use jshost_core::error::Build as _;
use jshost_core::{Error, Result, Settings, Status};
use jshost_manager::{probe_status_with, Connected, Expected, ManagedConnection, NodeSetup, OwnedHost};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often a member of `root_urls` that did not answer at connect is tried again.
const RETRY_MEMBER: Duration = Duration::from_millis(500);

/// The backends `JsHost::connect` reaches: the running hosts at `root_urls` (or the config's
/// address), or a managed host.
pub(crate) async fn connect(
    settings: &Settings,
    setup: &NodeSetup,
    client: &HttpClient,
) -> Result<Vec<Arc<Backend>>> {
    if settings.use_manager {
        return Ok(vec![managed(settings, setup).await?]);
    }
    // One expected status for every URL: computed (or read from the cache) once.
    let mut expected = Expected::resolve(setup, settings).await?;
    match settings.root_urls.as_slice() {
        [] => Ok(vec![direct(&mut expected, client, None).await?]),
        [url] => Ok(vec![direct(&mut expected, client, Some(url)).await?]),
        urls => several(&mut expected, client, urls, settings.batch).await,
    }
}

/// The hosts at `urls`: those that answer with the expected status now, and the others, out of
/// rotation until they do (tried again in the background). Fails only when none answers.
async fn several(
    expected: &mut Expected,
    client: &HttpClient,
    urls: &[String],
    batch: bool,
) -> Result<Vec<Arc<Backend>>> {
    let mut backends = Vec::with_capacity(urls.len());
    let mut failures = Vec::new();
    for url in urls {
        match direct(expected, client, Some(url)).await {
            Ok(backend) => backends.push(backend),
            Err(e) => {
                tracing::warn!(%url, error = %e, "a host of root_urls does not answer as expected; it joins when it does");
                failures.push(format!("{url}: {e}"));
                backends.push(pending(url, expected, client, batch));
            }
        }
    }
    if failures.len() == urls.len() {
        return Err(Error::connection(format!(
            "none of the hosts of root_urls answers with the status of {}: {}",
            urls.join(", "),
            failures.join("; ")
        )));
    }
    Ok(backends)
}

/// A host of `root_urls` that did not answer: out of rotation, and watched until it answers.
fn pending(url: &str, expected: &Expected, client: &HttpClient, batch: bool) -> Arc<Backend> {
    let backend = Backend::external(url.to_owned(), expected.status().clone(), true);
    backend.take_out_of_rotation();
    let watched = Arc::downgrade(&backend);
    let (url, expected, client) = (url.to_owned(), expected.clone(), client.clone());
    jshost_client::driver::spawn(watch_member(watched, url, expected, client, batch));
    backend
}

async fn watch_member(
    backend: Weak<Backend>,
    url: String,
    expected: Expected,
    client: HttpClient,
    batch: bool,
) {
    loop {
        tokio::time::sleep(RETRY_MEMBER).await;
        let Some(backend) = backend.upgrade() else { return };
        if let Ok(Some(live)) = probe_status_with(&client, &url).await {
            if expected.matches(&live, true) {
                tracing::info!(%url, "a host of root_urls answers now; it joins the rotation");
                backend.adopt(live);
                backend.discover(&client, batch).await;
                backend.put_in_rotation();
                return;
            }
        }
    }
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
        let live: Option<Status> = probe_status_with(client, &url).await?;
        match live {
            Some(live) if expected.matches(&live, root_url.is_some()) => {
                tracing::debug!(%url, "the host's status matches the config");
                return Ok(Backend::external(url, live, root_url.is_some()));
            }
            _ if expected.refresh().await? => continue,
            live => return Err(expected.mismatch_error(&url, live.as_ref())),
        }
    }
}

/// Reuses or starts the config's manager, then its host, and opens a connection to it.
async fn managed(settings: &Settings, setup: &NodeSetup) -> Result<Arc<Backend>> {
    match ManagedConnection::connect(settings, setup).await? {
        Connected::Direct { url, status } => {
            tracing::info!(%url, "a host for the config already answers; using it directly");
            Ok(Backend::external(url, status, false))
        }
        Connected::Managed(connection, info) => {
            tracing::info!(url = ?info.status.url(), logfile = %info.logfile.display(), "connected to the managed js-host");
            Backend::managed(*connection, info)
        }
    }
}

/// Refuses the settings only the other constructor takes (`spawn`: `JsHost::spawn`, else
/// `JsHost::connect`), naming what to use instead: checked once, before anything starts.
pub(crate) fn check_constructor(settings: &Settings, spawn: bool) -> Result<()> {
    let refused = if spawn && !settings.root_urls.is_empty() {
        "root_url cannot be combined with JsHost::spawn: an owned host listens on a port the OS picks"
    } else if spawn && settings.use_manager {
        "use_manager cannot be combined with JsHost::spawn: the host is owned by this process"
    } else if !spawn && settings.owned_hosts > 1 && settings.use_manager {
        "owned_hosts(n) cannot be combined with use_manager: a manager runs one host per config file \
         (use JsHost::spawn for several owned hosts)"
    } else if !spawn && settings.owned_hosts > 1 {
        "owned_hosts(n) starts hosts owned by this process: use JsHost::spawn, or list running hosts with root_urls"
    } else {
        return Ok(());
    };
    Err(Error::config(refused))
}

/// Starts `settings.owned_hosts` owned hosts (at least one), concurrently.
pub(crate) async fn spawn(settings: &Settings) -> Result<Vec<Arc<Backend>>> {
    let mut starting = tokio::task::JoinSet::new();
    for _ in 0..settings.owned_hosts.max(1) {
        let settings = settings.clone();
        starting.spawn(async move { OwnedHost::spawn(&settings).await });
    }
    let mut backends = Vec::with_capacity(settings.owned_hosts.max(1));
    while let Some(joined) = starting.join_next().await {
        let host = joined.map_err(|e| Error::process("a host start-up task failed").with_source(e))??;
        backends.push(Backend::owned(host)?);
    }
    Ok(backends)
}
