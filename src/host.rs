//! [`JsHost`]: a handle to the hosts of one config, and the connection pool to them.

use crate::backend::{compatible, Backend, HostSetup, Supervision};
use crate::{balance, connect, Function};
use bytes::Bytes;
use jshost_client::{display_url, driver, HttpClient, PoolStatus};
use jshost_core::{Result, Settings, Status};
use jshost_manager::{probe_status_with, Manager, NodeSetup};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// A handle to the js-host process(es) serving one config, and the connection pool to them.
///
/// Cheap to clone (`Arc` inside; no need to wrap it in an `Arc`), `Send + Sync`: put it in your
/// axum state, share it between tasks, threads and runtimes. Clones share one keep-alive
/// connection pool.
///
/// - [`JsHost::connect`] reaches a host the way the settings say: a host already running at the
///   config's address (or `root_url`, or several `root_urls`), or, with `use_manager(true)`, a host
///   started (or reused) by a detached js-host manager that keeps it warm across restarts of
///   your program.
/// - [`JsHost::spawn`] starts one or more hosts owned by this process, which end with it.
///
/// A handle is a set of hosts behind one balancer (usually a set of one): calls go to the least
/// busy host. [`JsHost::hosts`] gives each host as a handle of its own.
///
/// The SDK's background work (connections, supervision of owned hosts, closing managed
/// connections of dropped handles) runs on its own small runtime, never on the caller's: a
/// handle created in one runtime works from any other, or from none, and a runtime that ends or
/// blocks does not affect calls made from the others.
#[derive(Clone)]
pub struct JsHost {
    inner: Arc<Inner>,
}

struct Inner {
    backends: Vec<Arc<Backend>>,
    next: AtomicUsize,
    client: HttpClient,
    host_setup: Arc<HostSetup>,
    function_timeout: Duration,
}

impl fmt::Debug for JsHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self
            .inner
            .backends
            .iter()
            .map(|b| b.endpoint().url.clone())
            .collect();
        f.debug_struct("JsHost")
            .field("urls", &urls)
            .field("config_file", &self.inner.host_setup.setup.config)
            .finish()
    }
}

impl JsHost {
    /// Connects to the host for `settings`.
    ///
    /// Without the manager: computes the status js-host would report for the config file
    /// (`js-host CONFIG --config`, cached between runs), and requires that the host answering at
    /// `root_url` (or the config's address and port; or each of `root_urls`) reports exactly
    /// that (behind `root_url`, only the port may differ).
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
        connect::check_constructor(&settings, false)?;
        let (settings, setup, client, backends) = driver::run(async move {
            let setup = NodeSetup::check(&settings)?;
            let client = HttpClient::from_settings(&settings)?;
            let backends = connect::connect(&settings, &setup, &client).await?;
            Ok((settings, setup, client, backends))
        })
        .await?;
        let host = JsHost::discovered(&settings, setup, client, backends).await;
        tracing::info!(
            urls = ?host.urls(),
            config = %host.config_file().display(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "connected to js-host"
        );
        Ok(host)
    }

    /// Starts `settings.owned_hosts` (default 1) js-hosts owned by this process (`node js-host.js
    /// CONFIG --port 0 --json --logfile FILE`) and connects to them.
    ///
    /// A child is killed when the last clone of the handle is dropped, and exits by itself if
    /// this process dies (even by SIGKILL). If it crashes, calls fail fast with a process error
    /// naming its exit status and logfile; [`JsHost::restart`] starts it again on the same port.
    ///
    /// # Errors
    /// Config errors as for [`JsHost::connect`]; a process error with the exit status and stderr
    /// tail when a host exits during start-up; a timeout error after `startup_timeout`.
    ///
    /// # Cancel safety
    /// Dropping the future kills the hosts being started.
    pub async fn spawn(settings: Settings) -> Result<JsHost> {
        connect::check_constructor(&settings, true)?;
        let (settings, setup, client, backends) = driver::run(async move {
            let setup = NodeSetup::check(&settings)?;
            let backends = connect::spawn(&settings).await?;
            tracing::info!(hosts = backends.len(), "spawned owned js-hosts");
            let client = HttpClient::from_settings(&settings)?;
            Ok((settings, setup, client, backends))
        })
        .await?;
        Ok(JsHost::discovered(&settings, setup, client, backends).await)
    }

    /// The handle, once each host's capabilities are known: from its jshost-node manager's answer
    /// for a managed host, else read from the host on the caller's runtime (when there is one),
    /// so that the pooled connection that opens is the first call's.
    async fn discovered(
        settings: &Settings,
        setup: NodeSetup,
        client: HttpClient,
        backends: Vec<Arc<Backend>>,
    ) -> Self {
        for backend in &backends {
            backend.discover(&client, settings.batch).await;
        }
        JsHost::new(settings, setup, client, backends)
    }

