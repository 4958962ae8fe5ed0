//! The two Rust clients under test, and the loops that drive them.
//!
//! - [`Side::Sdk`]: `Function::call(&data)` of a [`jshost::JsHost`] (serialises, hashes, pools,
//!   times out, checks the status, decodes UTF-8: everything a user gets);
//! - [`Side::SdkRaw`]: `Function::call_raw(body)`, the SDK minus serialising;
//! - [`Side::Bare`]: a hyper-util legacy `Client` sending the very same request bytes (same URL with
//!   `?hash=`, same JSON body, `content-type: application/json`), prepared once, and only
//!   checking for HTTP 200: the ceiling for any client built on hyper. Not for a host on a Unix
//!   socket (an owned jshost-node host's default): only the SDK reaches that.

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jshost::Function;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Idle connections of a bare client are not reused after this long, as the SDK's pool does
/// (jshost-client's `DEFAULT_POOL_IDLE_TIMEOUT`): Node closes them at 5 s, and a request sent as
/// it does fails with a reset (the bench's bare connections sit idle while the SDK, wrk or the
/// other hosts' runs take their turn).
const BARE_POOL_IDLE_TIMEOUT: Duration = Duration::from_millis(3_500);

/// A bare hyper-util client set up as the SDK's pool is: `TCP_NODELAY` (small requests must not
/// wait for Nagle) and idle connections dropped before Node closes them.
pub fn bare_client() -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(BARE_POOL_IDLE_TIMEOUT)
        .build(connector)
}

/// Which client a loop drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The jshost SDK: `Function::call(&data)`.
    Sdk,
    /// The jshost SDK given the body already serialised: `Function::call_raw(body)` (hashes it,
    /// and everything else `call` does but serialising).
    SdkRaw,
    /// A bare hyper-util client.
    Bare,
}

impl Side {
    pub fn label(self) -> &'static str {
        match self {
            Side::Sdk => "SDK",
            Side::SdkRaw => "SDK call_raw",
            Side::Bare => "bare hyper",
        }
    }
}

/// Both clients, aimed at the same function of the same host with the same data.
pub struct Clients {
    function: Function,
    data: Value,
    bare: Client<HttpConnector, Full<Bytes>>,
    /// `None`: a host on a Unix socket (`unix:/...`), which the bare client cannot reach.
    uri: Option<Uri>,
    body: Bytes,
}

impl Clients {
    /// `function` called with `data`; the bare client posts `serde_json::to_vec(data)` to
    /// `function_url(host, name, body)`, which is exactly what the SDK sends (for a host on a Unix
    /// socket, only the SDK side works).
    pub fn new(function: Function, root_url: &str, data: Value) -> Result<Self> {
        let body = Bytes::from(serde_json::to_vec(&data)?);
        let url = jshost::raw::function_url(root_url, function.name(), &body);
        let uri = if root_url.starts_with("unix:") {
            None
        } else {
            Some(url.parse::<Uri>().with_context(|| format!("invalid URL {url}"))?)
        };
        let bare = bare_client();
        Ok(Clients {
            function,
            data,
            bare,
            uri,
            body,
        })
    }

    /// The URL both clients post to (an error for a host on a Unix socket).
    pub fn uri(&self) -> Result<&Uri> {
        self.uri
            .as_ref()
            .context("the host listens on a Unix socket: only the SDK reaches it")
    }

    /// The JSON body both clients send.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The data the SDK serialises at every call.
    pub fn data(&self) -> &Value {
        &self.data
    }

    /// One call; the length of the answer.
    pub async fn call(&self, side: Side) -> Result<usize> {
        match side {
            Side::Sdk => Ok(self.function.call(&self.data).await?.len()),
            Side::SdkRaw => Ok(self.function.call_raw(self.body.clone()).await?.len()),
            Side::Bare => self.bare_call().await,
        }
    }

    /// The answer's text, through the SDK.
    pub async fn sdk_text(&self) -> Result<String> {
        Ok(self.function.call(&self.data).await?)
    }

    async fn bare_call(&self) -> Result<usize> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri()?.clone();
        request
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let response = self.bare.request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        ensure!(status == StatusCode::OK, "bare hyper: HTTP {status}: {body:?}");
        Ok(body.len())
    }

    /// `n` calls one after the other; pushes each call's latency (ns) to `latencies`.
    pub async fn sequential(&self, side: Side, n: usize, latencies: &mut Vec<u64>) -> Result<Duration> {
        latencies.reserve(n);
        let started = Instant::now();
        for _ in 0..n {
            let t = Instant::now();
            self.call(side).await?;
            latencies.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        Ok(started.elapsed())
    }

    /// Calls for `duration`, then waits for those still in flight: one after the other when
    /// `in_flight` is 1 (each call's latency, in ns, pushed to `latencies`), else with
    /// `in_flight` of them running at any time (`buffer_unordered`, one task). Returns the calls
    /// made and the time they took.
    pub async fn for_duration(
        &self,
        side: Side,
        in_flight: usize,
        duration: Duration,
        latencies: &mut Vec<u64>,
    ) -> Result<(usize, Duration)> {
        let started = Instant::now();
        let deadline = started + duration;
        if in_flight <= 1 {
            let mut calls = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                self.call(side).await?;
                latencies.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
                calls += 1;
            }
            return Ok((calls, started.elapsed()));
        }
        let calls = futures::stream::iter(0usize..)
            .take_while(|_| futures::future::ready(Instant::now() < deadline))
            .map(|_| self.call(side))
            .buffer_unordered(in_flight)
            .try_fold(0usize, |n, _| futures::future::ready(Ok(n + 1)))
            .await?;
        Ok((calls, started.elapsed()))
    }

    /// `n` calls with `in_flight` of them running at any time (`buffer_unordered`, one task).
    pub async fn concurrent(&self, side: Side, n: usize, in_flight: usize) -> Result<Duration> {
        let started = Instant::now();
        futures::stream::iter(0..n)
            .map(|_| self.call(side))
            .buffer_unordered(in_flight.max(1))
            .try_for_each(|_| futures::future::ready(Ok(())))
            .await?;
        Ok(started.elapsed())
    }
}
