//! Owned hosts: `JsHost::spawn` runs a js-host child supervised by this process.

use jshost::JsHost;
use jshost_integration::{host_process_of, kill9, pid_alive, wait_for, Fixture};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn spawn_call_and_drop() {
    let fixture = Fixture::new("owned", "");
    let host = JsHost::spawn(fixture.settings().log_file(true)).await.unwrap();
    assert_eq!(
        host.function("hello_world")
            .call(&serde_json::json!({"name": "Owned"}))
            .await
            .unwrap(),
        "Hello, Owned!"
    );
    let pid = host.pid().unwrap();
    let function_pid: u32 = host.function("pid").call(&()).await.unwrap().parse().unwrap();
    assert_eq!(
        host_process_of(function_pid),
        pid,
        "functions run in the host (or its worker)"
    );
    assert!(host.is_running().await);
    assert_ne!(
        host.status().port(),
        Some(fixture.port),
        "an owned host listens on a port the OS picks"
    );
    // Asked for with log_file(true): js-host writes its log there (from its first log line).
    let logfile = host.logfile().unwrap();
    // Both hosts log a function's error (js-host logs every call, too).
    let e = host
        .function("fail")
        .call(&serde_json::json!({"message": "to the log"}))
        .await
        .unwrap_err();
    assert!(e.is_function());
    wait_for(Duration::from_secs(5), "the error to reach the logfile", || {
        let logfile = logfile.clone();
        async move {
            std::fs::read_to_string(&logfile)
                .unwrap_or_default()
                .contains("boom: to the log")
                .then_some(())
        }
    })
    .await;

    drop(host);
    wait_for(
        Duration::from_secs(5),
        "the owned host to be killed on drop",
        || async move { (!pid_alive(pid)).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_crash_is_noticed_and_restart_brings_it_back() {
    let fixture = Fixture::new("owned-crash", "");
    let host = JsHost::spawn(fixture.settings().log_file(true)).await.unwrap();
    let counter = host.function("counter");
    assert_eq!(counter.call(&()).await.unwrap(), "1");
    let url = host.url();
    kill9(host.pid().unwrap());
    let started = Instant::now();
    let e = wait_for(Duration::from_secs(5), "a call to fail after the kill", || {
        let counter = counter.clone();
        async move { counter.call(&()).await.err() }
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(e.is_process(), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("signal: 9"), "names the exit status: {text}");
    assert!(
        text.contains(&host.logfile().unwrap().display().to_string()),
        "names the logfile: {text}"
    );
    // Fails fast from now on: the exit is known.
    let started = Instant::now();
    assert!(counter.call(&()).await.unwrap_err().is_process());
    assert!(started.elapsed() < Duration::from_millis(100));

    host.restart().await.unwrap();
    assert_eq!(host.url(), url, "same port");
    assert_eq!(counter.call(&()).await.unwrap(), "1", "fresh state");
    host.stop().await.unwrap();
    assert!(counter.call(&()).await.unwrap_err().is_process());
}

#[tokio::test]
async fn by_default_an_owned_host_writes_nothing_to_disk_and_a_crash_still_carries_its_stderr() {
    // The function writes to stderr (in colour), then the host exits from a timer (a
    // jshost-node worker kills its primary first: the primary would replace a worker).
    let fixture = Fixture::with_body("owned-nolog", |port, functions| {
        format!(
            "const f = require({functions:?})();\n\
             f.die_loudly = function (data, cb) {{\n\
               console.error('\\u001b[31mdying loudly\\u001b[39m');\n\
               setTimeout(function () {{\n\
                 console.error('async boom');\n\
                 if (require('cluster').isWorker) process.kill(process.ppid, 'SIGKILL');\n\
                 process.exit(3);\n\
               }}, 10);\n\
               cb(null, 'ok');\n\
             }};\n\
             module.exports = {{ port: {port}, functions: f }};\n"
        )
    });
    let host = JsHost::spawn(fixture.settings()).await.unwrap();
    assert_eq!(host.logfile(), None, "no logfile unless asked for");
    // No --logfile for js-host, so it writes its per-call log lines nowhere but to stdout, which
    // the preloaded guard drops.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", host.pid().unwrap())).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(!cmdline.contains("--logfile"), "{cmdline}");
    for _ in 0..200 {
        host.function("echo")
            .call(&serde_json::json!({"x": 1}))
            .await
            .unwrap();
    }
    assert_eq!(host.function("die_loudly").call(&()).await.unwrap(), "ok");
    let e = wait_for(Duration::from_secs(5), "a call to fail after the crash", || {
        let host = host.clone();
        async move { host.function("echo").call(&()).await.err() }
    })
    .await;
    assert!(e.is_process(), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("async boom"), "carries the stderr tail: {text}");
    assert!(!text.contains('\u{1b}'), "no ANSI codes: {text:?}");
}

#[tokio::test]
async fn a_host_that_dies_at_start_up_reports_its_stderr() {
    let fixture = Fixture::with_body("owned-broken", |_, _| {
        "throw new Error('broken at load time');\n".into()
    });
    let started = Instant::now();
    let e = JsHost::spawn(fixture.settings()).await.unwrap_err();
    assert!(e.is_process(), "{e:?}");
    assert!(e.to_string().contains("broken at load time"), "{e}");
    assert!(e.to_string().contains("exit status"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn the_host_does_not_outlive_a_sigkilled_owner() {
    let fixture = Fixture::new("owned-orphan", "");
    let mut owner = Command::new(env!("CARGO_BIN_EXE_own_and_wait"))
        .env("JSHOST_SOURCE_ROOT", jshost_integration::repo_root())
        .env("JSHOST_CONFIG_FILE", &fixture.config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(owner.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let host_pid: u32 = line.trim().parse().unwrap_or_else(|_| {
        let _ = owner.kill();
        panic!("own_and_wait printed {line:?}")
    });
    assert!(pid_alive(host_pid));
    owner.kill().unwrap(); // SIGKILL: no destructor runs
    owner.wait().unwrap();
    wait_for(
        Duration::from_secs(5),
        "the orphaned host to exit",
        || async move { (!pid_alive(host_pid)).then_some(()) },
    )
    .await;
}
