//! Reliability under faults and bad input, against real hosts: nothing hangs, nothing leaks,
//! every failure is named. (Load and memory soaks are in `soak.rs` and `memory.rs`.) Tests that
//! count connections to a host use plain calls on TCP (`batch(false)`, `private_socket(false)`).

use futures::future::join_all;
use futures::StreamExt;
use jshost::JsHost;
use jshost_integration::{established_connections, host_process_of, kill9, wait_for, Fixture};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Starts 200 calls of a function that answers after 3 s, kills the host once they are all in
/// flight, and checks each returns an error of the process or connection kind within 2 s.
async fn kill_with_calls_in_flight(host: &JsHost, pid: u32) {
    let slow = host.function("slow");
    let calls: Vec<_> = (0..200)
        .map(|_| {
            let slow = slow.clone();
            tokio::spawn(async move { slow.call(&json!({"ms": 3000})).await })
        })
        .collect();
    let port = host.status().port().unwrap();
    wait_for(Duration::from_secs(10), "200 calls in flight", || async move {
        (established_connections(port) >= 100).then_some(())
    })
    .await;
    let killed = Instant::now();
    kill9(pid);
    for call in calls {
        let e = call.await.unwrap().unwrap_err();
        assert!(e.is_process() || e.is_connection(), "{e:?}");
    }
    assert!(
        killed.elapsed() < Duration::from_secs(2),
        "errors took {:?}",
        killed.elapsed()
    );
}

#[tokio::test]
async fn owned_host_killed_with_200_calls_in_flight() {
    let fixture = Fixture::new("kill-owned", "");
    let host = JsHost::spawn(fixture.settings().batch(false).private_socket(false))
        .await
        .unwrap();
    kill_with_calls_in_flight(&host, host.pid().unwrap()).await;
    host.restart().await.unwrap();
    assert_eq!(
        host.function("hello_world").call(&()).await.unwrap(),
        "Hello, World!"
    );
}

#[tokio::test]
async fn managed_host_killed_with_200_calls_in_flight() {
    let fixture = Fixture::new("kill-managed", "disconnectTimeout: 300,");
    let host = JsHost::connect(fixture.settings().use_manager(true).batch(false))
        .await
        .unwrap();
    let pid: u32 = host.function("pid").call(&()).await.unwrap().parse().unwrap();
    // The host itself (a jshost-node primary would replace a killed worker).
    kill_with_calls_in_flight(&host, host_process_of(pid)).await;
    host.restart().await.unwrap();
    assert_eq!(
        host.function("hello_world").call(&()).await.unwrap(),
        "Hello, World!"
    );
}

#[tokio::test]
async fn timed_out_calls_leave_the_pool_healthy() {
    let fixture = Fixture::new("timeouts", "");
    let host = JsHost::spawn(fixture.settings().batch(false).private_socket(false))
        .await
        .unwrap();
    let never = host.function("never").timeout(Duration::from_millis(200));
    let started = Instant::now();
    let results = join_all((0..100).map(|_| never.call(&()))).await;
    assert!(results.iter().all(|r| r.as_ref().unwrap_err().is_timeout()));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    // Ordinary calls right after: prompt, and each gets its own answer.
    let echo = host.function("echo");
    let started = Instant::now();
    let answers = join_all((0..200).map(|i| {
        let echo = echo.clone();
        async move {
            (
                i,
                echo.call_json::<serde_json::Value, _>(&json!({ "i": i }))
                    .await
                    .unwrap(),
            )
        }
    }))
    .await;
    for (i, answer) in answers {
        assert_eq!(answer, json!({ "i": i }));
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_cancelled_calls_leak_nothing() {
    let fixture = Fixture::new("cancels", "");
    let host = JsHost::spawn(fixture.settings().batch(false).private_socket(false))
        .await
        .unwrap();
    let port = host.status().port().unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();
    let slow = host.function("slow");
    // Half cancelled through a token, half by dropping the future (a timeout around it).
    let calls = (0..10_000).map(|i| {
        let slow = slow.clone();
        async move {
            if i % 2 == 0 {
                let token = CancellationToken::new();
                let cancel = token.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    cancel.cancel();
                });
                let e = slow
                    .call_with_cancel(&json!({"ms": 2000}), &token)
                    .await
                    .unwrap_err();
                assert!(e.is_cancelled(), "{e:?}");
            } else {
                let dropped =
                    tokio::time::timeout(Duration::from_millis(5), slow.call(&json!({"ms": 2000}))).await;
                assert!(dropped.is_err(), "the call cannot have finished");
            }
        }
    });
    futures::stream::iter(calls)
        .buffer_unordered(256)
        .collect::<Vec<()>>()
        .await;

    // Sockets: only what the pool allows stays open; tasks: back to where they were.
    let max = jshost_client::HttpClient::new().max_open_connections();
    wait_for(
        Duration::from_secs(10),
        "open sockets to drop within the pool's bound",
        || async move { (established_connections(port) <= max).then_some(()) },
    )
    .await;
    wait_for(Duration::from_secs(10), "cancelled calls' tasks to end", || {
        let metrics = metrics.clone();
        async move { (metrics.num_alive_tasks() <= tasks_before + max).then_some(()) }
    })
    .await;
    // Healthy afterwards.
    let echo = host.function("echo");
    let answers = join_all((0..500).map(|i| {
        let echo = echo.clone();
        async move { echo.call_json::<serde_json::Value, _>(&json!([i])).await }
    }))
    .await;
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.unwrap(), json!([i]));
    }
    assert!(host.is_running().await);
}

