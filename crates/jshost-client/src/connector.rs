//! Opening a connection, for pooled requests and probes alike: the URL's scheme, a Unix socket
//! (see `unix.rs`) or TCP (with a connect timeout and `TCP_NODELAY`), then TLS for `https://`
//! URLs (with the `tls` feature; without it an `https://` URL is refused, saying why).
//!
//! A connection to a port in the kernel's ephemeral range where nothing listens can be
//! "answered" by the connecting socket itself: TCP's simultaneous open connects a socket to
//! itself when the kernel happens to pick that very port as the local one. Such a connection is
//! detected (local address = peer address) and reset, so it counts as "nothing listens" and
//! leaves no TIME_WAIT behind that would stop a manager from binding the port a moment later.

use http::Uri;
use hyper_util::rt::TokioIo;
use jshost_core::error::Build as _;
use jshost_core::Error;
use std::io;
use std::net::SocketAddr;
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

/// Opens connections; cheap to clone (every pool of a client shares its TLS setup).
#[derive(Clone, Default)]
pub(crate) struct Connector {
    /// What `https://` URLs are trusted with.
    #[cfg(feature = "tls")]
    pub(crate) tls: Arc<Tls>,
    /// The local address TCP connections are bound to: a test connects a socket to itself with it.
    #[cfg(test)]
    pub(crate) bind: Option<std::net::SocketAddr>,
}

impl Connector {
    /// A connector trusting what `tls` says for `https://` URLs.
    #[cfg(feature = "tls")]
    pub(crate) fn trusting(tls: Tls) -> Connector {
        Connector {
            tls: Arc::new(tls),
            #[cfg(test)]
            bind: None,
        }
    }

    /// A connection to the host of `uri`: its Unix socket, or TCP to its host and port, then
    /// TLS for an `https://` URL.
    pub(crate) async fn connect(&self, uri: &Uri) -> Result<Stream, ConnectFailure> {
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") if cfg!(feature = "tls") => true,
            Some("https") => return Err(ConnectFailure::Url(no_tls(&uri.to_string()))),
            _ => {
                return Err(ConnectFailure::Url(format!(
                    "{uri}: the URL's scheme must be http:// or https://"
                )))
            }
        };
        let Some(host) = uri.host() else {
            return Err(ConnectFailure::Url(format!("{uri}: the URL has no host")));
        };
        if let Some(path) = crate::unix::socket_path(host) {
            return match tokio::net::UnixStream::connect(&path).await {
                Ok(stream) => Ok(Stream::Unix(TokioIo::new(stream))),
                Err(e) => {
                    let nothing = matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                    );
                    let e = io::Error::new(e.kind(), format!("the socket {}: {e}", path.display()));
                    Err(if nothing {
                        ConnectFailure::NothingListens(e)
                    } else {
                        ConnectFailure::Io(e)
                    })
                }
            };
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = self.tcp(host, port).await?;
        match https {
            false => Ok(Stream::Plain(TokioIo::new(tcp))),
            #[cfg(feature = "tls")]
            true => {
                let stream = self.tls.handshake(tcp, host).await.map_err(ConnectFailure::Tls)?;
                Ok(Stream::Tls(Box::new(TokioIo::new(stream))))
            }
            // Refused above.
            #[cfg(not(feature = "tls"))]
            true => Err(ConnectFailure::Url(no_tls(&uri.to_string()))),
        }
    }

    /// TCP to `host` (a name is resolved, and each of its addresses tried in turn, each within
    /// its share of what is left of [`CONNECT_TIMEOUT`], so that an address that drops packets
    /// does not take the whole of it) and `port`, with `TCP_NODELAY`; a connection to itself is
    /// reset. Nothing listens when an address refused and none took the connection.
    async fn tcp(&self, host: &str, port: u16) -> Result<TcpStream, ConnectFailure> {
        let started = tokio::time::Instant::now();
        let timed_out = |what: String| io::Error::new(io::ErrorKind::TimedOut, what);
        let addrs: Vec<SocketAddr> =
            match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((host, port))).await {
                Ok(Ok(addrs)) => addrs.collect(),
                Ok(Err(e)) => return Err(ConnectFailure::Io(e)),
                Err(_) => {
                    return Err(ConnectFailure::Io(timed_out(format!(
                        "{host} did not resolve within {CONNECT_TIMEOUT:?}"
                    ))))
                }
            };
        let (mut refused, mut failed) = (None, None);
        for (i, addr) in addrs.iter().enumerate() {
            let left = CONNECT_TIMEOUT.saturating_sub(started.elapsed());
            let share = left / u32::try_from(addrs.len() - i).unwrap_or(u32::MAX);
            match tokio::time::timeout(share, self.open(*addr)).await {
                Ok(Ok(stream)) => return self.checked(stream, port),
                Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => refused = Some(e),
                Ok(Err(e)) => failed = Some(io::Error::new(e.kind(), format!("{addr}: {e}"))),
                Err(_) => failed = Some(timed_out(format!("{addr}: no connection within {share:?}"))),
            }
        }
        Err(match (refused, failed) {
            (Some(e), _) => ConnectFailure::NothingListens(e),
            (None, Some(e)) => ConnectFailure::Io(e),
            (None, None) => ConnectFailure::Io(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} resolves to no address"),
            )),
        })
    }

    /// `stream`, unless it connected to itself (then reset: nothing listens), with `TCP_NODELAY`.
    fn checked(&self, stream: TcpStream, port: u16) -> Result<TcpStream, ConnectFailure> {
        if is_self_connected(&stream) {
            tracing::debug!(
                port,
                "a connection to an unused port connected to itself: nothing listens there"
            );
            // Reset rather than close: a reset socket leaves no TIME_WAIT on the port.
            let _ = stream.set_zero_linger();
            return Err(ConnectFailure::NothingListens(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("nothing listens on port {port}: the connection reached itself"),
            )));
        }
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    async fn open(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        #[cfg(test)]
        if let Some(local) = self.bind {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(local)?;
            return socket.connect(addr).await;
        }
        TcpStream::connect(addr).await
    }
}

