//! The actix-web example (`examples/actix_ssr.rs`) run the way actix runs: several workers, each a
//! thread with a current-thread runtime and a clone of the handle, called concurrently, against
//! an owned host serving the repository's `host.config.js`.

#[allow(dead_code)]
#[path = "../../../examples/actix_ssr.rs"]
mod actix_ssr;

use futures::StreamExt;
use jshost::{JsHost, Settings};
use jshost_integration::{kill9, pid_alive, repo_root, wait_for};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const WORKERS: usize = 4;
const REQUESTS: usize = 200;
const IN_FLIGHT: usize = 32;

/// Stops the server when dropped (also when the test fails), so its workers drop their clones of
/// the host.
struct StopServer(CancellationToken);

impl Drop for StopServer {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Kills the owned host when dropped, unless the test saw it exit (disarmed): a failing test
/// leaves nothing behind even if a worker still held a clone of the handle.
struct KillHost(Option<u32>);

impl Drop for KillHost {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            kill9(pid);
        }
    }
}

/// A plain HTTP/1.1 GET over a TCP connection of its own: the status code, the headers and the
/// body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to the actix server");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send the request");
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .expect("read the response");
        response
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer to GET {path} within 10 s"));
    let response = String::from_utf8(response).expect("a UTF-8 response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a header block");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// The page `render` makes for `title` and `items` demo items (see `host.config.js`).
fn expected_page(title: &str, items: i64) -> String {
    let rows: String = (0..items)
        .map(|i| {
            let class = if i % 2 == 1 { "odd" } else { "even" };
            format!(r#"<tr class="{class}"><td>Item {i}</td><td>{}</td></tr>"#, i * 3)
        })
        .collect();
    format!(
        "<!doctype html><html><head><title>{title}</title></head><body><table>{rows}</table></body></html>"
    )
}

#[tokio::test]
async fn actix_ssr_serves_concurrent_requests_from_several_workers() {
    let settings = Settings::default().source_root(repo_root()).status_cache(false);
    let host = JsHost::spawn(settings).await.expect("spawn an owned host");
    let pid = host.pid().expect("an owned host has a pid");
    let mut kill_host = KillHost(Some(pid));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("the listener's address");
    let shutdown = CancellationToken::new();
    let stop_server = StopServer(shutdown.clone());
    let server = actix_ssr::server(host.clone(), listener, WORKERS, shutdown.cancelled_owned())
        .expect("start the actix server");
    let server = tokio::spawn(server);

    // Every tenth request makes the JavaScript function fail; the others ask for 0 to 6 items.
    let answers: Vec<(usize, (u16, String, String))> = futures::stream::iter(0..REQUESTS)
        .map(|i| async move {
            let path = if i % 10 == 9 {
                format!("/?title=Broken{i}&items=-1")
            } else {
                format!("/?title=Page{i}&items={}", i % 7)
            };
            (i, get(addr, &path).await)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    assert_eq!(answers.len(), REQUESTS);
    for (i, (status, head, body)) in answers {
        if i % 10 == 9 {
            assert_eq!(status, 500, "request {i}: {body}");
            assert!(
                body.starts_with("The page could not be rendered: ")
                    && body.contains("render needs `items`, an array"),
                "request {i}: {body}"
            );
        } else {
            assert_eq!(status, 200, "request {i}: {body}");
            assert!(head.contains("content-type: text/html"), "request {i}: {head}");
            assert_eq!(
                body,
                expected_page(&format!("Page{i}"), (i % 7) as i64),
                "request {i}"
            );
        }
    }

    // Stop the server: its workers end and drop their clones; the test's is the last one.
    drop(stop_server);
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the server stops within 30 s")
        .expect("the server task does not panic")
        .expect("the server stops without an error");
    assert!(pid_alive(pid), "the test still holds the host");
    drop(host);
    wait_for(Duration::from_secs(10), "the owned host to exit", || async {
        (!pid_alive(pid)).then_some(())
    })
    .await;
    kill_host.0 = None;
}
