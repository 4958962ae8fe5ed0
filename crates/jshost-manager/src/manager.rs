//! A client of the js-host manager protocol (`/host/*`, `/manager/stop`), and starting a
//! detached manager.

use crate::node::{self, expected_host_status, manager_status_for, NodeSetup, StatusCache, StatusSource};
use jshost_client::{HttpClient, Response};
use jshost_core::{Error, ErrorKind, Result, Settings, Status};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a request to a manager may take (starting a host included).
pub const MANAGER_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a `GET /status` probe may take before whatever holds the port is judged not to be
/// a js-host.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

fn json_body(value: &Value) -> bytes::Bytes {
    bytes::Bytes::from(value.to_string())
}

/// A host as a manager describes it.
#[derive(Debug, Clone)]
pub struct HostInfo {
    /// The host's status (parsed from the manager's `output`).
    pub status: Status,
    /// The file the host logs to.
    pub logfile: PathBuf,
    /// The config path the manager knows the host by.
    pub config: String,
    /// The ids of the connections open to the host.
    pub connections: Vec<String>,
}

#[derive(Deserialize)]
struct RawHost {
    output: String,
    logfile: String,
    config: String,
    #[serde(default)]
    connections: Vec<String>,
    #[serde(default)]
    connection: Option<String>,
}

impl RawHost {
    fn into_info(self) -> Result<(HostInfo, Option<String>)> {
        let status = Status::parse(&self.output)?;
        Ok((
            HostInfo {
                status,
                logfile: PathBuf::from(self.logfile),
                config: self.config,
                connections: self.connections,
            },
            self.connection,
        ))
    }
}

/// A connection opened to a managed host with [`Manager::open_connection`].
#[derive(Debug, Clone)]
pub struct Connection {
    /// The host it is a connection to.
    pub host: HostInfo,
    /// The opaque id to pass to [`Manager::close_connection`].
    pub id: String,
}

/// What `/host/disconnect` answered.
#[derive(Debug, Clone, Deserialize)]
pub struct Disconnected {
    /// Whether the host was still running.
    pub started: bool,
    /// In how many ms the host will stop (no connections left), if it will.
    #[serde(rename = "stopTimeout")]
    pub stop_timeout: Option<u64>,
    /// The manager's words.
    #[serde(default)]
    pub status: String,
}

/// A js-host manager listening at a URL, which starts and keeps hosts keyed by config path.
///
/// Cheap to clone; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Manager {
    url: String,
    client: HttpClient,
}