fn is_self_connected(stream: &TcpStream) -> bool {
    matches!((stream.local_addr(), stream.peer_addr()), (Ok(l), Ok(p)) if l == p)
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub(crate) enum ConnectFailure {
    /// Nothing listens there: the connection was refused, the socket file is missing, or the
    /// connection reached itself.
    NothingListens(io::Error),
    /// The connection failed otherwise (unreachable, timed out, a name that does not resolve).
    Io(io::Error),
    /// The TLS handshake failed.
    #[cfg(feature = "tls")]
    Tls(TlsFailure),
    /// A URL that cannot be connected to: an `https://` URL without the `tls` feature, a scheme
    /// that is neither, no host.
    Url(String),
}

impl ConnectFailure {
    /// The one error for a connection that could not be opened, by pooled requests and probes
    /// alike; never sent, so another host may take the request. A refused certificate (or
    /// handshake) is a config error, something to fix in the settings or on the server, not
    /// "nothing answers": callers that treat connection errors as that must not hide it.
    pub(crate) fn into_error(self) -> Error {
        let error = match self {
            ConnectFailure::Url(message) => Error::config(message),
            #[cfg(feature = "tls")]
            ConnectFailure::Tls(failure) => {
                let message = format!("TLS handshake failed: {}", failure.reason);
                if failure.rejected {
                    Error::config(message)
                } else {
                    Error::connection(message)
                }
            }
            ConnectFailure::NothingListens(e) => {
                Error::connection(format!("cannot connect: nothing listens there ({e})")).with_source(e)
            }
            ConnectFailure::Io(e) => Error::connection(format!("cannot connect: {e}")).with_source(e),
        };
        error.with_not_sent()
    }
}

/// The message for an `https://` URL when the `tls` feature is off.
pub(crate) fn no_tls(url: &str) -> String {
    format!(
        "{url} is an https:// URL, and jshost was built without its `tls` feature \
         (enable the default feature `tls` of jshost, or use an http:// URL)"
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{IdleBudget, Pool, PoolKey};
    use crate::Transport;
    use std::net::SocketAddr;
    use std::sync::Arc;

    /// An address on 127.0.0.1 whose port was free a moment ago.
    fn unused_addr() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
    }

    /// A connector whose TCP connections start from `addr`: one to `addr` reaches itself (TCP
    /// simultaneous open), as a connection to an unused ephemeral port sometimes does when the
    /// kernel picks that very port as the local one.
    fn reaching_itself(addr: SocketAddr) -> Connector {
        Connector {
            #[cfg(feature = "tls")]
            tls: Arc::default(),
            bind: Some(addr),
        }
    }

    fn assert_free(addr: SocketAddr) {
        let listener = std::net::TcpListener::bind(addr);
        assert!(
            listener.is_ok(),
            "the port is free again (no TIME_WAIT): {listener:?}"
        );
    }

    #[tokio::test]
    async fn a_self_connection_is_detected_and_leaves_the_port_free() {
        // A socket bound to a port and connected to that same port is connected to itself.
        let addr = unused_addr();
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(addr).expect("bind the port");
        let stream = socket.connect(addr).await.expect("self-connect");
        assert!(is_self_connected(&stream));
        stream.set_zero_linger().expect("linger");
        drop(stream);
        assert_free(addr);
    }

    #[tokio::test]
    async fn a_pooled_connection_that_reaches_itself_cannot_connect() {
        // Without the check the pool would hand out the connection, and the request would be
        // read back as its own (garbage) answer.
        let addr = unused_addr();
        let uri: Uri = format!("http://{addr}/function/f").parse().expect("uri");
        let key = PoolKey::of(&uri).expect("key");
        let pool = Pool::new(IdleBudget::new(1), reaching_itself(addr));
        let Err(e) = pool.checkout(&key, &uri).await else {
            panic!("a connection to itself was handed out");
        };
        assert!(e.is_connection() && e.is_not_sent(), "{e:?}");
        assert!(e.message().contains("nothing listens"), "{e}");
        assert_free(addr);
    }

    #[tokio::test]
    async fn a_probe_that_reaches_itself_finds_nothing() {
        let addr = unused_addr();
        let transport = Transport {
            connector: reaching_itself(addr),
            ..Transport::default()
        };
        let url = format!("http://{addr}/status");
        let answer = crate::probe::fetch(&url, Duration::from_secs(2), Arc::new(transport)).await;
        assert!(matches!(answer, Ok(None)), "{answer:?}");
        assert_free(addr);
    }

    #[tokio::test]
    async fn a_missing_socket_is_nothing_listening() {
        let path = std::env::temp_dir().join(format!("jshost-client-no-such-{}.sock", std::process::id()));
        let uri: Uri = format!("{}/status", crate::socket_url(&path))
            .parse()
            .expect("uri");
        let failure = Connector::default().connect(&uri).await.err();
        assert!(
            matches!(failure, Some(ConnectFailure::NothingListens(_))),
            "{failure:?}"
        );
    }
}
