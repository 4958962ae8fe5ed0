//! `https://` with rustls (the `tls` feature): which certificates a client trusts, the handshake,
//! and failures described in words.
//!
//! A client trusts the system's root certificates (read once per process, at the first `https://`
//! connection, with `rustls-native-certs`: the same store curl and OpenSSL use, so a CA installed
//! on the machine is trusted) plus the certificates of `Settings::ca_file`, read and checked when
//! the client is made. The crypto provider is `ring`, passed explicitly, so another crate of the
//! program choosing a process-wide default provider changes nothing here.

use jshost_core::error::Build as _;
use jshost_core::{Error, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// What a client trusts for `https://` URLs; its rustls config is made at the first handshake.
#[derive(Default)]
pub(crate) struct Tls {
    /// `Settings::ca_file`.
    pub(crate) ca_file: Option<PathBuf>,
    /// Its certificates, trusted beside the system's roots.
    extra: Vec<CertificateDer<'static>>,
    config: OnceLock<std::result::Result<Arc<ClientConfig>, String>>,
}

/// Why a TLS handshake failed.
#[derive(Debug)]
pub(crate) struct TlsFailure {
    /// What went wrong, in words (the server's certificate is expired...).
    pub(crate) reason: String,
    /// The certificate or the protocol was refused (by either side), as opposed to the connection
    /// breaking: trying again will not help.
    pub(crate) rejected: bool,
}

impl Tls {
    /// Trusts the certificates of the PEM file `path` beside the system's roots.
    ///
    /// # Errors
    /// A config error naming the file when it cannot be read, holds no certificate, or holds one
    /// that cannot be a trust anchor.
    pub(crate) fn with_ca_file(path: &Path) -> Result<Tls> {
        let shown = path.display();
        let pem = std::fs::read(path)
            .map_err(|e| Error::config(format!("cannot read ca_file {shown}: {e}")).with_source(e))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| {
                Error::config(format!("ca_file {shown} is not a PEM file of certificates: {e}"))
                    .with_source(e)
            })?;
        if certs.is_empty() {
            return Err(Error::config(format!(
                "ca_file {shown} holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----` blocks)"
            )));
        }
        let mut check = RootCertStore::empty();
        for (n, cert) in certs.iter().enumerate() {
            check.add(cert.clone()).map_err(|e| {
                Error::config(format!(
                    "ca_file {shown}: certificate {} of {} cannot be used as a CA: {e}",
                    n + 1,
                    certs.len()
                ))
                .with_source(e)
            })?;
        }
        Ok(Tls {
            ca_file: Some(path.to_owned()),
            extra: certs,
            config: OnceLock::new(),
        })
    }

    /// The rustls config: shared by every client without a `ca_file`, made once per client with one.
    fn config(&self) -> std::result::Result<Arc<ClientConfig>, TlsFailure> {
        let made = if self.extra.is_empty() {
            static DEFAULT: OnceLock<std::result::Result<Arc<ClientConfig>, String>> = OnceLock::new();
            DEFAULT.get_or_init(|| client_config(&[]))
        } else {
            self.config.get_or_init(|| client_config(&self.extra))
        };
        made.clone().map_err(|reason| TlsFailure {
            reason,
            rejected: true,
        })
    }

    /// The TLS handshake over `tcp` with the server `host` (a DNS name or an IP address, as in
    /// the URL), verifying its certificate for that name.
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        host: &str,
    ) -> std::result::Result<TlsStream<TcpStream>, TlsFailure> {
        let config = self.config()?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned()).map_err(|e| TlsFailure {
            reason: format!("{host:?} cannot be checked against a certificate: {e}"),
            rejected: true,
        })?;
        TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| describe(&e, host))
    }
}

/// The system's root certificates, read once per process.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::debug!(%error, "a system root certificate could not be read");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        tracing::debug!(added, ignored, "read the system's root certificates");
        if added == 0 {
            tracing::warn!(
                "no system root certificates found: https:// hosts are trusted only through ca_file \
                 (install ca-certificates, or set SSL_CERT_FILE)"
            );
        }
        roots
    })
}

fn client_config(extra: &[CertificateDer<'static>]) -> std::result::Result<Arc<ClientConfig>, String> {
    let mut roots = system_roots().clone();
    for cert in extra {
        // Checked when the client was made.
        let _ = roots.add(cert.clone());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Words for a failed handshake: what the certificate problem is and what to do about it.
fn describe(e: &std::io::Error, host: &str) -> TlsFailure {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return TlsFailure {
            reason: format!("the connection failed during the handshake: {e}"),
            rejected: false,
        };
    };
    let reason = match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => format!(
                "the server's certificate is signed by an unknown CA ({tls}); trust its CA with \
                 Settings::ca_file (JSHOST_CA_FILE)"
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("the server's certificate has expired ({tls})")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("the server's certificate is not valid yet ({tls})")
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("the server's certificate is not valid for {host} ({tls})")
            }
            _ => format!("the server's certificate was refused ({tls})"),
        },
        rustls::Error::AlertReceived(alert) => {
            format!("the server refused the handshake (alert: {alert:?})")
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            format!("the server does not answer in TLS (an http:// server?): {tls}")
        }
        other => other.to_string(),
    };
    TlsFailure {
        reason,
        rejected: true,
    }
}
