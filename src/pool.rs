//! Spreading calls over several hosts: least-in-flight, with hosts that stop answering taken out
//! of rotation for a moment.

use crate::JsHost;
use bytes::Bytes;
use jshost_core::Result;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long a host that could not be reached stays out of rotation before it is tried again.
pub const OUT_OF_ROTATION: Duration = Duration::from_secs(1);

pub(crate) struct Pool {
    members: Vec<Member>,
    next: AtomicUsize,
}

struct Member {
    host: JsHost,
    in_flight: AtomicUsize,
    /// Milliseconds since [`epoch`] until which the member is out of rotation (0: in rotation).
    down_until_ms: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Decrements a member's in-flight count when the call ends, however it ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    pub(crate) fn new(hosts: Vec<JsHost>) -> Pool {
        Pool {
            members: hosts
                .into_iter()
                .map(|host| Member {
                    host,
                    in_flight: AtomicUsize::new(0),
                    down_until_ms: AtomicU64::new(0),
                })
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Puts every member back in rotation (after a restart).
    pub(crate) fn reset_rotation(&self) {
        for m in &self.members {
            m.down_until_ms.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn hosts(&self) -> impl Iterator<Item = &JsHost> {
        self.members.iter().map(|m| &m.host)
    }

    /// The member to use next: the least busy of those in rotation (round-robin among equals);
    /// when none is in rotation, the one that has been out the longest. `skip` lists members
    /// already tried for this call.
    fn pick(&self, skip: &[usize]) -> Option<usize> {
        let n = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        let mut best: Option<(usize, usize)> = None;
        let mut fallback: Option<(usize, u64)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if skip.contains(&i) {
                continue;
            }
            let m = &self.members[i];
            let down_until = m.down_until_ms.load(Ordering::Relaxed);
            if down_until > now {
                if fallback.map(|(_, t)| down_until < t).unwrap_or(true) {
                    fallback = Some((i, down_until));
                }
                continue;
            }
            let load = m.in_flight.load(Ordering::Relaxed);
            if best.map(|(_, l)| load < l).unwrap_or(true) {
                best = Some((i, load));
            }
        }
        best.map(|(i, _)| i).or(fallback.map(|(i, _)| i))
    }

    /// Calls `name` on one member. A member that cannot be reached before anything was sent is
    /// taken out of rotation and the call moves on to the next one; once a request has been sent
    /// it is never repeated (the function may have run).
    pub(crate) async fn call(
        &self,
        name: &str,
        body: Bytes,
        timeout: Option<Duration>,
        cancel: Option<&CancellationToken>,
    ) -> Result<String> {
        let mut tried = Vec::with_capacity(2);
        loop {
            let Some(i) = self.pick(&tried) else {
                return Err(jshost_core::Error::connection(
                    "the host pool has no host to call",
                ));
            };
            tried.push(i);
            let member = &self.members[i];
            member.in_flight.fetch_add(1, Ordering::Relaxed);
            let guard = InFlight(&member.in_flight);
            let result = member.host.call_single(name, body.clone(), timeout, cancel).await;
            drop(guard);
            match result {
                Err(e) if e.is_not_sent() || e.is_process() => {
                    member
                        .down_until_ms
                        .store(now_ms() + OUT_OF_ROTATION.as_millis() as u64, Ordering::Relaxed);
                    tracing::warn!(url = %member.host.url(), error = %e, "host taken out of rotation");
                    if e.is_not_sent() && tried.len() < self.members.len() {
                        continue;
                    }
                    return Err(e);
                }
                Ok(text) => {
                    member.down_until_ms.store(0, Ordering::Relaxed);
                    return Ok(text);
                }
                other => return other,
            }
        }
    }
}
