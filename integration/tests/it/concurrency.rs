//! Many clients at once, crashes and deploys, against real js-host 0.12: no orphaned host, no
//! false error, no stale function list. Every managed test ends by checking that no process
//! started for its config is left once the disconnect timeout (300 ms here) has passed, plus a
//! margin; the fixture kills whatever is left, so a failure never leaks.

use futures::future::join_all;
use jshost::JsHost;
use jshost_integration::{processes_mentioning, repo_root, wait_for, Fixture, HostProcess};
use serde_json::json;
use std::time::Duration;

/// Hosts of these fixtures stop 300 ms after their last connection closes.
fn fixture(name: &str) -> Fixture {
    Fixture::new(name, "disconnectTimeout: 300,")
}

/// A fixture whose functions also include `exit_now` (the host exits, as a crash would).
fn crashable(name: &str) -> Fixture {
    Fixture::with_body(name, |port, functions| {
        format!(
            "const f = require({functions:?})();\n\
             f.exit_now = function () {{ process.exit(7); }};\n\
             module.exports = {{ port: {port}, disconnectTimeout: 300, functions: f }};\n"
        )
    })
}

/// Waits until no process started for `fixture` runs: the disconnect timeout plus 2 s, and a
/// little more for a loaded machine.
async fn nothing_left(fixture: &Fixture) {
    let dir = fixture.dir().display().to_string();
    wait_for(
        Duration::from_secs(6),
        "every process of the config to exit",
        || {
            let dir = dir.clone();
            async move { processes_mentioning(&dir).is_empty().then_some(()) }
        },
    )
    .await;
}

async fn managed(fixture: &Fixture) -> JsHost {
    JsHost::connect(fixture.settings().use_manager(true))
        .await
        .expect("managed connect")
}

