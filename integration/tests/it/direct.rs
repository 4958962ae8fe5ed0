//! A host started outside jshost (as in production), reached with `JsHost::connect`: connecting,
//! calls, every error kind, the pool, against real js-host 0.12.

use futures::future::join_all;
use jshost::{Function, JsHost, Settings};
use jshost_integration::{repo_root, Fixture};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

async fn connected(name: &str) -> (Fixture, jshost_integration::HostProcess, JsHost) {
    let fixture = Fixture::new(name, "");
    let process = fixture.start_host();
    let host = JsHost::connect(fixture.settings()).await.expect("connect");
    (fixture, process, host)
}

#[tokio::test]
async fn connects_and_calls_hello_world() {
    let (fixture, _process, host) = connected("hello").await;
    let hello: Function = host.function("hello_world");
    assert_eq!(hello.call(&json!({"name": "Foo"})).await.unwrap(), "Hello, Foo!");
    assert_eq!(hello.call(&()).await.unwrap(), "Hello, World!");
    assert_eq!(hello.call(&None::<()>).await.unwrap(), "Hello, World!");

    assert_eq!(host.url().to_string(), fixture.url());
    assert_eq!(host.config_file(), fixture.config.as_path());
    assert_eq!(host.status().kind(), "Host");
    assert_eq!(host.status().port(), Some(fixture.port));
    assert!(host.status().functions().contains(&"echo".to_string()));
    assert_eq!(host.request_status().await, Some(host.status()));
    assert!(host.is_running().await);
    assert!(host.logfile().is_none() && host.manager().is_none());
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Order {
    id: u32,
    items: Vec<String>,
    note: Option<String>,
}

#[tokio::test]
async fn call_json_round_trips_typed_values() {
    let (_fixture, _process, host) = connected("typed").await;
    let order = Order {
        id: 7,
        items: vec!["a".into(), "ü€😀".into()],
        note: None,
    };
    let back: Order = host.function("echo").call_json(&order).await.unwrap();
    assert_eq!(back, order);
    let list: Vec<u32> = host.function("echo").call_json(&[1, 2, 3]).await.unwrap();
    assert_eq!(list, vec![1, 2, 3]);
}

#[tokio::test]
async fn the_hash_is_the_sha1_of_the_exact_body() {
    let (_fixture, _process, host) = connected("hash").await;
    let data = json!({"b": [1, 2], "a": "x"});
    let sent = serde_json::to_vec(&data).unwrap();
    let seen = host.function("query_hash").call(&data).await.unwrap();
    assert_eq!(seen, jshost_core::hash(&sent));
    assert_eq!(
        host.function("query_hash").call(&()).await.unwrap(),
        jshost_core::hash("{}")
    );
}

#[tokio::test]
async fn a_js_error_is_a_function_error_with_the_stack() {
    let (fixture, _process, host) = connected("fail").await;
    let e = host
        .function("fail")
        .call(&json!({"message": "bad input"}))
        .await
        .unwrap_err();
    assert!(e.is_function(), "{e:?}");
    assert_eq!(e.function_name(), Some("fail"));
    assert_eq!(e.status(), Some(500));
    let stack = e.js_stack().unwrap();
    assert!(stack.starts_with("Error: boom: bad input"), "{stack}");
    assert!(
        stack.contains("functions.js"),
        "the stack names the JS file: {stack}"
    );
    assert!(e.to_string().contains("boom: bad input"), "{e}");

    let e = host.function("throw_sync").call(&()).await.unwrap_err();
    assert!(
        e.is_function() && e.js_stack().unwrap().contains("thrown synchronously"),
        "{e:?}"
    );
    // The host survives both.
    assert_eq!(
        host.function("hello_world").call(&()).await.unwrap(),
        "Hello, World!"
    );
    drop(fixture);
}

#[tokio::test]
async fn unknown_functions_are_refused_before_sending() {
    let (_fixture, _process, host) = connected("unknown").await;
    let e = host.function("nope").call(&()).await.unwrap_err();
    assert!(e.is_unknown_function(), "{e:?}");
    assert!(e.to_string().contains("\"nope\""), "{e}");
    assert!(
        e.to_string().contains("hello_world"),
        "lists the known functions: {e}"
    );
}

#[tokio::test]
async fn names_needing_encoding_reach_the_right_function() {
    let (_fixture, _process, host) = connected("names").await;
    for name in ["a", "a/b", "with space", "q?x", "h#x", "ünï"] {
        assert_eq!(host.function(name).call(&()).await.unwrap(), name);
    }
}

#[tokio::test]
async fn bad_bodies_are_unexpected_responses() {
    let (_fixture, _process, host) = connected("bad-bodies").await;
    let e = host.function("echo").call_raw("{not json").await.unwrap_err();
    assert!(e.is_unexpected_response(), "{e:?}");
    assert_eq!(e.status(), Some(400));
    assert!(
        e.body().unwrap().contains("SyntaxError") || e.body().unwrap().contains("Unexpected"),
        "{e:?}"
    );

    // 12 MB: over js-host's 10 MB requestDataLimit.
    let big = json!({"text": "x".repeat(12 * 1024 * 1024)});
    let e = host.function("length").call(&big).await.unwrap_err();
    assert!(e.is_unexpected_response(), "{e:?}");
    assert_eq!(e.status(), Some(413));
    // The host keeps serving.
    assert_eq!(
        host.function("hello_world").call(&()).await.unwrap(),
        "Hello, World!"
    );

    // Data that is not an object or array, and data that cannot be serialised: nothing is sent.
    assert!(host.function("echo").call(&42).await.unwrap_err().is_encode());
    let mut map = std::collections::HashMap::new();
    map.insert(vec![1u8], 1);
    let e = host.function("echo").call(&map).await.unwrap_err();
    assert!(
        e.is_encode() && e.to_string().contains("key must be a string"),
        "{e}"
    );
}

#[tokio::test]
async fn call_json_on_text_says_it_is_not_json() {
    let (_fixture, _process, host) = connected("not-json").await;
    let e = host
        .function("not_json")
        .call_json::<serde_json::Value, _>(&())
        .await
        .unwrap_err();
    assert!(e.is_decode(), "{e:?}");
    assert!(
        e.to_string().contains("not JSON") && e.to_string().contains("<html><body>"),
        "{e}"
    );
}

#[tokio::test]
async fn a_function_that_never_answers_times_out() {
    let (_fixture, _process, host) = connected("timeout").await;
    let started = Instant::now();
    let e = host
        .function("never")
        .timeout(Duration::from_millis(300))
        .call(&())
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    assert_eq!(e.function_name(), Some("never"));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    // The settings' default applies otherwise.
    let host2 = JsHost::connect(_fixture.settings().function_timeout(Duration::from_millis(200)))
        .await
        .unwrap();
    assert!(host2.function("never").call(&()).await.unwrap_err().is_timeout());
    assert_eq!(
        host.function("hello_world").call(&()).await.unwrap(),
        "Hello, World!"
    );
}

#[tokio::test]
async fn cancellation_ends_a_call_promptly() {
    let (_fixture, _process, host) = connected("cancel").await;
    let token = CancellationToken::new();
    let canceller = {
        let token = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            token.cancel();
        })
    };
    let started = Instant::now();
    let e = host
        .function("never")
        .call_with_cancel(&(), &token)
        .await
        .unwrap_err();
    assert!(e.is_cancelled(), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    canceller.await.unwrap();
    // An already-cancelled token: nothing waits.
    assert!(host
        .function("hello_world")
        .call_with_cancel(&(), &token)
        .await
        .unwrap_err()
        .is_cancelled());
    let fresh = CancellationToken::new();
    assert_eq!(
        host.function("hello_world")
            .call_with_cancel(&(), &fresh)
            .await
            .unwrap(),
        "Hello, World!"
    );
}

