//! [`Backend`]: one host of a [`crate::JsHost`]: where it is, and how it is supervised.

use crate::batch::{one_json_value, AnswerSizes, BatchEndpoint, Batchers, Queued};
use bytes::Bytes;
use jshost_client::HttpClient;
use jshost_core::error::Build as _;
use jshost_core::{Error, ErrorKind, Result, Status};
use jshost_manager::{probe_status_with, status_url, HostInfo, ManagedConnection, NodeSetup, OwnedHost};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// How long to wait, after a connection error, for an owned host's exit to be noticed.
const CRASH_NOTICE_TIMEOUT: Duration = Duration::from_millis(500);
/// Batching: requests in flight per worker process of a host (batches of at least 16 calls
/// each: the host works on one while the next is encoded, sent and read).
const LANES_PER_WORKER: usize = 4;
/// Batching: requests in flight to a host reached at a root URL (see `Backend::lanes`).
const PROXIED_LANES: usize = 16;
/// How long reading a host's capabilities may take.
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(3);
/// A host's function list is re-read for an unknown name at most this often.
const REFRESH_EVERY_MS: u64 = 1_000;
/// Whether a managed host answers its status is asked at most this often (the calls that fail
/// together, all those in flight when it stopped, share one answer).
const PROBE_EVERY: Duration = Duration::from_millis(250);

/// What a handle's hosts serve, to re-read a host's functions and explain a stale host.
pub(crate) struct HostSetup {
    pub(crate) setup: NodeSetup,
    pub(crate) startup_timeout: Duration,
    /// `Settings::batch`.
    pub(crate) batch: bool,
}

/// Where a host answers and what it serves; replaced when a managed host comes back elsewhere.
pub(crate) struct Endpoint {
    pub(crate) url: String,
    pub(crate) status: Status,
    pub(crate) functions: HashSet<String>,
    pub(crate) logfile: Option<PathBuf>,
    /// The workers of a host whose jshost-node manager said how it runs it; `None`: ask the
    /// host (`/jshost/info`).
    workers: Option<usize>,
}

impl Endpoint {
    fn new(url: String, status: Status, logfile: Option<PathBuf>) -> Arc<Self> {
        Arc::new(Self::with_workers(url, status, logfile, None))
    }

    fn with_workers(url: String, status: Status, logfile: Option<PathBuf>, workers: Option<usize>) -> Self {
        Endpoint {
            functions: status.functions().into_iter().collect(),
            url,
            status,
            logfile,
            workers,
        }
    }

    /// A managed host as its manager describes it.
    fn managed(info: HostInfo) -> Result<Arc<Self>> {
        let (url, workers) = (status_url(&info.status)?, managed_workers(&info));
        Ok(Arc::new(Self::with_workers(
            url,
            info.status,
            Some(info.logfile),
            workers,
        )))
    }
}

/// How many workers a jshost-node manager runs the host with, from the `options` it reports (a
/// js-host manager reports none). Its hosts run its own package, which offers `/batch`. `"auto"`
/// is left to the host to say: Node counts the CPUs it may use otherwise than Rust does (CPU
/// quotas).
fn managed_workers(info: &HostInfo) -> Option<usize> {
    match info.options.as_ref()?.get("workers")? {
        serde_json::Value::Null => Some(1),
        n => n.as_u64().and_then(|n| usize::try_from(n).ok()),
    }
}

/// What keeps a host running.
pub(crate) enum Supervision {
    /// Someone else (systemd, PM2, a proxy's upstreams): nothing to do.
    External,
    /// A connection to a manager's host.
    Managed(ManagedConnection),
    /// A child of this process.
    Owned(OwnedHost),
}

