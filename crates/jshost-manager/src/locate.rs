//! Finding (or starting) the manager of a config: what answers at the config's address, and a
//! manager process started to outlive this process.

use crate::expected::Expected;
use crate::manager::{probe_identified, probe_status, Manager, PROBE_TIMEOUT};
use crate::node::{self, NodeSetup};
use jshost_core::error::Build as _;
use jshost_core::{Error, ErrorKind, Result, Settings, Status};
use std::path::PathBuf;
use std::time::Duration;

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
    /// A manager answers there (or was just started): one manager serves all of a user's
    /// projects on a port, each config getting a host of its own.
    Manager {
        /// A client for it.
        manager: Manager,
        /// The status the config's hosts report (with the manager's port).
        expected: Status,
        /// Whether it is a js-host 0.12 manager started from this very config: such a manager
        /// lingers without hosts, so a connection that finds its host gone stops it. Never set
        /// for a manager started by another project (stopping it would stop that project's host),
        /// nor for jshost-node's, which exits by itself once it runs no host.
        stop_when_idle: bool,
        /// Whether it is jshost-node's manager, which forgets a host as soon as its process
        /// exits: a host it describes is running.
        jshost_node: bool,
    },
}

/// Which host package a manager starts hosts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ManagerKind {
    /// jshost-node's manager (its answers carry `X-Jshost-Node`).
    JshostNode,
    /// js-host 0.12's manager.
    JsHost,
}

impl ManagerKind {
    fn is_jshost_node(self) -> bool {
        self == ManagerKind::JshostNode
    }

    fn package(self) -> &'static str {
        match self {
            ManagerKind::JshostNode => "jshost-node",
            ManagerKind::JsHost => "js-host",
        }
    }
}

/// Finds what answers at the config's address and port: a host for the config, or a manager
/// (whichever project started it: it starts a host per config), which is started detached when
/// nothing answers and `start` is set. A cached expected status never decides on its own: on any
/// mismatch it is computed again.
///
/// # Errors
/// Config errors as for [`NodeSetup::check`]; a config error naming the port when another
/// program, or a manager of a js-host version other than 0.12, holds it; a connection error when
/// nothing answers and `start` is not set; process errors when the manager cannot start.
pub async fn locate_manager(settings: &Settings, setup: &NodeSetup, start: bool) -> Result<Located> {
    let mut expected = Expected::resolve(setup, settings).await?;
    loop {
        let url = expected.url()?;
        let port = expected.port();
        // What answers, and which package (jshost-node names itself in every answer).
        let probed = probe_identified(&url).await.map_err(|e| {
            e.context(format!(
                "the manager's port {port} (from {})",
                setup.config.display()
            ))
        })?;
        let kind = match probed {
            Some((_, true)) => ManagerKind::JshostNode,
            _ => ManagerKind::JsHost,
        };
        let live = probed.map(|(status, _)| status);
        let own = live.as_ref() == Some(&expected.manager_status());
        match live {
            Some(s) if &s == expected.status() => return Ok(Located::Host { url, status: s }),
            // A manager that may be another project's, found through a cached status: the
            // config's port may have changed since.
            Some(s) if s.is_manager() && !own && expected.is_cached() && expected.refresh().await? => {
                tracing::debug!(live = %s, "checking the manager against a fresh status");
            }
            Some(s) if s.is_manager() && s.is_supported_version() => {
                if kind.is_jshost_node() != setup.jshost_node {
                    // Wire-compatible, so it can serve this config; but its hosts run its own
                    // package (js-host's: no watch, workers or ESM configs).
                    tracing::warn!(
                        %url,
                        config = %setup.config.display(),
                        "the js-host manager on the config's port is {}: it runs this project's host with {}, not {} \
                         ({}); give this project a port of its own (`port` in its config) to have its own manager",
                        describe_manager(kind, &url, &s).await,
                        kind.package(),
                        if setup.jshost_node { "jshost-node" } else { "js-host" },
                        setup.bin.display()
                    );
                } else if own {
                    tracing::info!(%url, "reusing the running js-host manager");
                } else {
                    tracing::info!(%url, config = %setup.config.display(), "reusing the js-host manager on the config's port (started by another project); it runs a host of this config's own");
                }
                return Ok(Located::Manager {
                    manager: Manager::new(url).with_host_options(setup.host_options()),
                    expected: expected.status().clone(),
                    stop_when_idle: own && !kind.is_jshost_node(),
                    jshost_node: kind.is_jshost_node(),
                });
            }
            None if start => match start_manager(setup, expected.clone(), settings.startup_timeout).await {
                Ok(located) => return Ok(located),
                // Another project's manager took the port first (both started one): use it.
                Err(e) => match probe_status(&url).await {
                    Ok(Some(s)) if s.is_manager() => {
                        tracing::info!(%url, error = %e, "another js-host manager took the port first; using it");
                        expected.refresh().await?;
                    }
                    _ => return Err(e),
                },
            },
            _ if expected.refresh().await? => continue,
            None => return Err(Error::connection(format!("no js-host manager runs at {url}")).with_url(url)),
            Some(s) => return Err(held_error(setup, &expected, &url, &s)),
        }
    }
}

