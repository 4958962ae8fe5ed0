//! How to find node, js-host and the config file, and how to reach the host.

use crate::error::Build as _;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default for [`Settings::config_file`].
pub const DEFAULT_CONFIG_FILE: &str = "host.config.js";
/// Default for [`Settings::path_to_node`].
pub const DEFAULT_PATH_TO_NODE: &str = "node";
/// Default for [`Settings::path_to_bin`].
pub const DEFAULT_PATH_TO_BIN: &str = "node_modules/jshost-node/bin/jshost-node.js";
/// The CLI of js-host 0.12 (npm `js-host`), for `path_to_bin` when you use js-host itself.
pub const JS_HOST_BIN: &str = "node_modules/js-host/bin/js-host.js";
/// Default for [`Settings::function_timeout`].
pub const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`Settings::startup_timeout`].
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Everything jshost needs to find and reach a js-host.
///
/// Build it with by-value setters from [`Settings::default`], or read it from `JSHOST_*`
/// environment variables with [`Settings::from_env`]. The public fields can be read (and changed)
/// directly; each setter documents its default. Problems (a root URL ending in `/`, a root URL
/// together with the manager...) are reported by [`Settings::validate`], which connecting calls.
///
/// ```
/// use std::time::Duration;
/// let settings = jshost_core::Settings::default()
///     .source_root("/srv/app")
///     .use_manager(true)
///     .function_timeout(Duration::from_secs(5));
/// assert_eq!(settings.config_path(), std::path::Path::new("/srv/app/host.config.js"));
/// ```
///
/// Its `Debug` output shows header names but never their values (every value is `<redacted>`:
/// which headers carry secrets, `authorization`, cookies, API keys under any name, cannot be told
/// reliably), so settings can be logged with `{:?}`.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// Directory holding `node_modules` and, by default, the config file. `None`: the current
    /// directory at the time of connecting.
    pub source_root: Option<PathBuf>,
    /// The js-host config file; relative paths are resolved against the source root.
    pub config_file: PathBuf,
    /// Start (or reuse) hosts through a detached js-host manager (development mode).
    pub use_manager: bool,
    /// The node binary (a name looked up in `PATH`, or a path).
    pub path_to_node: PathBuf,
    /// The js-host CLI script; relative paths are resolved against the source root.
    pub path_to_bin: PathBuf,
    /// How long a function call may take before it fails with a timeout error.
    pub function_timeout: Duration,
    /// Send requests to these URLs instead of the one in the host's config (a reverse proxy, or
    /// several hosts to spread calls over).
    pub root_urls: Vec<String>,
    /// How many hosts [`JsHost::spawn`](https://docs.rs/jshost) starts to spread calls over.
    pub owned_hosts: usize,
    /// How long starting a manager or a host may take.
    pub startup_timeout: Duration,
    /// Remember the output of `js-host CONFIG --config` between runs (keyed by the config file's
    /// path, size and modification time and the js-host version). A stale entry never decides:
    /// the live host's status must still equal it, else the status is computed again.
    pub status_cache: bool,
    /// Owned hosts write js-host's log (a line per call) to a file ([`Settings::log_file`]).
    pub log_file: bool,
    /// Worker processes per jshost-node host that jshost starts (`--workers N`); 0: one process.
    pub workers: usize,
    /// jshost-node hosts that jshost starts reload on a change of the config or a file it loads.
    /// `None` (the default): on for managed hosts (development: a managed host never serves code
    /// older than the files on disk), off for owned ones. See [`Settings::watch`].
    pub watch: Option<bool>,
    /// Coalesce concurrent calls to one jshost-node host into `POST /batch` requests.
    pub batch: bool,
    /// Owned jshost-node hosts listen on a private Unix socket instead of a TCP port.
    pub private_socket: bool,
    /// Headers sent with every request (a bearer token for a remote host or an authenticating
    /// proxy...). Their values are redacted in `Debug` output.
    pub headers: Vec<(String, String)>,
    /// An extra CA certificate (PEM) trusted for `https://` root URLs, beside the system's roots.
    pub ca_file: Option<PathBuf>,
    /// jshost-node hosts that jshost starts cut a call still running after this long when the
    /// call carries no deadline of its own (`--call-timeout MS`); `None`: no host-wide default.
    pub host_call_timeout: Option<Duration>,
    /// jshost-node hosts that jshost starts recycle a worker (drain, replace) whose memory
    /// passes this many MB (`--max-memory MB`).
    pub max_memory_mb: Option<u64>,
    /// jshost-node hosts that jshost starts recycle a worker after this many calls
    /// (`--max-calls N`).
    pub max_calls: Option<u64>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured so that a new field cannot be added without deciding how it is shown.
        let Settings {
            source_root,
            config_file,
            use_manager,
            path_to_node,
            path_to_bin,
            function_timeout,
            root_urls,
            owned_hosts,
            startup_timeout,
            status_cache,
            log_file,
            workers,
            watch,
            batch,
            private_socket,
            headers,
            ca_file,
            host_call_timeout,
            max_memory_mb,
            max_calls,
        } = self;
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, _)| (name.as_str(), "<redacted>"))
            .collect();
        f.debug_struct("Settings")
            .field("source_root", source_root)
            .field("config_file", config_file)
            .field("use_manager", use_manager)
            .field("path_to_node", path_to_node)
            .field("path_to_bin", path_to_bin)
            .field("function_timeout", function_timeout)
            .field("root_urls", root_urls)
            .field("owned_hosts", owned_hosts)
            .field("startup_timeout", startup_timeout)
            .field("status_cache", status_cache)
            .field("log_file", log_file)
            .field("workers", workers)
            .field("watch", watch)
            .field("batch", batch)
            .field("private_socket", private_socket)
            .field("headers", &headers)
            .field("ca_file", ca_file)
            .field("host_call_timeout", host_call_timeout)
            .field("max_memory_mb", max_memory_mb)
            .field("max_calls", max_calls)
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            source_root: None,
            config_file: PathBuf::from(DEFAULT_CONFIG_FILE),
            use_manager: false,
            path_to_node: PathBuf::from(DEFAULT_PATH_TO_NODE),
            path_to_bin: PathBuf::from(DEFAULT_PATH_TO_BIN),
            function_timeout: DEFAULT_FUNCTION_TIMEOUT,
            root_urls: Vec::new(),
            owned_hosts: 1,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            status_cache: true,
            log_file: false,
            workers: 0,
            watch: None,
            batch: true,
            private_socket: true,
            headers: Vec::new(),
            ca_file: None,
            host_call_timeout: None,
            max_memory_mb: None,
            max_calls: None,
        }
    }
}