async fn pid(host: &JsHost) -> String {
    host.function("pid").call(&()).await.expect("pid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_connects_in_one_process_share_one_manager_and_host() {
    let fixture = fixture("cold-join");
    let (a, b) = tokio::join!(managed(&fixture), managed(&fixture));
    assert_eq!(pid(&a).await, pid(&b).await, "one host");
    let config = fixture.config.display().to_string();
    assert_eq!(processes_mentioning(&config).len(), 2, "one manager and one host");
    a.disconnect().await.expect("disconnect a");
    b.disconnect().await.expect("disconnect b");
    nothing_left(&fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_connects_from_three_processes_share_one_host() {
    let fixture = fixture("cold-procs");
    let runs = (0..3).map(|_| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_managed_pid"))
            .env("JSHOST_SOURCE_ROOT", repo_root())
            .env("JSHOST_CONFIG_FILE", &fixture.config)
            .output()
    });
    let pids: Vec<String> = join_all(runs)
        .await
        .into_iter()
        .map(|out| {
            let out = out.expect("run managed_pid");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        })
        .collect();
    assert!(
        pids.iter().all(|p| p == &pids[0] && !p.is_empty()),
        "one host: {pids:?}"
    );
    nothing_left(&fixture).await;
}

#[tokio::test]
async fn crash_then_disconnect_then_connect_leaves_nothing_behind() {
    let fixture = crashable("crash-cycle");
    let host = managed(&fixture).await;
    let e = host
        .function("exit_now")
        .call(&())
        .await
        .expect_err("the host exits");
    // js-host dies with it (a process error); a jshost-node worker that exits is replaced by its
    // primary, which still answers: the call's connection closed before its answer.
    assert!(
        e.is_process() || e.is_connection(),
        "a crash is reported as such: {e:?}"
    );
    // At once: the manager may not have noticed the exit yet.
    host.disconnect().await.expect("disconnect after a crash");
    let again = managed(&fixture).await;
    assert_eq!(
        again.function("hello_world").call(&()).await.expect("call"),
        "Hello, World!"
    );
    // A crash then a restart converge too.
    let e = again
        .function("exit_now")
        .call(&())
        .await
        .expect_err("the host exits");
    assert!(e.is_process() || e.is_connection(), "{e:?}");
    again.restart().await.expect("restart after a crash");
    assert_eq!(again.function("counter").call(&()).await.expect("call"), "1");
    again.disconnect().await.expect("disconnect");
    nothing_left(&fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_is_not_queued_behind_hung_calls() {
    let fixture = fixture("hung-restart");
    let host = JsHost::connect(
        fixture
            .settings()
            .use_manager(true)
            // Plain calls, each holding a connection (batching would use two).
            .batch(false)
            .function_timeout(Duration::from_secs(60)),
    )
    .await
    .expect("connect");
    let never = host.function("never");
    let hung: Vec<_> = (0..200)
        .map(|_| {
            let never = never.clone();
            tokio::spawn(async move { never.call(&()).await })
        })
        .collect();
    // Every permit of the host's pool is taken by a call that never answers.
    wait_for(
        Duration::from_secs(10),
        "the hung calls to reach the host",
        || async {
            (jshost_integration::established_connections(host.status().port().unwrap_or(0)) >= 64)
                .then_some(())
        },
    )
    .await;
    // Not queued behind them; the old jshost-node process may drain them for its --grace (10 s)
    // before it is killed, so the bound is above that.
    let restarted = tokio::time::timeout(Duration::from_secs(20), host.restart()).await;
    assert!(
        matches!(restarted, Ok(Ok(()))),
        "restart went through: {restarted:?}"
    );
    for call in hung {
        call.abort();
    }
    assert_eq!(host.function("counter").call(&()).await.expect("call"), "1");
    host.disconnect().await.expect("disconnect");
    nothing_left(&fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_restarts_both_succeed_and_leave_nothing() {
    let owned_fixture = Fixture::new("restart-owned", "");
    let owned = JsHost::spawn(owned_fixture.settings()).await.expect("spawn");
    let (r1, r2) = tokio::join!(owned.restart(), owned.restart());
    r1.expect("first owned restart");
    r2.expect("second owned restart");
    assert_eq!(owned.function("counter").call(&()).await.expect("call"), "1");
    drop(owned);
    nothing_left(&owned_fixture).await;

    let fixture = fixture("restart-managed");
    let host = managed(&fixture).await;
    let (r1, r2) = tokio::join!(host.restart(), host.restart());
    r1.expect("first managed restart");
    r2.expect("second managed restart");
    assert_eq!(host.function("counter").call(&()).await.expect("call"), "1");
    host.disconnect().await.expect("disconnect");
    nothing_left(&fixture).await;
}

#[tokio::test]
async fn a_manager_port_in_the_ephemeral_range_survives_cycles_of_probes_and_restarts() {
    let fixture = Fixture::on_ephemeral_port("ephemeral", "disconnectTimeout: 300,");
    assert!(
        (32768..=60999).contains(&fixture.port),
        "the fixture's port is an ephemeral one: {}",
        fixture.port
    );
    for cycle in 0..3 {
        let host = managed(&fixture).await;
        assert_eq!(
            host.function("echo")
                .call(&json!({ "cycle": cycle }))
                .await
                .expect("call"),
            format!(r#"{{"cycle":{cycle}}}"#)
        );
        host.disconnect().await.expect("disconnect");
        nothing_left(&fixture).await;
    }
}

#[tokio::test]
async fn a_host_redeployed_with_a_new_function_is_followed() {
    let fixture = Fixture::new("deploy", "");
    let v1 = fixture.start_host();
    let host = JsHost::connect(fixture.settings()).await.expect("connect");
    let added = host.function("added_in_v2");
    assert!(added.call(&()).await.expect_err("not yet").is_unknown_function());
    // The supervisor restarts the host, same port, with a config that has one more function.
    drop(v1);
    let functions = repo_root().join("integration/fixtures/functions.js");
    std::fs::write(
        &fixture.config,
        format!(
            "const f = require({functions:?})();\n\
             f.added_in_v2 = function (data, cb) {{ cb(null, 'new'); }};\n\
             module.exports = {{ port: {}, functions: f }};\n",
            fixture.port
        ),
    )
    .expect("deploy v2");
    let _v2 = fixture.start_host();
    // A compatible host counts as running; asking does not change what the handle reports.
    let h = host.clone();
    wait_for(Duration::from_secs(5), "v2 to answer", || {
        let h = h.clone();
        async move { h.is_running().await.then_some(()) }
    })
    .await;
    assert!(
        !host.functions().contains(&"added_in_v2".to_owned()),
        "is_running only asks"
    );
    assert!(host.update_status().await);
    assert!(
        host.functions().contains(&"added_in_v2".to_owned()),
        "update_status takes v2's status"
    );
    assert_eq!(added.call(&()).await.expect("call"), "new");
}

#[tokio::test]
async fn a_required_file_edited_under_the_manager_is_named_not_unknown() {
    let extra = "module.exports = { first: function (d, cb) { cb(null, 'first'); } };\n";
    let fixture = Fixture::with_body("required-edit", |port, _| {
        format!(
            "module.exports = {{ port: {port}, disconnectTimeout: 300, functions: require('./extra.js') }};\n"
        )
    });
    let extra_path = fixture.dir().join("extra.js");
    std::fs::write(&extra_path, extra).expect("write extra.js");
    // The status cache is keyed by the config file: an edit of a file it requires goes unseen.
    let settings = fixture.settings().use_manager(true).status_cache(true);
    let host = JsHost::connect(settings.clone()).await.expect("connect");
    assert_eq!(host.function("first").call(&()).await.expect("call"), "first");
    std::fs::write(
        &extra_path,
        "module.exports = { first: function (d, cb) { cb(null, 'first'); },\n\
                            second: function (d, cb) { cb(null, 'second'); } };\n",
    )
    .expect("edit extra.js");
    let again = JsHost::connect(settings).await.expect("connect to the warm host");
    let e = again
        .function("second")
        .call(&())
        .await
        .expect_err("the host is stale");
    let text = e.to_string();
    assert!(
        text.contains("older version") && text.contains("restart"),
        "{text}"
    );
    again.restart().await.expect("restart");
    assert_eq!(again.function("second").call(&()).await.expect("call"), "second");
    host.disconnect().await.expect("disconnect");
    again.disconnect().await.expect("disconnect");
    nothing_left(&fixture).await;
}

#[tokio::test]
async fn an_ipv6_host_is_reached_through_a_bracketed_url() {
    let fixture = Fixture::new("ipv6", "address: '::1',");
    let settings = fixture.settings().private_socket(false);
    let host = JsHost::spawn(settings).await.expect("spawn on ::1");
    assert!(host.url().starts_with("http://[::1]:"), "{}", host.url());
    assert_eq!(
        host.function("hello_world").call(&()).await.expect("call"),
        "Hello, World!"
    );
    assert!(host.is_running().await);
}

#[tokio::test]
async fn a_synchronous_throw_gives_the_plain_stack() {
    let fixture = Fixture::new("sync-throw", "");
    let _process: HostProcess = fixture.start_host();
    let host = JsHost::connect(fixture.settings()).await.expect("connect");
    let e = host.function("throw_sync").call(&()).await.expect_err("throws");
    let stack = e.js_stack().expect("a stack");
    assert!(stack.starts_with("Error: thrown synchronously"), "{stack}");
    assert!(
        stack.contains("\n    at ") && !stack.contains("<pre>") && !stack.contains("&nbsp;"),
        "{stack}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_status_reports_idle_busy_and_waiting_connections_per_host() {
    let fixture = fixture("pool-status");
    let host = JsHost::spawn(fixture.settings().batch(false)).await.unwrap();
    let status = host.pool_status();
    assert_eq!(status.len(), 1, "one host: {status:?}");
    let slow = host.function("slow");
    // 132 calls on the client's 128 request slots: 128 busy and 4 waiting while they run.
    let data = json!({ "ms": 1500 });
    let calls = tokio::spawn(async move { join_all((0..132).map(|_| slow.call(&data))).await });
    wait_for(Duration::from_secs(10), "128 busy and 4 waiting", || {
        let host = host.clone();
        async move {
            let (_, s) = host.pool_status().remove(0);
            (s.busy == 128 && s.waiting == 4).then_some(s)
        }
    })
    .await;
    for answer in calls.await.unwrap() {
        answer.unwrap();
    }
    let (_, after) = host.pool_status().remove(0);
    assert_eq!((after.busy, after.waiting), (0, 0), "{after:?}");
    assert!((1..=128).contains(&after.idle), "{after:?}");
    drop(host);
    nothing_left(&fixture).await;
}
