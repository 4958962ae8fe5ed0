//! The connector of the pooled clients: TCP for `http://` URLs, TCP then TLS for `https://` ones
//! (with the `tls` feature; without it an `https://` URL fails to connect, saying why).

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

#[cfg(feature = "tls")]
use crate::tls::{Tls, TlsFailure};
#[cfg(feature = "tls")]
use std::sync::Arc;

/// How long opening a TCP connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the connections of a pool; cheap to clone (every pool of a client shares its TLS setup).
#[derive(Clone)]
pub(crate) struct Connector {
    http: HttpConnector,
    #[cfg(feature = "tls")]
    tls: Arc<Tls>,
}

impl Connector {
    /// A connector trusting what `tls` says for `https://` URLs.
    #[cfg(feature = "tls")]
    pub(crate) fn new(tls: Arc<Tls>) -> Connector {
        Connector { http: tcp(), tls }
    }

    /// A connector for `http://` URLs only.
    #[cfg(not(feature = "tls"))]
    pub(crate) fn new() -> Connector {
        Connector { http: tcp() }
    }
}

fn tcp() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    // The scheme is checked here (see `call`), so `https://` URLs get through to the TLS step.
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub(crate) enum ConnectFailure {
    /// The TCP connection failed (refused, unreachable, timed out).
    Tcp(Box<dyn std::error::Error + Send + Sync>),
    /// The TLS handshake failed.
    #[cfg(feature = "tls")]
    Tls(TlsFailure),
    /// An `https://` URL without the `tls` feature, or a scheme that is neither.
    Scheme(String),
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectFailure::Tcp(e) => write!(f, "{e}"),
            #[cfg(feature = "tls")]
            ConnectFailure::Tls(failure) => write!(f, "TLS handshake failed: {}", failure.reason),
            ConnectFailure::Scheme(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ConnectFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectFailure::Tcp(e) => Some(&**e),
            _ => None,
        }
    }
}

/// The message for an `https://` URL when the `tls` feature is off.
pub(crate) fn no_tls(url: &str) -> String {
    format!(
        "{url} is an https:// URL, and jshost was built without its `tls` feature \
         (enable the default feature `tls` of jshost, or use an http:// URL)"
    )
}

impl tower_service::Service<Uri> for Connector {
    type Response = Stream;
    type Error = ConnectFailure;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, ConnectFailure>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectFailure>> {
        self.http
            .poll_ready(cx)
            .map_err(|e| ConnectFailure::Tcp(Box::new(e)))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if let Some(path) = uri.host().and_then(crate::unix::socket_path) {
            return Box::pin(async move {
                let stream = tokio::net::UnixStream::connect(&path).await.map_err(|e| {
                    ConnectFailure::Tcp(Box::new(io::Error::new(
                        e.kind(),
                        format!("cannot connect to the socket {}: {e}", path.display()),
                    )))
                })?;
                Ok(Stream::Unix(TokioIo::new(stream)))
            });
        }
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") if cfg!(feature = "tls") => true,
            Some("https") => {
                let message = no_tls(&uri.to_string());
                return Box::pin(async move { Err(ConnectFailure::Scheme(message)) });
            }
            other => {
                let message = format!("{uri}: the scheme {other:?} is neither http nor https");
                return Box::pin(async move { Err(ConnectFailure::Scheme(message)) });
            }
        };
        let connecting = self.http.call(uri.clone());
        #[cfg(feature = "tls")]
        let tls = self.tls.clone();
        Box::pin(async move {
            let tcp = connecting.await.map_err(|e| ConnectFailure::Tcp(Box::new(e)))?;
            match https {
                false => Ok(Stream::Plain(tcp)),
                #[cfg(feature = "tls")]
                true => {
                    let host = uri.host().unwrap_or_default();
                    let stream = tls
                        .handshake(tcp.into_inner(), host)
                        .await
                        .map_err(ConnectFailure::Tls)?;
                    Ok(Stream::Tls(Box::new(TokioIo::new(stream))))
                }
                // Refused above.
                #[cfg(not(feature = "tls"))]
                true => Err(ConnectFailure::Scheme(no_tls(&uri.to_string()))),
            }
        })
    }
}

/// A connection: TCP, TLS over TCP, or a Unix socket.
pub(crate) enum Stream {
    /// `http://`.
    Plain(TokioIo<TcpStream>),
    /// A host on a Unix socket (see `unix.rs`).
    Unix(TokioIo<tokio::net::UnixStream>),
    /// `https://` (boxed: a TLS session is much larger than a socket).
    #[cfg(feature = "tls")]
    Tls(Box<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>),
}

impl hyper::rt::Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }
}
