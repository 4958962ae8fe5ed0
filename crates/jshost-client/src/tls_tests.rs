//! `https://`, `ca_file` and `Settings::header` against an in-process TLS server with certificates
//! made here (a CA, a good, an expired and a mismatched server certificate). nginx in front of a
//! real host is tested in `integration/tests/it/tls.rs`.

use super::*;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jshost_core::Settings;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::net::TcpListener;

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

/// A server certificate for `names` signed by `ca`; expired since 2021 when `expired`.
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    expired: bool,
) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("params");
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, ca).expect("sign");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (cert.der().clone(), key)
}

/// A file of the test's own, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> TempFile {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "jshost-client-tls-{}-{}.pem",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, contents).expect("write");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Answers every request with `authorization=<its Authorization header>`, or HTTP 401 without
/// one when `require_token`; over TLS with `cert` when given. Returns the address `host:port`.
async fn serve(
    cert: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    require_token: bool,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let acceptor = cert.map(|(cert, key)| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config");
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| async move {
                    let auth = req
                        .headers()
                        .get(header::AUTHORIZATION)
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                    let (status, body) = match auth {
                        None if require_token => (401, "missing token".to_owned()),
                        auth => (200, format!("authorization={}", auth.unwrap_or_default())),
                    };
                    let response = hyper::Response::builder()
                        .status(status)
                        .body(Full::new(Bytes::from(body)))
                        .expect("response");
                    Ok::<_, Infallible>(response)
                });
                match acceptor {
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(stream).await {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(tls), service)
                                .await;
                        }
                    }
                    None => {
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            });
        }
    });
    addr
}

const T: Duration = Duration::from_secs(5);

fn client_trusting(ca_pem: &TempFile) -> HttpClient {
    let settings = Settings::default()
        .ca_file(&ca_pem.0)
        .header("Authorization", "Bearer t0ken");
    HttpClient::from_settings(&settings).expect("client")
}

#[tokio::test]
async fn https_with_the_ca_file_sends_the_headers_on_calls_and_probes() {
    let ca = ca("test CA");
    let ca_file = TempFile::new(&ca.pem());
    let addr = serve(Some(leaf(&ca, &["127.0.0.1", "localhost"], false)), true).await;
    let client = client_trusting(&ca_file);
    for root in [
        format!("https://{addr}"),
        format!("https://{}", addr.replace("127.0.0.1", "localhost")),
    ] {
        let text = client
            .call_function(&root, "f", Bytes::from_static(b"{}"), T)
            .await
            .expect("a call over TLS");
        assert_eq!(text, "authorization=Bearer t0ken");
        let probe = client
            .get_fresh(&format!("{root}/status"), T)
            .await
            .expect("a probe over TLS")
            .expect("an answer");
        assert_eq!(probe.text_lossy(), "authorization=Bearer t0ken");
    }
    // Connections are pooled and reused over TLS too: many calls, concurrently.
    let root = format!("https://{addr}");
    let calls = (0..50).map(|_| client.call_function(&root, "f", Bytes::from_static(b"{}"), T));
    for result in futures::future::join_all(calls).await {
        assert_eq!(result.expect("call"), "authorization=Bearer t0ken");
    }
}

#[tokio::test]
async fn plain_http_gets_the_headers_too() {
    let addr = serve(None, true).await;
    let client =
        HttpClient::from_settings(&Settings::default().header("authorization", "Bearer x")).expect("client");
    let root = format!("http://{addr}");
    let text = client
        .call_function(&root, "f", Bytes::from_static(b"{}"), T)
        .await
        .expect("call");
    assert_eq!(text, "authorization=Bearer x");
    let probe = client
        .get_fresh(&format!("{root}/status"), T)
        .await
        .expect("probe");
    assert_eq!(probe.expect("answer").text_lossy(), "authorization=Bearer x");
}

#[tokio::test]
async fn a_missing_token_is_a_401_saying_credentials_are_wanted() {
    let addr = serve(None, true).await;
    let root = format!("http://{addr}");
    let e = HttpClient::new()
        .call_function(&root, "f", Bytes::from_static(b"{}"), T)
        .await
        .expect_err("401");
    assert!(e.is_unexpected_response(), "{e:?}");
    assert_eq!(e.status(), Some(401));
    assert!(e.to_string().contains("Settings::header"), "{e}");
    // The probe through a client fails too (a plain probe just reports the answer).
    let e = HttpClient::new()
        .get_fresh(&format!("{root}/status"), T)
        .await
        .expect_err("401");
    assert!(e.is_unexpected_response() && e.status() == Some(401), "{e:?}");
    let plain = get_fresh(&format!("{root}/status"), T).await.expect("answer");
    assert_eq!(plain.expect("answer").status, 401);
}

