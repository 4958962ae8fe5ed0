//! The HTTP side of jshost: a pooled keep-alive client ([`HttpClient`]) and the js-host function
//! call protocol ([`HttpClient::call_function`]).
//!
//! A request runs on the caller's tokio runtime, on connections kept per runtime (their tasks
//! run there too), and on the SDK's own small runtime when the caller is outside any: a client
//! works the same from any runtime (multi-thread, current-thread, one per actix worker) or from
//! none, and a runtime that blocks or ends holds up no other runtime's requests.
//!
//! The pool is tuned for js-host: idle connections are closed after
//! [`DEFAULT_POOL_IDLE_TIMEOUT`] (below Node's 5 s keep-alive timeout, so a connection the host is
//! about to close is never reused), `TCP_NODELAY` is set, and at most
//! [`DEFAULT_MAX_CONNECTIONS`] requests are in flight per client and as many connections idle,
//! counted over every runtime and every host the client calls, which bounds the number of sockets
//! the client opens ([`HttpClient::max_open_connections`]); [`HttpClient::pool_status`] shows
//! them.
//!
//! `https://` URLs are spoken with rustls (the default `tls` feature), trusting the system's root
//! certificates plus [`Settings::ca_file`](jshost_core::Settings::ca_file); the headers of
//! [`Settings::header`](jshost_core::Settings::header) go with every request
//! ([`HttpClient::from_settings`]). Without the `tls` feature an `https://` URL is a config error.
//!
//! Most users depend on the `jshost` crate instead; this crate is its transport.
//!
//! ```no_run
//! # async fn demo() -> jshost_core::Result<()> {
//! use jshost_client::HttpClient;
//! use std::time::Duration;
//! let client = HttpClient::new();
//! let body = bytes::Bytes::from_static(br#"{"name":"Foo"}"#);
//! let text = client
//!     .call_function("http://127.0.0.1:9009", "hello_world", body, Duration::from_secs(10))
//!     .await?;
//! assert_eq!(text, "Hello, Foo!");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#[cfg(not(unix))]
compile_error!("jshost supports Unix-like systems only (Linux, macOS): it supervises Node processes with Unix process groups and pipes");

use bytes::Bytes;
use connector::Connector;
use http::{header, HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use jshost_core::error::Build as _;
use jshost_core::{Error, ErrorKind, Result};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

mod answer;
mod connector;
#[doc(hidden)]
pub mod driver;
mod local;
mod pool;
mod probe;
#[cfg(feature = "tls")]
mod tls;
mod unix;

#[cfg(test)]
use answer::stack_from_html;
#[doc(hidden)]
pub use answer::{call_result, call_timeout, host_timeout_ms, NOT_RUN_HEADER, TIMEOUT_HEADER};
pub use pool::PoolStatus;
pub use probe::get_fresh;
pub use unix::{display_url, socket_url};

/// Idle pooled connections are closed after this long: below Node's 5 s keep-alive timeout.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = pool::POOL_IDLE_TIMEOUT;
/// Default cap on requests in flight (and so on open sockets) per client.
pub const DEFAULT_MAX_CONNECTIONS: usize = 128;

/// A pooled, keep-alive HTTP/1.1 client for js-host hosts and managers.
///
/// Cheap to clone: clones share their connection pools; there is no need to wrap it in an `Arc`.
///
/// Works from any runtime, or none. Called from within a tokio runtime (which must have I/O and
/// time enabled, as `#[tokio::main]` and `#[tokio::test]` do), a request runs right there, on a
/// pool of connections kept per runtime thread, so a runtime that ends or blocks never affects
/// calls made from another. Called from outside any runtime, it runs on the SDK's own small
/// runtime.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    /// Identifies this client's pools (see the `local` module).
    pools: Arc<()>,
    /// The idle connections all its pools may keep.
    idle: Arc<pool::IdleBudget>,
    permits: Semaphore,
    /// Requests waiting for a permit, by host (only touched when none is free).
    waiting: std::sync::Mutex<Vec<(pool::PoolKey, usize)>>,
    max_connections: usize,
    transport: Arc<Transport>,
}

