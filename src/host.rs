//! [`JsHost`]: a connection to one js-host, direct, managed or owned.

use crate::pool::Pool;
use crate::Function;
use bytes::Bytes;
use jshost_client::{CallOptions, HttpClient};
use jshost_core::{Error, ErrorKind, Result, Settings, Status};
use jshost_manager::manager::{locate_manager, Located};
use jshost_manager::node::{expected_host_status, NodeSetup, StatusCache, StatusSource};
use jshost_manager::{probe_status, watchdog, Manager, OwnedHost};
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long to wait, after a connection error, for an owned host's exit to be noticed.
const CRASH_NOTICE_TIMEOUT: Duration = Duration::from_millis(500);

/// A handle to one js-host process, and the connection pool to it.
///
/// Cheap to clone (`Arc` inside; no need to wrap it in an `Arc`), `Send + Sync`: put it in your
/// axum state or share it between tasks. Clones share one keep-alive connection pool.
///
/// - [`JsHost::connect`] reaches a host the way the settings say: a host already running at the
///   config's address (or `root_url`), or, with `use_manager(true)`, a host started (or reused)
///   by a detached js-host manager that keeps it warm across restarts of your program.
/// - [`JsHost::spawn`] starts a host owned by this process, which ends with it.
#[derive(Clone)]
pub struct JsHost {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where the host is; replaced when a crashed managed host is started again elsewhere.
    endpoint: RwLock<Arc<Endpoint>>,
    config_file: PathBuf,
    client: HttpClient,
    function_timeout: Duration,
    mode: Mode,
}

struct Endpoint {
    url: String,
    status: Status,
    functions: HashSet<String>,
    logfile: Option<PathBuf>,
}

impl Endpoint {
    fn new(url: String, status: Status, logfile: Option<PathBuf>) -> Arc<Self> {
        Arc::new(Endpoint {
            functions: status.functions().into_iter().collect(),
            url,
            status,
            logfile,
        })
    }
}

enum Mode {
    Direct,
    Managed(Managed),
    Owned(OwnedHost),
    /// Several hosts serving the same config; calls are spread over them.
    Pool(Pool),
}

struct Managed {
    manager: Manager,
    node: PathBuf,
    manager_config: PathBuf,
    connection: Mutex<Option<String>>,
}

impl fmt::Debug for JsHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.inner.mode {
            Mode::Direct => "direct",
            Mode::Managed(_) => "managed",
            Mode::Owned(_) => "owned",
            Mode::Pool(_) => "pool",
        };
        f.debug_struct("JsHost")
            .field("url", &self.endpoint().url)
            .field("mode", &mode)
            .field("config_file", &self.inner.config_file)
            .field("logfile", &self.logfile())
            .finish()
    }
}