    fn new(settings: &Settings, setup: NodeSetup, client: HttpClient, backends: Vec<Arc<Backend>>) -> Self {
        let host_setup = HostSetup {
            setup,
            startup_timeout: settings.startup_timeout,
            batch: settings.batch,
        };
        JsHost {
            inner: Arc::new(Inner {
                backends,
                next: AtomicUsize::new(0),
                client,
                host_setup: Arc::new(host_setup),
                function_timeout: settings.function_timeout,
            }),
        }
    }

    /// This handle's connections to each of its hosts, summed over every runtime that calls:
    /// idle and busy connections and calls waiting for a request slot, by host URL (`unix:PATH`
    /// for a socket). Idle connections of all runtimes share one bound, `max_connections`.
    pub fn pool_status(&self) -> Vec<(String, PoolStatus)> {
        crate::backend::pool_status(&self.inner.backends, &self.inner.client)
    }

    /// The hosts calls are spread over, each as a handle of its own (sharing this handle's
    /// connection pool). One for a single host.
    pub fn hosts(&self) -> Vec<JsHost> {
        if self.inner.backends.len() == 1 {
            return vec![self.clone()];
        }
        self.inner
            .backends
            .iter()
            .map(|b| JsHost {
                inner: Arc::new(Inner {
                    backends: vec![b.clone()],
                    next: AtomicUsize::new(0),
                    client: self.inner.client.clone(),
                    host_setup: self.inner.host_setup.clone(),
                    function_timeout: self.inner.function_timeout,
                }),
            })
            .collect()
    }

    fn first(&self) -> &Backend {
        // A handle always has at least one backend: connect and spawn fail otherwise.
        &self.inner.backends[0]
    }

    /// The root URLs of the hosts, in order (see [`JsHost::url`]).
    pub fn urls(&self) -> Vec<String> {
        self.inner
            .backends
            .iter()
            .map(|b| display_url(&b.endpoint().url).into_owned())
            .collect()
    }

    /// The root URL requests are sent to (`http://127.0.0.1:9009`, or `root_url`). With several
    /// hosts, the first one's: see [`JsHost::urls`] and [`JsHost::hosts`].
    ///
    /// An owned jshost-node host listens on a private Unix socket by default
    /// ([`Settings::private_socket`]): its URL is then `unix:/run/user/UID/jshost/sock-.../host.sock`
    /// (or under `$TMPDIR/jshost-UID`), a socket in a directory only this user can enter,
    /// reachable by this SDK but not by every local user (nor by plain HTTP clients: use
    /// `private_socket(false)` for a TCP port).
    pub fn url(&self) -> String {
        display_url(&self.first().endpoint().url).into_owned()
    }

    /// The status the host reported when this handle connected (or restarted it). Hosts of one
    /// handle serve the same config: with several, they differ at most by port, and this is the
    /// first one's.
    pub fn status(&self) -> Status {
        self.first().endpoint().status.clone()
    }

    /// The absolute path of the config file.
    pub fn config_file(&self) -> &Path {
        &self.inner.host_setup.setup.config
    }

    /// The names of the functions the hosts serve.
    pub fn functions(&self) -> Vec<String> {
        self.first().endpoint().status.functions()
    }

    /// The manager of a managed host (`None` otherwise).
    pub fn manager(&self) -> Option<&Manager> {
        match &self.first().supervision {
            Supervision::Managed(m) if self.inner.backends.len() == 1 => Some(m.manager()),
            _ => None,
        }
    }

    /// The logfile of a managed or owned host (`tail -f` it to watch the host). `None` for a
    /// host run by someone else, and for several hosts: ask each of [`JsHost::hosts`].
    pub fn logfile(&self) -> Option<PathBuf> {
        self.single()?.endpoint().logfile.clone()
    }

    /// The process id of an owned host. `None` otherwise, and for several hosts: ask each of
    /// [`JsHost::hosts`].
    pub fn pid(&self) -> Option<u32> {
        self.single()?.pid()
    }

    fn single(&self) -> Option<&Backend> {
        (self.inner.backends.len() == 1).then(|| self.first())
    }

    /// The connection id a managed host knows this handle by (`None` once disconnected, and for
    /// other hosts).
    pub fn connection_id(&self) -> Option<String> {
        match &self.single()?.supervision {
            Supervision::Managed(m) => m.id(),
            _ => None,
        }
    }

    /// A [`Function`] of this host. The name is checked when it is called.
    pub fn function(&self, name: &str) -> Function {
        Function::on(self.clone(), name)
    }

