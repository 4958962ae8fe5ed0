//! Error paths of the client against a tiny in-process hyper server (what a real host cannot
//! easily produce). End-to-end behaviour against real js-host is tested in `integration/`.

use super::*;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::TcpListener;

/// Serves `reply(path_and_query, body)` on 127.0.0.1:0 and returns the root URL and a counter of
/// accepted connections. The server task ends with the test's runtime.
async fn serve<F>(reply: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(String, Bytes) -> (u16, Vec<u8>, Duration) + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let reply = Arc::new(reply);
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let reply = reply.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let reply = reply.clone();
                    async move {
                        let path = req.uri().to_string();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let (status, out, delay) = reply(path, body);
                        tokio::time::sleep(delay).await;
                        let resp = hyper::Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::from(out)))
                            .expect("valid response");
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, accepted)
}

fn opts(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[tokio::test]
async fn ok_returns_text_and_sends_the_hash_of_the_body() {
    let (url, _) = serve(|path, body| {
        (
            200,
            format!("{path}|{}", String::from_utf8_lossy(&body)).into_bytes(),
            Duration::ZERO,
        )
    })
    .await;
    let body = Bytes::from_static(br#"{"a":1}"#);
    let text = HttpClient::new()
        .call_function(&url, "echo", body.clone(), opts(2000))
        .await
        .expect("ok");
    assert_eq!(
        text,
        format!("/function/echo?hash={}|{{\"a\":1}}", jshost_core::hash(&body))
    );
}

#[tokio::test]
async fn status_500_is_a_function_error_with_the_stack() {
    let (url, _) = serve(|_, _| {
        (
            500,
            b"Error: boom\n    at x (file.js:1:2)".to_vec(),
            Duration::ZERO,
        )
    })
    .await;
    let e = HttpClient::new()
        .call_function(&url, "fail", Bytes::from_static(b"{}"), opts(2000))
        .await
        .expect_err("500");
    assert!(e.is_function(), "{e:?}");
    assert_eq!(e.function_name(), Some("fail"));
    assert_eq!(e.js_stack(), Some("Error: boom\n    at x (file.js:1:2)"));
    assert!(e.to_string().contains("at x (file.js:1:2)"), "{e}");
}

#[tokio::test]
async fn other_statuses_are_unexpected_responses() {
    for status in [400u16, 404, 413, 502] {
        let (url, _) =
            serve(move |_, _| (status, format!("nope {status}").into_bytes(), Duration::ZERO)).await;
        let e = HttpClient::new()
            .call_function(&url, "f", Bytes::from_static(b"{}"), opts(2000))
            .await
            .expect_err("non-200");
        assert!(e.is_unexpected_response(), "{e:?}");
        assert_eq!(e.status(), Some(status));
        assert_eq!(e.body(), Some(format!("nope {status}").as_str()));
        assert!(e.to_string().contains(&status.to_string()), "{e}");
    }
}

#[tokio::test]
async fn invalid_utf8_is_a_decode_error() {
    let (url, _) = serve(|_, _| (200, vec![0xff, 0xfe], Duration::ZERO)).await;
    let e = HttpClient::new()
        .call_function(&url, "f", Bytes::from_static(b"{}"), opts(2000))
        .await
        .expect_err("utf8");
    assert!(e.is_decode(), "{e:?}");
}

#[tokio::test]
async fn a_slow_answer_times_out_at_the_deadline() {
    let (url, _) = serve(|_, _| (200, b"late".to_vec(), Duration::from_secs(30))).await;
    let started = Instant::now();
    let e = HttpClient::new()
        .call_function(&url, "slow", Bytes::from_static(b"{}"), opts(150))
        .await
        .expect_err("timeout");
    assert!(e.is_timeout(), "{e:?}");
    assert_eq!(e.function_name(), Some("slow"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "returned after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn dropping_the_call_aborts_the_request() {
    let (url, accepted) = serve(|_, _| (200, b"late".to_vec(), Duration::from_secs(30))).await;
    let client = HttpClient::new();
    let call = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call_function(&url, "slow", Bytes::from_static(b"{}"), opts(30_000))
                .await
        })
    };
    // Wait (with a deadline) until the request is at the server, so the abort hits a call in flight.
    let deadline = Instant::now() + Duration::from_secs(5);
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the request never reached the server");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    call.abort();
    assert!(call.await.expect_err("aborted").is_cancelled());
    // The permit of the abandoned call is given back at once.
    let deadline = Instant::now() + Duration::from_secs(2);
    while client.inner.permits.available_permits() != client.max_connections() {
        assert!(Instant::now() < deadline, "the aborted call kept its permit");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn calls_work_from_a_runtime_after_another_ended_and_from_no_runtime() {
    let server = tokio::runtime::Runtime::new().expect("server runtime");
    let (url, accepted) = server.block_on(serve(|_, body| (200, body.to_vec(), Duration::ZERO)));
    let client = HttpClient::new();
    let call = |client: &HttpClient, url: &str| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(client.call_function(url, "echo", Bytes::from_static(b"[1]"), opts(2000)))
    };
    // Each call comes from a runtime of its own, ended right after: the second must not try
    // the first one's connection, whose task died with its runtime.
    assert_eq!(call(&client, &url).expect("first runtime"), "[1]");
    assert_eq!(call(&client, &url).expect("second runtime"), "[1]");
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "a connection per runtime");
    // No tokio runtime at all on the calling side: the SDK's own runtime makes the call.
    let out = futures::executor::block_on(client.call_function(
        &url,
        "echo",
        Bytes::from_static(b"[2]"),
        opts(2000),
    ));
    assert_eq!(out.expect("called from outside any runtime"), "[2]");
}

#[tokio::test]
async fn nothing_listening_is_a_connection_error_naming_the_url() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let e = HttpClient::new()
        .call_function(&url, "f", Bytes::from_static(b"{}"), opts(2000))
        .await
        .expect_err("refused");
    assert!(e.is_connection(), "{e:?}");
    assert!(e.is_not_sent(), "a refused connection sent nothing: {e:?}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
}

#[tokio::test]
async fn connections_are_reused_and_bounded() {
    let (url, accepted) = serve(|_, body| (200, body.to_vec(), Duration::from_millis(2))).await;
    let client = HttpClient::with_max_connections(4);
    for i in 0..200 {
        let out = client
            .call_function(&url, "echo", Bytes::from(format!("[{i}]")), opts(2000))
            .await
            .expect("ok");
        assert_eq!(out, format!("[{i}]"));
    }
    // On a current-thread runtime the second call can race the first connection's return to the
    // pool (the connection task runs on the same thread) and open one more; after that, sequential
    // calls keep reusing what is pooled.
    assert!(
        accepted.load(Ordering::SeqCst) <= 2,
        "sequential calls reuse pooled connections: {} opened for 200 calls",
        accepted.load(Ordering::SeqCst)
    );
    let calls = (0..64).map(|i| {
        let client = client.clone();
        let url = url.clone();
        tokio::spawn(async move {
            client
                .call_function(&url, "echo", Bytes::from(format!("[{i}]")), opts(5000))
                .await
        })
    });
    for (i, call) in calls.enumerate() {
        assert_eq!(call.await.expect("task").expect("ok"), format!("[{i}]"));
    }
    assert!(
        accepted.load(Ordering::SeqCst) <= 4,
        "opened {} connections",
        accepted.load(Ordering::SeqCst)
    );
}

#[test]
fn names_are_percent_encoded_as_one_segment() {
    let url = function_url("http://h", "a/b?c#d é", b"{}");
    assert!(
        url.starts_with("http://h/function/a%2Fb%3Fc%23d%20%C3%A9?hash="),
        "{url}"
    );
}

#[test]
fn client_types_are_send_sync() {
    fn check<T: Send + Sync + Clone + fmt::Debug>() {}
    check::<HttpClient>();
}

#[test]
fn an_html_error_page_gives_a_plain_stack() {
    let page = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Error</title>\n</head>\n<body>\n<pre>Error: a &lt;b&gt; &amp; &quot;c&quot;<br> &nbsp; &nbsp;at Object.f (/x/functions.js:22:13)</pre>\n</body>\n</html>\n";
    assert_eq!(
        stack_from_html(page).as_deref(),
        Some("Error: a <b> & \"c\"\n    at Object.f (/x/functions.js:22:13)")
    );
    assert_eq!(stack_from_html("Error: plain\n    at x"), None);
}

/// Without the `tls` feature (`jshost` with `default-features = false`), `https://` is refused
/// with a config error saying why: calls, probes and settings alike.
#[cfg(not(feature = "tls"))]
#[tokio::test]
async fn https_without_the_tls_feature_is_a_config_error() {
    let url = "https://127.0.0.1:9";
    let e = HttpClient::new()
        .call_function(url, "f", Bytes::from_static(b"{}"), opts(2000))
        .await
        .expect_err("no TLS");
    assert!(e.is_config() && e.to_string().contains("`tls` feature"), "{e}");
    let e = HttpClient::new()
        .get_fresh(&format!("{url}/status"), opts(2000))
        .await
        .expect_err("no TLS");
    assert!(e.is_config() && e.to_string().contains("`tls` feature"), "{e}");
    for settings in [
        jshost_core::Settings::default().root_url(url),
        jshost_core::Settings::default().ca_file("/etc/ssl/ca.pem"),
    ] {
        let e = HttpClient::from_settings(&settings).expect_err("no TLS");
        assert!(e.is_config() && e.to_string().contains("`tls` feature"), "{e}");
    }
}

/// A request's state machine is held by every call in flight: the path taken outside any runtime
/// (spawned on the SDK's own) is boxed so that it does not add its size to every request.
#[test]
fn a_requests_state_machine_stays_small() {
    let client = HttpClient::new();
    let call = client.call_function("http://127.0.0.1:9", "f", Bytes::new(), Duration::from_secs(1));
    let size = std::mem::size_of_val(&call);
    assert!(size <= 2560, "a request's future is {size} bytes");
}

/// Serves `reply(request headers, connection number)` -> (status, extra headers, body) on
/// 127.0.0.1:0; returns the root URL.
async fn serve_with_headers<F>(reply: F) -> String
where
    F: Fn(&http::HeaderMap, usize) -> (u16, Vec<(&'static str, &'static str)>, String)
        + Send
        + Sync
        + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let reply = Arc::new(reply);
    tokio::spawn(async move {
        let mut connections = 0;
        while let Ok((stream, _)) = listener.accept().await {
            connections += 1;
            let (reply, number) = (reply.clone(), connections);
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (status, headers, body) = reply(req.headers(), number);
                    let mut resp = hyper::Response::builder().status(status);
                    for (name, value) in headers {
                        resp = resp.header(name, value);
                    }
                    let resp = resp.body(Full::new(Bytes::from(body))).expect("valid response");
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

#[tokio::test]
async fn a_call_tells_the_host_its_deadline_when_nodes_timers_can_keep_it() {
    let url = serve_with_headers(|headers, _| {
        let sent = headers
            .get(TIMEOUT_HEADER)
            .map(|v| v.to_str().unwrap_or("?").to_owned())
            .unwrap_or_else(|| "none".to_owned());
        (200, vec![], sent)
    })
    .await;
    let client = HttpClient::new();
    let call = |timeout| client.call_function(&url, "f", Bytes::from_static(b"{}"), timeout);
    let ms: u64 = call(Duration::from_secs(10))
        .await
        .expect("call")
        .parse()
        .expect("ms");
    assert!((9_000..=10_000).contains(&ms), "{ms}");
    assert_eq!(
        call(Duration::from_secs(30 * 24 * 3600)).await.expect("call"),
        "none"
    );
    assert_eq!(call(Duration::MAX).await.expect("call"), "none");
    let e = client
        .get(&format!("{url}/status"), Duration::from_secs(5))
        .await
        .expect("get");
    assert_eq!(e.text_lossy(), "none", "only calls carry it");
}

#[tokio::test]
async fn a_request_the_host_did_not_run_is_sent_again_on_a_fresh_connection() {
    // The first connection answers "not run" to everything (a process that is draining).
    let url = serve_with_headers(|_, connection| match connection {
        1 => (
            503,
            vec![(NOT_RUN_HEADER, "1"), ("connection", "close")],
            "jshost-node is shutting down: the call was not run; send it again".into(),
        ),
        n => (200, vec![], format!("ran on connection {n}")),
    })
    .await;
    let text = HttpClient::new()
        .call_function(&url, "f", Bytes::from_static(b"{}"), Duration::from_secs(5))
        .await
        .expect("sent again");
    assert_eq!(text, "ran on connection 2");

    // A host that only ever answers "not run": an error saying so, marked not sent.
    let url = serve_with_headers(|_, _| (503, vec![(NOT_RUN_HEADER, "1")], "draining".into())).await;
    let e = HttpClient::new()
        .call_function(&url, "f", Bytes::from_static(b"{}"), Duration::from_secs(5))
        .await
        .expect_err("not run");
    assert!(is_not_run(&e) && e.function_name() == Some("f"), "{e:?}");
    // A 503 without the header is an answer like any other: not sent again.
    let url = serve_with_headers(|_, n| (503, vec![], format!("busy {n}"))).await;
    let e = HttpClient::new()
        .call_function(&url, "f", Bytes::from_static(b"{}"), Duration::from_secs(5))
        .await
        .expect_err("503");
    assert!(e.is_unexpected_response() && !is_not_run(&e), "{e:?}");
    assert_eq!(e.body(), Some("busy 1"));
}

/// Serves 200 "ok" after `delay` on 127.0.0.1:0 from the current runtime; returns the root URL,
/// the connections open now and the most open at once.
async fn serve_counting(delay: Duration) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let (open, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (o, p) = (open.clone(), peak.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let now = o.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            let o = o.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req: hyper::Request<hyper::body::Incoming>| async move {
                    tokio::time::sleep(delay).await;
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                o.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (url, open, peak)
}

/// Eight current-thread runtimes (an actix server's workers) share one client of 4 request
/// slots: 4 requests in flight and 4 connections idle at most over all of them, requests beyond
/// wait (and are reported waiting), and idle connections are closed once expired.
#[test]
fn the_pool_keeps_one_bound_across_runtimes_and_closes_idle_connections() {
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");
    let (url, open, peak) = server.block_on(serve_counting(Duration::from_millis(30)));
    let client = HttpClient::with_max_connections(4);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let finished = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, finished, mut stopped) =
                (client.clone(), url.clone(), finished.clone(), stopped.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("worker runtime");
                runtime.block_on(async move {
                    for _ in 0..3 {
                        let calls = (0..16).map(|_| client.get(&url, Duration::from_secs(30)));
                        for answer in futures::future::join_all(calls).await {
                            assert_eq!(answer.expect("get").status, 200);
                        }
                    }
                    finished.fetch_add(1, Ordering::SeqCst);
                    // Keep driving the runtime (its pool's reaper runs on it) until told.
                    let _ = stopped.wait_for(|s| *s).await;
                });
            })
        })
        .collect();
    let poll = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let mut saw_waiting = false;
    while finished.load(Ordering::SeqCst) < 8 {
        let status = client.pool_status(&url);
        assert!(status.busy <= 4 && status.idle <= 4, "{status:?}");
        saw_waiting |= status.waiting > 0;
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(saw_waiting, "128 requests for 4 slots: some waited");
    let status = client.pool_status(&url);
    assert_eq!((status.busy, status.waiting), (0, 0), "{status:?}");
    assert!(status.idle <= 4, "{status:?}");
    // Eight runtimes' pools of 4 idle each plus 4 busy were 36 sockets; connections being
    // closed are still counted by the server for a moment.
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 12, "{peak} connections open at once");
    poll("idle connections to be closed", &|| {
        client.pool_status(&url).idle == 0 && open.load(Ordering::SeqCst) == 0
    });
    let _ = stop.send(true);
    for worker in workers {
        worker.join().expect("worker thread");
    }
}