impl JsHost {
    /// Connects to the host for `settings`.
    ///
    /// Without the manager: computes the status js-host would report for the config file
    /// (`js-host CONFIG --config`, cached between runs), and requires that the host answering at
    /// `root_url` (or the config's address and port) reports exactly that.
    ///
    /// With `use_manager(true)`: reuses a running manager at the config's address and port (or
    /// starts a detached one), reuses or starts the host for the config file, and opens a
    /// connection, which is closed by [`JsHost::disconnect`], or when the last clone is dropped,
    /// or when this process exits.
    ///
    /// # Errors
    /// Config errors (invalid settings, missing node / js-host / config file, a config file that
    /// does not load, a js-host version other than 0.12.x, another program on the port);
    /// a connection error naming the URL when nothing answers (without the manager); process
    /// errors when a manager or host cannot start.
    ///
    /// # Cancel safety
    /// Dropping the future before it completes may leave a started manager or host running (the
    /// manager stops hosts that get no connection only when asked).
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo() -> Result<(), jshost::Error> {
    /// let host = jshost::JsHost::connect(jshost::Settings::default().use_manager(true)).await?;
    /// println!("{}", host.function("hello_world").call(&()).await?);
    /// # Ok(()) }
    /// ```
    pub async fn connect(settings: Settings) -> Result<JsHost> {
        let started = Instant::now();
        let setup = NodeSetup::check(&settings)?;
        if settings.hosts > 1 {
            return Err(Error::config(
                "hosts(n) starts owned hosts: use JsHost::spawn, or list running hosts with root_urls",
            ));
        }
        let host = if settings.use_manager {
            connect_managed(&settings, &setup, HttpClient::new()).await?
        } else {
            // One expected status for every URL: computed (or read from the cache) once.
            let (status, source) =
                expected_host_status(&setup, settings.status_cache, settings.startup_timeout).await?;
            let mut expected = Expected { status, source };
            if settings.root_urls.len() > 1 {
                let mut members = Vec::with_capacity(settings.root_urls.len());
                for url in &settings.root_urls {
                    members.push(connect_direct(&settings, &setup, Some(url), &mut expected).await?);
                }
                tracing::info!(hosts = members.len(), "connected to a pool of js-hosts");
                JsHost::pool(&settings, members)
            } else {
                let url = settings.root_urls.first().map(String::as_str);
                connect_direct(&settings, &setup, url, &mut expected).await?
            }
        };
        tracing::info!(
            url = %host.url(),
            config = %setup.config.display(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "connected to js-host"
        );
        Ok(host)
    }

    /// Starts a js-host owned by this process (`node js-host.js CONFIG --port 0 --json --logfile
    /// FILE`) and connects to it.
    ///
    /// The child is killed when the last clone is dropped, and exits by itself if this process
    /// dies (even by SIGKILL). If it crashes, calls fail fast with a process error naming its exit
    /// status and logfile; [`JsHost::restart`] starts it again on the same port.
    ///
    /// # Errors
    /// Config errors as for [`JsHost::connect`]; a process error with the exit status and stderr
    /// tail when the host exits during start-up; a timeout error after `startup_timeout`.
    ///
    /// # Cancel safety
    /// Dropping the future kills the host being started.
    pub async fn spawn(settings: Settings) -> Result<JsHost> {
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
        if settings.hosts > 1 {
            let mut starting = tokio::task::JoinSet::new();
            for _ in 0..settings.hosts {
                starting.spawn(Self::spawn_one(settings.clone()));
            }
            let mut members = Vec::with_capacity(settings.hosts);
            while let Some(joined) = starting.join_next().await {
                let host =
                    joined.map_err(|e| Error::process("a host start-up task failed").with_source(e))??;
                members.push(host);
            }
            tracing::info!(hosts = members.len(), "spawned a pool of owned js-hosts");
            return Ok(JsHost::pool(&settings, members));
        }
        Self::spawn_one(settings).await
    }

    async fn spawn_one(settings: Settings) -> Result<JsHost> {
        let owned = OwnedHost::spawn(&settings).await?;
        let status = owned.status().clone();
        let url = status_url(&status)?;
        let endpoint = Endpoint::new(url, status, Some(owned.logfile().to_path_buf()));
        Ok(JsHost::new(
            &settings,
            endpoint,
            owned.config_file().to_path_buf(),
            HttpClient::new(),
            Mode::Owned(owned),
        ))
    }

    fn new(
        settings: &Settings,
        endpoint: Arc<Endpoint>,
        config_file: PathBuf,
        client: HttpClient,
        mode: Mode,
    ) -> Self {
        JsHost {
            inner: Arc::new(Inner {
                endpoint: RwLock::new(endpoint),
                config_file,
                client,
                function_timeout: settings.function_timeout,
                mode,
            }),
        }
    }

    /// A pool of `members` (callers pass two or more).
    fn pool(settings: &Settings, members: Vec<JsHost>) -> JsHost {
        let first = &members[0];
        let endpoint = first.endpoint();
        let config_file = first.inner.config_file.clone();
        let client = first.inner.client.clone();
        JsHost::new(
            settings,
            endpoint,
            config_file,
            client,
            Mode::Pool(Pool::new(members)),
        )
    }

    /// The hosts calls are spread over: several for a pool (`hosts(n)` or `root_urls`), else
    /// this one.
    pub fn hosts(&self) -> Vec<JsHost> {
        match &self.inner.mode {
            Mode::Pool(pool) => pool.hosts().cloned().collect(),
            _ => vec![self.clone()],
        }
    }

    fn endpoint(&self) -> Arc<Endpoint> {
        match self.inner.endpoint.read() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_endpoint(&self, endpoint: Arc<Endpoint>) {
        match self.inner.endpoint.write() {
            Ok(mut e) => *e = endpoint,
            Err(poisoned) => *poisoned.into_inner() = endpoint,
        }
    }

    /// The root URL requests are sent to (`http://127.0.0.1:9009`, or `root_url`).
    pub fn url(&self) -> String {
        self.endpoint().url.clone()
    }

    /// The URL of `path` on the host: `url_for("function/echo")` is `{url}/function/echo`.
    pub fn url_for(&self, path: &str) -> String {
        format!("{}/{}", self.endpoint().url, path.trim_start_matches('/'))
    }

    /// The status the host reported when this handle connected (or restarted it).
    pub fn status(&self) -> Status {
        self.endpoint().status.clone()
    }

    /// The absolute path of the config file.
    pub fn config_file(&self) -> &Path {
        &self.inner.config_file
    }

    /// The names of the functions the host serves.
    pub fn functions(&self) -> Vec<String> {
        self.endpoint().status.functions()
    }

    /// The manager of a managed host.
    pub fn manager(&self) -> Option<&Manager> {
        match &self.inner.mode {
            Mode::Managed(m) => Some(&m.manager),
            _ => None,
        }
    }

    /// The logfile of a managed or owned host (`tail -f` it to watch the host).
    pub fn logfile(&self) -> Option<PathBuf> {
        self.endpoint().logfile.clone()
    }

    /// The process id of an owned host.
    pub fn pid(&self) -> Option<u32> {
        match &self.inner.mode {
            Mode::Owned(o) => o.pid(),
            Mode::Pool(pool) => pool.hosts().next().and_then(JsHost::pid),
            _ => None,
        }
    }

    /// The connection id a managed host knows this handle by (`None` once disconnected).
    pub fn connection_id(&self) -> Option<String> {
        match &self.inner.mode {
            Mode::Managed(m) => lock(&m.connection).clone(),
            _ => None,
        }
    }

    /// A [`Function`] of this host. The name is checked when it is called.
    pub fn function(&self, name: &str) -> Function {
        Function::on(self.clone(), name)
    }

    /// Asks the host for its status now; `None` when nothing (or no js-host) answers.
    pub async fn request_status(&self) -> Option<Status> {
        probe_status(&self.inner.client, &self.endpoint().url)
            .await
            .ok()
            .flatten()
    }

    /// Whether a host with the expected status answers at the URL.
    pub async fn is_running(&self) -> bool {
        self.request_status().await.as_ref() == Some(&self.endpoint().status)
    }

    /// Restarts a managed or owned host: same port and logfile, fresh JavaScript state.
    ///
    /// A managed host that crashed or was stopped is no longer known to its manager: it is
    /// started again (on a new port, with a new logfile) and this handle reconnects to it.
    ///
    /// # Errors
    /// A config error for a host this SDK did not start; process errors from the restart.
    pub async fn restart(&self) -> Result<()> {
        match &self.inner.mode {
            Mode::Managed(m) => {
                let config = self.inner.config_file.as_path();
                let info = match m.manager.restart_host(config).await {
                    Ok(info) => info,
                    Err(e) if e.body().map(|b| b.contains("No known host")).unwrap_or(false) => {
                        m.manager.ensure_host(config).await?;
                        let connection = m.manager.open_connection(config).await?;
                        watchdog::register(&m.node, m.manager.url(), config, &connection.id);
                        let old = lock(&m.connection).replace(connection.id);
                        if let Some(old) = old {
                            watchdog::unregister(&m.node, &old);
                        }
                        connection.host
                    }
                    Err(e) => return Err(e),
                };
                let url = status_url(&info.status)?;
                tracing::info!(%url, logfile = %info.logfile.display(), "managed js-host restarted");
                self.set_endpoint(Endpoint::new(url, info.status, Some(info.logfile)));
                Ok(())
            }
            Mode::Owned(o) => o.restart().await,
            Mode::Pool(pool) => {
                for host in pool.hosts() {
                    Box::pin(host.restart()).await?;
                }
                pool.reset_rotation();
                Ok(())
            }
            Mode::Direct => Err(self.not_ours("restart")),
        }
    }

    /// Stops a managed or owned host now (other connections to a managed host lose it too).
    ///
    /// # Errors
    /// A config error for a host this SDK did not start; a process error when the manager no
    /// longer knows the host.
    pub async fn stop(&self) -> Result<()> {
        match &self.inner.mode {
            Mode::Managed(m) => {
                let id = lock(&m.connection).take();
                if let Some(id) = id {
                    watchdog::unregister(&m.node, &id);
                }
                m.manager.stop_host(&self.inner.config_file).await?;
                tracing::info!(url = %self.endpoint().url, "managed js-host stopped");
                Ok(())
            }
            Mode::Owned(o) => {
                o.stop().await;
                Ok(())
            }
            Mode::Pool(pool) => {
                for host in pool.hosts() {
                    Box::pin(host.stop()).await?;
                }
                Ok(())
            }
            Mode::Direct => Err(self.not_ours("stop")),
        }
    }

    /// Closes this handle's connection to a managed host (the manager stops the host a few
    /// seconds after its last connection closes); stops an owned host; does nothing for a
    /// direct host. Clones of this handle can no longer call functions of a managed host after
    /// it stopped.
    ///
    /// # Errors
    /// Connection errors when the manager does not answer.
    pub async fn disconnect(&self) -> Result<()> {
        match &self.inner.mode {
            Mode::Managed(m) => {
                let id = lock(&m.connection).take();
                if let Some(id) = id {
                    let answer = m.manager.close_connection(&self.inner.config_file, &id).await?;
                    watchdog::unregister(&m.node, &id);
                    tracing::info!(connection = %id, stop_timeout_ms = answer.stop_timeout, "disconnected from the managed js-host");
                }
                Ok(())
            }
            // This process owns the host: disconnecting from it stops it.
            Mode::Owned(_) => self.stop().await,
            Mode::Pool(pool) => {
                for host in pool.hosts() {
                    Box::pin(host.disconnect()).await?;
                }
                Ok(())
            }
            Mode::Direct => Ok(()),
        }
    }

    fn not_ours(&self, verb: &str) -> Error {
        Error::config(format!(
            "the host at {} was not started by jshost; {verb} it with its supervisor",
            self.endpoint().url
        ))
    }

    pub(crate) async fn call_function(
        &self,
        name: &str,
        body: Bytes,
        timeout: Option<Duration>,
        cancel: Option<&CancellationToken>,
    ) -> Result<String> {
        match &self.inner.mode {
            Mode::Pool(pool) => pool.call(name, body, timeout, cancel).await,
            _ => self.call_single(name, body, timeout, cancel).await,
        }
    }

    /// One call on this (non-pool) host.
    pub(crate) async fn call_single(
        &self,
        name: &str,
        body: Bytes,
        timeout: Option<Duration>,
        cancel: Option<&CancellationToken>,
    ) -> Result<String> {
        let inner = &*self.inner;
        let endpoint = self.endpoint();
        if !endpoint.functions.contains(name) {
            let mut known: Vec<&str> = endpoint.functions.iter().map(String::as_str).collect();
            known.sort_unstable();
            return Err(Error::new(
                ErrorKind::UnknownFunction,
                format!(
                    "the host at {} has no function named {name:?} (it has: {}); nothing was sent",
                    endpoint.url,
                    known.join(", ")
                ),
            )
            .with_function(name)
            .with_url(endpoint.url.as_str()));
        }
        if let Mode::Owned(o) = &inner.mode {
            if let Some(exit) = o.exited() {
                return Err(o.crash_error(&exit).with_function(name).with_not_sent());
            }
        }
        let options = CallOptions {
            timeout: timeout.unwrap_or(inner.function_timeout),
            cancel: cancel.cloned(),
        };
        match inner
            .client
            .call_function(&endpoint.url, name, body, &options)
            .await
        {
            Err(e) if e.is_connection() => Err(self.explain_connection_error(e, &endpoint).await),
            result => result,
        }
    }

    async fn explain_connection_error(&self, err: Error, endpoint: &Endpoint) -> Error {
        match &self.inner.mode {
            Mode::Owned(o) => match o.wait_exit(CRASH_NOTICE_TIMEOUT).await {
                Some(exit) if err.is_not_sent() => o.crash_error(&exit).with_not_sent().with_source(err),
                Some(exit) => o.crash_error(&exit).with_source(err),
                None => err,
            },
            Mode::Managed(_) => {
                let function = err.function_name().map(str::to_owned);
                let logfile = endpoint.logfile.clone().unwrap_or_default();
                let e = Error::process(format!(
                    "the managed js-host for {} at {} is not answering: it has crashed or been stopped; \
                     see its logfile {} (host.restart() starts it again)",
                    self.inner.config_file.display(),
                    endpoint.url,
                    logfile.display()
                ))
                .with_url(endpoint.url.as_str())
                .with_logfile(logfile);
                let e = match function {
                    Some(f) => e.with_function(f),
                    None => e,
                };
                let e = if err.is_not_sent() { e.with_not_sent() } else { e };
                e.with_source(err)
            }
            Mode::Direct | Mode::Pool(_) => err,
        }
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        let Some(id) = lock(&self.connection).take() else {
            return;
        };
        let url = self.manager.url().to_owned();
        let node = self.node.clone();
        let config = self.manager_config.clone();
        let task = async move {
            let manager = Manager::new(url);
            match manager.close_connection(&config, &id).await {
                Ok(_) => {
                    tracing::info!(connection = %id, "closed the managed connection of a dropped JsHost")
                }
                Err(e) => {
                    tracing::warn!(connection = %id, error = %e, "cannot close the managed connection of a dropped JsHost")
                }
            }
            watchdog::unregister(&node, &id);
        };
        // Never block or panic here. With a runtime, a task; without one, a thread with its own.
        // If neither gets to run (the process is exiting), the watchdog closes the connection.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(task);
            }
            Err(_) => {
                let spawned = std::thread::Builder::new()
                    .name("jshost-disconnect".into())
                    .spawn(move || {
                        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                            Ok(rt) => rt.block_on(task),
                            Err(e) => tracing::warn!(error = %e, "cannot build a runtime to disconnect"),
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "cannot start a thread to disconnect");
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn status_url(status: &Status) -> Result<String> {
    status
        .url()
        .ok_or_else(|| Error::config(format!("the js-host status has no usable port: {status}")))
}

/// The status a config's hosts must report, and where it came from.
struct Expected {
    status: Status,
    source: StatusSource,
}

/// Connects to the host at `root_url` (or the config's address) that reports `expected`; a
/// cached `expected` that does not match is computed again (and stays fresh for later calls).
async fn connect_direct(
    settings: &Settings,
    setup: &NodeSetup,
    root_url: Option<&str>,
    expected: &mut Expected,
) -> Result<JsHost> {
    let client = HttpClient::new();
    loop {
        let url = match root_url {
            Some(url) => url.to_owned(),
            None => status_url(&expected.status)?,
        };
        let live = probe_status(&client, &url).await?;
        // Behind root_url, hosts may run with `--port N` (several under a supervisor, or behind
        // a proxy): their port is not the config's, everything else must match.
        let matches = match (&live, root_url.is_none()) {
            (Some(live), true) => live == &expected.status,
            (Some(live), false) => live.with_port(0) == expected.status.with_port(0),
            (None, _) => false,
        };
        if matches {
            tracing::debug!(%url, "the host's status matches the config");
            let status = live.unwrap_or_else(|| expected.status.clone());
            let endpoint = Endpoint::new(url, status, None);
            return Ok(JsHost::new(
                settings,
                endpoint,
                setup.config.clone(),
                client,
                Mode::Direct,
            ));
        }
        if expected.source == StatusSource::Cache {
            tracing::debug!("the cached status does not match; computing it again");
            expected.status = setup.expected_status(false, settings.startup_timeout).await?;
            StatusCache::default().put(setup, &expected.status);
            expected.source = StatusSource::Node;
            continue;
        }
        return Err(match live {
            None => Error::connection(format!(
                "nothing answers at {url}: start a host with `node {} {}`, or use_manager(true) in development",
                setup.bin.display(),
                setup.config.display()
            ))
            .with_url(url),
            Some(status) if !status.is_supported_version() => Error::config(format!(
                "the js-host at {url} is version {}; this SDK speaks js-host 0.12.x",
                status.version()
            ))
            .with_url(url),
            Some(status) => Error::config(format!(
                "the process at {url} is not the host for {}: it reports {status}, expected {}",
                setup.config.display(),
                expected.status
            ))
            .with_url(url),
        });
    }
}

async fn connect_managed(settings: &Settings, setup: &NodeSetup, client: HttpClient) -> Result<JsHost> {
    let (manager, expected) = match locate_manager(settings, setup, &client, true).await? {
        Located::Host { url, status } => {
            tracing::info!(%url, "a host for the config already answers; using it directly");
            let endpoint = Endpoint::new(url, status, None);
            return Ok(JsHost::new(
                settings,
                endpoint,
                setup.config.clone(),
                client,
                Mode::Direct,
            ));
        }
        Located::Manager { manager, expected } => (manager, expected),
    };
    let manager_url = manager.url().to_owned();
    let config = setup.config.as_path();
    manager.ensure_host(config).await?;
    let mut connection = manager.open_connection(config).await?;
    let port = connection.host.status.port().unwrap_or_default();
    if connection.host.status != expected.with_port(port) {
        tracing::warn!(config = %config.display(), "the managed host was started from an older config; restarting it");
        manager.restart_host(config).await?;
        let _ = manager.close_connection(config, &connection.id).await;
        connection = manager.open_connection(config).await?;
    }
    watchdog::register(&settings.path_to_node, &manager_url, config, &connection.id);
    let status = connection.host.status.clone();
    let url = status_url(&status)?;
    tracing::info!(%url, connection = %connection.id, logfile = %connection.host.logfile.display(), "connected to the managed js-host");
    let managed = Managed {
        manager,
        node: settings.path_to_node.clone(),
        manager_config: config.to_path_buf(),
        connection: Mutex::new(Some(connection.id)),
    };
    let endpoint = Endpoint::new(url, status, Some(connection.host.logfile));
    Ok(JsHost::new(
        settings,
        endpoint,
        config.to_path_buf(),
        client,
        Mode::Managed(managed),
    ))
}
