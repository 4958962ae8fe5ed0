//! Batching that cannot hurt (issue 19), end to end against jshost-node: one test per way
//! batching used to break a caller. Each test warms the functions it batches (the SDK batches a
//! function only once it has seen its answers are small) and checks, through the URL that
//! carried each call (`/batch` or `/function/NAME`), that batching really was in play.

use futures::future::join_all;
use jshost::{JsHost, Settings};
use jshost_integration::{repo_root, wait_for, Fixture};
use serde_json::json;
use std::time::Duration;

/// The integration functions, plus the ones these tests need, on the fixture's port.
fn fixture(name: &str, extra: &str) -> Fixture {
    let extra = extra.to_owned();
    Fixture::with_body(name, move |port, functions| {
        format!(
            r#"var running = 0;
var base = require({functions:?})();
function via(req) {{ return req.url.split('?')[0]; }}
Object.assign(base, {{
  // The path of the request that carried the call, and the data.
  echo_via: function (data, cb) {{ cb(null, via(this.req) + ' ' + JSON.stringify(data)); }},
  // The path of the request that carried the call, and the length of the data as JSON.
  length_via: function (data, cb) {{ cb(null, via(this.req) + ' ' + JSON.stringify(data).length); }},
  // An async function awaiting data.ms; counts the calls running.
  wait: async function (data) {{
    var path = via(this.req);
    running += 1;
    try {{ await new Promise(function (r) {{ setTimeout(r, data.ms); }}); }} finally {{ running -= 1; }}
    return path;
  }},
  running: function (data, cb) {{ cb(null, String(running)); }},
  // Fails when data.fail, naming the request that carried it; else answers "ok".
  maybe_fail: function (data, cb) {{
    if (data.fail) cb(new Error('boom via ' + via(this.req)));
    else cb(null, 'ok');
  }},
  // data.n control characters (6 bytes each once escaped in a batch answer).
  control: function (data, cb) {{ cb(null, via(this.req) + ' ' + '\u0001'.repeat(data.n)); }},
  control_too: function (data, cb) {{ cb(null, via(this.req) + ' ' + '\u0001'.repeat(data.n)); }}
}});
module.exports = {{ port: {port}, {extra} functions: base }};
"#
        )
    })
}

fn on_jshost_node(settings: Settings) -> Settings {
    settings.path_to_bin(repo_root().join(jshost_core::settings::DEFAULT_PATH_TO_BIN))
}

async fn spawn(fixture: &Fixture) -> JsHost {
    JsHost::spawn(on_jshost_node(fixture.settings()))
        .await
        .expect("spawn jshost-node")
}