/// The failed call's and the failed probe's errors for a server with `cert`, trusting `trusted`.
async fn failures(
    cert: (CertificateDer<'static>, PrivateKeyDer<'static>),
    trusted: &TempFile,
) -> (Error, Error) {
    let addr = serve(Some(cert), false).await;
    let root = format!("https://{addr}");
    let client = client_trusting(trusted);
    let call = client
        .call_function(&root, "f", Bytes::from_static(b"{}"), T)
        .await
        .expect_err("the handshake fails");
    let probe = client
        .get_fresh(&format!("{root}/status"), T)
        .await
        .expect_err("the handshake fails");
    for e in [&call, &probe] {
        assert!(e.to_string().contains("TLS handshake failed"), "{e}");
        assert!(e.to_string().contains(&root), "names the URL: {e}");
    }
    // A refused certificate is a config error (something to fix, not "nothing answers"), for
    // a call and a probe alike; the call was never sent (another host may take it).
    assert!(call.is_config() && call.is_not_sent(), "{call:?}");
    assert!(probe.is_config(), "{probe:?}");
    (call, probe)
}

#[tokio::test]
async fn an_unknown_ca_is_named() {
    let ca = ca("test CA");
    let other = ca_pem_file("another CA");
    let (call, _) = failures(leaf(&ca, &["127.0.0.1"], false), &other).await;
    assert!(call.to_string().contains("unknown CA"), "{call}");
    assert!(call.to_string().contains("ca_file"), "says what to do: {call}");
}

fn ca_pem_file(name: &str) -> TempFile {
    TempFile::new(&ca(name).pem())
}

#[tokio::test]
async fn an_expired_certificate_is_named() {
    let ca = ca("test CA");
    let trusted = TempFile::new(&ca.pem());
    let (call, probe) = failures(leaf(&ca, &["127.0.0.1"], true), &trusted).await;
    assert!(call.to_string().contains("expired"), "{call}");
    assert!(probe.to_string().contains("expired"), "{probe}");
}

#[tokio::test]
async fn a_certificate_for_another_name_is_named() {
    let ca = ca("test CA");
    let trusted = TempFile::new(&ca.pem());
    let (call, _) = failures(leaf(&ca, &["other.example"], false), &trusted).await;
    assert!(call.to_string().contains("not valid for 127.0.0.1"), "{call}");
}

#[tokio::test]
async fn https_to_a_plain_http_server_says_so() {
    let addr = serve(None, false).await;
    let e = HttpClient::new()
        .call_function(&format!("https://{addr}"), "f", Bytes::from_static(b"{}"), T)
        .await
        .expect_err("no TLS there");
    assert!(e.is_config() && e.is_not_sent(), "{e:?}");
    assert!(e.to_string().contains("TLS handshake failed"), "{e}");
    assert!(e.to_string().contains("http://"), "hints at the scheme: {e}");
}

#[test]
fn a_bad_ca_file_is_a_config_error_naming_it() {
    let missing = std::env::temp_dir().join("jshost-client-no-such-ca.pem");
    let not_pem = TempFile::new("hello");
    let broken = TempFile::new("-----BEGIN CERTIFICATE-----\nAAAA\n");
    let not_a_cert = TempFile::new("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    for path in [missing, not_pem.0.clone(), broken.0.clone(), not_a_cert.0.clone()] {
        let e = HttpClient::from_settings(&Settings::default().ca_file(&path)).expect_err("bad CA file");
        assert!(e.is_config(), "{e:?}");
        assert!(
            e.to_string().contains(&path.display().to_string()),
            "names the file: {e}"
        );
    }
}

#[test]
fn invalid_headers_are_config_errors_naming_the_header_not_its_value() {
    let e = HttpClient::from_settings(&Settings::default().header("bad name", "x")).expect_err("bad name");
    assert!(e.is_config() && e.to_string().contains("\"bad name\""), "{e}");
    let e = HttpClient::from_settings(&Settings::default().header("authorization", "Bearer s3cret\n"))
        .expect_err("bad value");
    assert!(e.is_config() && e.to_string().contains("authorization"), "{e}");
    assert!(!e.to_string().contains("s3cret"), "the value is not shown: {e}");
    let e =
        HttpClient::from_settings(&Settings::default().header("Content-Length", "1")).expect_err("managed");
    assert!(e.is_config() && e.to_string().contains("content-length"), "{e}");
    let client =
        HttpClient::from_settings(&Settings::default().header("authorization", "Bearer s3cret")).expect("ok");
    let shown = format!("{client:?}");
    assert!(
        shown.contains("authorization") && !shown.contains("s3cret"),
        "{shown}"
    );
}