impl Drop for ClientInner {
    /// Ends the idle-connection reapers of the client's pools (see the `local` module): they
    /// sleep until woken, and see the client gone once `pools` is.
    fn drop(&mut self) {
        let owner = Arc::as_ptr(&self.pools);
        drop(std::mem::replace(&mut self.pools, Arc::new(())));
        local::client_gone(owner);
    }
}

/// What every request of a client carries and trusts, pooled or not.
#[derive(Default)]
pub(crate) struct Transport {
    /// Sent with every request (`Settings::header`).
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// What connections are opened with (and `https://` URLs trusted with).
    pub(crate) connector: Connector,
}

impl Transport {
    /// The one request builder, for calls, probes and manager requests alike: the URI in origin
    /// form, `Host` for `key` (unless the client's headers name one), a JSON content type with a
    /// body, the time left until `deadline` in [`TIMEOUT_HEADER`] when the host's timers can
    /// keep it, and the client's headers.
    pub(crate) fn request(
        &self,
        method: Method,
        uri: &Uri,
        key: &pool::PoolKey,
        body: Option<Bytes>,
        deadline: Option<Instant>,
    ) -> Result<Request<Full<Bytes>>> {
        let method = match method {
            Method::Get => http::Method::GET,
            Method::Post => http::Method::POST,
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut builder = Request::builder().method(method).uri(path);
        if !self.headers.iter().any(|(name, _)| name == header::HOST) {
            builder = builder.header(header::HOST, key.host());
        }
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(ms) = deadline.and_then(|d| host_timeout_ms(d.saturating_duration_since(Instant::now())))
        {
            builder = builder.header(TIMEOUT_HEADER, ms);
        }
        if let Some(headers) = builder.headers_mut() {
            for (name, value) in &self.headers {
                headers.append(name.clone(), value.clone());
            }
        }
        builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| Error::config("cannot build the HTTP request").with_source(e))
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("HttpClient");
        d.field("max_connections", &self.inner.max_connections)
            .field("available", &self.inner.permits.available_permits());
        // Names only: values may be secrets (a bearer token).
        let headers: Vec<&str> = self
            .inner
            .transport
            .headers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        d.field("headers", &headers);
        #[cfg(feature = "tls")]
        d.field("ca_file", &self.inner.transport.connector.tls.ca_file);
        d.finish()
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

/// A complete HTTP response: status, headers and body.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The headers (jshost-node names itself in `X-Jshost-Node` on every answer).
    pub headers: http::HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Response {
    /// The body as text (lossy for invalid UTF-8).
    pub fn text_lossy(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The two methods the js-host protocol uses.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Method {
    Get,
    Post,
}

impl HttpClient {
    /// A client with [`DEFAULT_MAX_CONNECTIONS`].
    pub fn new() -> Self {
        Self::with_max_connections(DEFAULT_MAX_CONNECTIONS)
    }

    /// A client that keeps at most `max` requests in flight (at least 1).
    pub fn with_max_connections(max: usize) -> Self {
        Self::with_transport(max, Transport::default())
    }

    fn with_transport(max: usize, transport: Transport) -> Self {
        let max = max.max(1);
        HttpClient {
            inner: Arc::new(ClientInner {
                pools: Arc::new(()),
                idle: pool::IdleBudget::new(max),
                permits: Semaphore::new(max),
                waiting: std::sync::Mutex::new(Vec::new()),
                max_connections: max,
                transport: Arc::new(transport),
            }),
        }
    }

    /// A client (with [`DEFAULT_MAX_CONNECTIONS`]) configured by `settings`: it sends the
    /// headers of [`Settings::header`](jshost_core::Settings::header) with every request, and
    /// trusts the certificates of [`Settings::ca_file`](jshost_core::Settings::ca_file) for
    /// `https://` URLs beside the system's roots.
    ///
    /// ```
    /// let settings = jshost_core::Settings::default().header("authorization", "Bearer s3cret");
    /// let client = jshost_client::HttpClient::from_settings(&settings)?;
    /// # Ok::<(), jshost_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// A config error naming the header whose name or value cannot be sent (the value itself is
    /// not shown: it may be a secret), or naming the CA file when it cannot be read or holds no
    /// usable certificate; without the `tls` feature, a `ca_file` or an `https://` root URL.
    pub fn from_settings(settings: &jshost_core::Settings) -> Result<Self> {
        let headers = settings
            .headers
            .iter()
            .map(|(name, value)| valid_header(name, value))
            .collect::<Result<Vec<_>>>()?;
        #[cfg(feature = "tls")]
        let transport = Transport {
            headers,
            connector: Connector::trusting(match &settings.ca_file {
                Some(path) => tls::Tls::with_ca_file(path)?,
                None => tls::Tls::default(),
            }),
        };
        #[cfg(not(feature = "tls"))]
        let transport = {
            if let Some(path) = &settings.ca_file {
                return Err(Error::config(format!(
                    "ca_file {} is set, and jshost was built without its `tls` feature (enable the \
                     default feature `tls` of jshost)",
                    path.display()
                )));
            }
            if let Some(url) = settings.root_urls.iter().find(|u| u.starts_with("https://")) {
                return Err(Error::config(connector::no_tls(url)));
            }
            Transport {
                headers,
                connector: Connector::default(),
            }
        };
        Ok(Self::with_transport(DEFAULT_MAX_CONNECTIONS, transport))
    }

    /// `GET url` on a connection of its own (see [`get_fresh`]), with this client's headers, and
    /// TLS with its trusted certificates for an `https://` URL.
    ///
    /// Unlike [`get_fresh`], an answer that asks for credentials (HTTP 401, 403 or 407: a proxy
    /// that checks a token) is an error, so that a probe does not take an authenticating proxy
    /// for another program.
    ///
    /// # Errors
    /// As [`get_fresh`]; and
    /// - an unexpected-response error with the status for HTTP 401, 403 and 407;
    /// - for an `https://` URL, a config error saying "TLS" and why when the certificate or the
    ///   handshake is refused (unknown CA, expired, issued for another name, not a TLS server),
    ///   or a connection error when the connection breaks during the handshake.
    pub async fn get_fresh(&self, url: &str, timeout: Duration) -> Result<Option<Response>> {
        match probe::fetch(url, timeout, self.inner.transport.clone()).await? {
            Some(response) if auth_hint(response.status).is_some() => Err(Error::new(
                ErrorKind::UnexpectedResponse,
                format!(
                    "GET {url} answered HTTP {}: {}",
                    response.status,
                    auth_hint(response.status).unwrap_or_default()
                ),
            )
            .with_url(url)
            .with_status(response.status)
            .with_body(response.text_lossy())),
            answer => Ok(answer),
        }
    }

    /// The cap on requests in flight.
    pub fn max_connections(&self) -> usize {
        self.inner.max_connections
    }

    /// The bound on sockets the client keeps open, to all its hosts from all runtimes:
    /// [`HttpClient::max_connections`] carrying requests plus as many idle. (A connection that
    /// closes is counted until its task has seen it close.)
    pub fn max_open_connections(&self) -> usize {
        self.inner.max_connections * 2
    }

    /// The client's connections to the host at `root_url` (every runtime's), and its requests
    /// waiting for a request slot; all zero for a URL without a host.
    ///
    /// ```
    /// let client = jshost_client::HttpClient::new();
    /// let status = client.pool_status("http://127.0.0.1:9009");
    /// assert_eq!((status.idle, status.busy, status.waiting), (0, 0, 0));
    /// ```
    pub fn pool_status(&self, root_url: &str) -> PoolStatus {
        let Some(key) = root_url.parse::<Uri>().ok().as_ref().and_then(pool::PoolKey::of) else {
            return PoolStatus::default();
        };
        let mut status = local::status(&self.inner.pools, &key);
        status.waiting = self
            .inner
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, n)| *n);
        status
    }

    /// A request slot, counting the request as waiting for `key` while none is free.
    async fn permit(&self, key: &pool::PoolKey) -> Result<tokio::sync::SemaphorePermit<'_>> {
        if let Ok(permit) = self.inner.permits.try_acquire() {
            return Ok(permit);
        }
        let _waiting = Waiting::enter(&self.inner.waiting, key);
        self.inner
            .permits
            .acquire()
            .await
            .map_err(|e| Error::connection("the HTTP client was shut down").with_source(e))
    }

    /// Sends one request and reads the whole response, within `timeout`: on the caller's
    /// runtime, or on the SDK's when there is none.
    async fn request(
        &self,
        method: Method,
        url: &str,
        body: Option<Bytes>,
        timeout: Duration,
        tell_deadline: bool,
    ) -> Result<Response> {
        let uri: Uri = url
            .parse()
            .map_err(|e| Error::config(format!("invalid URL {url:?}")).with_source(e))?;
        #[cfg(not(feature = "tls"))]
        if uri.scheme_str() == Some("https") {
            return Err(Error::config(connector::no_tls(url)).with_url(url));
        }
        // The host is told the deadline only when it is one its timers can keep.
        let deadline = if tell_deadline {
            Instant::now().checked_add(timeout)
        } else {
            None
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            return self
                .timed(method, uri, body, timeout, url, runtime.id(), deadline)
                .await;
        }
        let client = self.clone();
        let url = url.to_owned();
        // Boxed: inline, this rare path would make every request's state machine larger.
        Box::pin(driver::run(async move {
            let runtime = tokio::runtime::Handle::current().id();
            client
                .timed(method, uri, body, timeout, &url, runtime, deadline)
                .await
        }))
        .await
    }

    /// [`HttpClient::send`] within `timeout`, on the pool of `runtime` (the current one).
    #[allow(clippy::too_many_arguments)]
    async fn timed(
        &self,
        method: Method,
        uri: Uri,
        body: Option<Bytes>,
        timeout: Duration,
        url: &str,
        runtime: tokio::runtime::Id,
        deadline: Option<Instant>,
    ) -> Result<Response> {
        // The readable URL (`unix:PATH` for a socket) is only worked out for an error.
        match tokio::time::timeout(timeout, self.send(method, uri, body, runtime, deadline)).await {
            Ok(result) => result.map_err(|e| e.with_url(display_url(url).as_ref())),
            Err(_) => Err(answer::no_answer(url, timeout)),
        }
    }

    /// `GET url`, within `timeout`.
    ///
    /// # Errors
    /// Connection errors (nothing answers, connection reset), timeout errors.
    ///
    /// # Cancel safety
    /// Dropping the future aborts the request; the connection is then not reused.
    pub async fn get(&self, url: &str, timeout: Duration) -> Result<Response> {
        self.request(Method::Get, url, None, timeout, false).await
    }

    /// `POST url` with a JSON body, within `timeout`.
    ///
    /// # Errors
    /// As [`HttpClient::get`].
    ///
    /// # Cancel safety
    /// As [`HttpClient::get`].
    pub async fn post_json(&self, url: &str, body: Bytes, timeout: Duration) -> Result<Response> {
        self.request(Method::Post, url, Some(body), timeout, false).await
    }

    /// Sends the request on a pooled connection and reads the answer. A request the host did
    /// not run (jshost-node shutting down: `503` with `X-Jshost-Not-Run`) is sent once more on a
    /// fresh connection (the idle ones may all lead to the process that is going away); a second
    /// such answer is an error for which [`is_not_run`] holds.
    async fn send(
        &self,
        method: Method,
        uri: Uri,
        body: Option<Bytes>,
        runtime: tokio::runtime::Id,
        deadline: Option<Instant>,
    ) -> Result<Response> {
        let inner = &*self.inner;
        let key =
            pool::PoolKey::of(&uri).ok_or_else(|| Error::config(format!("{uri}: the URL has no host")))?;
        let _permit = self.permit(&key).await?;
        let request = inner
            .transport
            .request(method, &uri, &key, body.clone(), deadline)?;
        let pool = local::pool(&inner.pools, &inner.idle, &inner.transport.connector, runtime);
        let conn = pool.checkout(&key, &uri).await?;
        let answer = match send_on(&pool, conn, request).await {
            // The connection closed before the request was written: it was never sent, so it
            // is safe to send it again, once, on a fresh connection.
            Err(Failure::NotSent(request, e)) => {
                tracing::debug!(error = %e, "request not sent on a pooled connection; retrying on a fresh one");
                let conn = pool.connect(&key, &uri).await?;
                send_on(&pool, conn, *request)
                    .await
                    .map_err(Failure::into_error)?
            }
            result => result.map_err(Failure::into_error)?,
        };
        if !answer.not_run {
            return Ok(answer.response);
        }
        tracing::debug!(%uri, "the host did not run the request (it is shutting down); sending it again on a fresh connection");
        let request = inner.transport.request(method, &uri, &key, body, deadline)?;
        let conn = pool.connect(&key, &uri).await?;
        let answer = send_on(&pool, conn, request).await.map_err(Failure::into_error)?;
        if answer.not_run {
            return Err(Error::connection(
                "the host is shutting down and did not run the request (HTTP 503 with X-Jshost-Not-Run)",
            )
            .with_status(503)
            .with_body(answer.response.text_lossy())
            .with_not_sent());
        }
        Ok(answer.response)
    }

    /// Calls the js-host function `name` at `root_url` with a JSON `body` (an object or array) and
    /// returns the function's output text.
    ///
    /// Sends `POST {root_url}/function/{name}?hash={sha1(body)}`; the name is percent-encoded.
    ///
    /// # Errors
    /// - function error (HTTP 500) carrying the JS stack text;
    /// - unexpected response (any status but 200 and 500) with status and body;
    /// - timeout after `timeout` (waiting for a free connection included);
    /// - connection error when the host cannot be reached (never sent: [`Error::is_not_sent`]);
    /// - config error, never sent, when an `https://` host's certificate is refused;
    /// - decode error when the output is not UTF-8.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the call at once (the host may still run the function).
    pub async fn call_function(
        &self,
        root_url: &str,
        name: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<String> {
        let url = function_url(root_url, name, &body);
        let started = tracing::enabled!(tracing::Level::DEBUG).then(Instant::now);
        let result = match self.request(Method::Post, &url, Some(body), timeout, true).await {
            Ok(response) => call_result(response.status, response.body, name, || url.clone()),
            Err(e) if e.is_timeout() => Err(call_timeout(name, &url, timeout)),
            Err(e) => Err(e.with_function(name)),
        };
        if let Some(started) = started {
            tracing::debug!(
                function = name,
                url = %root_url,
                elapsed_us = started.elapsed().as_micros() as u64,
                ok = result.is_ok(),
                "js-host function call"
            );
        }
        result
    }
}

/// Whether `e` says the host did not run the request and it may be sent again (jshost-node
/// shutting down answered it `503` with `X-Jshost-Not-Run`, twice).
pub fn is_not_run(e: &Error) -> bool {
    e.is_not_sent() && e.status() == Some(503)
}

/// Counts a request waiting for a slot, for its host, until dropped.
struct Waiting<'a> {
    all: &'a std::sync::Mutex<Vec<(pool::PoolKey, usize)>>,
    key: pool::PoolKey,
}

impl<'a> Waiting<'a> {
    fn enter(all: &'a std::sync::Mutex<Vec<(pool::PoolKey, usize)>>, key: &pool::PoolKey) -> Waiting<'a> {
        let mut waiting = all.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match waiting.iter_mut().find(|(k, _)| k == key) {
            Some((_, n)) => *n += 1,
            None => waiting.push((key.clone(), 1)),
        }
        Waiting {
            all,
            key: key.clone(),
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut waiting = self.all.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(i) = waiting.iter().position(|(k, _)| *k == self.key) {
            waiting[i].1 -= 1;
            if waiting[i].1 == 0 {
                waiting.swap_remove(i);
            }
        }
    }
}

/// A failed request attempt.
enum Failure {
    /// The connection closed before the request was written: never sent, safe to retry.
    NotSent(Box<Request<Full<Bytes>>>, Error),
    /// Anything else: the request may have reached the host.
    Other(Error),
}

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Failure::NotSent(_, e) | Failure::Other(e) => e,
        }
    }
}