/// Starts the manager now and waits until it prints its status. A manager started from the
/// config computes the config's status itself: when it matches the expected one (from the cache
/// or from node), nothing else is run; when it does not, a cached expectation is computed again
/// with node, and the manager is judged by that fresh status: a stale cache never wins. So a
/// cold start pays for one node start-up, not two competing for the CPUs.
async fn start_manager(setup: &NodeSetup, mut expected: Expected, timeout: Duration) -> Result<Located> {
    let starting = StartingManager::spawn(setup)?;
    let printed = starting.wait_ready(expected.port(), timeout).await?;
    if printed != expected.manager_status() {
        tracing::debug!(%printed, "the new manager reports another status than expected; computing it again");
        if !expected.refresh().await? || printed != expected.manager_status() {
            return Err(Error::process(format!(
                "the js-host manager started for {} reports {printed}, expected {}",
                setup.config.display(),
                expected.manager_status()
            )));
        }
    }
    Ok(Located::Manager {
        manager: Manager::new(expected.url()?).with_host_options(setup.host_options()),
        expected: expected.status().clone(),
        stop_when_idle: !setup.jshost_node,
        jshost_node: setup.jshost_node,
    })
}

/// The process id a jshost-node manager at `url` reports in its `GET /jshost/info`.
async fn manager_pid(url: &str) -> Option<u32> {
    let info = jshost_client::get_fresh(&format!("{url}/jshost/info"), PROBE_TIMEOUT).await;
    let body = info.ok().flatten().filter(|r| r.status == 200)?.body;
    let value: serde_json::Value = serde_json::from_slice(&body).ok()?;
    value["pid"].as_u64().and_then(|p| u32::try_from(p).ok())
}

/// Who runs the manager at `url`: the config and directory of a jshost-node manager (read from
/// its process, when this user may), else what its status says.
async fn describe_manager(kind: ManagerKind, url: &str, live: &Status) -> String {
    let functions = live.functions();
    let serving = if functions.is_empty() {
        String::new()
    } else {
        format!(", its own config naming the functions {}", functions.join(", "))
    };
    if kind == ManagerKind::JsHost {
        return format!("a js-host {} manager{serving}", live.version());
    }
    let Some(pid) = manager_pid(url).await else {
        return format!("a jshost-node manager{serving}");
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    // `node BIN CONFIG --manager ...`
    let config = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "an unknown config".to_owned());
    let dir = std::fs::read_link(format!("/proc/{pid}/cwd"))
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| "an unknown directory".to_owned());
    format!("a jshost-node manager (pid {pid}) started for {config} in {dir}{serving}")
}

/// Why the process at the config's port is neither its host nor a usable manager.
fn held_error(setup: &NodeSetup, expected: &Expected, url: &str, live: &Status) -> Error {
    let config = setup.config.display();
    if live.is_manager() {
        return Error::config(format!(
            "port {} (the manager's, from {config}) is held by a js-host manager of version {}, which \
             this SDK cannot use (it speaks js-host 0.12.x): give this project a port of its own \
             (`port` in {config})",
            expected.port(),
            live.version()
        ))
        .with_url(url);
    }
    Error::config(format!(
        "port {} (the manager's, from {config}) is held by another program: {url} reports {live}",
        expected.port()
    ))
    .with_url(url)
}

/// How often a starting manager is asked for its status.
const STARTUP_POLL: Duration = Duration::from_millis(5);

/// A manager process that has been started and may not be listening yet.
///
/// The manager runs in a process group of its own (a Ctrl-C in this terminal does not reach it)
/// with its output going to `manager-HASH-PID-N.log` in this user's private directory. A
/// js-host manager gets `TMPDIR` set to that directory, so the logfiles it gives its hosts (in
/// Node's `os.tmpdir()`) are private too; jshost-node's manager puts them there by itself. This does what js-host's own `--detached` does without its extra launcher
/// process and 100 ms polling.
#[derive(Debug)]
pub(crate) struct StartingManager {
    child: tokio::process::Child,
    output_path: PathBuf,
    config: PathBuf,
}

