//! Hosts on "other machines": nginx terminating TLS with certificates made here, checking a bearer
//! token, in front of real hosts; the SDK reaching them with `root_url("https://...")`,
//! `ca_file` and `header`. A wrong CA, an expired certificate, a certificate for another name and
//! a missing token each fail with an error that says so; two hosts behind one `upstream` both
//! serve calls.

use futures::future::join_all;
use jshost::{JsHost, Settings};
use jshost_client::HttpClient;
use jshost_integration::{free_port, host_process_of, wait_for, Fixture, HostProcess};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "Bearer it-s3cret";

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// nginx, or `None` (and a note) when it is not installed outside CI.
fn nginx_or_skip() -> Option<PathBuf> {
    let binary = nginx_binary();
    if binary.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install nginx (.ci/run does)"
        );
        eprintln!("skipped: nginx is not installed (apt-get install nginx-light)");
    }
    binary
}

/// The certificates of a test, as PEM files in `dir`: a CA; server certificates signed by it for
/// 127.0.0.1 and localhost (`good`), the same names but expired in 2021 (`expired`), and
/// another name (`other_name`); and a second, unrelated CA (`other_ca`).
struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    good: (PathBuf, PathBuf),
    expired: (PathBuf, PathBuf),
    other_name: (PathBuf, PathBuf),
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let ca = new_ca("jshost test CA");
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let server = |name: &str, names: &[&str], expired: bool| {
            let mut params =
                CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
            params.distinguished_name.push(DnType::CommonName, names[0]);
            if expired {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = rcgen::date_time_ymd(2021, 1, 1);
            }
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca).unwrap();
            (
                write(&format!("{name}.crt"), cert.pem()),
                write(&format!("{name}.key"), key.serialize_pem()),
            )
        };
        Pki {
            good: server("good", &["127.0.0.1", "localhost"], false),
            expired: server("expired", &["127.0.0.1", "localhost"], true),
            other_name: server("other-name", &["jshost.example"], false),
            ca: write("ca.crt", ca.pem()),
            other_ca: write("other-ca.crt", new_ca("another CA").pem()),
        }
    }
}

