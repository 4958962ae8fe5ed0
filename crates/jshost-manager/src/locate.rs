//! Finding (or starting) the manager of a config: what answers at the config's address, and a
//! manager process started to outlive this process.

use crate::expected::{status_url, Expected};
use crate::manager::{probe_status, Manager, PROBE_TIMEOUT};
use crate::node::{self, NodeSetup};
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
pub async fn locate_manager(settings: &Settings, setup: &NodeSetup, start: bool) -> Result<Located> {
    let mut expected = Expected::resolve(setup, settings).await?;
    loop {
        let url = expected.url()?;
        let port = expected.port();
        let live = probe_status(&url).await.map_err(|e| {
            e.context(format!(
                "the manager's port {port} (from {})",
                setup.config.display()
            ))
        })?;
        match live {
            Some(s) if &s == expected.status() => return Ok(Located::Host { url, status: s }),
            Some(s) if s == expected.manager_status() => {
                tracing::info!(%url, "reusing the running js-host manager");
                return Ok(Located::Manager {
                    manager: Manager::new(url).with_host_options(setup.host_options()),
                    expected: expected.status().clone(),
                });
            }
            None if start => return start_manager(setup, expected, settings.startup_timeout).await,
            _ if expected.refresh().await? => continue,
            None => return Err(Error::connection(format!("no js-host manager runs at {url}")).with_url(url)),
            Some(s) => return Err(held_error(setup, &expected, &url, &s)),
        }
    }
}

/// Starts the manager now; if the expected status came from the cache, computes it afresh while
/// the manager starts (a cold start pays for one node start-up, not two), and judges the new
/// manager by the fresh status: a stale cache never wins.
async fn start_manager(setup: &NodeSetup, mut expected: Expected, timeout: Duration) -> Result<Located> {
    let starting = StartingManager::spawn(setup)?;
    if let Err(e) = expected.refresh().await {
        starting.abandon();
        return Err(e);
    }
    let url = expected.url()?;
    starting.wait_ready(&expected.manager_status(), timeout).await?;
    Ok(Located::Manager {
        manager: Manager::new(url).with_host_options(setup.host_options()),
        expected: expected.status().clone(),
    })
}

/// Why the process at the config's port is neither its host nor its manager.
fn held_error(setup: &NodeSetup, expected: &Expected, url: &str, live: &Status) -> Error {
    let config = setup.config.display();
    if live.is_manager() {
        // Typically our own manager, started before the config file was edited.
        return Error::config(format!(
            "the js-host manager at {url} was started from another version of {config}: stop it \
             (`jshost manager stop`, or `Manager::new(url).stop()`) and connect again; it reports {live}, \
             the config now gives {}",
            expected.manager_status()
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

    /// Kills the manager being started.
    pub(crate) fn abandon(mut self) {
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
    pub(crate) async fn wait_ready(mut self, expected: &Status, timeout: Duration) -> Result<()> {
        let port = expected.port().unwrap_or_default();
        let url = status_url(expected)?;
        let config = self.config.display().to_string();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let probe = jshost_client::get_fresh(&format!("{url}/status"), PROBE_TIMEOUT).await;
            if let Ok(Some(response)) = probe {
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
