//! One-off requests on a connection of their own, for probing what answers at a port.

use crate::connector::{ConnectFailure, Stream};
use crate::{driver, Response, Transport};
use http::{header, Uri};
use http_body_util::BodyExt;
use jshost_core::error::Build as _;
use jshost_core::{Error, Result};
use std::sync::Arc;
use std::time::Duration;

/// `GET url` on a fresh connection, closed after the answer. `Ok(None)` when nothing answers
/// (the connection is refused, or would be a connection of a socket to itself).
///
/// Sends no extra headers and trusts only the system's root certificates for an `https://` URL:
/// it is meant for local probes. [`HttpClient::get_fresh`](crate::HttpClient::get_fresh) sends a
/// client's headers and trusts its CA file.
///
/// # Errors
/// A config error for an invalid URL or a refused certificate; a timeout error naming the URL
/// when no answer comes within `timeout`; a connection error when the connection cannot be
/// opened for another reason than nothing listening (unreachable, a name that does not
/// resolve) or breaks during the exchange.
///
/// # Cancel safety
/// Dropping the future closes the connection.
pub async fn get_fresh(url: &str, timeout: Duration) -> Result<Option<Response>> {
    fetch(url, timeout, Arc::new(Transport::default())).await
}

/// [`get_fresh`] with `transport`'s headers and TLS setup.
pub(crate) async fn fetch(
    url: &str,
    timeout: Duration,
    transport: Arc<Transport>,
) -> Result<Option<Response>> {
    let uri: Uri = url
        .parse()
        .map_err(|e| Error::config(format!("invalid URL {url:?}")).with_source(e))?;
    let url = url.to_owned();
    let work = async move {
        match tokio::time::timeout(timeout, exchange(&uri, &url, &transport)).await {
            Ok(result) => result.map_err(|e| e.with_url(url.as_str())),
            Err(_) => Err(crate::answer::no_answer(&url, timeout)),
        }
    };
    driver::here_or_on_driver(work).await
}

async fn exchange(uri: &Uri, url: &str, transport: &Transport) -> Result<Option<Response>> {
    let key =
        crate::pool::PoolKey::of(uri).ok_or_else(|| Error::config(format!("{url}: the URL has no host")))?;
    match transport.connector.connect(uri).await {
        Ok(stream) => send(stream, uri, &key, transport).await,
        Err(ConnectFailure::NothingListens(e)) => {
            tracing::trace!(url, error = %e, "nothing listens");
            Ok(None)
        }
        Err(failure) => Err(failure.into_error()),
    }
}

/// One request on the fresh connection `io`: `GET` with `Connection: close`, built as every
/// request of the client is.
async fn send(
    io: Stream,
    uri: &Uri,
    key: &crate::pool::PoolKey,
    transport: &Transport,
) -> Result<Option<Response>> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| Error::connection("the connection failed during the handshake").with_source(e))?;
    let driving = tokio::spawn(connection);
    let mut request = transport.request(crate::Method::Get, uri, key, None, None)?;
    request
        .headers_mut()
        .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    let answer = async {
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok::<_, hyper::Error>(Response {
            status,
            headers: parts.headers,
            body,
        })
    };
    let result = answer.await;
    driving.abort();
    result
        .map(Some)
        .map_err(|e| Error::connection("the connection failed before an answer arrived").with_source(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nothing_listening_is_none() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let answer = get_fresh(&format!("http://127.0.0.1:{port}/status"), Duration::from_secs(2)).await;
        assert!(matches!(answer, Ok(None)), "{answer:?}");
    }
}