    /// Asks the (first) host for its status now; `None` when nothing (or no js-host) answers.
    pub async fn request_status(&self) -> Option<Status> {
        let url = self.first().endpoint().url.clone();
        probe_status_with(&self.inner.client, &url).await.ok().flatten()
    }

    /// Whether every host answers with the status it reported when this handle connected, or
    /// that of a compatible host (the same config with other functions: a deploy restarted it).
    /// Only asks: see [`JsHost::update_status`] to take a compatible host's status.
    pub async fn is_running(&self) -> bool {
        for backend in &self.inner.backends {
            if self.live_status(backend).await.is_none() {
                return false;
            }
        }
        true
    }

    /// Asks every host for its status and takes that of a compatible host (the same config
    /// with other functions: a deploy restarted it) as this handle's, so that
    /// [`JsHost::functions`] and [`JsHost::status`] tell what runs now. Whether every host
    /// answered as a host of this config.
    pub async fn update_status(&self) -> bool {
        let mut all = true;
        for backend in &self.inner.backends {
            match self.live_status(backend).await {
                Some(live) if live != backend.endpoint().status => backend.adopt(live),
                Some(_) => {}
                None => all = false,
            }
        }
        all
    }

    /// The status `backend` answers with now, when it is its own or a compatible one.
    async fn live_status(&self, backend: &Backend) -> Option<Status> {
        let endpoint = backend.endpoint();
        match probe_status_with(&self.inner.client, &endpoint.url).await {
            Ok(Some(live)) if live == endpoint.status || compatible(&live, &endpoint.status) => Some(live),
            _ => None,
        }
    }

    /// Restarts managed or owned hosts: same port and logfile, fresh JavaScript state.
    ///
    /// A managed host that crashed or was stopped is no longer known to its manager: it is
    /// started again (on a new port, with a new logfile) and this handle reconnects to it.
    /// Restarts (and stops) of one host are serialised: concurrent calls both succeed.
    ///
    /// # Errors
    /// A config error for a host this SDK did not start; process errors from the restart.
    pub async fn restart(&self) -> Result<()> {
        let host = self.clone();
        driver::run(async move {
            for backend in &host.inner.backends {
                backend.restart().await?;
                // A crashed managed host comes back elsewhere; a restarted one may differ.
                backend
                    .discover(&host.inner.client, host.inner.host_setup.batch)
                    .await;
            }
            balance::reset(&host.inner.backends);
            Ok(())
        })
        .await
    }

    /// Stops managed or owned hosts now (other connections to a managed host lose it too).
    ///
    /// # Errors
    /// A config error for a host this SDK did not start; a process error when the manager no
    /// longer knows the host.
    pub async fn stop(&self) -> Result<()> {
        let host = self.clone();
        driver::run(async move {
            for backend in &host.inner.backends {
                backend.stop().await?;
            }
            Ok(())
        })
        .await
    }

    /// Closes this handle's connection to a managed host (the manager stops the host a few
    /// seconds after its last connection closes); stops an owned host; does nothing for a host
    /// run by someone else. Clones of this handle can no longer call functions of a managed host
    /// after it stopped.
    ///
    /// # Errors
    /// Connection errors when the manager does not answer. The connection then stays open and
    /// is closed when the last clone is dropped, or when this process exits.
    ///
    /// # Cancel safety
    /// Dropping the future leaves the connection open, to be closed as on an error.
    pub async fn disconnect(&self) -> Result<()> {
        let host = self.clone();
        driver::run(async move {
            for backend in &host.inner.backends {
                backend.disconnect().await?;
            }
            Ok(())
        })
        .await
    }

    /// One call: on the caller's runtime, or on the SDK's outside any (dropping the future
    /// cancels it).
    pub(crate) async fn call_function(
        &self,
        name: Arc<str>,
        body: Bytes,
        timeout: Option<Duration>,
    ) -> Result<String> {
        let span = tracing::debug_span!(
            target: "jshost",
            "jshost.call",
            function = %name,
            url = tracing::field::Empty,
            batch = tracing::field::Empty,
        );
        let host = self.clone();
        let call = async move {
            let inner = &*host.inner;
            let timeout = timeout.unwrap_or(inner.function_timeout);
            let (backends, client, host_setup) = (&inner.backends, &inner.client, &*inner.host_setup);
            balance::call(backends, &inner.next, client, host_setup, &name, body, timeout).await
        };
        // Boxed once: the call's state machine is large, and moved by value through the layers
        // above it would be copied once per layer.
        driver::here_or_on_driver(Box::pin(call.instrument(span))).await
    }
}
