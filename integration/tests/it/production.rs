//! A host in production, through the SDK, against jshost-node: a runaway call, a SIGTERM deploy,
//! hot reload under load, a rolling restart behind `root_urls`, recycling settings. Each test
//! counts the node processes it leaves (none). js-host 0.12 has none of this: the tests say so
//! and return when the suite runs against it.

use futures::future::join_all;
use jshost::JsHost;
use jshost_integration::{
    host_process_of, host_under_test, node_processes_left, wait_for, Fixture, Host, HostProcess,
};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether the suite runs against jshost-node (else a note, and the test returns).
fn jshost_node_only(what: &str) -> bool {
    let yes = host_under_test() == Host::JshostNode;
    if !yes {
        println!("skipped against js-host 0.12: {what} is jshost-node's");
    }
    yes
}

/// A fixture whose functions also include `spin` (a synchronous loop that never ends),
/// `nap` (answers after `data.ms`, counting the naps started) and `naps` (that count).
fn production(name: &str) -> Fixture {
    Fixture::with_body(name, |port, functions| {
        format!(
            "const f = require({functions:?})();\n\
             let naps = 0;\n\
             f.spin = function () {{ for (;;) {{}} }};\n\
             f.nap = function (data, cb) {{ naps += 1; setTimeout(function () {{ cb(null, 'napped ' + data.ms); }}, data.ms); }};\n\
             f.naps = function (data, cb) {{ cb(null, String(naps)); }};\n\
             module.exports = {{ port: {port}, functions: f }};\n"
        )
    })
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

async fn nothing_left(fixture: &Fixture) {
    assert_eq!(
        node_processes_left(fixture.dir().to_str().unwrap(), Duration::from_secs(10)).await,
        0,
        "node processes left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_call_is_cut_and_the_next_call_is_served() {
    if !jshost_node_only("cutting runaway calls") {
        return;
    }
    let fixture = production("runaway");
    let host = JsHost::spawn(fixture.settings().host_call_timeout(Duration::from_millis(500)))
        .await
        .unwrap();
    let started = Instant::now();
    let e = host
        .function("spin")
        .timeout(Duration::from_secs(1))
        .call(&())
        .await
        .unwrap_err();
    println!("the runaway call failed after {:?}: {e}", started.elapsed());
    let failed_at = Instant::now();
    assert_eq!(
        host.function("hello_world").call(&()).await.unwrap(),
        "Hello, World!"
    );
    println!(
        "the next call answered {:?} after the runaway call failed",
        failed_at.elapsed()
    );
    drop(host);
    nothing_left(&fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_deploy_lets_the_calls_in_flight_finish() {
    if !jshost_node_only("graceful shutdown") {
        return;
    }
    let fixture = production("sigterm");
    let host = JsHost::spawn(fixture.settings()).await.unwrap();
    let pid = host.pid().unwrap();
    let calls = (0..6).map(|_| {
        let host = host.clone();
        tokio::spawn(async move { host.function("nap").call(&serde_json::json!({"ms": 1500})).await })
    });
    let calls: Vec<_> = calls.collect();
    // SIGTERM once all six run in the host (the deploy 0.5 s into them).
    wait_for(Duration::from_secs(5), "six naps to run", || {
        let host = host.clone();
        async move { (host.function("naps").call(&()).await.ok()? == "6").then_some(()) }
    })
    .await;
    signal(pid, "TERM");
    let answers = join_all(calls).await;
    let ok = answers.iter().filter(|a| matches!(a, Ok(Ok(_)))).count();
    println!("SIGTERM with six 1.5 s calls in flight: {ok} of 6 answered");
    for answer in &answers {
        assert_eq!(answer.as_ref().unwrap().as_ref().unwrap(), "napped 1500");
    }
    drop(host);
    nothing_left(&fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_load_fails_no_call() {
    if !jshost_node_only("--watch") {
        return;
    }
    let fixture = Fixture::with_body("hot-reload", |port, functions| {
        format!(
            "const f = require({functions:?})();\n\
             f.version = function (data, cb) {{ cb(null, 'v0'); }};\n\
             module.exports = {{ port: {port}, disconnectTimeout: 300, functions: f }};\n"
        )
    });
    let host = JsHost::connect(fixture.settings().use_manager(true).watch(true))
        .await
        .unwrap();
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let until = Instant::now() + Duration::from_secs(6);
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (host, ok, failed) = (host.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    match host.function("version").call(&()).await {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            println!("failed call: {e}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    let original = std::fs::read_to_string(&fixture.config).unwrap();
    for edit in 1..=3 {
        let edited = original.replace("'v0'", &format!("'v{edit}'"));
        std::fs::write(&fixture.config, edited).unwrap();
        let want = format!("v{edit}");
        wait_for(
            Duration::from_secs(5),
            &format!("edit {edit} to be served"),
            || {
                let (host, want) = (host.clone(), want.clone());
                async move { (host.function("version").call(&()).await.ok()? == want).then_some(()) }
            },
        )
        .await;
    }
    join_all(callers).await;
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("hot reload under load: 4 callers for 6 s, 3 edits: {ok} calls answered, {failed} failed");
    assert!(ok > 0);
    assert_eq!(failed, 0, "calls failed during hand-overs");
    host.stop().await.unwrap();
    drop(host);
    nothing_left(&fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_behind_root_urls_fails_no_call() {
    if !jshost_node_only("graceful shutdown") {
        return;
    }
    let fixture = production("rolling");
    let first = HostProcess::start(&fixture.config, &["--port", "0"]).unwrap();
    let second = HostProcess::start(&fixture.config, &["--port", "0"]).unwrap();
    let port = |h: &HostProcess| {
        let status: serde_json::Value = serde_json::from_str(&h.status).unwrap();
        status["config"]["port"].as_u64().unwrap() as u16
    };
    let (port1, port2) = (port(&first), port(&second));
    let host = JsHost::connect(fixture.settings().root_urls([
        format!("http://127.0.0.1:{port1}"),
        format!("http://127.0.0.1:{port2}"),
    ]))
    .await
    .unwrap();
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let callers: Vec<_> = (0..64)
        .map(|_| {
            let (host, ok, failed, done) = (host.clone(), ok.clone(), failed.clone(), done.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    match host.function("nap").call(&serde_json::json!({"ms": 50})).await {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            println!("failed call: {e}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    // SIGTERM the first host while the 64 callers are in flight; restart it (as a supervisor
    // would) once it has exited, and let calls reach it again.
    wait_for(Duration::from_secs(5), "calls to flow", || {
        let ok = ok.clone();
        async move { (ok.load(Ordering::Relaxed) > 200).then_some(()) }
    })
    .await;
    let first_pid = first.pid();
    signal(first_pid, "TERM");
    let mut first = first;
    wait_for(Duration::from_secs(15), "the first host to exit", || {
        let exited = first.try_wait();
        async move { exited.then_some(()) }
    })
    .await;
    drop(first);
    let restarted = HostProcess::start(&fixture.config, &["--port", &port1.to_string()]).unwrap();
    let before = ok.load(Ordering::Relaxed);
    wait_for(Duration::from_secs(10), "calls after the restart", || {
        let ok = ok.clone();
        async move { (ok.load(Ordering::Relaxed) > before + 500).then_some(()) }
    })
    .await;
    done.store(true, Ordering::Relaxed);
    join_all(callers).await;
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("rolling restart with 64 calls in flight: {ok} calls answered, {failed} failed");
    assert_eq!(failed, 0, "calls failed during the rolling restart");
    drop((host, restarted, second));
    nothing_left(&fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recycling_settings_reach_owned_and_managed_hosts() {
    if !jshost_node_only("--call-timeout, --max-memory and --max-calls") {
        return;
    }
    let fixture = production("recycling");
    let settings = fixture
        .settings()
        .host_call_timeout(Duration::from_millis(700))
        .max_memory_mb(300)
        .max_calls(5);
    let cmdline = |pid: u32| {
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap()).replace('\0', " ")
    };
    let owned = JsHost::spawn(settings.clone()).await.unwrap();
    let line = cmdline(owned.pid().unwrap());
    assert!(
        line.contains("--call-timeout 700")
            && line.contains("--max-memory 300")
            && line.contains("--max-calls 5"),
        "{line}"
    );
    drop(owned);

    let managed = JsHost::connect(settings.use_manager(true)).await.unwrap();
    let pid: u32 = managed.function("pid").call(&()).await.unwrap().parse().unwrap();
    let line = cmdline(host_process_of(pid));
    assert!(
        line.contains("--call-timeout 700")
            && line.contains("--max-memory 300")
            && line.contains("--max-calls 5"),
        "{line}"
    );
    managed.stop().await.unwrap();
    drop(managed);
    nothing_left(&fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_calls_recycles_a_worker_without_failing_a_call() {
    if !jshost_node_only("--max-calls") {
        return;
    }
    let fixture = production("max-calls");
    let owned = JsHost::spawn(fixture.settings().max_calls(5)).await.unwrap();
    // A worker asks to be recycled at its 5th call; its successor starts, then takes over while
    // it drains. Sequential calls keep coming meanwhile: none may fail, and workers change.
    let mut pids = std::collections::HashSet::new();
    let mut calls = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while pids.len() < 3 && Instant::now() < deadline {
        pids.insert(owned.function("pid").call(&()).await.unwrap());
        calls += 1;
    }
    println!("{calls} calls with --max-calls 5 ran in {} workers", pids.len());
    assert!(pids.len() >= 3, "no recycling within 60 s: {pids:?}");
    drop(owned);
    nothing_left(&fixture).await;
}
