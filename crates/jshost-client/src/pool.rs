//! A pool of keep-alive HTTP/1.1 connections, for the calls made on one runtime (see `local.rs`).
//!
//! Each connection's task runs on that runtime; a request takes an idle connection or opens one,
//! and gives it back once its answer has been read to the end. A request made while no other is
//! in flight takes the connection used last (sequential calls stay on one warm connection: taking
//! another each time costs context switches on both sides); one made beside others takes
//! the connection idle longest, so that concurrent requests rotate over all connections, and so
//! over the worker processes of a host that hands each new connection to its next worker. Idle
//! connections older than [`POOL_IDLE_TIMEOUT`] are never reused (Node closes them at 5 s) and
//! are closed by [`Pool::reap`], which the pool's runtime runs while it has idle connections. The idle connections
//! of all the pools of one client (every runtime, every host) count against one bound, shared
//! through [`IdleBudget`]. Requests go out in origin form (`/path?query`) with a `Host` header.

use crate::connector::Connector;
use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::Uri;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use jshost_core::error::Build as _;
use jshost_core::Error;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Idle pooled connections are closed after this long: below Node's 5 s keep-alive timeout.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_millis(3_500);

/// The sending half of a connection.
pub(crate) type Sender = SendRequest<Full<Bytes>>;

/// Which connections may carry a request: same scheme, same host and port.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PoolKey {
    https: bool,
    authority: Authority,
}

impl PoolKey {
    /// The key of an absolute URL; `None` without a host.
    pub(crate) fn of(uri: &Uri) -> Option<PoolKey> {
        Some(PoolKey {
            https: uri.scheme() == Some(&Scheme::HTTPS),
            authority: uri.authority()?.clone(),
        })
    }

    /// The `Host` header for requests to it.
    pub(crate) fn host(&self) -> &str {
        self.authority.as_str()
    }
}

struct Idle {
    sender: Sender,
    since: Instant,
}

impl Idle {
    fn expired(&self) -> bool {
        self.since.elapsed() >= POOL_IDLE_TIMEOUT || self.sender.is_closed()
    }
}

/// The idle connections a client may keep, over all its pools (one per runtime).
pub(crate) struct IdleBudget {
    max: usize,
    kept: AtomicUsize,
}

impl IdleBudget {
    /// A budget of `max` idle connections.
    pub(crate) fn new(max: usize) -> Arc<IdleBudget> {
        Arc::new(IdleBudget {
            max,
            kept: AtomicUsize::new(0),
        })
    }

    /// Takes one place; `false` when none is left.
    fn take(&self) -> bool {
        let taken = self.kept.fetch_add(1, Ordering::AcqRel) < self.max;
        if !taken {
            self.kept.fetch_sub(1, Ordering::AcqRel);
        }
        taken
    }

    fn give_back(&self, places: usize) {
        self.kept.fetch_sub(places, Ordering::AcqRel);
    }
}

/// One host's connections in a pool.
struct Entry {
    key: PoolKey,
    idle: VecDeque<Idle>,
    /// Its connections checked out.
    busy: Arc<AtomicUsize>,
}

/// One runtime's connections, by key.
pub(crate) struct Pool {
    entries: Mutex<Vec<Entry>>,
    /// Shared by the client's pools.
    budget: Arc<IdleBudget>,
    connector: Connector,
    /// Wakes the pool's reaper (see `local.rs`): a connection became idle, or the client is gone.
    pub(crate) wake_reaper: tokio::sync::Notify,
}

/// A connection checked out of its pool.
pub(crate) struct Conn {
    pub(crate) sender: Sender,
    pub(crate) key: PoolKey,
    _busy: Busy,
}

/// A host's connections in a pool, or in all the pools of a client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Open connections waiting for a request.
    pub idle: usize,
    /// Connections carrying a request.
    pub busy: usize,
    /// Requests waiting for one of the client's `max_connections` request slots.
    pub waiting: usize,
}