/// A whole answer, and whether it says the request was not run.
struct Answer {
    response: Response,
    not_run: bool,
}

/// Sends `request` on `conn` and reads the whole answer, then gives the connection back.
async fn send_on(
    pool: &pool::Pool,
    mut conn: pool::Conn,
    request: Request<Full<Bytes>>,
) -> Result<Answer, Failure> {
    let response = match conn.sender.try_send_request(request).await {
        Ok(response) => response,
        Err(mut e) => {
            return Err(match e.take_message() {
                Some(request) => Failure::NotSent(
                    Box::new(request),
                    Error::connection("the connection closed before the request was sent")
                        .with_not_sent()
                        .with_source(e.into_error()),
                ),
                // The request went out (maybe in part): it may have run.
                None => Failure::Other(
                    Error::connection("the connection closed before the answer").with_source(e.into_error()),
                ),
            });
        }
    };
    let status = response.status().as_u16();
    let not_run = status == 503 && response.headers().contains_key(NOT_RUN_HEADER);
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| {
            Failure::Other(
                Error::connection("the connection closed before the answer (while it was being read)")
                    .with_source(e),
            )
        })?
        .to_bytes();
    pool.put_back(conn);
    Ok(Answer {
        response: Response {
            status,
            headers: parts.headers,
            body,
        },
        not_run,
    })
}