#[tokio::test]
async fn a_call_after_nodes_keep_alive_timeout_succeeds() {
    let (_fixture, _process, host) = connected("keepalive").await;
    let echo = host.function("echo");
    assert_eq!(echo.call(&json!({"n": 1})).await.unwrap(), r#"{"n":1}"#);
    // Node closes idle keep-alive connections after 5 s; the pool must not hand one out.
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    assert_eq!(echo.call(&json!({"n": 2})).await.unwrap(), r#"{"n":2}"#);
}

#[tokio::test]
async fn a_thousand_concurrent_calls_all_match_their_inputs() {
    let (_fixture, _process, host) = connected("join-all").await;
    let echo = host.function("echo");
    let calls = (0..1000).map(|i| {
        let echo = echo.clone();
        async move {
            (
                i,
                echo.call_json::<serde_json::Value, _>(&json!({ "i": i })).await,
            )
        }
    });
    for (i, result) in join_all(calls).await {
        assert_eq!(result.unwrap(), json!({ "i": i }));
    }
}

#[tokio::test]
async fn nothing_answering_is_a_connection_error_naming_the_url() {
    let fixture = Fixture::new("nothing", "");
    let started = Instant::now();
    let e = JsHost::connect(fixture.settings()).await.unwrap_err();
    assert!(e.is_connection(), "{e:?}");
    assert!(e.to_string().contains(&fixture.url()), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn another_js_host_on_the_port_is_not_ours() {
    let fixture = Fixture::new("other-host", "");
    let _process = fixture.start_host();
    // Same port, another config: a different status.
    let other = Fixture::with_body("other-config", |_, functions| {
        format!(
            "module.exports = {{ port: {}, functions: require({functions:?})(), customProp: 'x' }};\n",
            fixture.port
        )
    });
    let e = JsHost::connect(other.settings()).await.unwrap_err();
    assert!(e.is_config(), "{e:?}");
    assert!(e.to_string().contains("is not the host for"), "{e}");
}

#[tokio::test]
async fn config_errors_name_what_is_wrong() {
    let fixture = Fixture::new("config-errors", "");
    let base = fixture.settings();

    let e = JsHost::connect(base.clone().path_to_node("/nonexistent/node"))
        .await
        .unwrap_err();
    assert!(e.is_config() && e.to_string().contains("node not found"), "{e}");

    let e = JsHost::connect(base.clone().path_to_bin("node_modules/nope/js-host.js"))
        .await
        .unwrap_err();
    assert!(e.is_config() && e.to_string().contains("npm ci"), "{e}");

    let e = JsHost::connect(base.clone().config_file("/nonexistent/host.config.js"))
        .await
        .unwrap_err();
    assert!(
        e.is_config() && e.to_string().contains("/nonexistent/host.config.js"),
        "{e}"
    );

    let e = JsHost::connect(base.clone().root_url("http://127.0.0.1:1/"))
        .await
        .unwrap_err();
    assert!(
        e.is_config() && e.to_string().contains("must not end with `/`"),
        "{e}"
    );

    let e = JsHost::connect(base.clone().root_url("http://127.0.0.1:1").use_manager(true))
        .await
        .unwrap_err();
    assert!(e.is_config() && e.to_string().contains("use_manager"), "{e}");
}

#[tokio::test]
async fn a_config_file_that_throws_or_exports_nothing_is_a_config_error() {
    let throws = Fixture::with_body("throws", |_, _| {
        "throw new Error('config is broken here');\n".into()
    });
    let started = Instant::now();
    let e = JsHost::connect(throws.settings()).await.unwrap_err();
    assert!(e.is_config(), "{e:?}");
    assert!(e.to_string().contains("config is broken here"), "{e}");
    assert!(e.to_string().contains(throws.config.to_str().unwrap()), "{e}");

    let empty = Fixture::with_body("exports-nothing", |_, _| "module.exports = 42;\n".into());
    let e = JsHost::connect(empty.settings()).await.unwrap_err();
    assert!(
        e.is_config() && e.to_string().contains("does not export an object"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn root_url_sends_requests_elsewhere_and_is_validated() {
    let (fixture, _process, _host) = connected("root-url").await;
    let host = JsHost::connect(
        fixture
            .settings()
            .root_url(format!("http://localhost:{}", fixture.port)),
    )
    .await
    .unwrap();
    assert_eq!(host.url(), format!("http://localhost:{}", fixture.port));
    assert_eq!(
        host.function("hello_world").call(&()).await.unwrap(),
        "Hello, World!"
    );
}

#[tokio::test]
async fn settings_from_env_reach_a_host() {
    let (fixture, _process, _host) = connected("from-env").await;
    let root = repo_root();
    let config = fixture.config.clone();
    let settings = Settings::from_lookup(move |name| match name {
        "JSHOST_SOURCE_ROOT" => Some(root.display().to_string()),
        "JSHOST_CONFIG_FILE" => Some(config.display().to_string()),
        "JSHOST_FUNCTION_TIMEOUT" => Some("0.25".into()),
        _ => None,
    })
    .unwrap()
    .status_cache(false);
    let host = JsHost::connect(settings).await.unwrap();
    assert!(host.function("never").call(&()).await.unwrap_err().is_timeout());
}

/// Serves one fixed `/status` body on 127.0.0.1:0 (a js-host of another version cannot be
/// installed beside 0.12, so a tiny hyper server plays it). Returns the URL.
async fn fake_status_server(body: String) -> String {
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req| {
                    let body = body.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            bytes::Bytes::from(body),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

#[tokio::test]
async fn a_js_host_of_another_version_is_refused() {
    let fixture = Fixture::new("version", "");
    let expected = jshost_integration::HostProcess::start(&fixture.config, &["--config"]);
    // `--config` prints the status and exits; HostProcess reads that line.
    let status: serde_json::Value = serde_json::from_str(&expected.unwrap().status).unwrap();
    let mut other = status.clone();
    other["version"] = json!("0.13.0");
    let url = fake_status_server(other.to_string()).await;
    let e = JsHost::connect(fixture.settings().root_url(url.clone()))
        .await
        .unwrap_err();
    assert!(e.is_config(), "{e:?}");
    assert!(
        e.to_string().contains("0.13.0") && e.to_string().contains("0.12"),
        "{e}"
    );

    // Something answering /status with junk: not a js-host.
    let junk = fake_status_server("<html>hello</html>".into()).await;
    let e = JsHost::connect(fixture.settings().root_url(junk))
        .await
        .unwrap_err();
    assert!(e.is_config() && e.to_string().contains("another program"), "{e}");
}
