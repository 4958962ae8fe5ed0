//! A client of the js-host manager protocol (`/host/*`, `/manager/stop`), and starting a
//! detached manager.

use crate::locate::{locate_manager, Located};
use crate::node::{self, NodeSetup};
use jshost_client::{HttpClient, Response};
use jshost_core::error::Build as _;
use jshost_core::{Error, ErrorKind, Result, Settings, Status};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a request to a manager may take (starting a host included).
pub const MANAGER_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long closing a connection may take: it runs from `Drop` and at shutdown, so it gives up
/// sooner than requests that start hosts (the connection then stays to its safety nets).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
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
    /// The host options it runs with, as jshost-node's manager reports them (`watch`,
    /// `workers`, `callTimeout`, `maxMemory`, `maxCalls`); `None` from js-host's manager.
    pub options: Option<Value>,
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
    #[serde(default)]
    options: Option<Value>,
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
                options: self.options,
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

/// Why a manager refused a `/host/*` request (its 500 answers), recognised in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// `No known host with config: ...`: the manager runs no host for the config.
    NoSuchHost,
    /// `Host already running`: `/host/start` for a config whose host runs.
    AlreadyRunning,
    /// Anything else (a start-up failure's stack...).
    Other,
}

impl Refusal {
    /// js-host 0.12 answers these refusals as text bodies with HTTP 500 (`lib/Manager.js`).
    fn of(error: &Error) -> Refusal {
        match error.body() {
            _ if error.status() != Some(500) => Refusal::Other,
            Some(body) if body.starts_with("No known host") => Refusal::NoSuchHost,
            Some(body) if body.starts_with("Host already running") => Refusal::AlreadyRunning,
            _ => Refusal::Other,
        }
    }
}

/// What `/host/start` did.
#[derive(Debug, Clone)]
pub enum Started {
    /// The manager started a host.
    New(HostInfo),
    /// A host for the config was already running (its description, read right after).
    AlreadyRunning(HostInfo),
}

impl Started {
    /// The host, however it came to run.
    pub fn into_host(self) -> HostInfo {
        match self {
            Started::New(info) | Started::AlreadyRunning(info) => info,
        }
    }
}

/// A js-host manager listening at a URL, which starts and keeps hosts keyed by config path.
///
/// Cheap to clone; clones share one connection pool, its own: manager requests never queue
/// behind function calls.
#[derive(Debug, Clone)]
pub struct Manager {
    url: String,
    client: HttpClient,
    /// The host options sent with `/host/start` and `/host/restart` (jshost-node's manager).
    host_options: Option<Value>,
}

