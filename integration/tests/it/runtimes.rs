//! Handles used the way services and test suites use them: created in one runtime and used from
//! another after the first is gone, shared by current-thread runtimes on several threads
//! (actix-web's model), dropped at the end of a `#[tokio::test]`, disconnected with a manager
//! that does not answer. Against real js-host processes.

use jshost::manager::Manager;
use jshost::JsHost;
use jshost_integration::{host_process_of, pid_alive, processes_mentioning, Fixture};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// A current-thread runtime, as `#[tokio::test]` and each actix worker have.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Polls `check` (blocking) until it holds or `within` passes.
fn poll(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn echo(host: &JsHost, i: usize) -> String {
    runtime()
        .block_on(host.function("echo").call(&json!({ "i": i })))
        .expect("echo")
}

/// Hosts of these fixtures stop 300 ms after their last connection closes.
fn managed_fixture(name: &str) -> Fixture {
    Fixture::new(name, "disconnectTimeout: 300,")
}

fn connections(manager: &Manager, fixture: &Fixture) -> Vec<String> {
    runtime()
        .block_on(manager.host_status(&fixture.config))
        .expect("host status")
        .map(|h| h.connections)
        .unwrap_or_default()
}

/// Sends SIGSTOP or SIGCONT to the manager of `fixture`; the guard resumes it on drop.
struct Paused(Vec<u32>);

impl Paused {
    fn manager_of(fixture: &Fixture) -> Paused {
        let pids: Vec<u32> = processes_mentioning(&format!("{} --manager", fixture.config.display()))
            .iter()
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        assert!(!pids.is_empty(), "a manager runs");
        for pid in &pids {
            signal("-STOP", *pid);
        }
        Paused(pids)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        for pid in &self.0 {
            signal("-CONT", *pid);
        }
    }
}

fn signal(sig: &str, pid: u32) {
    let _ = std::process::Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status();
}

#[test]
fn an_owned_host_lives_as_long_as_its_last_handle_not_its_runtime() {
    let fixture = Fixture::new("rt-owned", "");
    let host = runtime()
        .block_on(JsHost::spawn(fixture.settings()))
        .expect("spawn");
    // The runtime that spawned it is gone.
    let pid = host.pid().expect("pid");
    assert!(pid_alive(pid));
    assert_eq!(echo(&host, 1), r#"{"i":1}"#);
    // No tokio runtime at all: the SDK's own runtime makes the call.
    let text =
        futures::executor::block_on(host.function("pid").call(&())).expect("call from outside any runtime");
    assert_eq!(host_process_of(text.parse().unwrap()), pid);
    let clone = host.clone();
    drop(host);
    assert!(pid_alive(pid), "a clone still holds it");
    drop(clone);
    poll(
        Duration::from_secs(5),
        "the owned host to exit with its last handle",
        || !pid_alive(pid),
    );
}

#[test]
fn direct_hosts_and_several_owned_hosts_outlive_their_runtime() {
    let fixture = Fixture::new("rt-direct", "");
    let _process = fixture.start_host();
    let direct = runtime()
        .block_on(JsHost::connect(fixture.settings()))
        .expect("connect");
    assert_eq!(echo(&direct, 2), r#"{"i":2}"#);

    let several = Fixture::new("rt-several", "");
    let pool = runtime()
        .block_on(JsHost::spawn(several.settings().owned_hosts(2)))
        .expect("spawn two");
    let pids: Vec<u32> = pool.hosts().iter().filter_map(JsHost::pid).collect();
    assert_eq!(pids.len(), 2);
    assert_eq!(pool.pid(), None, "several hosts have no single pid");
    let rt = runtime();
    let seen: std::collections::HashSet<String> = rt.block_on(async {
        let pid = pool.function("pid");
        let calls = (0..32).map(|_| pid.call(&()));
        futures::future::join_all(calls)
            .await
            .into_iter()
            .map(|r| r.expect("pid"))
            .collect()
    });
    assert_eq!(seen.len(), 2, "calls reach both hosts: {seen:?}");
    drop(pool);
    poll(Duration::from_secs(5), "both owned hosts to exit", || {
        !pids.iter().any(|p| pid_alive(*p))
    });
}

#[test]
fn a_managed_handle_outlives_its_runtime_and_a_tokio_test_style_drop_closes_its_connection() {
    let fixture = managed_fixture("rt-managed");
    let settings = fixture.settings().use_manager(true);
    let host = runtime()
        .block_on(JsHost::connect(settings.clone()))
        .expect("connect");
    assert_eq!(echo(&host, 3), r#"{"i":3}"#);
    let manager = host.manager().expect("managed").clone();
    let kept = host.connection_id().expect("open");

    // What every #[tokio::test] does: the handle is dropped inside the runtime, which is dropped
    // right after; the process goes on.
    let dropped = std::thread::spawn(move || {
        runtime().block_on(async move {
            let h = JsHost::connect(settings).await.expect("connect");
            h.function("echo").call(&json!({})).await.expect("echo");
            h.connection_id().expect("open")
        })
    })
    .join()
    .expect("thread");
    poll(
        Duration::from_secs(5),
        "the dropped handle's connection to close",
        || {
            let open = connections(&manager, &fixture);
            !open.contains(&dropped) && open.contains(&kept)
        },
    );
    assert_eq!(echo(&host, 4), r#"{"i":4}"#, "the other handle is unaffected");
    drop(host);
    poll(
        Duration::from_secs(5),
        "the host to stop after the last drop",
        || {
            runtime()
                .block_on(manager.host_status(&fixture.config))
                .ok()
                .flatten()
                .is_none()
        },
    );
}

#[test]
fn actix_style_runtimes_share_a_handle_while_one_ends_and_one_blocks() {
    let fixture = Fixture::new("rt-actix", "");
    let host = runtime()
        .block_on(JsHost::spawn(fixture.settings()))
        .expect("spawn");
    let blocking = Arc::new(AtomicBool::new(false));
    let blocked_done = Arc::new(AtomicBool::new(false));
    let during_block = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(4));
    let mut workers = Vec::new();
    for worker in 0..4usize {
        let (host, blocking, blocked_done, during_block, start) = (
            host.clone(),
            blocking.clone(),
            blocked_done.clone(),
            during_block.clone(),
            start.clone(),
        );
        workers.push(std::thread::spawn(move || {
            let rt = runtime();
            start.wait();
            let echo = host.function("echo");
            let mut slowest = Duration::ZERO;
            match worker {
                // This worker's runtime ends after a few calls (its connections were opened
                // from it).
                0 => {
                    for i in 0..20 {
                        rt.block_on(echo.call(&json!({ "i": i }))).expect("worker 0");
                    }
                    drop(rt);
                }
                // This one blocks its runtime's only thread for 3 s in the middle of its work.
                1 => {
                    rt.block_on(async {
                        echo.call(&json!({})).await.expect("before blocking");
                        blocking.store(true, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_secs(3));
                        blocked_done.store(true, Ordering::SeqCst);
                        echo.call(&json!({})).await.expect("after blocking");
                    });
                }
                // The others keep calling until the blocked one is done, and time each call.
                _ => {
                    let mut i = 0;
                    while !blocked_done.load(Ordering::SeqCst) {
                        let t = Instant::now();
                        let out = rt
                            .block_on(echo.call(&json!({ "w": worker, "i": i })))
                            .expect("call");
                        assert_eq!(out, format!(r#"{{"i":{i},"w":{worker}}}"#));
                        slowest = slowest.max(t.elapsed());
                        if blocking.load(Ordering::SeqCst) {
                            during_block.fetch_add(1, Ordering::SeqCst);
                        }
                        i += 1;
                    }
                }
            }
            slowest
        }));
    }
    let slowest: Vec<Duration> = workers.into_iter().map(|w| w.join().expect("worker")).collect();
    assert!(
        during_block.load(Ordering::SeqCst) > 10,
        "calls went on while one runtime was blocked: {}",
        during_block.load(Ordering::SeqCst)
    );
    // A call that waited on the blocked runtime would take about 3 s.
    assert!(
        slowest.iter().all(|s| *s < Duration::from_millis(1500)),
        "no call waited on the blocked runtime: {slowest:?}"
    );
}

#[test]
fn a_cancelled_and_a_failed_disconnect_leave_the_connection_to_be_closed_later() {
    let fixture = managed_fixture("rt-disconnect");
    let settings = fixture.settings().use_manager(true);
    let rt = runtime();
    let cancelled = rt.block_on(JsHost::connect(settings.clone())).expect("connect");
    let failed = rt.block_on(JsHost::connect(settings)).expect("connect");
    let manager = cancelled.manager().expect("managed").clone();
    let (a, b) = (
        cancelled.connection_id().expect("open"),
        failed.connection_id().expect("open"),
    );
    {
        let _paused = Paused::manager_of(&fixture);
        let gave_up = rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(300), cancelled.disconnect())
                .await
                .is_err()
        });
        assert!(gave_up, "the manager is paused: the disconnect cannot finish");
        assert_eq!(
            cancelled.connection_id(),
            Some(a.clone()),
            "a cancelled close keeps the id"
        );
        let e = rt
            .block_on(failed.disconnect())
            .expect_err("the manager does not answer");
        assert!(e.is_timeout() || e.is_connection(), "{e:?}");
        assert_eq!(
            failed.connection_id(),
            Some(b.clone()),
            "a failed close keeps the id"
        );
    }
    // The manager may still act on requests that reached its socket while it was paused; the
    // handles cannot know, so they keep their ids, and closing twice is harmless.
    // Safety nets: an explicit retry, and the drop of the last clone.
    rt.block_on(cancelled.disconnect())
        .expect("disconnect once the manager answers");
    assert_eq!(cancelled.connection_id(), None);
    drop(failed);
    poll(Duration::from_secs(5), "both connections to be closed", || {
        let open = connections(&manager, &fixture);
        !open.contains(&a) && !open.contains(&b)
    });
}

#[tokio::test]
async fn a_start_up_error_carries_everything_the_config_wrote_on_stderr() {
    let fixture = Fixture::with_body("rt-stderr", |_, _| {
        "for (let i = 0; i < 30; i++) console.error('complaint ' + i);\n\
         console.error('LAST WORDS before exiting');\n\
         process.exit(3);\n"
            .to_owned()
    });
    let e = JsHost::spawn(fixture.settings())
        .await
        .expect_err("the config exits");
    assert!(e.is_process(), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("LAST WORDS before exiting"), "{text}");
    // js-host exits with the config's status; a jshost-node primary with 1, saying its worker's.
    assert!(
        text.contains("complaint 29")
            && (text.contains("exit status: 3") || text.contains("exited (code 3)")),
        "{text}"
    );
}