impl Manager {
    /// A manager client for `url` (`http://127.0.0.1:9009`).
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_client(url, HttpClient::with_max_connections(8))
    }

    /// A manager client sharing an existing HTTP client.
    pub fn with_client(url: impl Into<String>, client: HttpClient) -> Self {
        Manager {
            url: url.into(),
            client,
        }
    }

    /// The manager's root URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The manager's status, or `None` when nothing answers.
    ///
    /// # Errors
    /// A config error when something that is not a js-host answers.
    pub async fn request_status(&self) -> Result<Option<Status>> {
        probe_status(&self.client, &self.url).await
    }

    /// Whether a js-host manager answers at the URL.
    pub async fn is_running(&self) -> bool {
        matches!(self.request_status().await, Ok(Some(s)) if s.kind() == "Manager")
    }

    /// Stops the manager and every host it runs.
    ///
    /// # Errors
    /// A connection error when no manager answers.
    pub async fn stop(&self) -> Result<()> {
        let url = format!("{}/manager/stop", self.url);
        let response = self
            .client
            .post_json(&url, json_body(&json!({})), MANAGER_REQUEST_TIMEOUT)
            .await
            .map_err(|e| e.context("stopping the manager"))?;
        expect_ok(response, &url).map(|_| ())
    }

    /// The host the manager runs for `config`, if any.
    ///
    /// # Errors
    /// Connection or unexpected-response errors.
    pub async fn host_status(&self, config: &Path) -> Result<Option<HostInfo>> {
        let value = self.post("/host/status", json!({ "config": config })).await?;
        if value["started"].as_bool() != Some(true) {
            return Ok(None);
        }
        let raw: RawHost = serde_json::from_value(value["host"].clone()).map_err(|e| {
            Error::new(
                ErrorKind::UnexpectedResponse,
                "the manager's /host/status answer has no host",
            )
            .with_source(e)
        })?;
        Ok(Some(raw.into_info()?.0))
    }

    /// Starts a host for `config` (on a port the OS picks, logging to a temporary file).
    ///
    /// # Errors
    /// A process error carrying the manager's report when the host cannot start (500
    /// `Host already running` included).
    pub async fn start_host(&self, config: &Path) -> Result<HostInfo> {
        self.host_call("/host/start", config).await
    }

    /// Stops the host for `config`.
    ///
    /// # Errors
    /// A process error when the manager knows no such host.
    pub async fn stop_host(&self, config: &Path) -> Result<HostInfo> {
        self.host_call("/host/stop", config).await
    }

    /// Restarts the host for `config` on the same port and logfile, keeping its connections.
    ///
    /// # Errors
    /// A process error when the manager knows no such host or it cannot start again.
    pub async fn restart_host(&self, config: &Path) -> Result<HostInfo> {
        self.host_call("/host/restart", config).await
    }

    /// Registers a connection to the host for `config`, cancelling a pending stop.
    ///
    /// # Errors
    /// A process error when the manager knows no such host.
    pub async fn open_connection(&self, config: &Path) -> Result<Connection> {
        let value = self.post("/host/connect", json!({ "config": config })).await?;
        let (host, id) = parse_host(value)?;
        let id = id.ok_or_else(|| {
            Error::new(
                ErrorKind::UnexpectedResponse,
                "the manager's /host/connect answer has no connection id",
            )
        })?;
        Ok(Connection { host, id })
    }

    /// Closes a connection; the last one closed makes the manager stop the host after its
    /// `disconnectTimeout`.
    ///
    /// # Errors
    /// Connection or unexpected-response errors.
    pub async fn close_connection(&self, config: &Path, connection: &str) -> Result<Disconnected> {
        let value = self
            .post(
                "/host/disconnect",
                json!({ "config": config, "connection": connection }),
            )
            .await?;
        serde_json::from_value(value).map_err(|e| {
            Error::new(
                ErrorKind::UnexpectedResponse,
                "unexpected /host/disconnect answer",
            )
            .with_source(e)
        })
    }

    /// The manager's host for `config`, started if it is not running.
    ///
    /// # Errors
    /// As [`Manager::start_host`].
    pub async fn ensure_host(&self, config: &Path) -> Result<HostInfo> {
        if let Some(info) = self.host_status(config).await? {
            tracing::info!(url = ?info.status.url(), logfile = %info.logfile.display(), "reusing the warm managed js-host");
            return Ok(info);
        }
        match self.start_host(config).await {
            Ok(info) => {
                tracing::info!(url = ?info.status.url(), logfile = %info.logfile.display(), "the manager started a js-host");
                Ok(info)
            }
            // Another client started it between our two requests.
            Err(e) if e.body().map(|b| b.contains("already running")).unwrap_or(false) => {
                self.host_status(config).await?.ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    /// The manager for `settings` (at the config's address and port), started detached if none
    /// runs there.
    ///
    /// # Errors
    /// Config errors as for connecting; a config error when a host (not a manager) or another
    /// program holds the port; process errors when the manager cannot start.
    pub async fn start_or_reuse(settings: &Settings) -> Result<Manager> {
        let setup = NodeSetup::check(settings)?;
        let client = HttpClient::with_max_connections(8);
        match locate_manager(settings, &setup, &client, true).await? {
            Located::Manager { manager, .. } => Ok(manager),
            Located::Host { url, .. } => Err(Error::config(format!(
                "a js-host host, not a manager, listens at {url} (the config's address)"
            ))
            .with_url(url)),
        }
    }

    /// The manager for `settings` if one is running at the config's address and port.
    ///
    /// # Errors
    /// Config errors as for connecting; a config error when another program holds the port.
    pub async fn find(settings: &Settings) -> Result<Option<Manager>> {
        let setup = NodeSetup::check(settings)?;
        let client = HttpClient::with_max_connections(8);
        match locate_manager(settings, &setup, &client, false).await? {
            Located::Manager { manager, .. } => Ok(Some(manager)),
            Located::Host { .. } => Ok(None),
        }
    }

    async fn host_call(&self, path: &str, config: &Path) -> Result<HostInfo> {
        let value = self.post(path, json!({ "config": config })).await?;
        Ok(parse_host(value)?.0)
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        let url = format!("{}{path}", self.url);
        let response = self
            .client
            .post_json(&url, json_body(&body), MANAGER_REQUEST_TIMEOUT)
            .await
            .map_err(|e| e.context(format!("js-host manager request {path}")))?;
        let body = expect_ok(response, &url)?;
        serde_json::from_slice(&body).map_err(|e| {
            Error::new(
                ErrorKind::UnexpectedResponse,
                format!(
                    "the manager's answer to {path} is not JSON: {}",
                    node::short(&String::from_utf8_lossy(&body))
                ),
            )
            .with_url(url)
            .with_source(e)
        })
    }
}

fn parse_host(value: Value) -> Result<(HostInfo, Option<String>)> {
    let raw: RawHost = serde_json::from_value(value).map_err(|e| {
        Error::new(
            ErrorKind::UnexpectedResponse,
            "unexpected host description from the manager",
        )
        .with_source(e)
    })?;
    raw.into_info()
}

fn expect_ok(response: Response, url: &str) -> Result<bytes::Bytes> {
    match response.status {
        200 => Ok(response.body),
        500 => Err(Error::process(format!(
            "the js-host manager refused: {}",
            node::short(&response.text_lossy())
        ))
        .with_url(url)
        .with_status(500)
        .with_body(response.text_lossy())),
        status => Err(Error::new(
            ErrorKind::UnexpectedResponse,
            format!("the js-host manager answered with HTTP {status}"),
        )
        .with_url(url)
        .with_status(status)
        .with_body(response.text_lossy())),
    }
}

/// `GET {url}/status`: `Ok(None)` when nothing answers; an error when something that is not
/// js-host holds the URL's port.
///
/// # Errors
/// A config error naming the URL when the answer is not a js-host status or takes longer than
/// [`PROBE_TIMEOUT`].
pub async fn probe_status(client: &HttpClient, url: &str) -> Result<Option<Status>> {
    let status_url = format!("{url}/status");
    match client.get(&status_url, PROBE_TIMEOUT).await {
        Ok(response) if response.status == 200 => {
            Status::parse(&response.text_lossy()).map(Some).map_err(|_| {
                Error::config(format!(
                    "{url} is held by another program: its /status is not a js-host status ({})",
                    node::short(&response.text_lossy())
                ))
                .with_url(url)
            })
        }
        Ok(response) => Err(Error::config(format!(
            "{url} is held by another program: GET /status answered HTTP {}",
            response.status
        ))
        .with_url(url)),
        Err(e) if e.is_timeout() => Err(Error::config(format!(
            "{url} is held by another program: GET /status got no answer within {PROBE_TIMEOUT:?}"
        ))
        .with_url(url)),
        Err(e) if e.is_connection() => {
            tracing::trace!(url, error = %e, "nothing answers");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// What answers at the manager's address of a config.
#[derive(Debug)]
pub enum Located {
    /// A host for the config itself (started without a manager) answers there.
    Host {
        /// Its URL.
        url: String,
        /// Its status.
        status: Status,
    },
    /// A manager for the config answers there (or was just started).
    Manager {
        /// A client for it.
        manager: Manager,
        /// The status the config's hosts report (with the manager's port).
        expected: Status,
    },
}

/// Finds what answers at the config's address and port: a host for the config, or a manager for
/// it, which is started detached when nothing answers and `start` is set. A cached expected status
/// never decides on its own: on any mismatch it is computed again.
///
/// # Errors
/// Config errors as for [`NodeSetup::check`]; a config error naming the port when another
/// program holds it; a connection error when nothing answers and `start` is not set; process
/// errors when the manager cannot start.
pub async fn locate_manager(
    settings: &Settings,
    setup: &NodeSetup,
    client: &HttpClient,
    start: bool,
) -> Result<Located> {
    let (mut expected, mut source) =
        expected_host_status(setup, settings.status_cache, settings.startup_timeout).await?;
    loop {
        let url = expected
            .url()
            .ok_or_else(|| Error::config(format!("the config's status has no usable port: {expected}")))?;
        let port = expected.port().unwrap_or_default();
        let expected_manager = manager_status_for(&expected);
        let live = probe_status(client, &url).await.map_err(|e| {
            e.context(format!(
                "the manager's port {port} (from {})",
                setup.config.display()
            ))
        })?;
        match live {
            Some(s) if s == expected => return Ok(Located::Host { url, status: s }),
            Some(s) if s == expected_manager => {
                tracing::info!(%url, "reusing the running js-host manager");
                let manager = Manager::with_client(url, client.clone());
                return Ok(Located::Manager { manager, expected });
            }
            None if start => {
                // Start the manager now; if the expected status came from the cache, compute it
                // afresh while the manager starts (a cold start pays for one node start-up, not
                // two), and judge the new manager by the fresh status: a stale cache never wins.
                let starting = StartingManager::spawn(setup)?;
                if source == StatusSource::Cache {
                    expected = match setup.expected_status(false, settings.startup_timeout).await {
                        Ok(fresh) => fresh,
                        Err(e) => {
                            starting.abandon();
                            return Err(e);
                        }
                    };
                    StatusCache::default().put(setup, &expected);
                }
                let url = expected.url().ok_or_else(|| {
                    Error::config(format!("the config's status has no usable port: {expected}"))
                })?;
                starting
                    .wait_ready(&manager_status_for(&expected), settings.startup_timeout)
                    .await?;
                let manager = Manager::with_client(url, client.clone());
                return Ok(Located::Manager { manager, expected });
            }
            _ if source == StatusSource::Cache => {
                tracing::debug!("the cached status does not match what runs; computing it again");
                expected = setup.expected_status(false, settings.startup_timeout).await?;
                StatusCache::default().put(setup, &expected);
                source = StatusSource::Node;
            }
            None => return Err(Error::connection(format!("no js-host manager runs at {url}")).with_url(url)),
            Some(s) if s.kind() == "Manager" => {
                // Typically our own manager, started before the config file was edited.
                return Err(Error::config(format!(
                    "the js-host manager at {url} was started from another version of {}: stop it \
                     (`jshost manager stop`, or `Manager::new(url).stop()`) and connect again; it reports {s}, \
                     the config now gives {}",
                    setup.config.display(),
                    manager_status_for(&expected)
                ))
                .with_url(url));
            }
            Some(s) => {
                return Err(Error::config(format!(
                    "port {port} (the manager's, from {}) is held by another program: {url} reports {s}",
                    setup.config.display()
                ))
                .with_url(url))
            }
        }
    }
}

/// How often [`spawn_detached`] asks a starting manager for its status.
const STARTUP_POLL: Duration = Duration::from_millis(15);

/// Starts a manager for `setup` (`js-host CONFIG --manager --json`) that outlives this process,
/// and waits until it reports `expected`.
///
/// # Errors
/// As [`StartingManager::spawn`] and [`StartingManager::wait_ready`].
///
/// # Cancel safety
/// Dropping the future leaves a manager that has been spawned running.
pub async fn spawn_detached(setup: &NodeSetup, expected: &Status, timeout: Duration) -> Result<()> {
    StartingManager::spawn(setup)?.wait_ready(expected, timeout).await
}

/// A manager process that has been started and may not be listening yet.
///
/// The manager runs in a process group of its own (a Ctrl-C in this terminal does not reach it)
/// with its output going to `jshost-manager-HASH.log` in the temporary directory. This does what
/// js-host's own `--detached` does without its extra launcher process and 100 ms polling.
#[derive(Debug)]
pub struct StartingManager {
    child: tokio::process::Child,
    output_path: PathBuf,
    config: PathBuf,
}

impl StartingManager {
    /// Spawns `node js-host.js CONFIG --manager --json`.
    ///
    /// # Errors
    /// A config error when node cannot be run; a process error when its output file cannot be
    /// created.
    pub fn spawn(setup: &NodeSetup) -> Result<StartingManager> {
        let key = jshost_core::hash(setup.config.to_string_lossy().as_bytes());
        let output_path = std::env::temp_dir().join(format!("jshost-manager-{}.log", &key[..12]));
        tracing::info!(config = %setup.config.display(), output = %output_path.display(), "starting a js-host manager");
        let output = std::fs::File::create(&output_path)
            .and_then(|out| Ok((out.try_clone()?, out)))
            .map_err(|e| Error::process(format!("cannot create {}", output_path.display())).with_source(e))?;
        let mut cmd = setup.command(&["--manager", "--json"]);
        cmd.stdout(output.0).stderr(output.1).process_group(0);
        // No kill_on_drop: the manager must outlive this process. When the handle is dropped,
        // tokio reaps the process in the background once it exits.
        let child = cmd.spawn().map_err(|e| setup.spawn_error(e))?;
        Ok(StartingManager {
            child,
            output_path,
            config: setup.config.clone(),
        })
    }

    /// Kills the manager being started.
    pub fn abandon(mut self) {
        let _ = self.child.start_kill();
    }

    /// Waits until the manager answers with `expected` at the URL that status names.
    ///
    /// # Errors
    /// A process error carrying what the manager printed when it exits instead of starting (for
    /// example the port is taken: the message names it); a process error when another process
    /// answers there; a timeout error after `timeout`.
    ///
    /// # Cancel safety
    /// Dropping the future leaves the manager running.
    pub async fn wait_ready(mut self, expected: &Status, timeout: Duration) -> Result<()> {
        let port = expected.port().unwrap_or_default();
        let url = expected
            .url()
            .ok_or_else(|| Error::config(format!("the config's status has no usable port: {expected}")))?;
        let config = self.config.display().to_string();
        let client = HttpClient::with_max_connections(2);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(response) = client.get(&format!("{url}/status"), PROBE_TIMEOUT).await {
                if response.status == 200 {
                    let live = Status::parse(&response.text_lossy())?;
                    if &live == expected {
                        tracing::info!(port, pid = self.child.id(), "js-host manager started");
                        return Ok(());
                    }
                    let _ = self.child.start_kill();
                    return Err(Error::process(format!(
                        "another process took port {port} while the manager for {config} was starting: it reports {live}"
                    )));
                }
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                let printed = std::fs::read_to_string(&self.output_path).unwrap_or_default();
                let message = if printed.contains("EADDRINUSE") {
                    format!(
                        "cannot start the js-host manager: port {port} is already in use by another program \
                         (the manager listens on the config's port; free it or change `port` in {config})"
                    )
                } else {
                    format!(
                        "the js-host manager for {config} exited instead of starting ({exit}): {}",
                        node::tail(&printed, 1500)
                    )
                };
                return Err(Error::process(message).with_logfile(&self.output_path));
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = self.child.start_kill();
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the js-host manager for {config} did not answer at {url} within {timeout:?} (start-up timeout)"
                    ),
                )
                .with_logfile(&self.output_path));
            }
            tokio::time::sleep(STARTUP_POLL).await;
        }
    }
}