impl Manager {
    /// A manager client for `url` (`http://127.0.0.1:9009`).
    pub fn new(url: impl Into<String>) -> Self {
        Manager {
            url: url.into(),
            client: HttpClient::with_max_connections(8),
            host_options: None,
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
        probe_status(&self.url).await
    }

    /// Whether a js-host manager answers at the URL.
    pub async fn is_running(&self) -> bool {
        matches!(self.request_status().await, Ok(Some(s)) if s.is_manager())
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
        let value = self
            .post("/host/status", json!({ "config": config }))
            .await?
            .map_err(|r| self.unexpected_refusal(r, config))?;
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

    /// Sends these host options (jshost-node's manager: `{"watch": true, "workers": 2,
    /// "callTimeout": MS, "maxMemory": MB, "maxCalls": N}`, `null` leaving a flag out) with every
    /// start and restart; a warm host running with other options is restarted with them by
    /// [`Manager::ensure_host`]. js-host's manager takes none: leave them unset for it.
    #[must_use]
    pub fn with_host_options(mut self, options: Option<Value>) -> Self {
        self.host_options = options;
        self
    }

    /// Whether `info`'s host runs with other options than this client asks for (a key this
    /// client names with another value).
    pub(crate) fn options_differ(&self, info: &HostInfo) -> bool {
        let (Some(Value::Object(asked)), Some(Value::Object(running))) = (&self.host_options, &info.options)
        else {
            return false;
        };
        asked
            .iter()
            .any(|(key, value)| running.get(key).unwrap_or(&Value::Null) != value)
    }

    /// Starts a host for `config` (on a port the OS picks, logging to a temporary file).
    ///
    /// # Errors
    /// A process error carrying the manager's report when the host cannot start.
    pub async fn start_host(&self, config: &Path) -> Result<Started> {
        match self.host_call("/host/start", config).await? {
            Ok(info) => Ok(Started::New(info)),
            Err(Refusal::AlreadyRunning) => match self.host_status(config).await? {
                Some(info) => Ok(Started::AlreadyRunning(info)),
                // It stopped in between: start it (once more).
                None => Ok(Started::New(
                    self.host_call("/host/start", config).await?.map_err(|r| {
                        Error::process(format!(
                            "the manager at {} cannot start the host for {} ({r:?})",
                            self.url,
                            config.display()
                        ))
                    })?,
                )),
            },
            Err(r) => Err(self.unexpected_refusal(r, config)),
        }
    }

    /// Stops the host for `config`; `None` when the manager runs no such host.
    ///
    /// # Errors
    /// Connection or unexpected-response errors.
    pub async fn stop_host(&self, config: &Path) -> Result<Option<HostInfo>> {
        self.no_such_host_is_none(self.host_call("/host/stop", config).await?, config)
    }

    /// Restarts the host for `config` on the same port and logfile, keeping its connections;
    /// `None` when the manager runs no such host (it crashed or was stopped).
    ///
    /// # Errors
    /// A process error when the host cannot start again.
    pub async fn restart_host(&self, config: &Path) -> Result<Option<HostInfo>> {
        self.no_such_host_is_none(self.host_call("/host/restart", config).await?, config)
    }

    /// Registers a connection to the host for `config`, cancelling a pending stop; `None` when
    /// the manager runs no such host.
    ///
    /// # Errors
    /// Connection or unexpected-response errors.
    pub async fn open_connection(&self, config: &Path) -> Result<Option<Connection>> {
        let value = match self.post("/host/connect", json!({ "config": config })).await? {
            Ok(value) => value,
            Err(r) => return self.no_such_host_is_none(Err(r), config),
        };
        let (host, id) = parse_host(value)?;
        let id = id.ok_or_else(|| {
            Error::new(
                ErrorKind::UnexpectedResponse,
                "the manager's /host/connect answer has no connection id",
            )
        })?;
        Ok(Some(Connection { host, id }))
    }

    /// Closes a connection; the last one closed makes the manager stop the host after its
    /// `disconnectTimeout`.
    ///
    /// # Errors
    /// Connection or unexpected-response errors.
    pub async fn close_connection(&self, config: &Path, connection: &str) -> Result<Disconnected> {
        let body = json!({ "config": config, "connection": connection });
        let value = self
            .post_within("/host/disconnect", body, CLOSE_TIMEOUT)
            .await?
            .map_err(|r| self.unexpected_refusal(r, config))?;
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
            if !self.options_differ(&info) {
                tracing::info!(url = ?info.status.url(), logfile = %info.logfile.display(), "reusing the warm managed js-host");
                report_if_stale(&info, config);
                return Ok(info);
            }
            // jshost-node's manager restarts a running host whose options differ from a start's.
            tracing::info!(
                running = ?info.options,
                asked = ?self.host_options,
                "the warm managed js-host runs with other options; restarting it with these"
            );
        }
        let info = match self.start_host(config).await? {
            Started::New(info) => info,
            Started::AlreadyRunning(info) => {
                report_if_stale(&info, config);
                info
            }
        };
        tracing::info!(url = ?info.status.url(), logfile = %info.logfile.display(), "the manager runs a js-host");
        Ok(info)
    }

    /// The manager for `settings` (at the config's address and port), started detached if none
    /// runs there.
    ///
    /// # Errors
    /// Config errors as for connecting; a config error when a host (not a manager) or another
    /// program holds the port; process errors when the manager cannot start.
    pub async fn start_or_reuse(settings: &Settings) -> Result<Manager> {
        let setup = NodeSetup::check(settings)?;
        let settings = settings.clone();
        let located =
            jshost_client::driver::run(async move { locate_manager(&settings, &setup, true).await });
        match located.await? {
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
        let settings = settings.clone();
        let located =
            jshost_client::driver::run(async move { locate_manager(&settings, &setup, false).await });
        match located.await? {
            Located::Manager { manager, .. } => Ok(Some(manager)),
            Located::Host { .. } => Ok(None),
        }
    }

    /// `POST path {config}`: the host description, or the manager's refusal.
    async fn host_call(&self, path: &str, config: &Path) -> Result<std::result::Result<HostInfo, Refusal>> {
        let mut body = json!({ "config": config });
        if let (Some(options), "/host/start" | "/host/restart") = (&self.host_options, path) {
            body["options"] = options.clone();
        }
        match self.post(path, body).await? {
            Ok(value) => Ok(Ok(parse_host(value)?.0)),
            Err(refusal) => Ok(Err(refusal)),
        }
    }

    fn no_such_host_is_none<T>(
        &self,
        answer: std::result::Result<T, Refusal>,
        config: &Path,
    ) -> Result<Option<T>> {
        match answer {
            Ok(value) => Ok(Some(value)),
            Err(Refusal::NoSuchHost) => Ok(None),
            Err(r) => Err(self.unexpected_refusal(r, config)),
        }
    }

    fn unexpected_refusal(&self, refusal: Refusal, config: &Path) -> Error {
        Error::process(format!(
            "the js-host manager at {} refused a request for {} ({refusal:?})",
            self.url,
            config.display()
        ))
        .with_url(self.url.as_str())
    }

    /// `POST path body`: the JSON answer, or the manager's refusal (HTTP 500 it is known for);
    /// any other 500 is a process error carrying the manager's words.
    async fn post(&self, path: &str, body: Value) -> Result<std::result::Result<Value, Refusal>> {
        self.post_within(path, body, MANAGER_REQUEST_TIMEOUT).await
    }

    async fn post_within(
        &self,
        path: &str,
        body: Value,
        timeout: Duration,
    ) -> Result<std::result::Result<Value, Refusal>> {
        let url = format!("{}{path}", self.url);
        let response = self
            .client
            .post_json(&url, json_body(&body), timeout)
            .await
            .map_err(|e| e.context(format!("js-host manager request {path}")))?;
        let body = match expect_ok(response, &url) {
            Ok(body) => body,
            Err(e) => {
                return match Refusal::of(&e) {
                    Refusal::Other => Err(e),
                    refusal => Ok(Err(refusal)),
                }
            }
        };
        serde_json::from_slice(&body).map(Ok).map_err(|e| {
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

/// Warns (naming the config) when a reused warm host may serve code older than the files on
/// disk; see [`staleness`].
pub(crate) fn report_if_stale(info: &HostInfo, config: &Path) {
    if let Some(why) = staleness(info, config) {
        tracing::warn!(config = %config.display(), logfile = %info.logfile.display(), "{why}");
    }
}

/// Why a reused host may serve code older than the files on disk: it does not reload on change
/// (js-host 0.12's, or jshost-node's started without watch) and its config, or a file beside it,
/// changed after the host started (its logfile's creation). js-host's hosts load modules the SDK
/// cannot see, so reusing one is always reported.
fn staleness(info: &HostInfo, config: &Path) -> Option<String> {
    let watching = info
        .options
        .as_ref()
        .map(|options| options["watch"].as_bool() == Some(true));
    match watching {
        Some(true) => None,
        None => Some(format!(
            "the warm managed js-host (js-host 0.12) for {} does not reload on change: it serves the code it \
             loaded when it started; after editing the config or a file it loads, restart it (JsHost::restart, \
             or `jshost host restart`)",
            config.display()
        )),
        Some(false) => {
            let started = std::fs::metadata(&info.logfile).and_then(|m| m.created()).ok()?;
            let (file, changed) = newest_change(config)?;
            (changed > started).then(|| {
                format!(
                    "the warm managed js-host for {} runs without watch and {} changed after it started: it serves \
                     the old code; restart it (JsHost::restart) or leave watch on (the default for managed hosts)",
                    config.display(),
                    file.display()
                )
            })
        }
    }
}

/// The newest modification among `config` and the files in its directory (not below it).
fn newest_change(config: &Path) -> Option<(PathBuf, std::time::SystemTime)> {
    let dir = config.parent()?;
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let meta = entry.metadata().ok()?;
            meta.is_file()
                .then(|| meta.modified().ok().map(|t| (entry.path(), t)))
                .flatten()
        })
        .max_by_key(|(_, t)| *t)
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

/// `GET {url}/status` on a connection of its own: `Ok(None)` when nothing answers (a probe that
/// would connect to itself included, without spoiling the port); an error when something that
/// is not js-host holds the URL's port.
///
/// # Errors
/// A config error naming the URL when the answer is not a js-host status or takes longer than
/// `PROBE_TIMEOUT` (3 s).
pub async fn probe_status(url: &str) -> Result<Option<Status>> {
    Ok(probe_identified(url).await?.map(|(status, _)| status))
}

/// [`probe_status`], with whether jshost-node answered (its `X-Jshost-Node` header, on every
/// answer of its hosts and managers; js-host sends none).
pub(crate) async fn probe_identified(url: &str) -> Result<Option<(Status, bool)>> {
    let answer = jshost_client::get_fresh(&format!("{url}/status"), PROBE_TIMEOUT).await;
    let jshost_node = matches!(&answer, Ok(Some(r)) if r.headers.contains_key("x-jshost-node"));
    Ok(judge_probe(url, answer)?.map(|status| (status, jshost_node)))
}

/// [`probe_status`] through `client`: with its headers, and TLS for `https://` URLs (hosts
/// behind a proxy).
///
/// # Errors
/// As [`probe_status`].
pub async fn probe_status_with(client: &HttpClient, url: &str) -> Result<Option<Status>> {
    let status_url = format!("{url}/status");
    judge_probe(url, client.get_fresh(&status_url, PROBE_TIMEOUT).await)
}

fn judge_probe(url: &str, answer: Result<Option<Response>>) -> Result<Option<Status>> {
    match answer {
        Ok(None) => Ok(None),
        Ok(Some(response)) if response.status == 200 => {
            Status::parse(&response.text_lossy()).map(Some).map_err(|_| {
                Error::config(format!(
                    "{url} is held by another program: its /status is not a js-host status ({})",
                    node::short(&response.text_lossy())
                ))
                .with_url(url)
            })
        }
        Ok(Some(response)) => Err(Error::config(format!(
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn host(logfile: &Path, options: Option<Value>) -> HostInfo {
        HostInfo {
            status: Status::parse(r#"{"type":"Host","version":"0.12.0","config":{"port":1}}"#)
                .expect("status"),
            logfile: logfile.to_path_buf(),
            config: String::new(),
            connections: Vec::new(),
            options,
        }
    }

    fn touch(path: &Path, when: SystemTime) {
        let file = std::fs::OpenOptions::new().write(true).open(path).expect("open");
        file.set_modified(when).expect("set mtime");
    }

    #[test]
    fn reused_hosts_that_cannot_follow_the_files_are_reported() {
        let dir = std::env::temp_dir().join(format!("jshost-staleness-{}", std::process::id()));
        let project = dir.join("project");
        std::fs::create_dir_all(&project).expect("mkdir");
        let logfile = dir.join("host.log");
        std::fs::write(&logfile, "").expect("logfile");
        let config = project.join("host.config.js");
        std::fs::write(&config, "module.exports = {};").expect("config");
        std::fs::write(project.join("functions.js"), "").expect("functions");
        let now = SystemTime::now();
        touch(&config, now - Duration::from_secs(3600));
        touch(&project.join("functions.js"), now - Duration::from_secs(3600));

        let watching = host(&logfile, Some(serde_json::json!({"watch": true})));
        let not_watching = host(&logfile, Some(serde_json::json!({"watch": false})));
        let js_host = host(&logfile, None);
        assert_eq!(staleness(&watching, &config), None);
        assert_eq!(
            staleness(&not_watching, &config),
            None,
            "nothing changed since it started"
        );
        let why = staleness(&js_host, &config).expect("js-host's hosts never follow the files");
        assert!(why.contains(&config.display().to_string()), "{why}");

        // A file beside the config, saved after the host started.
        touch(&project.join("functions.js"), now + Duration::from_secs(60));
        let why = staleness(&not_watching, &config).expect("changed after the start");
        assert!(
            why.contains("functions.js") && why.contains(&config.display().to_string()),
            "{why}"
        );
        assert_eq!(
            staleness(&watching, &config),
            None,
            "a watching host reloads by itself"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