impl StartingManager {
    /// Spawns `node js-host.js CONFIG --manager --json` (and `--prepare` for jshost-node).
    ///
    /// # Errors
    /// A config error when node cannot be run or the private directory is refused; a process
    /// error when its output file cannot be created.
    pub(crate) fn spawn(setup: &NodeSetup) -> Result<StartingManager> {
        let key = jshost_core::hash(setup.config.to_string_lossy().as_bytes());
        // A log of its own: managers racing for one port must not truncate each other's output.
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let private = crate::private::dir()?;
        let output_path = private.join(format!("manager-{}-{}-{n}.log", &key[..12], std::process::id()));
        tracing::info!(config = %setup.config.display(), output = %output_path.display(), "starting a js-host manager");
        let output = crate::private::create_new(&output_path)?;
        let output = output
            .try_clone()
            .map(|copy| (copy, output))
            .map_err(|e| Error::process(format!("cannot create {}", output_path.display())).with_source(e))?;
        let mut args = vec!["--manager", "--json"];
        if setup.jshost_node {
            // Start the host for this config at once, beside the manager's own start-up: the
            // connect that follows asks for it.
            args.push("--prepare");
        }
        // jshost-node's manager passes its own --workers/--watch on to the hosts it starts (its
        // prepared host among them); the other host options go with each /host/start.
        let mut flags = setup.host_flags.iter().map(String::as_str);
        while let Some(flag) = flags.next() {
            match flag {
                "--watch" => args.push(flag),
                "--workers" => args.extend([flag].into_iter().chain(flags.next())),
                _ => {}
            }
        }
        let mut cmd = setup.command(&args);
        cmd.stdout(output.0).stderr(output.1).process_group(0);
        node::move_ca_aside(&mut cmd, setup.jshost_node);
        if !setup.jshost_node {
            // js-host's manager logs its hosts in os.tmpdir(); jshost-node's uses the same
            // private directory as this SDK by itself.
            cmd.env("TMPDIR", &private);
        }
        // No kill_on_drop: the manager must outlive this process. When the handle is dropped,
        // tokio reaps the process in the background once it exits.
        let child = cmd.spawn().map_err(|e| setup.spawn_error(e))?;
        Ok(StartingManager {
            child,
            output_path,
            config: setup.config.clone(),
        })
    }

    /// Waits until the manager prints its status line (`--json`: js-host and jshost-node print
    /// it once they listen) and returns that status.
    ///
    /// # Errors
    /// A process error carrying what the manager printed when it exits instead of starting (for
    /// example the port is taken: the message names it); a timeout error after `timeout`.
    ///
    /// # Cancel safety
    /// Dropping the future leaves the manager running.
    pub(crate) async fn wait_ready(mut self, port: u16, timeout: Duration) -> Result<Status> {
        let config = self.config.display().to_string();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let printed = std::fs::read_to_string(&self.output_path).unwrap_or_default();
            if let Some(status) = status_line(&printed) {
                tracing::info!(
                    port = status.port(),
                    pid = self.child.id(),
                    "js-host manager started"
                );
                return Ok(status);
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                // What it printed up to its exit.
                let printed = std::fs::read_to_string(&self.output_path).unwrap_or(printed);
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
                    format!("the js-host manager for {config} did not report its status within {timeout:?} (start-up timeout)"),
                )
                .with_logfile(&self.output_path));
            }
            tokio::time::sleep(STARTUP_POLL).await;
        }
    }
}

/// The manager's status line in its output: the first complete line that is a manager's
/// status (lines before it are what the config printed while loading).
fn status_line(printed: &str) -> Option<Status> {
    let complete = &printed[..printed.rfind('\n')?];
    complete
        .lines()
        .filter(|line| line.trim_start().starts_with('{'))
        .filter_map(|line| Status::parse(line).ok())
        .find(Status::is_manager)
}

#[cfg(test)]
mod tests {
    use super::status_line;

    #[test]
    fn the_status_line_is_the_first_complete_manager_status() {
        let status = r#"{"type":"Manager","version":"0.12.0","config":{"address":"127.0.0.1","port":9009}}"#;
        assert!(status_line("").is_none());
        assert!(status_line(status).is_none(), "an incomplete line is not read");
        let printed = format!("loading {{ the config\n{{\"not\": \"a status\"}}\n{status}\nlater\n");
        let found = status_line(&printed).expect("found");
        assert!(found.is_manager());
        assert_eq!(found.port(), Some(9009));
    }
}