/// How many of `answers` start with `/batch` (travelled in a batch).
fn batched(answers: &[String]) -> usize {
    answers.iter().filter(|a| a.starts_with("/batch")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_call_does_not_wait_behind_64_slow_ones() {
    let fixture = fixture("batch-hol", "");
    let host = spawn(&fixture).await;
    let (wait, echo) = (host.function("wait"), host.function("echo_via"));
    // Warm: both have answered small answers, so their concurrent calls are batched.
    wait.call(&json!({"ms": 1})).await.expect("wait");
    echo.call(&json!({})).await.expect("echo");
    let slow: Vec<_> = (0..64)
        .map(|_| {
            let wait = wait.clone();
            tokio::spawn(async move { wait.call(&json!({"ms": 3000})).await })
        })
        .collect();
    let running = host.function("running");
    wait_for(Duration::from_secs(10), "64 slow calls running", || {
        let running = running.clone();
        async move { (running.call(&()).await.ok()? == "64").then_some(()) }
    })
    .await;
    // Every request slot now carries slow calls: the fast one must not wait for them.
    let fast = echo
        .timeout(Duration::from_secs(1))
        .call(&json!({"fast": true}))
        .await
        .expect("the fast call answers within its 1 s timeout");
    assert!(fast.ends_with(r#"{"fast":true}"#), "{fast}");
    let mut paths = Vec::new();
    for call in slow {
        paths.push(call.await.expect("task").expect("slow call"));
    }
    // Batches of slow calls held request slots (those made once every slot was taken went out
    // plain: a queued call waits for a slot only briefly).
    assert!(batched(&paths) > 0, "some slow calls were batched: {paths:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_raw_bodies_cannot_change_their_batch_or_fail_their_batch_mates() {
    let fixture = fixture("batch-raw", "");
    let host = spawn(&fixture).await;
    let echo = host.function("echo_via");
    echo.call(&json!({"warm": 1})).await.expect("warm");
    let bad: [&'static [u8]; 5] = [
        br#"{"echo":"x"},"function":"pid""#,
        br#"{"echo":"#,
        b"123",
        br#"{"a":1} {"b":2}"#,
        b"[1]]",
    ];
    for round in 0..3 {
        let calls = (0..200).map(|i| {
            let echo = echo.clone();
            async move {
                if i % 20 == 7 {
                    let body = bad[(i / 20) % bad.len()];
                    (i, Some(body), echo.call_raw(body).await)
                } else if i % 20 == 13 {
                    // A byte-order mark: the host takes it alone, so the SDK sends it alone.
                    let body = b"\xef\xbb\xbf{\"bom\":1}";
                    (
                        i,
                        None,
                        echo.call_raw(&body[..]).await.map(|a| format!("bom {a}")),
                    )
                } else {
                    (i, None, echo.call(&json!({ "i": i })).await)
                }
            }
        });
        let results = join_all(calls).await;
        let mut answers = Vec::new();
        for (i, body, result) in results {
            match body {
                Some(body) => {
                    let e = result.expect_err("a bad body is refused");
                    assert!(
                        e.is_unexpected_response() && e.status() == Some(400),
                        "{:?} got {e:?}",
                        String::from_utf8_lossy(body)
                    );
                    assert_eq!(e.function_name(), Some("echo_via"));
                }
                None if i % 20 == 13 => {
                    let answer = result.expect("a BOM-prefixed body works as it does alone");
                    assert!(answer.starts_with("bom /function/echo_via "), "{answer}");
                }
                None => {
                    let answer = result.expect("a batch-mate of a bad body");
                    assert!(answer.ends_with(&format!(r#" {{"i":{i}}}"#)), "{answer}");
                    answers.push(answer);
                }
            }
        }
        assert!(
            batched(&answers) > 0,
            "round {round}: the good calls were batched"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_deadline_works_batched_and_plain() {
    let fixture = fixture("batch-deadlines", "");
    let month = Duration::from_secs(30 * 24 * 3600);
    let host = JsHost::spawn(on_jshost_node(fixture.settings()).function_timeout(month))
        .await
        .expect("spawn");
    let wait = host.function("wait");
    wait.call(&json!({"ms": 1})).await.expect("warm");
    for (what, f) in [
        ("function_timeout of 30 days", wait.clone()),
        ("Duration::MAX", wait.timeout(Duration::MAX)),
        ("2^31 ms", wait.timeout(Duration::from_millis(1 << 31))),
    ] {
        let data = json!({"ms": 300});
        let answers: Vec<String> = join_all((0..40).map(|_| f.call(&data)))
            .await
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("{what}: {e:?}")))
            .collect();
        assert!(batched(&answers) > 0, "{what}: batched: {answers:?}");
        f.call(&json!({"ms": 1}))
            .await
            .unwrap_or_else(|e| panic!("{what}, plain: {e:?}"));
    }
    // A deadline the host can keep still cuts a batched call that answers too late.
    let late = wait.timeout(Duration::from_millis(300));
    let data = json!({"ms": 5000});
    for r in join_all((0..40).map(|_| late.call(&data))).await {
        assert!(r.expect_err("too late").is_timeout());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_stay_within_a_100kb_request_data_limit() {
    let fixture = fixture("batch-100kb", "requestDataLimit: '100kb',");
    let host = spawn(&fixture).await;
    let length = host.function("length_via");
    length.call(&json!({"warm": 1})).await.expect("warm");
    let payload = "x".repeat(8_500);
    for round in 0..3 {
        let answers: Vec<String> = join_all((0..64).map(|i| {
            let (length, payload) = (length.clone(), &payload);
            async move { length.call(&json!({ "i": i, "p": payload })).await }
        }))
        .await
        .into_iter()
        .map(|r| r.expect("no call refused for its batch-mates"))
        .collect();
        assert!(batched(&answers) > 0, "round {round}: batched");
    }
    // A call that fits alone (the item around it would not) goes out alone and works.
    let limit = 100 * 1024;
    let just_fits = "y".repeat(limit - r#"{"p":""}"#.len());
    let data = json!({ "p": just_fits });
    let answers = join_all((0..4).map(|_| length.call(&data))).await;
    for answer in answers {
        assert!(answer.expect("fits alone").starts_with("/function/length_via"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_neither_kill_the_host_nor_get_batched_before_their_size_is_known() {
    let fixture = fixture("batch-large-answers", "");
    let host = spawn(&fixture).await;
    let pid = host.pid().expect("an owned host's pid");
    let control = host.function("control");
    // 12 calls at once, 8 MiB of control characters each, before the SDK has seen an answer.
    let mib = 1 << 20;
    let data = json!({ "n": 8 * mib });
    let answers = join_all((0..12).map(|_| control.call(&data))).await;
    for answer in answers {
        let answer = answer.expect("an 8 MiB answer");
        assert!(
            answer.starts_with("/function/control "),
            "sent plain: {}",
            &answer[..40]
        );
        assert_eq!(answer.len(), "/function/control ".len() + 8 * mib);
    }
    // Its answers are large now: it stays plain.
    let data = json!({ "n": mib });
    let answers = join_all((0..12).map(|_| control.call(&data))).await;
    assert!(answers
        .iter()
        .all(|a| a.as_ref().expect("1 MiB").starts_with("/function/")));

    // A function known for small answers that suddenly answers large ones in a burst: the
    // host streams the batch answer (6 MiB per call once escaped), every call gets its own.
    let too = host.function("control_too");
    too.call(&json!({ "n": 1 })).await.expect("warm");
    let answers: Vec<String> = join_all((0..12).map(|_| too.call(&data)))
        .await
        .into_iter()
        .map(|a| a.expect("a 1 MiB answer"))
        .collect();
    assert!(
        batched(&answers) > 0,
        "batched while its answers were known small"
    );
    for answer in &answers {
        assert_eq!(answer.len() - answer.find(' ').expect("path") - 1, mib);
    }
    assert_eq!(host.pid(), Some(pid), "the host lived through it");
    assert!(host.function("pid").call(&()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_the_same_plain_and_batched_with_unix_socket_urls() {
    let fixture = fixture("batch-errors", "");
    let host = spawn(&fixture).await;
    assert!(host.url().starts_with("unix:"), "{}", host.url());
    let f = host.function("maybe_fail");
    f.call(&json!({"fail": false})).await.expect("warm");
    let data = json!({"fail": true});
    let plain = f.call(&data).await.expect_err("a lone call fails plain");
    assert!(
        plain
            .js_stack()
            .expect("stack")
            .contains("boom via /function/maybe_fail"),
        "{plain:?}"
    );
    let errors: Vec<jshost::Error> = join_all((0..100).map(|_| f.call(&data)))
        .await
        .into_iter()
        .map(|r| r.expect_err("fails"))
        .collect();
    let batched = errors
        .iter()
        .find(|e| e.js_stack().is_some_and(|s| s.contains("boom via /batch")))
        .expect("some failed in a batch");
    assert_eq!(batched.kind(), plain.kind());
    assert_eq!(batched.function_name(), Some("maybe_fail"));
    assert_eq!(batched.function_name(), plain.function_name());
    assert_eq!(batched.url(), plain.url());
    assert!(
        batched
            .url()
            .is_some_and(|u| u.starts_with("unix:") && u.contains("/function/maybe_fail")),
        "{batched:?}"
    );
    assert_eq!(batched.status(), plain.status());
    assert_eq!(batched.logfile(), plain.logfile());
    let text = batched.to_string();
    assert!(text.contains("unix:") && !text.contains("http://"), "{text}");

    // Timeouts: the host's 504 or the SDK's own deadline, a timeout either way, naming the call.
    let wait = host.function("wait");
    wait.call(&json!({"ms": 1})).await.expect("warm");
    let late = wait.timeout(Duration::from_millis(300));
    let data = json!({"ms": 5000});
    let lone = late.call(&data).await.expect_err("too late");
    let together = join_all((0..50).map(|_| late.call(&data))).await;
    for e in together
        .into_iter()
        .map(|r| r.expect_err("too late"))
        .chain([lone])
    {
        assert!(e.is_timeout(), "{e:?}");
        assert_eq!(e.function_name(), Some("wait"));
        assert!(e.url().is_some_and(|u| u.starts_with("unix:")), "{e:?}");
    }
}

/// A jshost-node host started by the test (`--max-calls 50`: a worker retires after 50 calls,
/// draining: what reaches it then is answered "not run, send it again"), reached at its URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_reaching_a_retiring_worker_are_sent_again_and_none_fails() {
    use futures::stream::{self, StreamExt};
    let fixture = fixture("batch-not-run", "");
    let bin = repo_root().join(jshost_core::settings::DEFAULT_PATH_TO_BIN);
    let child = std::process::Command::new("node")
        .arg(&bin)
        .arg(&fixture.config)
        .args(["--json", "--max-calls", "50"])
        .env("NODE_NO_WARNINGS", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start jshost-node");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    let _host_process = Kill(child);
    let url = fixture.url();
    let host = wait_for(Duration::from_secs(20), "the host to answer", || {
        let settings = on_jshost_node(fixture.settings()).root_url(url.clone());
        async move { JsHost::connect(settings).await.ok() }
    })
    .await;
    let (echo, pid_of) = (host.function("echo_via"), host.function("pid"));
    echo.call(&json!({"warm": 1})).await.expect("warm");
    // Rounds of 200 calls, 64 in flight, until two hand-overs happened (or a minute: a
    // successor takes a while to start on a loaded machine).
    let mut pids = std::collections::HashSet::new();
    let (mut calls, mut failed) = (0, Vec::new());
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < until {
        let results: Vec<_> = stream::iter(0..200)
            .map(|i| {
                let echo = echo.clone();
                async move { echo.call(&json!({ "i": i })).await }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        calls += results.len();
        failed.extend(results.into_iter().filter_map(Result::err));
        pids.insert(pid_of.call(&()).await.expect("pid"));
        if pids.len() >= 3 {
            break;
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {calls} failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    assert!(
        pids.len() >= 2,
        "workers were recycled under host {pid}: {pids:?}"
    );
}