/// One host: its endpoint, its supervision, and its load as the balancer sees it.
pub(crate) struct Backend {
    endpoint: RwLock<Arc<Endpoint>>,
    pub(crate) supervision: Supervision,
    pub(crate) in_flight: AtomicUsize,
    /// Milliseconds (on the balancer's clock) until which the backend is out of rotation.
    pub(crate) down_until_ms: AtomicU64,
    /// When the function list was last re-read (balancer clock, ms).
    refreshed_ms: AtomicU64,
    /// Set when the host offers `/batch` and batching is on.
    batching: RwLock<Option<Arc<Batching>>>,
    /// Reached at a `root_url`: maybe a balancer in front of several hosts.
    behind_url: std::sync::atomic::AtomicBool,
    /// When the host's status was last asked for after a connection error, and whether it
    /// answered.
    probed: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

/// A host's batchers, where their batches go, and which functions answer too much to batch.
pub(crate) struct Batching {
    batchers: Batchers,
    batch_endpoint: BatchEndpoint,
    answers: AnswerSizes,
}

impl Batching {
    /// A call on a host that offers batches: plain when nothing else is in flight, when its
    /// function's answers are not known to be small, when its body is not one JSON object or
    /// array, or when it would not fit in a batch; else queued for a batch (and plain after
    /// all when no batch takes it at once).
    async fn call(
        &self,
        client: &HttpClient,
        url: &str,
        name: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<String> {
        let batcher = match self.batchers.current() {
            Some(b) if self.answers.small(name) => b,
            _ => return client.call_function(url, name, body, timeout).await,
        };
        if let Some(_slot) = batcher.try_slot(&self.batch_endpoint) {
            return client.call_function(url, name, body, timeout).await;
        }
        if !self.batchers.fits(name, &body) || !one_json_value(&body) {
            return client.call_function(url, name, body, timeout).await;
        }
        let started = Instant::now();
        let deadline = started.checked_add(timeout);
        let name: Arc<str> = Arc::from(name);
        match batcher
            .call(&self.batch_endpoint, &name, &body, deadline, timeout)
            .await
        {
            Queued::Answered(result) => result,
            Queued::Plain => {
                let left = timeout.saturating_sub(started.elapsed());
                client.call_function(url, &name, body, left).await
            }
        }
    }
}

impl Backend {
    fn new(endpoint: Arc<Endpoint>, supervision: Supervision) -> Arc<Backend> {
        Arc::new(Backend {
            endpoint: RwLock::new(endpoint),
            supervision,
            in_flight: AtomicUsize::new(0),
            down_until_ms: AtomicU64::new(0),
            refreshed_ms: AtomicU64::new(0),
            batching: RwLock::new(None),
            behind_url: std::sync::atomic::AtomicBool::new(false),
            probed: tokio::sync::Mutex::new(None),
        })
    }

    /// A host someone else runs, at `url`, reporting `status`.
    pub(crate) fn external(url: String, status: Status, behind_url: bool) -> Arc<Backend> {
        let backend = Self::new(Endpoint::new(url, status, None), Supervision::External);
        if behind_url {
            backend.behind_url.store(true, Ordering::Relaxed);
        }
        backend
    }

    /// A managed host, through `connection`.
    pub(crate) fn managed(connection: ManagedConnection, info: HostInfo) -> Result<Arc<Backend>> {
        Ok(Self::new(
            Endpoint::managed(info)?,
            Supervision::Managed(connection),
        ))
    }

    /// A host owned by this process.
    pub(crate) fn owned(host: OwnedHost) -> Result<Arc<Backend>> {
        let url = match host.socket() {
            Some(socket) => jshost_client::socket_url(&socket),
            None => status_url(host.status())?,
        };
        let logfile = host.logfile().map(Path::to_path_buf);
        let endpoint = Endpoint::new(url, host.status().clone(), logfile);
        Ok(Self::new(endpoint, Supervision::Owned(host)))
    }