/// nginx in the foreground for one test (its pid file and logs in the fixture's directory);
/// killed on drop.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// Starts nginx proxying to `upstreams` (host ports) with one TLS server per `(port, cert)`,
    /// each requiring `Authorization: TOKEN`, and waits until every port accepts connections.
    fn start(
        binary: &Path,
        fixture: &Fixture,
        upstreams: &[u16],
        servers: &[(u16, &(PathBuf, PathBuf))],
    ) -> Nginx {
        let dir = fixture.dir().join("nginx");
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let d = dir.display();
        let members: String = upstreams
            .iter()
            .map(|port| format!("server 127.0.0.1:{port}; "))
            .collect();
        let blocks: String = servers
            .iter()
            .map(|(port, (cert, key))| {
                format!(
                    r#"
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        if ($http_authorization != "{TOKEN}") {{ return 401 "missing or wrong token\n"; }}
        location / {{
            proxy_pass http://jshost;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"#,
                    cert = cert.display(),
                    key = key.display()
                )
            })
            .collect();
        // The README's distributed layout, plus what running nginx unprivileged in a test needs.
        let conf = format!(
            r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    default_type text/plain;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_max_body_size 10m;

    upstream jshost {{ least_conn; {members}keepalive 32; }}
{blocks}
}}
"#
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut nginx = Nginx { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        for (port, _) in servers {
            while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                if let Ok(Some(status)) = nginx.child.try_wait() {
                    panic!("nginx exited ({status}): {}", nginx.error_log());
                }
                assert!(
                    Instant::now() < deadline,
                    "nginx does not listen on {port}: {}",
                    nginx.error_log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/error.log")).unwrap_or_default()
    }
}

fn settings(fixture: &Fixture, port: u16, ca: &Path) -> Settings {
    fixture
        .settings()
        .root_url(format!("https://127.0.0.1:{port}"))
        .ca_file(ca)
        .header("authorization", TOKEN)
}

/// The host port a `HostProcess` started with `--port 0` listens on.
fn port_of(host: &HostProcess) -> u16 {
    let status: serde_json::Value = serde_json::from_str(&host.status).unwrap();
    status["config"]["port"].as_u64().unwrap() as u16
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_tls_with_a_token_through_nginx() {
    let Some(binary) = nginx_or_skip() else { return };
    let fixture = Fixture::new("tls-ok", "");
    let _host = fixture.start_host();
    let pki = Pki::new(&fixture.dir().join("pki"));
    let port = free_port();
    let _nginx = Nginx::start(&binary, &fixture, &[fixture.port], &[(port, &pki.good)]);

    let host = JsHost::connect(settings(&fixture, port, &pki.ca)).await.unwrap();
    assert_eq!(host.url(), format!("https://127.0.0.1:{port}"));
    let hello = host.function("hello_world");
    assert_eq!(
        hello.call(&serde_json::json!({"name": "TLS"})).await.unwrap(),
        "Hello, TLS!"
    );
    // Many concurrent calls over pooled TLS connections.
    let answers = join_all((0..200).map(|i| {
        let hello = hello.clone();
        async move { hello.call(&serde_json::json!({ "name": i.to_string() })).await }
    }))
    .await;
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.unwrap(), format!("Hello, {i}!"));
    }
    // The certificate's other name works too.
    let by_name = settings(&fixture, port, &pki.ca).root_url(format!("https://localhost:{port}"));
    let host = JsHost::connect(by_name).await.unwrap();
    assert_eq!(
        host.function("hello_world").call(&()).await.unwrap(),
        "Hello, World!"
    );
}

/// The error of `JsHost::connect` and of a call through a client made from the same settings.
async fn connect_and_call_errors(settings: Settings) -> (jshost::Error, jshost::Error) {
    let url = settings.root_urls[0].clone();
    let connect = JsHost::connect(settings.clone())
        .await
        .expect_err("connect must fail");
    let call = HttpClient::from_settings(&settings)
        .unwrap()
        .call_function(&url, "hello_world", "{}".into(), Duration::from_secs(5))
        .await
        .expect_err("the call must fail");
    for e in [&connect, &call] {
        assert!(e.to_string().contains(&url), "names the URL: {e}");
    }
    (connect, call)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_an_expired_or_mismatched_certificate_and_a_missing_token_are_named() {
    let Some(binary) = nginx_or_skip() else { return };
    let fixture = Fixture::new("tls-errors", "");
    let _host = fixture.start_host();
    let pki = Pki::new(&fixture.dir().join("pki"));
    let (good, expired, other_name) = (free_port(), free_port(), free_port());
    let _nginx = Nginx::start(
        &binary,
        &fixture,
        &[fixture.port],
        &[
            (good, &pki.good),
            (expired, &pki.expired),
            (other_name, &pki.other_name),
        ],
    );

    let tls_cases = [
        (
            "a wrong CA",
            settings(&fixture, good, &pki.other_ca),
            "unknown CA",
        ),
        (
            "an expired certificate",
            settings(&fixture, expired, &pki.ca),
            "expired",
        ),
        (
            "a certificate for another name",
            settings(&fixture, other_name, &pki.ca),
            "not valid for 127.0.0.1",
        ),
    ];
    for (case, settings, reason) in tls_cases {
        let (connect, call) = connect_and_call_errors(settings).await;
        // The certificate is refused, which is a setting (or the server) to fix, not "nothing
        // answers": a config error, connecting and calling alike; the call was never sent.
        assert!(connect.is_config(), "{case}: {connect:?}");
        assert!(call.is_config() && call.is_not_sent(), "{case}: {call:?}");
        for e in [&connect, &call] {
            let text = e.to_string();
            assert!(text.contains("TLS handshake failed"), "{case}: {text}");
            assert!(text.contains(reason), "{case}: {text}");
        }
    }

    // Right certificate, no token: nginx answers 401, which says credentials are wanted.
    let mut no_token = settings(&fixture, good, &pki.ca);
    no_token.headers.clear();
    let mut wrong_token = settings(&fixture, good, &pki.ca);
    wrong_token.headers = vec![("authorization".into(), "Bearer nope".into())];
    for (case, settings) in [("no token", no_token), ("a wrong token", wrong_token)] {
        let (connect, call) = connect_and_call_errors(settings).await;
        for e in [&connect, &call] {
            assert!(e.is_unexpected_response(), "{case}: {e:?}");
            assert_eq!(e.status(), Some(401), "{case}: {e:?}");
            assert!(e.to_string().contains("Settings::header"), "{case}: {e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_behind_one_nginx_upstream_over_tls_both_serve_calls() {
    let Some(binary) = nginx_or_skip() else { return };
    let fixture = Fixture::new("tls-upstream", "");
    // Two hosts of one config, as two machines would run them.
    let a = HostProcess::start(&fixture.config, &["--port", "0"]).unwrap();
    let b = HostProcess::start(&fixture.config, &["--port", "0"]).unwrap();
    let pki = Pki::new(&fixture.dir().join("pki"));
    let port = free_port();
    let _nginx = Nginx::start(
        &binary,
        &fixture,
        &[port_of(&a), port_of(&b)],
        &[(port, &pki.good)],
    );

    let expected: HashSet<String> = [a.pid().to_string(), b.pid().to_string()].into();
    // With batching off (the README's advice behind a balancer) and on (the default: the handle
    // then keeps 2 requests per worker in flight to nginx, and least_conn still uses both).
    for batch in [false, true] {
        let host = JsHost::connect(settings(&fixture, port, &pki.ca).batch(batch))
            .await
            .unwrap();
        let pid = host.function("pid");
        // least_conn sends concurrent requests to both; rounds until both have answered.
        let what = format!("both hosts to answer through nginx (batch: {batch})");
        let seen = wait_for(Duration::from_secs(20), &what, || {
            let pid = pid.clone();
            let expected = expected.clone();
            async move {
                let mut seen = HashSet::new();
                // A jshost-node host answers from a worker: count the host process it belongs to.
                for answer in join_all((0..100).map(|_| pid.call(&()))).await {
                    seen.insert(host_process_of(answer.unwrap().parse().unwrap()).to_string());
                }
                (seen == expected).then_some(seen)
            }
        })
        .await;
        assert_eq!(seen, expected);
    }
}

/// jshost-node itself serving HTTPS with a bearer token (`--tls-cert/--tls-key
/// --auth-token-file`), no proxy: the SDK reaches it with `root_url("https://...")`, `ca_file`
/// and `header("authorization", ...)`; without the token it gets the host's 401, and a wrong CA
/// is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_tls_with_a_token_to_jshost_node_itself() {
    if jshost_integration::host_under_test() != jshost_integration::Host::JshostNode {
        println!("skipped against js-host 0.12: TLS and tokens are jshost-node's");
        return;
    }
    let fixture = Fixture::new("tls-native", "");
    let pki = Pki::new(&fixture.dir().join("pki"));
    let token_file = fixture.dir().join("token");
    std::fs::write(&token_file, TOKEN.trim_start_matches("Bearer ")).unwrap();
    // jshost-node refuses a key or token file that other users can read.
    for secret in [&token_file, &pki.good.1] {
        std::fs::set_permissions(secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    let args = [
        "--port",
        "0",
        "--tls-cert",
        pki.good.0.to_str().unwrap(),
        "--tls-key",
        pki.good.1.to_str().unwrap(),
        "--auth-token-file",
        token_file.to_str().unwrap(),
    ];
    let host_process = HostProcess::start(&fixture.config, &args).unwrap();
    let port = port_of(&host_process);
    let host = JsHost::connect(settings(&fixture, port, &pki.ca)).await.unwrap();
    assert_eq!(host.url(), format!("https://127.0.0.1:{port}"));
    assert_eq!(
        host.function("hello_world")
            .call(&serde_json::json!({"name": "TLS"}))
            .await
            .unwrap(),
        "Hello, TLS!"
    );
    let mut no_token = settings(&fixture, port, &pki.ca);
    no_token.headers.clear();
    let e = JsHost::connect(no_token).await.unwrap_err();
    println!("without the token: {e}");
    assert!(e.to_string().contains("401"), "{e}");
    let e = JsHost::connect(settings(&fixture, port, &pki.other_ca))
        .await
        .unwrap_err();
    println!("with another CA: {e}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    drop((host, host_process));
    assert_eq!(
        jshost_integration::node_processes_left(fixture.dir().to_str().unwrap(), Duration::from_secs(5))
            .await,
        0
    );
}