impl Settings {
    /// Sets the directory that holds `node_modules`. Default: the current directory.
    #[must_use]
    pub fn source_root(mut self, path: impl Into<PathBuf>) -> Self {
        self.source_root = Some(path.into());
        self
    }

    /// Sets the config file, relative to the source root unless absolute. Default: `host.config.js`.
    #[must_use]
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = path.into();
        self
    }

    /// Uses a js-host manager to start and keep hosts (development only). Default: `false`.
    #[must_use]
    pub fn use_manager(mut self, yes: bool) -> Self {
        self.use_manager = yes;
        self
    }

    /// Sets the node binary. Default: `node` (looked up in `PATH`).
    #[must_use]
    pub fn path_to_node(mut self, path: impl Into<PathBuf>) -> Self {
        self.path_to_node = path.into();
        self
    }

    /// Sets the js-host CLI script, relative to the source root unless absolute.
    /// Default: jshost-node's, `node_modules/jshost-node/bin/jshost-node.js`; js-host 0.12's is
    /// [`JS_HOST_BIN`] (`node_modules/js-host/bin/js-host.js`).
    #[must_use]
    pub fn path_to_bin(mut self, path: impl Into<PathBuf>) -> Self {
        self.path_to_bin = path.into();
        self
    }

    /// Sets the default deadline of function calls. Default: 10 s.
    #[must_use]
    pub fn function_timeout(mut self, timeout: Duration) -> Self {
        self.function_timeout = timeout;
        self
    }

    /// Sends every request to `url` (for example a caching reverse proxy) instead of the host's own
    /// address. Must not end with `/`; not allowed together with the manager. Default: none.
    #[must_use]
    pub fn root_url(mut self, url: impl Into<String>) -> Self {
        self.root_urls = vec![url.into()];
        self
    }

    /// Spreads calls over several hosts serving the same config (each must report the config's
    /// status), least-in-flight first; a host that stops answering is taken out of rotation for a
    /// moment. Same rules as [`Settings::root_url`] for each URL. Default: none.
    #[must_use]
    pub fn root_urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.root_urls = urls.into_iter().map(Into::into).collect();
        self
    }

    /// How many owned hosts `JsHost::spawn` starts (one Node process uses one core; calls are
    /// spread over them). Only for owned hosts (`JsHost::connect` refuses more than one).
    /// Default: 1.
    #[must_use]
    pub fn owned_hosts(mut self, count: usize) -> Self {
        self.owned_hosts = count;
        self
    }

    /// The former name of [`Settings::owned_hosts`].
    #[must_use]
    #[deprecated(
        since = "0.1.0",
        note = "renamed to `owned_hosts` (not `JsHost::hosts`, a handle per host)"
    )]
    pub fn hosts(self, count: usize) -> Self {
        self.owned_hosts(count)
    }

    /// Starts jshost-node hosts (owned or managed) with `--workers n`: `n` processes share the
    /// host's port, one per core is typical. Default: 0 (one process; js-host ignores it).
    #[must_use]
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Starts jshost-node hosts (owned or managed) with `--watch`: editing the config or a file
    /// it loads starts a new generation of the host, and the handle picks up new functions at
    /// their first call. For development. Default: on for managed hosts (`use_manager(true)`:
    /// a warm host started without it is restarted with it), off for owned hosts; `watch(false)`
    /// turns it off for managed hosts too (a reused host then only warns when its files changed).
    #[must_use]
    pub fn watch(mut self, enabled: bool) -> Self {
        self.watch = Some(enabled);
        self
    }

    /// Whether the hosts jshost starts for these settings run with `--watch`: [`Settings::watch`]
    /// as set, else whether they are managed (development) hosts.
    pub fn watches(&self) -> bool {
        self.watch.unwrap_or(self.use_manager)
    }

    /// Coalesces calls that would wait for a connection into `POST /batch` requests, when the
    /// host offers it (jshost-node). A lone call always goes out at once, and so do the calls of
    /// a function whose answers average 4 KB or more. Default: on.
    #[must_use]
    pub fn batch(mut self, enabled: bool) -> Self {
        self.batch = enabled;
        self
    }

    /// Owned jshost-node hosts listen on a Unix socket in a directory only this user can read,
    /// instead of a TCP port on 127.0.0.1 that every local user can call. Default: on (js-host
    /// hosts always use TCP).
    #[must_use]
    pub fn private_socket(mut self, enabled: bool) -> Self {
        self.private_socket = enabled;
        self
    }

    /// Adds a header sent with every request to hosts and managers (for example
    /// `("authorization", "Bearer ...")` for an authenticating proxy in front of remote hosts).
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Trusts the CA certificate(s) in this PEM file for `https://` root URLs, beside the
    /// system's roots. Default: none.
    #[must_use]
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Starts jshost-node hosts (owned or managed) with `--call-timeout MS`: a call that carries
    /// no deadline of its own is cut after `timeout`, and a call that keeps the event loop from
    /// turning past its deadline has its process replaced. Calls made through this SDK always
    /// carry their deadline ([`Settings::function_timeout`]); this protects the host from other
    /// clients. Default: none (js-host ignores it).
    #[must_use]
    pub fn host_call_timeout(mut self, timeout: Duration) -> Self {
        self.host_call_timeout = Some(timeout);
        self
    }

    /// Starts jshost-node hosts (owned or managed) with `--max-memory MB`: a worker whose memory
    /// passes `mb` megabytes is drained and replaced, without failing a call (for code that
    /// leaks, such as module-level caches). Default: none (js-host ignores it).
    #[must_use]
    pub fn max_memory_mb(mut self, mb: u64) -> Self {
        self.max_memory_mb = Some(mb);
        self
    }

    /// Starts jshost-node hosts (owned or managed) with `--max-calls N`: a worker is drained and
    /// replaced after `n` calls, without failing a call. Default: none (js-host ignores it).
    #[must_use]
    pub fn max_calls(mut self, n: u64) -> Self {
        self.max_calls = Some(n);
        self
    }

    /// Sets how long starting a manager or host may take. Default: 15 s.
    #[must_use]
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Makes owned hosts write js-host's log to a file in the temporary directory (named by
    /// `JsHost::logfile`). Default: off, because js-host writes a line per call (its disk use
    /// grows without bound); crash errors carry the host's stderr tail either way.
    #[must_use]
    pub fn log_file(mut self, enabled: bool) -> Self {
        self.log_file = enabled;
        self
    }

    /// Enables or disables the cache of `js-host --config` output. Default: enabled.
    #[must_use]
    pub fn status_cache(mut self, enabled: bool) -> Self {
        self.status_cache = enabled;
        self
    }

    /// Reads settings from the environment, starting from the defaults:
    ///
    /// | variable | setting |
    /// | --- | --- |
    /// | `JSHOST_SOURCE_ROOT` | [`Settings::source_root`] |
    /// | `JSHOST_CONFIG_FILE` | [`Settings::config_file`] |
    /// | `JSHOST_USE_MANAGER` | [`Settings::use_manager`] (`true`/`false`, `1`/`0`, `yes`/`no`) |
    /// | `JSHOST_PATH_TO_NODE` | [`Settings::path_to_node`] |
    /// | `JSHOST_PATH_TO_BIN` | [`Settings::path_to_bin`] |
    /// | `JSHOST_FUNCTION_TIMEOUT` | [`Settings::function_timeout`], in seconds (`2.5` allowed) |
    /// | `JSHOST_ROOT_URL` | [`Settings::root_url`]; several URLs separated by commas: [`Settings::root_urls`] |
    /// | `JSHOST_HOSTS` | [`Settings::owned_hosts`] |
    /// | `JSHOST_LOG_FILE` | [`Settings::log_file`] (`true`/`false`) |
    /// | `JSHOST_WORKERS` | [`Settings::workers`] |
    /// | `JSHOST_WATCH` | [`Settings::watch`] (`true`/`false`) |
    /// | `JSHOST_BATCH` | [`Settings::batch`] (`true`/`false`) |
    /// | `JSHOST_PRIVATE_SOCKET` | [`Settings::private_socket`] (`true`/`false`) |
    /// | `JSHOST_CA_FILE` | [`Settings::ca_file`] |
    /// | `JSHOST_HOST_CALL_TIMEOUT` | [`Settings::host_call_timeout`], in seconds (`2.5` allowed) |
    /// | `JSHOST_MAX_MEMORY_MB` | [`Settings::max_memory_mb`] |
    /// | `JSHOST_MAX_CALLS` | [`Settings::max_calls`] |
    ///
    /// Unset or empty variables keep the default.
    ///
    /// # Errors
    /// A config error naming the variable when a value cannot be parsed.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Settings::from_env`], reading variables through `lookup` (handy in tests).
    ///
    /// # Errors
    /// A config error naming the variable when a value cannot be parsed.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut s = Settings::default();
        if let Some(v) = get("JSHOST_SOURCE_ROOT") {
            s.source_root = Some(v.into());
        }
        if let Some(v) = get("JSHOST_CONFIG_FILE") {
            s.config_file = v.into();
        }
        if let Some(v) = get("JSHOST_USE_MANAGER") {
            s.use_manager = parse_bool(&v).ok_or_else(|| {
                Error::config(format!(
                    "JSHOST_USE_MANAGER must be true or false (or 1/0, yes/no), got {v:?}"
                ))
            })?;
        }
        if let Some(v) = get("JSHOST_PATH_TO_NODE") {
            s.path_to_node = v.into();
        }
        if let Some(v) = get("JSHOST_PATH_TO_BIN") {
            s.path_to_bin = v.into();
        }
        let seconds = |name: &str, v: &str| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|secs| secs.is_finite() && *secs > 0.0)
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                .ok_or_else(|| {
                    Error::config(format!("{name} must be a positive number of seconds, got {v:?}"))
                })
        };
        if let Some(v) = get("JSHOST_FUNCTION_TIMEOUT") {
            s.function_timeout = seconds("JSHOST_FUNCTION_TIMEOUT", &v)?;
        }
        if let Some(v) = get("JSHOST_ROOT_URL") {
            s.root_urls = v
                .split(',')
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty())
                .collect();
        }
        let flag = |name: &str, v: &str| {
            parse_bool(v).ok_or_else(|| Error::config(format!("{name} must be true or false, got {v:?}")))
        };
        if let Some(v) = get("JSHOST_LOG_FILE") {
            s.log_file = flag("JSHOST_LOG_FILE", &v)?;
        }
        if let Some(v) = get("JSHOST_WATCH") {
            s.watch = Some(flag("JSHOST_WATCH", &v)?);
        }
        if let Some(v) = get("JSHOST_BATCH") {
            s.batch = flag("JSHOST_BATCH", &v)?;
        }
        if let Some(v) = get("JSHOST_PRIVATE_SOCKET") {
            s.private_socket = flag("JSHOST_PRIVATE_SOCKET", &v)?;
        }
        if let Some(v) = get("JSHOST_WORKERS") {
            s.workers = v.trim().parse().map_err(|_| {
                Error::config(format!(
                    "JSHOST_WORKERS must be a whole number of workers, got {v:?}"
                ))
            })?;
        }
        if let Some(v) = get("JSHOST_CA_FILE") {
            s.ca_file = Some(v.into());
        }
        if let Some(v) = get("JSHOST_HOST_CALL_TIMEOUT") {
            s.host_call_timeout = Some(seconds("JSHOST_HOST_CALL_TIMEOUT", &v)?);
        }
        let count =
            |name: &str, v: &str| {
                v.trim().parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    Error::config(format!("{name} must be a whole number, 1 or more, got {v:?}"))
                })
            };
        if let Some(v) = get("JSHOST_MAX_MEMORY_MB") {
            s.max_memory_mb = Some(count("JSHOST_MAX_MEMORY_MB", &v)?);
        }
        if let Some(v) = get("JSHOST_MAX_CALLS") {
            s.max_calls = Some(count("JSHOST_MAX_CALLS", &v)?);
        }
        if let Some(v) = get("JSHOST_HOSTS") {
            s.owned_hosts = v.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                Error::config(format!(
                    "JSHOST_HOSTS must be a whole number of hosts, 1 or more, got {v:?}"
                ))
            })?;
        }
        Ok(s)
    }

    /// Checks the settings that can be checked without touching the disk.
    ///
    /// # Errors
    /// A config error when `root_url` ends in `/`, is not an `http://` URL, or is combined with
    /// `use_manager`; or when a timeout is zero.
    pub fn validate(&self) -> Result<()> {
        for url in &self.root_urls {
            if url.ends_with('/') {
                return Err(Error::config(format!(
                    "root_url must not end with `/`: {url:?} (use {:?})",
                    url.trim_end_matches('/')
                )));
            }
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(Error::config(format!(
                    "root_url must be an http:// or https:// URL, got {url:?}"
                )));
            }
            if self.use_manager {
                return Err(Error::config(
                    "root_url cannot be combined with use_manager: a manager decides where its hosts listen",
                ));
            }
        }
        if self.owned_hosts == 0 {
            return Err(Error::config("owned_hosts must be at least 1"));
        }
        if self.function_timeout.is_zero() {
            return Err(Error::config("function_timeout must be greater than zero"));
        }
        if self.startup_timeout.is_zero() {
            return Err(Error::config("startup_timeout must be greater than zero"));
        }
        if self
            .host_call_timeout
            .is_some_and(|t| t.as_millis() == 0 || t.as_millis() > 2_147_483_647)
        {
            return Err(Error::config(
                "host_call_timeout must be between 1 ms and 2147483647 ms",
            ));
        }
        if self.max_memory_mb == Some(0) || self.max_calls == Some(0) {
            return Err(Error::config("max_memory_mb and max_calls must be at least 1"));
        }
        Ok(())
    }

    /// The source root, resolved (the current directory when unset).
    pub fn resolved_source_root(&self) -> PathBuf {
        let cwd = || std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        match &self.source_root {
            Some(root) if root.is_absolute() => root.clone(),
            Some(root) => cwd().join(root),
            None => cwd(),
        }
    }

    /// The absolute path of the config file: the key a manager knows its host by.
    pub fn config_path(&self) -> PathBuf {
        self.resolve(&self.config_file)
    }

    /// The absolute path of the js-host CLI script.
    pub fn bin_path(&self) -> PathBuf {
        self.resolve(&self.path_to_bin)
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.resolved_source_root().join(path)
        }
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_follow_the_python_client() {
        let s = Settings::default();
        assert_eq!(s.config_file, Path::new("host.config.js"));
        assert!(!s.use_manager);
        assert_eq!(s.path_to_node, Path::new("node"));
        assert_eq!(s.function_timeout, Duration::from_secs(10));
        assert!(s.root_urls.is_empty());
        assert_eq!(s.owned_hosts, 1);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn relative_paths_resolve_against_the_source_root() {
        let s = Settings::default()
            .source_root("/srv/app")
            .config_file("conf/h.js");
        assert_eq!(s.config_path(), Path::new("/srv/app/conf/h.js"));
        assert_eq!(
            s.bin_path(),
            Path::new("/srv/app/node_modules/jshost-node/bin/jshost-node.js")
        );
        let abs = s.config_file("/etc/h.js");
        assert_eq!(abs.config_path(), Path::new("/etc/h.js"));
    }

    #[test]
    fn from_env_reads_every_variable() {
        let s = Settings::from_lookup(lookup(&[
            ("JSHOST_SOURCE_ROOT", "/srv"),
            ("JSHOST_CONFIG_FILE", "x.js"),
            ("JSHOST_USE_MANAGER", "yes"),
            ("JSHOST_PATH_TO_NODE", "/usr/bin/node"),
            ("JSHOST_PATH_TO_BIN", "bin.js"),
            ("JSHOST_FUNCTION_TIMEOUT", "2.5"),
            ("JSHOST_ROOT_URL", "http://127.0.0.1:8000"),
        ]))
        .expect("valid");
        assert_eq!(s.source_root.as_deref(), Some(Path::new("/srv")));
        assert_eq!(s.config_file, Path::new("x.js"));
        assert!(s.use_manager);
        assert_eq!(s.path_to_node, Path::new("/usr/bin/node"));
        assert_eq!(s.path_to_bin, Path::new("bin.js"));
        assert_eq!(s.function_timeout, Duration::from_millis(2500));
        assert_eq!(s.root_urls, vec!["http://127.0.0.1:8000"]);
        let two = Settings::from_lookup(lookup(&[
            ("JSHOST_ROOT_URL", "http://127.0.0.1:1, http://127.0.0.1:2"),
            ("JSHOST_HOSTS", "3"),
        ]))
        .expect("valid");
        assert_eq!(two.root_urls, vec!["http://127.0.0.1:1", "http://127.0.0.1:2"]);
        assert_eq!(two.owned_hosts, 3);
        let recycling = Settings::from_lookup(lookup(&[
            ("JSHOST_HOST_CALL_TIMEOUT", "1.5"),
            ("JSHOST_MAX_MEMORY_MB", "200"),
            ("JSHOST_MAX_CALLS", "1000"),
        ]))
        .expect("valid");
        assert_eq!(recycling.host_call_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(recycling.max_memory_mb, Some(200));
        assert_eq!(recycling.max_calls, Some(1000));
        let e = Settings::from_lookup(lookup(&[("JSHOST_MAX_CALLS", "0")])).expect_err("zero");
        assert!(e.to_string().contains("JSHOST_MAX_CALLS"), "{e}");
    }

    #[test]
    fn from_env_names_the_bad_variable() {
        let e = Settings::from_lookup(lookup(&[("JSHOST_FUNCTION_TIMEOUT", "soon")])).expect_err("bad");
        assert!(
            e.is_config() && e.to_string().contains("JSHOST_FUNCTION_TIMEOUT"),
            "{e}"
        );
        let e = Settings::from_lookup(lookup(&[("JSHOST_USE_MANAGER", "maybe")])).expect_err("bad");
        assert!(e.to_string().contains("JSHOST_USE_MANAGER"), "{e}");
    }

    #[test]
    fn validate_rejects_bad_root_urls() {
        let e = Settings::default()
            .root_url("http://127.0.0.1:8000/")
            .validate()
            .expect_err("slash");
        assert!(
            e.is_config() && e.to_string().contains("must not end with `/`"),
            "{e}"
        );
        let e = Settings::default()
            .root_url("http://127.0.0.1:8000")
            .use_manager(true)
            .validate()
            .expect_err("manager");
        assert!(e.to_string().contains("use_manager"), "{e}");
    }

    #[test]
    fn debug_shows_header_names_but_never_their_values() {
        let s = Settings::default()
            .header("authorization", "Bearer s3cr3t-token")
            .header("x-custom", "plain-looking-value");
        let shown = format!("{s:?} {s:#?}");
        assert!(
            shown.contains("authorization") && shown.contains("x-custom"),
            "{shown}"
        );
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("plain-looking"),
            "{shown}"
        );
        assert!(
            shown.contains("<redacted>") && shown.contains("function_timeout"),
            "{shown}"
        );
    }

    #[test]
    fn settings_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
        check::<Settings>();
    }
}
