//! One-off requests on a connection of their own, for probing what answers at a port.
//!
//! A port in the kernel's ephemeral range where nothing listens can be "answered" by the
//! prober itself: TCP's simultaneous open connects a socket to itself when the kernel happens to
//! pick that very port as the local one. Such a connection is detected (local address = peer
//! address) and reset, so it counts as "nothing answers" and leaves no TIME_WAIT behind that
//! would stop a manager from binding the port a moment later.

use crate::{driver, Response, Transport};
use http::{header, Uri};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use jshost_core::{Error, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// `GET url` on a fresh connection, closed after the answer. `Ok(None)` when nothing answers
/// (the connection is refused, or would be a connection of a socket to itself).
///
/// Sends no extra headers and trusts only the system's root certificates for an `https://` URL:
/// it is meant for local probes. [`HttpClient::get_fresh`](crate::HttpClient::get_fresh) sends a
/// client's headers and trusts its CA file.
///
/// # Errors
/// An invalid URL; a timeout error naming the URL when the connection opens but no answer
/// comes within `timeout`; a connection error when it breaks during the exchange.
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
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") | None => false,
        Some(other) => {
            return Err(Error::config(format!(
                "{url}: the scheme {other:?} is neither http nor https"
            )))
        }
    };
    #[cfg(not(feature = "tls"))]
    if https {
        return Err(Error::config(crate::connector::no_tls(url)));
    }
    let key =
        crate::pool::PoolKey::of(uri).ok_or_else(|| Error::config(format!("{url}: the URL has no host")))?;
    let host = uri.host().unwrap_or("127.0.0.1").trim_matches(['[', ']']);
    if let Some(socket) = crate::unix::socket_path(host) {
        let Ok(stream) = tokio::net::UnixStream::connect(&socket).await else {
            return Ok(None);
        };
        return send(TokioIo::new(stream), uri, &key, transport).await;
    }
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let Ok(stream) = TcpStream::connect((host, port)).await else {
        return Ok(None);
    };
    if is_self_connected(&stream) {
        tracing::debug!(port, "a probe connected to itself: nothing listens there");
        // Reset rather than close: a reset socket leaves no TIME_WAIT on the port.
        let _ = stream.set_zero_linger();
        return Ok(None);
    }
    let _ = stream.set_nodelay(true);
    #[cfg(feature = "tls")]
    if https {
        let stream = transport.tls.handshake(stream, host).await.map_err(|failure| {
            let message = format!("TLS handshake failed: {}", failure.reason);
            // A refused certificate is something to fix in the settings (or on the server), not
            // "nothing answers": callers that treat connection errors as that must not hide it.
            if failure.rejected {
                Error::config(message)
            } else {
                Error::connection(message)
            }
        })?;
        return send(TokioIo::new(stream), uri, &key, transport).await;
    }
    send(TokioIo::new(stream), uri, &key, transport).await
}

/// One request on a fresh connection `io`: `GET` with `Connection: close`, built as every
/// request of the client is.
async fn send<T>(
    io: T,
    uri: &Uri,
    key: &crate::pool::PoolKey,
    transport: &Transport,
) -> Result<Option<Response>>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
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
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>(Response { status, body })
    };
    let result = answer.await;
    driving.abort();
    result
        .map(Some)
        .map_err(|e| Error::connection("the connection failed before an answer arrived").with_source(e))
}

fn is_self_connected(stream: &TcpStream) -> bool {
    matches!((stream.local_addr(), stream.peer_addr()), (Ok(l), Ok(p)) if l == p)
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

    #[tokio::test]
    async fn a_self_connection_is_detected_and_leaves_the_port_free() {
        // A socket bound to a port and connected to that same port is connected to itself
        // (TCP simultaneous open), as a probe of an unused ephemeral port sometimes is.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(addr).expect("bind the port");
        let stream = socket.connect(addr).await.expect("self-connect");
        assert!(is_self_connected(&stream));
        stream.set_zero_linger().expect("linger");
        drop(stream);
        let listener = std::net::TcpListener::bind(addr);
        assert!(listener.is_ok(), "the port is free again: {listener:?}");
    }
}