#[tokio::test]
async fn a_port_held_by_another_program_is_named_quickly() {
    let fixture = Fixture::new("squatted", "");
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", fixture.port)).unwrap();
    let started = Instant::now();
    let e = JsHost::connect(fixture.settings()).await.unwrap_err();
    assert!(e.is_config(), "{e:?}");
    assert!(
        e.to_string().contains(&format!("127.0.0.1:{}", fixture.port)),
        "{e}"
    );
    assert!(e.to_string().contains("another program"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn start_up_failures_are_quick_and_name_the_culprit() {
    let fixture = Fixture::new("startup-failures", "");
    let cases: Vec<(&str, jshost::Settings, &str)> = vec![
        (
            "missing node",
            fixture.settings().path_to_node("/nonexistent/bin/node"),
            "/nonexistent/bin/node",
        ),
        (
            "missing js-host",
            fixture.settings().path_to_bin("/nonexistent/js-host.js"),
            "/nonexistent/js-host.js",
        ),
        (
            "missing config",
            fixture.settings().config_file("/nonexistent/x.config.js"),
            "/nonexistent/x.config.js",
        ),
    ];
    for (what, settings, named) in cases {
        for spawn in [false, true] {
            let started = Instant::now();
            let e = if spawn {
                JsHost::spawn(settings.clone()).await.unwrap_err()
            } else {
                JsHost::connect(settings.clone().use_manager(true))
                    .await
                    .unwrap_err()
            };
            assert!(e.is_config(), "{what}: {e:?}");
            assert!(e.to_string().contains(named), "{what}: {e}");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{what} took {:?}",
                started.elapsed()
            );
        }
    }
    let throws = Fixture::with_body("throws-managed", |_, _| {
        "throw new Error('bad config line');\n".into()
    });
    let e = JsHost::connect(throws.settings().use_manager(true))
        .await
        .unwrap_err();
    assert!(e.is_config() && e.to_string().contains("bad config line"), "{e}");
    assert!(e.to_string().contains(throws.config.to_str().unwrap()), "{e}");
    let nothing = Fixture::with_body("no-object-owned", |_, _| "module.exports = 'nope';\n".into());
    let e = JsHost::spawn(nothing.settings()).await.unwrap_err();
    assert!(
        e.is_process() && e.to_string().contains("does not export an object"),
        "{e}"
    );
}

#[tokio::test]
async fn unicode_and_a_5_mb_payload_round_trip_byte_exact() {
    let fixture = Fixture::new("payloads", "");
    let host = JsHost::spawn(fixture.settings()).await.unwrap();
    let echo = host.function("echo");
    let unit = "héllo wörld, 你好, 🦀🚀, עברית, \u{1F600}; ";
    let text = unit.repeat(5 * 1024 * 1024 / unit.len() + 1);
    let body = serde_json::to_string(&json!({ "text": text })).unwrap();
    assert!(body.len() > 5 * 1024 * 1024);
    let back = echo.call_raw(body.clone()).await.unwrap();
    assert_eq!(back.len(), body.len());
    assert!(back == body, "the echo differs from what was sent");
    let small = echo.call(&json!({"k": "ключ", "e": "😀"})).await.unwrap();
    assert_eq!(small, r#"{"e":"😀","k":"ключ"}"#); // serde_json sorts keys
}