    pub(crate) fn endpoint(&self) -> Arc<Endpoint> {
        self.endpoint
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_endpoint(&self, endpoint: Arc<Endpoint>) {
        *self
            .endpoint
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = endpoint;
    }

    /// Takes the backend out of rotation until [`Backend::put_in_rotation`].
    pub(crate) fn take_out_of_rotation(&self) {
        self.down_until_ms.store(u64::MAX, Ordering::Relaxed);
    }

    /// Puts the backend back in rotation.
    pub(crate) fn put_in_rotation(&self) {
        self.down_until_ms.store(0, Ordering::Relaxed);
    }

    /// Takes `live` as the host's status (same URL and logfile): a compatible host restarted
    /// with other functions.
    pub(crate) fn adopt(&self, live: Status) {
        let endpoint = self.endpoint();
        let (url, logfile) = (endpoint.url.clone(), endpoint.logfile.clone());
        self.set_endpoint(Arc::new(Endpoint::with_workers(
            url,
            live,
            logfile,
            endpoint.workers,
        )));
    }

    /// The process id of an owned host.
    pub(crate) fn pid(&self) -> Option<u32> {
        match &self.supervision {
            Supervision::Owned(o) => o.pid(),
            _ => None,
        }
    }

    /// Calls `name` on this host, within `timeout`. `plain`: never batched (a call sent again).
    pub(crate) async fn call(
        &self,
        client: &HttpClient,
        host_setup: &HostSetup,
        name: &str,
        body: Bytes,
        timeout: Duration,
        plain: bool,
    ) -> Result<String> {
        let mut endpoint = self.endpoint();
        // The rare paths' futures are boxed: inline, they would make the state machine of every
        // call in flight several KB larger (balance.rs tests the bound).
        if !endpoint.functions.contains(name) {
            endpoint = Box::pin(self.refresh_for(client, host_setup, name)).await?;
        }
        if let Supervision::Owned(o) = &self.supervision {
            if let Some(exit) = o.exited() {
                return Err(o.crash_error(&exit).with_function(name).with_not_sent());
            }
        }
        let span = tracing::Span::current();
        if !span.is_disabled() {
            // Worked out only when a subscriber listens (a socket URL is decoded for people).
            span.record("url", jshost_client::display_url(&endpoint.url).as_ref());
        }
        let batching = if plain { None } else { self.batching() };
        let result = match &batching {
            Some(b) => Box::pin(b.call(client, &endpoint.url, name, body, timeout)).await,
            None => client.call_function(&endpoint.url, name, body, timeout).await,
        };
        if let (Some(b), Ok(answer)) = (&batching, &result) {
            b.answers.record(name, answer.len());
        }
        match result {
            Ok(answer) => Ok(answer),
            Err(e) if e.is_connection() && !jshost_client::is_not_run(&e) => {
                Err(Box::pin(self.explain_connection_error(client, e, &endpoint)).await)
            }
            Err(e) => Err(with_logfile(e, &endpoint)),
        }
    }

    /// Requests the batcher keeps in flight: [`LANES_PER_WORKER`] per worker of the host; behind
    /// a root URL (maybe a balancer of several hosts, which the SDK cannot see) at least
    /// [`PROXIED_LANES`], so that every host behind it gets work.
    fn lanes(&self, workers: usize) -> usize {
        let own = LANES_PER_WORKER * workers.max(1);
        if self.behind_url.load(Ordering::Relaxed) {
            own.max(PROXIED_LANES)
        } else {
            own
        }
    }

    fn batching(&self) -> Option<Arc<Batching>> {
        self.batching
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reads what the host offers (`GET /jshost/info`, jshost-node only) and turns batching on
    /// when it offers `/batch` and `enabled`; js-host answers 404 and is called as always.
    pub(crate) async fn discover(&self, client: &HttpClient, enabled: bool) {
        let endpoint = self.endpoint();
        let (offers_batch, workers) = match endpoint.workers {
            // Its jshost-node manager said (no request to the host: the first call opens the
            // connection).
            Some(workers) => (true, workers),
            None => ask_capabilities(client, &endpoint.url).await,
        };
        let batching = (enabled && offers_batch).then(|| {
            let limit = endpoint.status.request_data_limit().unwrap_or(100 * 1024);
            Arc::new(Batching {
                batchers: Batchers::new(self.lanes(workers), workers, limit),
                batch_endpoint: BatchEndpoint {
                    client: client.clone(),
                    url: endpoint.url.clone(),
                },
                answers: AnswerSizes::default(),
            })
        });
        tracing::debug!(url = %endpoint.url, batching = batching.is_some(), workers, "host capabilities");
        *self
            .batching
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = batching;
    }

    /// For a function this handle does not know: re-reads the host's status (at most once a
    /// second) and takes it when the host has the function now (a compatible host restarted
    /// with more functions). Otherwise, when the config now has the function, the host was
    /// started from an older version of it: the error says so, and how to restart it.
    async fn refresh_for(
        &self,
        client: &HttpClient,
        host_setup: &HostSetup,
        name: &str,
    ) -> Result<Arc<Endpoint>> {
        let endpoint = self.endpoint();
        let now = now_ms();
        let last = self.refreshed_ms.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < REFRESH_EVERY_MS {
            return Err(unknown_function(&endpoint, name));
        }
        self.refreshed_ms.store(now.max(1), Ordering::Relaxed);
        if let Ok(Some(live)) = probe_status_with(client, &endpoint.url).await {
            if live.has_function(name) && compatible(&live, &endpoint.status) {
                tracing::info!(url = %endpoint.url, function = name, "the host serves more functions now");
                self.adopt(live);
                return Ok(self.endpoint());
            }
        }
        match host_setup
            .setup
            .expected_status(false, host_setup.startup_timeout)
            .await
        {
            Ok(now) if now.has_function(name) => Err(stale_host(&endpoint, &host_setup.setup, name)),
            _ => Err(unknown_function(&endpoint, name)),
        }
    }

    /// Turns a connection error into a process error when the host this SDK supervises is gone:
    /// an owned host that exited, a managed host whose status no longer answers. A host that
    /// still answers keeps the error as it was ("the connection closed before the answer":
    /// jshost-node replaced a process whose call ran away, say).
    async fn explain_connection_error(&self, client: &HttpClient, err: Error, endpoint: &Endpoint) -> Error {
        let not_sent = err.is_not_sent();
        let explained = match &self.supervision {
            Supervision::Owned(o) => match o.wait_exit(CRASH_NOTICE_TIMEOUT).await {
                Some(exit) => o.crash_error(&exit),
                None => return with_logfile(err, endpoint),
            },
            Supervision::Managed(m) => {
                if self.answers_status(client, &endpoint.url).await {
                    return with_logfile(err, endpoint);
                }
                let logfile = endpoint.logfile.clone().unwrap_or_default();
                Error::process(format!(
                    "the managed js-host for {} at {} is not answering: it has crashed or been stopped; \
                     see its logfile {} (host.restart() starts it again)",
                    m.config().display(),
                    endpoint.url,
                    logfile.display()
                ))
                .with_url(endpoint.url.as_str())
                .with_logfile(logfile)
            }
            Supervision::External => return err,
        };
        let explained = match err.function_name() {
            Some(f) => explained.with_function(f),
            None => explained,
        };
        let explained = if not_sent {
            explained.with_not_sent()
        } else {
            explained
        };
        explained.with_source(err)
    }

    /// Whether the host answers `GET /status` (asked once for the calls failing together).
    async fn answers_status(&self, client: &HttpClient, url: &str) -> bool {
        let mut probed = self.probed.lock().await;
        if let Some((at, answered)) = *probed {
            if at.elapsed() < PROBE_EVERY {
                return answered;
            }
        }
        let answered = matches!(probe_status_with(client, url).await, Ok(Some(_)));
        *probed = Some((Instant::now(), answered));
        answered
    }

    /// Restarts a managed or owned host (same port and logfile, fresh JavaScript state).
    pub(crate) async fn restart(&self) -> Result<()> {
        match &self.supervision {
            Supervision::Managed(m) => {
                let info = m.restart().await?;
                tracing::info!(url = ?info.status.url(), logfile = %info.logfile.display(), "managed js-host restarted");
                self.set_endpoint(Endpoint::managed(info)?);
                Ok(())
            }
            Supervision::Owned(o) => o.restart().await,
            Supervision::External => Err(self.not_ours("restart")),
        }
    }

    /// Stops a managed or owned host now.
    pub(crate) async fn stop(&self) -> Result<()> {
        match &self.supervision {
            Supervision::Managed(m) => {
                m.stop().await?;
                tracing::info!(url = %self.endpoint().url, "managed js-host stopped");
                Ok(())
            }
            Supervision::Owned(o) => {
                o.stop().await;
                Ok(())
            }
            Supervision::External => Err(self.not_ours("stop")),
        }
    }

    /// Closes a managed connection; stops an owned host; nothing for an external one.
    pub(crate) async fn disconnect(&self) -> Result<()> {
        match &self.supervision {
            Supervision::Managed(m) => m.close().await,
            Supervision::Owned(o) => {
                o.stop().await;
                Ok(())
            }
            Supervision::External => Ok(()),
        }
    }

    fn not_ours(&self, verb: &str) -> Error {
        Error::config(format!(
            "the host at {} was not started by jshost; {verb} it with its supervisor",
            self.endpoint().url
        ))
    }
}

/// Whether the host at `url` offers `/batch`, and its workers, from its `/jshost/info` (none,
/// from js-host 0.12: no batches, one process).
async fn ask_capabilities(client: &HttpClient, url: &str) -> (bool, usize) {
    let info = match client.get(&format!("{url}/jshost/info"), DISCOVER_TIMEOUT).await {
        Ok(r) if r.status == 200 => serde_json::from_slice::<serde_json::Value>(&r.body).ok(),
        _ => None,
    };
    let Some(info) = info else { return (false, 1) };
    let features = info["features"].as_array();
    let batch = features.is_some_and(|f| f.iter().any(|v| v.as_str() == Some("batch")));
    let workers = info["workers"]
        .as_u64()
        .map_or(1, |w| usize::try_from(w).unwrap_or(1));
    (batch, workers)
}

/// `e` with the host's logfile, when the SDK knows it and the error concerns the host.
fn with_logfile(e: Error, endpoint: &Endpoint) -> Error {
    match &endpoint.logfile {
        Some(logfile) if e.logfile().is_none() => e.with_logfile(logfile.clone()),
        _ => e,
    }
}

/// Whether two statuses describe hosts of one config, whatever their functions and ports.
pub(crate) fn compatible(a: &Status, b: &Status) -> bool {
    let strip = |s: &Status| {
        let mut v = s.with_port(0).as_value().clone();
        if let Some(config) = v.get_mut("config").and_then(|c| c.as_object_mut()) {
            config.remove("functions");
        }
        v
    };
    strip(a) == strip(b)
}

fn stale_host(endpoint: &Endpoint, setup: &NodeSetup, name: &str) -> Error {
    Error::new(
        ErrorKind::UnknownFunction,
        format!(
            "the host at {} was started from an older version of {} (or of a file it requires): \
             the config has a function named {name:?} now, the host does not; restart it \
             (host.restart() or `jshost host restart` for a host jshost started, else its \
             supervisor); nothing was sent",
            endpoint.url,
            setup.config.display()
        ),
    )
    .with_function(name)
    .with_url(endpoint.url.as_str())
}

fn unknown_function(endpoint: &Endpoint, name: &str) -> Error {
    let mut known: Vec<&str> = endpoint.functions.iter().map(String::as_str).collect();
    known.sort_unstable();
    Error::new(
        ErrorKind::UnknownFunction,
        format!(
            "the host at {} has no function named {name:?} (it has: {}); nothing was sent",
            endpoint.url,
            known.join(", ")
        ),
    )
    .with_function(name)
    .with_url(endpoint.url.as_str())
}

/// Each backend's URL (as people read it) and `client`'s connections to it, over every runtime.
/// (For `JsHost::pool_status`.)
pub(crate) fn pool_status(
    backends: &[Arc<Backend>],
    client: &HttpClient,
) -> Vec<(String, jshost_client::PoolStatus)> {
    backends
        .iter()
        .map(|b| {
            let url = b.endpoint().url.clone();
            let status = client.pool_status(&url);
            (jshost_client::display_url(&url).into_owned(), status)
        })
        .collect()
}

/// Milliseconds on the balancer's clock.
pub(crate) fn now_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(std::time::Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Counts a call in flight on a backend until dropped.
pub(crate) struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    pub(crate) fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