/// Counts a checked-out connection until it is given back or dropped.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn new(count: &Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::AcqRel);
        Busy(count.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Pool {
    /// A pool whose idle connections count against `budget`, opening new ones with `connector`.
    pub(crate) fn new(budget: Arc<IdleBudget>, connector: Connector) -> Pool {
        Pool {
            entries: Mutex::new(Vec::new()),
            budget,
            connector,
            wake_reaper: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The entry of `key` in `entries`, made when missing.
    fn entry<'e>(entries: &'e mut Vec<Entry>, key: &PoolKey) -> &'e mut Entry {
        let i = match entries.iter().position(|e| e.key == *key) {
            Some(i) => i,
            None => {
                entries.push(Entry {
                    key: key.clone(),
                    idle: VecDeque::new(),
                    busy: Arc::new(AtomicUsize::new(0)),
                });
                entries.len() - 1
            }
        };
        &mut entries[i]
    }

    /// An idle connection of `key` (the newest when none is busy, else the oldest), and the
    /// key's busy counter.
    fn pop(&self, key: &PoolKey) -> (Option<Idle>, Arc<AtomicUsize>) {
        let mut entries = self.lock();
        let entry = Self::entry(&mut entries, key);
        let popped = if entry.busy.load(Ordering::Acquire) == 0 {
            entry.idle.pop_back()
        } else {
            entry.idle.pop_front()
        };
        if popped.is_some() {
            self.budget.give_back(1);
        }
        (popped, entry.busy.clone())
    }

    /// An open idle connection for `key`, else a new one to `uri`.
    ///
    /// # Errors
    /// When no connection can be opened, the error of `ConnectFailure::into_error` (marked
    /// not-sent): a connection error, or a config error for a URL the client cannot connect to
    /// or a refused certificate.
    pub(crate) async fn checkout(&self, key: &PoolKey, uri: &Uri) -> Result<Conn, Error> {
        loop {
            let (idle, busy) = self.pop(key);
            let Some(idle) = idle else {
                return self.open(key, uri, &busy).await;
            };
            if idle.expired() {
                continue; // dropped: its task closes the socket
            }
            let mut sender = idle.sender;
            // Ready at once, but for an answer read to its end a moment ago on a task that has
            // not yet run again; an error means the connection closed meanwhile.
            if sender.ready().await.is_ok() {
                return Ok(Conn {
                    sender,
                    key: key.clone(),
                    _busy: Busy::new(&busy),
                });
            }
        }
    }

    /// A new connection for `key`, to `uri`, whose task runs on the caller's runtime.
    ///
    /// # Errors
    /// As [`Pool::checkout`].
    pub(crate) async fn connect(&self, key: &PoolKey, uri: &Uri) -> Result<Conn, Error> {
        let busy = Self::entry(&mut self.lock(), key).busy.clone();
        self.open(key, uri, &busy).await
    }

    async fn open(&self, key: &PoolKey, uri: &Uri, busy: &Arc<AtomicUsize>) -> Result<Conn, Error> {
        // Boxed: opening a connection is rare, and inline it would make every request's state
        // machine larger.
        let stream = Box::pin(self.connector.connect(uri))
            .await
            .map_err(crate::connector::ConnectFailure::into_error)?;
        let (sender, connection) = http1::handshake(stream).await.map_err(|e| {
            Error::connection("the connection failed before the request was sent")
                .with_not_sent()
                .with_source(e)
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "a pooled connection ended with an error");
            }
        });
        Ok(Conn {
            sender,
            key: key.clone(),
            _busy: Busy::new(busy),
        })
    }

    /// Gives back a connection whose last answer was read to the end; it is closed instead when
    /// the client keeps as many idle connections as it may.
    pub(crate) fn put_back(&self, conn: Conn) {
        if conn.sender.is_closed() || !self.budget.take() {
            return;
        }
        let idle = Idle {
            sender: conn.sender,
            since: Instant::now(),
        };
        Self::entry(&mut self.lock(), &conn.key).idle.push_back(idle);
        self.wake_reaper.notify_one();
    }

    /// Whether the pool keeps any idle connection.
    pub(crate) fn has_idle(&self) -> bool {
        self.lock().iter().any(|e| !e.idle.is_empty())
    }

    /// Closes the idle connections that may not be used any more (idle too long, or closed by
    /// the host).
    pub(crate) fn reap(&self) {
        let mut entries = self.lock();
        let mut reaped = 0;
        for entry in entries.iter_mut() {
            let before = entry.idle.len();
            entry.idle.retain(|i| !i.expired());
            reaped += before - entry.idle.len();
        }
        drop(entries);
        if reaped != 0 {
            self.budget.give_back(reaped);
            tracing::trace!(reaped, "closed idle connections");
        }
    }

    /// Closes every idle connection (their runtime has ended).
    pub(crate) fn close_idle(&self) {
        let closed: usize = self.lock().iter_mut().map(|e| e.idle.drain(..).count()).sum();
        self.budget.give_back(closed);
    }

    /// The connections of `key` in this pool (`waiting` is left at 0).
    pub(crate) fn status(&self, key: &PoolKey) -> PoolStatus {
        let entries = self.lock();
        match entries.iter().find(|e| e.key == *key) {
            Some(e) => PoolStatus {
                idle: e.idle.len(),
                busy: e.busy.load(Ordering::Acquire),
                waiting: 0,
            },
            None => PoolStatus::default(),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle: usize = self.lock().iter().map(|e| e.idle.len()).sum();
        self.budget.give_back(idle);
    }
}
