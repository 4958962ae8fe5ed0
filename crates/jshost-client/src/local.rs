//! Connection pools per runtime.
//!
//! A connection's task runs on a runtime, and its socket is registered with that runtime's
//! reactor. Sharing connections across runtimes makes every caller depend on the runtime that
//! opened them: when it ends, the others' requests fail; when it blocks, theirs stall. So each
//! runtime that calls gets a pool of its own per client, whose connection tasks run on it (no
//! hand-off per call). The pools of a runtime that has ended, or of a client that is gone, are
//! forgotten; an actix-style server (one current-thread runtime per worker thread) gets one pool
//! per worker. Each thread caches the pools it uses, so a call takes no lock. A task on each
//! pool's runtime closes its expired idle connections every [`REAP_EVERY`] while there are any,
//! and sleeps otherwise.

use crate::connector::Connector;
use crate::pool::{IdleBudget, Pool as Connections, PoolKey, PoolStatus};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::runtime::Id;

/// How often each runtime's pool closes its expired idle connections while it has any (see
/// `shared_pool`).
const REAP_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone)]
struct Pool {
    /// The `HttpClient` the pool belongs to (dead once every clone of it is dropped).
    owner: Weak<()>,
    /// The runtime the pool's connection tasks run on.
    runtime: Id,
    /// Cleared when the marker task on the pool's runtime is dropped: the runtime has ended.
    runtime_alive: Arc<AtomicBool>,
    connections: Arc<Connections>,
}

impl Pool {
    /// Whether its client and its runtime are both alive.
    fn usable(&self) -> bool {
        self.owner.strong_count() > 0 && self.runtime_alive.load(Ordering::Relaxed)
    }
}

/// Owned by a task that lives as long as the client: dropped with the runtime's tasks when it
/// shuts down (or when the client is gone). The pool's idle connections, whose tasks ran on
/// that runtime, are then closed: they no longer count against the client's bound.
struct RuntimeMarker(Arc<AtomicBool>, Weak<Connections>);

impl Drop for RuntimeMarker {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
        if let Some(pool) = self.1.upgrade() {
            pool.close_idle();
        }
    }
}

thread_local! {
    static CACHED: RefCell<Vec<Pool>> = const { RefCell::new(Vec::new()) };
}

/// Every live pool, by client and runtime: threads of one runtime share its pool.
static POOLS: Mutex<Option<HashMap<(usize, Id), Pool>>> = Mutex::new(None);

/// The pool of the client `owner` on the caller's runtime (`runtime`, its id), created on first use. The caller must
/// be inside a tokio runtime (with I/O and time enabled). A new pool opens its connections with
/// a clone of `connector`.
pub(crate) fn pool(
    owner: &Arc<()>,
    budget: &Arc<IdleBudget>,
    connector: &Connector,
    runtime: Id,
) -> Arc<Connections> {
    let key = Arc::as_ptr(owner) as usize;
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if let Some(pool) = cached
            .iter()
            .find(|p| p.runtime == runtime && p.owner.as_ptr() as usize == key)
        {
            if pool.usable() {
                return pool.connections.clone();
            }
        }
        cached.retain(Pool::usable);
        let pool = shared_pool(owner, runtime, budget, connector);
        cached.push(pool.clone());
        pool.connections
    })
}

/// The runtime's pool for `owner` from the process-wide map, created when missing.
fn shared_pool(owner: &Arc<()>, runtime: Id, budget: &Arc<IdleBudget>, connector: &Connector) -> Pool {
    let key = (Arc::as_ptr(owner) as usize, runtime);
    let mut pools = POOLS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let pools = pools.get_or_insert_with(HashMap::new);
    if let Some(pool) = pools.get(&key).filter(|p| p.usable()) {
        return pool.clone();
    }
    // Forget pools of dropped clients and ended runtimes (their connections close with them).
    pools.retain(|_, p| p.usable());
    let runtime_alive = Arc::new(AtomicBool::new(true));
    let connections = Arc::new(Connections::new(budget.clone(), connector.clone()));
    let marker = RuntimeMarker(runtime_alive.clone(), Arc::downgrade(&connections));
    let (client, reaped) = (Arc::downgrade(owner), Arc::downgrade(&connections));
    tokio::spawn(async move {
        let _marker = marker;
        // Idle connections are otherwise looked at only when a request checks one out: a
        // runtime whose calls stopped would keep them open (and counted) for good. The task
        // sleeps while the pool has no idle connection, and ends with the client or the pool.
        loop {
            let Some(pool) = reaped.upgrade() else { break };
            if client.strong_count() == 0 {
                break;
            }
            if pool.has_idle() {
                drop(pool);
                tokio::time::sleep(REAP_EVERY).await;
                if let Some(pool) = reaped.upgrade() {
                    pool.reap();
                }
            } else {
                pool.wake_reaper.notified().await;
            }
        }
    });
    let pool = Pool {
        owner: Arc::downgrade(owner),
        runtime,
        runtime_alive,
        connections,
    };
    pools.insert(key, pool.clone());
    tracing::trace!(pools = pools.len(), %runtime, "opened a connection pool for this runtime");
    pool
}

/// Wakes the reapers of the client `owner`'s pools, which then end: the client is gone.
pub(crate) fn client_gone(owner: *const ()) {
    let key = owner as usize;
    let pools = POOLS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for ((client, _), pool) in pools.iter().flatten() {
        if *client == key {
            pool.connections.wake_reaper.notify_one();
        }
    }
}

/// The connections of the client `owner` to `key`, over the pools of all its runtimes.
pub(crate) fn status(owner: &Arc<()>, key: &PoolKey) -> PoolStatus {
    let owner = Arc::as_ptr(owner) as usize;
    let pools = POOLS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut total = PoolStatus::default();
    for ((client, _), pool) in pools.iter().flatten() {
        if *client == owner && pool.usable() {
            let one = pool.connections.status(key);
            total.idle += one.idle;
            total.busy += one.busy;
        }
    }
    total
}
