//! Reverse-proxy caching for real: nginx in front of a host, `proxy_cache` keyed on the request
//! URI (which carries `?hash=SHA1-of-the-body`), and `root_url` pointing at nginx.

use jshost::JsHost;
use jshost_integration::{free_port, wait_for, Fixture};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// nginx running in the foreground for one test; killed on drop.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nginx(binary: &PathBuf, fixture: &Fixture, port: u16) -> Nginx {
    let dir = fixture.dir().join("nginx");
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let d = dir.display();
    let host_port = fixture.port;
    // The snippet the README shows, plus what running nginx unprivileged in a test needs.
    let conf = format!(
        r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_max_body_size 10m;

    proxy_cache_path {d}/cache levels=1:2 keys_zone=jshost:10m max_size=256m inactive=60m;
    upstream jshost {{ server 127.0.0.1:{host_port}; keepalive 16; }}

    server {{
        listen 127.0.0.1:{port};
        location /function/ {{
            proxy_pass http://jshost;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache jshost;
            proxy_cache_methods POST;
            proxy_cache_key $request_uri;
            proxy_cache_valid 200 10m;
            add_header X-Cache-Status $upstream_cache_status;
        }}
        location / {{
            proxy_pass http://jshost;
        }}
    }}
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
    Nginx(child)
}

#[tokio::test]
async fn nginx_serves_repeated_identical_calls_from_its_cache() {
    let Some(binary) = nginx_binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install nginx (.ci/run does)"
        );
        eprintln!("skipped: nginx is not installed (apt-get install nginx-light)");
        return;
    };
    let fixture = Fixture::new("nginx-cache", "");
    let _host_process = fixture.start_host();
    let port = free_port();
    let _nginx = start_nginx(&binary, &fixture, port);
    let proxy = format!("http://127.0.0.1:{port}");

    // Connect through nginx (its /status is the host's).
    let settings = fixture.settings().root_url(proxy.clone());
    let host = wait_for(Duration::from_secs(10), "nginx to answer", || {
        let settings = settings.clone();
        async move { JsHost::connect(settings).await.ok() }
    })
    .await;
    assert_eq!(host.url(), proxy);

    let counter = host.function("counter");
    let a = json!({"page": "a"});
    let b = json!({"page": "b"});
    assert_eq!(counter.call(&a).await.unwrap(), "1");
    assert_eq!(
        counter.call(&a).await.unwrap(),
        "1",
        "the same data is answered by the cache"
    );
    assert_eq!(
        counter.call(&b).await.unwrap(),
        "2",
        "other data reaches the host"
    );
    assert_eq!(counter.call(&a).await.unwrap(), "1", "still cached");
    assert_eq!(counter.call(&b).await.unwrap(), "2");

    // Going around nginx shows the function really ran only twice.
    let direct = JsHost::connect(fixture.settings()).await.unwrap();
    assert_eq!(
        direct
            .function("counter")
            .call(&json!({"page": "c"}))
            .await
            .unwrap(),
        "3"
    );
}
