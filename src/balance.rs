//! Spreading calls over the backends of a handle: least in flight, with backends that stop
//! answering taken out of rotation for a moment. One backend is the simple case of the same code.

use crate::backend::{now_ms, Backend, HostSetup, InFlight};
use bytes::Bytes;
use jshost_client::HttpClient;
use jshost_core::error::Build as _;
use jshost_core::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a backend that could not be reached stays out of rotation before it is tried again.
const OUT_OF_ROTATION: Duration = Duration::from_secs(1);
/// A call the hosts did not run (jshost-node shutting down) is sent at most this many times.
const NOT_RUN_ATTEMPTS: u32 = 6;
/// The pause before sending a call that was not run again, doubled each time.
const NOT_RUN_BACKOFF: Duration = Duration::from_millis(10);

/// The backend to use next: the least busy of those in rotation (round-robin among equals);
/// when none is in rotation, the one that has been out the longest. `skip` lists backends
/// already tried for this call.
fn pick(backends: &[Arc<Backend>], next: &AtomicUsize, skip: &[usize]) -> Option<usize> {
    let n = backends.len();
    if n == 1 {
        return skip.is_empty().then_some(0);
    }
    let start = next.fetch_add(1, Ordering::Relaxed);
    let now = now_ms();
    let mut best: Option<(usize, usize)> = None;
    let mut fallback: Option<(usize, u64)> = None;
    for k in 0..n {
        let i = (start + k) % n;
        if skip.contains(&i) {
            continue;
        }
        let b = &backends[i];
        let down_until = b.down_until_ms.load(Ordering::Relaxed);
        if down_until > now {
            if fallback.map(|(_, t)| down_until < t).unwrap_or(true) {
                fallback = Some((i, down_until));
            }
            continue;
        }
        let load = b.in_flight.load(Ordering::Relaxed);
        if best.map(|(_, l)| load < l).unwrap_or(true) {
            best = Some((i, load));
        }
    }
    best.map(|(i, _)| i).or(fallback.map(|(i, _)| i))
}

/// Calls `name` on one backend. A backend that cannot be reached before anything was sent is
/// taken out of rotation and the call moves on to the next one; once a request has been sent it
/// is never repeated (the function may have run), but for a request the host answered it did not
/// run (jshost-node shutting down: `503` with `X-Jshost-Not-Run`), which is sent again, plain, to
/// any backend, after a short pause, a few times at most, within the call's deadline.
pub(crate) async fn call(
    backends: &[Arc<Backend>],
    next: &AtomicUsize,
    client: &HttpClient,
    host_setup: &HostSetup,
    name: &str,
    body: Bytes,
    timeout: Duration,
) -> Result<String> {
    let started = Instant::now();
    let mut tried = Vec::new();
    let mut not_run = 0;
    loop {
        let Some(i) = pick(backends, next, &tried) else {
            return Err(Error::connection("the handle has no host to call").with_function(name));
        };
        tried.push(i);
        let backend = &backends[i];
        let left = timeout.saturating_sub(started.elapsed());
        let result = {
            let _in_flight = InFlight::enter(&backend.in_flight);
            backend
                .call(client, host_setup, name, body.clone(), left, not_run > 0)
                .await
        };
        match result {
            Err(e) if jshost_client::is_not_run(&e) => {
                not_run += 1;
                let pause = NOT_RUN_BACKOFF.saturating_mul(1 << (not_run - 1).min(8));
                if not_run >= NOT_RUN_ATTEMPTS || started.elapsed().saturating_add(pause) >= timeout {
                    return Err(e);
                }
                if backends.len() > 1 {
                    take_out_of_rotation(backend, &e);
                }
                tracing::debug!(url = %backend.endpoint().url, function = name, attempt = not_run, "the host did not run the call; sending it again");
                tokio::time::sleep(pause).await;
                tried.clear();
            }
            Err(e) if (e.is_not_sent() || e.is_process()) && backends.len() > 1 => {
                take_out_of_rotation(backend, &e);
                if e.is_not_sent() && tried.len() < backends.len() {
                    continue;
                }
                return Err(e);
            }
            Ok(text) => {
                if backend.down_until_ms.load(Ordering::Relaxed) != 0 {
                    backend.down_until_ms.store(0, Ordering::Relaxed);
                }
                return Ok(text);
            }
            other => return other,
        }
    }
}

fn take_out_of_rotation(backend: &Backend, e: &Error) {
    let until = now_ms().saturating_add(OUT_OF_ROTATION.as_millis() as u64);
    backend.down_until_ms.store(until, Ordering::Relaxed);
    tracing::warn!(url = %backend.endpoint().url, error = %e, "host taken out of rotation");
}

/// Puts every backend back in rotation (after a restart).
pub(crate) fn reset(backends: &[Arc<Backend>]) {
    for b in backends {
        b.down_until_ms.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jshost_manager::NodeSetup;

    /// Every call in flight holds this state machine, and it is moved (copied) into its box once
    /// per call: the rarely taken paths (re-reading a host's functions, explaining a connection
    /// error, running outside any runtime) are boxed so that their futures (large: the status
    /// probe holds a TLS-capable connection) do not make every call that large.
    #[test]
    fn a_calls_state_machine_stays_small() {
        let status = jshost_core::Status::parse(
            r#"{"type":"Host","version":"0.12.0","config":{"address":"127.0.0.1","port":9}}"#,
        )
        .expect("valid status");
        let backends = vec![Backend::external("http://127.0.0.1:9".into(), status, false)];
        let host_setup = HostSetup {
            setup: NodeSetup {
                node: "node".into(),
                bin: "bin.js".into(),
                config: "host.config.js".into(),
                cwd: ".".into(),
                jshost_node: true,
                host_flags: Vec::new(),
            },
            startup_timeout: Duration::from_secs(1),
            batch: true,
        };
        let (next, client) = (AtomicUsize::new(0), HttpClient::new());
        let name = "f";
        let call = call(
            &backends,
            &next,
            &client,
            &host_setup,
            name,
            Bytes::new(),
            Duration::from_secs(1),
        );
        let size = std::mem::size_of_val(&call);
        assert!(size <= 4096, "a call's future is {size} bytes");
    }
}
