//! A pool of keep-alive HTTP/1.1 connections, for the calls made on one runtime (see `local.rs`).
//!
//! Each connection's task runs on that runtime; a request takes an idle connection or opens one,
//! and gives it back once its answer has been read to the end. A request made while no other is
//! in flight takes the connection used last (sequential calls stay on one warm connection: taking
//! another each time cost one and a half context switches per call); one made beside others takes
//! the connection idle longest, so that concurrent requests rotate over all connections, and so
//! over the worker processes of a host that hands each new connection to its next worker. Idle connections older than [`POOL_IDLE_TIMEOUT`] are never reused:
//! Node closes them at 5 s. Requests go out in origin form (`/path?query`) with a `Host` header.

use crate::connector::{ConnectFailure, Connector};
use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Request, Uri};
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use jshost_core::Error;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower_service::Service;

/// Idle pooled connections are closed after this long: below Node's 5 s keep-alive timeout.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_millis(3_500);

/// The sending half of a connection.
pub(crate) type Sender = SendRequest<Full<Bytes>>;

/// Which connections may carry a request: same scheme, same host and port.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Key {
    https: bool,
    authority: Authority,
}

impl Key {
    /// The key of an absolute URL; `None` without a host.
    pub(crate) fn of(uri: &Uri) -> Option<Key> {
        Some(Key {
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

/// One runtime's connections, by key.
pub(crate) struct Pool {
    idle: Mutex<Vec<(Key, VecDeque<Idle>)>>,
    /// Idle connections kept per key.
    max_idle: usize,
    connector: Connector,
    /// Connections checked out.
    busy: Arc<AtomicUsize>,
}

/// A connection checked out of its pool.
pub(crate) struct Conn {
    pub(crate) sender: Sender,
    pub(crate) key: Key,
    _busy: Busy,
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
    /// A pool keeping at most `max_idle` idle connections per key, opening new ones with
    /// `connector`.
    pub(crate) fn new(max_idle: usize, connector: Connector) -> Pool {
        Pool {
            idle: Mutex::new(Vec::new()),
            max_idle,
            connector,
            busy: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Key, VecDeque<Idle>)>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn pop(&self, key: &Key) -> Option<Idle> {
        let alone = self.busy.load(Ordering::Acquire) == 0;
        let mut idle = self.lock();
        let list = &mut idle.iter_mut().find(|(k, _)| k == key)?.1;
        if alone {
            list.pop_back()
        } else {
            list.pop_front()
        }
    }

    /// An open idle connection for `key`, else a new one to `uri`.
    ///
    /// # Errors
    /// A connection error marked not-sent when no connection can be opened (a config error for
    /// a scheme the client cannot speak).
    pub(crate) async fn checkout(&self, key: &Key, uri: &Uri) -> Result<Conn, Error> {
        while let Some(idle) = self.pop(key) {
            let mut sender = idle.sender;
            if idle.since.elapsed() >= POOL_IDLE_TIMEOUT || sender.is_closed() {
                continue; // dropped: its task closes the socket
            }
            // Ready at once, but for an answer read to its end a moment ago on a task that has
            // not yet run again; an error means the connection closed meanwhile.
            if sender.ready().await.is_ok() {
                return Ok(Conn {
                    sender,
                    key: key.clone(),
                    _busy: Busy::new(&self.busy),
                });
            }
        }
        self.connect(key, uri).await
    }

    /// A new connection for `key`, to `uri`, whose task runs on the caller's runtime.
    ///
    /// # Errors
    /// As [`Pool::checkout`].
    pub(crate) async fn connect(&self, key: &Key, uri: &Uri) -> Result<Conn, Error> {
        let stream = self
            .connector
            .clone()
            .call(uri.clone())
            .await
            .map_err(connect_error)?;
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
            _busy: Busy::new(&self.busy),
        })
    }

    /// Gives back a connection whose last answer was read to the end.
    pub(crate) fn put_back(&self, conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        let idle = Idle {
            sender: conn.sender,
            since: Instant::now(),
        };
        let mut all = self.lock();
        match all.iter_mut().find(|(k, _)| *k == conn.key) {
            Some((_, list)) if list.len() < self.max_idle => list.push_back(idle),
            Some(_) => {} // enough idle ones: this one closes
            None => all.push((conn.key, VecDeque::from([idle]))),
        }
    }
}

/// The error for a connection that could not be opened.
fn connect_error(failure: ConnectFailure) -> Error {
    let error = match &failure {
        #[cfg(feature = "tls")]
        ConnectFailure::Tls(_) => Error::connection(failure.to_string()),
        ConnectFailure::Scheme(message) => Error::config(message.clone()),
        ConnectFailure::Tcp(_) => Error::connection("cannot connect"),
    };
    error.with_not_sent().with_source(failure)
}

/// `request` with its URI in origin form and a `Host` header for `key`.
pub(crate) fn origin_form(mut request: Request<Full<Bytes>>, key: &Key) -> Request<Full<Bytes>> {
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    *request.uri_mut() = Uri::from(path);
    if let Ok(host) = http::HeaderValue::from_str(key.host()) {
        request.headers_mut().insert(http::header::HOST, host);
    }
    request
}