/// A header of `Settings::header`, checked.
fn valid_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue)> {
    let header_name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| {
        Error::config(format!(
            "Settings::header: {name:?} is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)"
        ))
        .with_source(e)
    })?;
    if [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
    ]
    .contains(&header_name)
    {
        return Err(Error::config(format!(
            "Settings::header: the header {header_name} cannot be set, the HTTP client manages it"
        )));
    }
    let mut header_value = HeaderValue::from_str(value).map_err(|e| {
        Error::config(format!(
            "Settings::header: the value of the header {header_name} is not valid (visible ASCII \
             characters and spaces only, no line breaks; the value is not shown here)"
        ))
        .with_source(e)
    })?;
    header_value.set_sensitive(true);
    Ok((header_name, header_value))
}

/// What an answer that asks for credentials means, for messages; `None` for other statuses.
fn auth_hint(status: u16) -> Option<&'static str> {
    match status {
        401 | 407 => Some(
            "the server (or a proxy in front of it) wants credentials: send them with \
             Settings::header, for example (\"authorization\", \"Bearer ...\")",
        ),
        403 => Some(
            "the server (or a proxy in front of it) refuses the request: check the credentials \
             sent with Settings::header",
        ),
        _ => None,
    }
}

/// The URL of a call: `{root_url}/function/{name}?hash={sha1 of body}`.
///
/// ```
/// let url = jshost_client::function_url("http://127.0.0.1:9009", "hello world", b"{}");
/// assert_eq!(url, "http://127.0.0.1:9009/function/hello%20world?hash=bf21a9e8fbc5a3846fb05b4fa0859e0917b2202f");
/// ```
pub fn function_url(root_url: &str, name: &str, body: &[u8]) -> String {
    let mut url = String::with_capacity(root_url.len() + name.len() + 64);
    url.push_str(root_url);
    url.push_str("/function/");
    percent_encode_segment(name, &mut url);
    url.push_str("?hash=");
    url.push_str(&jshost_core::hash(body));
    url
}

/// Appends `segment` to `out`, percent-encoding every byte outside RFC 3986's unreserved set, so a
/// name with `/`, `?`, `#`, spaces or non-ASCII characters reaches the host as that one name.
fn percent_encode_segment(segment: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in segment.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(all(test, feature = "tls"))]
mod tls_tests;
