//! The `jshost` command, end to end: the built binary against real js-host processes (direct
//! hosts, managed hosts through a detached manager), checking its output and exit codes.

use jshost::manager::Manager;
use jshost_integration::{processes_mentioning, repo_root, wait_for, Fixture};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// How long one run of the command may take before the test fails.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

/// The `jshost` binary, built once per test process (the integration crate cannot use
/// `CARGO_BIN_EXE_*` for another package's binary).
fn jshost_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = repo_root();
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "jshost-cli", "--manifest-path"])
            .arg(root.join("Cargo.toml"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p jshost-cli failed: {status}");
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
            Some(dir) => root.join(dir),
            None => root.join("target"),
        };
        let bin = target.join("debug").join("jshost");
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
}

/// What one run of the command did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// The value of a `key: value` line of stdout.
    fn field(&self, key: &str) -> String {
        let prefix = format!("{key}: ");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no `{key}:` line: {self:?}"))
            .to_owned()
    }
}

/// `jshost ARGS...` for `fixture`: no JSHOST_* variables but the ones naming its config, run in a
/// directory without a `host.config.js`.
fn command(fixture: &Fixture, args: &[&str]) -> Command {
    let mut cmd = Command::new(jshost_bin());
    cmd.args(args)
        .current_dir(fixture.dir())
        .env_remove("JSHOST_USE_MANAGER")
        .env_remove("JSHOST_PATH_TO_NODE")
        .env_remove("JSHOST_PATH_TO_BIN")
        .env_remove("JSHOST_FUNCTION_TIMEOUT")
        .env_remove("JSHOST_ROOT_URL")
        .env_remove("RUST_LOG")
        .env("JSHOST_SOURCE_ROOT", repo_root())
        .env("JSHOST_CONFIG_FILE", &fixture.config)
        .kill_on_drop(true);
    cmd
}

async fn run(fixture: &Fixture, args: &[&str]) -> Run {
    run_with_stdin(fixture, args, None).await
}

async fn run_with_stdin(fixture: &Fixture, args: &[&str], stdin: Option<&str>) -> Run {
    run_command(command(fixture, args), stdin).await
}

async fn run_command(mut cmd: Command, stdin: Option<&str>) -> Run {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn jshost");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let output = tokio::time::timeout(RUN_DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("jshost did not finish within {RUN_DEADLINE:?}"))
        .expect("wait for jshost");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn assert_code(run: &Run, code: i32) {
    assert_eq!(run.code, Some(code), "exit code: {run:#?}");
}

/// A fixture whose managed hosts stop 300 ms after their last connection closes.
fn managed_fixture(name: &str) -> Fixture {
    Fixture::new(name, "disconnectTimeout: 300,")
}

async fn manager_of(fixture: &Fixture) -> Manager {
    Manager::find(&fixture.settings())
        .await
        .unwrap()
        .expect("a manager runs for the fixture")
}

async fn assert_nothing_left(fixture: &Fixture) {
    let dir = fixture.dir().display().to_string();
    wait_for(
        Duration::from_secs(10),
        "every process of the fixture to exit",
        || {
            let dir = dir.clone();
            async move { processes_mentioning(&dir).is_empty().then_some(()) }
        },
    )
    .await;
}

#[tokio::test]
async fn call_prints_the_output() {
    let fixture = Fixture::new("cli-call", "");
    let _host = fixture.start_host();

    let out = run(&fixture, &["call", "hello_world", "--data", r#"{"name":"Foo"}"#]).await;
    assert_code(&out, 0);
    assert_eq!(out.stdout, "Hello, Foo!\n");
    assert_eq!(out.stderr, "");

    // The default data is `{}`; the settings can come from flags instead of the environment.
    let root = repo_root();
    let mut cmd = Command::new(jshost_bin());
    cmd.arg("--source-root")
        .arg(&root)
        .arg("--config-file")
        .arg(&fixture.config)
        .args(["call", "hello_world"])
        .current_dir(fixture.dir())
        .env_remove("JSHOST_SOURCE_ROOT")
        .env_remove("JSHOST_CONFIG_FILE")
        .env_remove("JSHOST_USE_MANAGER")
        .env_remove("JSHOST_ROOT_URL")
        .kill_on_drop(true);
    let out = run_command(cmd, None).await;
    assert_code(&out, 0);
    assert_eq!(out.stdout, "Hello, World!\n");

    // `--data -` reads stdin; arrays are data too; the bytes are sent as given.
    let out = run_with_stdin(
        &fixture,
        &["call", "echo", "--data", "-"],
        Some("{\"a\": [1, \"ü\"]}\n"),
    )
    .await;
    assert_code(&out, 0);
    assert_eq!(out.stdout, "{\"a\":[1,\"ü\"]}\n");
    let out = run(&fixture, &["call", "echo", "-d", "[1,2]"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "[1,2]\n"), "{out:?}");

    // Global flags also go after the command.
    let out = run(&fixture, &["call", "counter", "--timeout", "5"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "1\n"), "{out:?}");

    // An unknown function: nothing sent, the known names listed.
    let out = run(&fixture, &["call", "missing"]).await;
    assert_code(&out, 6);
    assert!(
        out.stderr.starts_with("jshost: ") && out.stderr.contains("hello_world"),
        "{out:?}"
    );
    assert_eq!(out.stdout, "");
}

#[tokio::test]
async fn a_function_error_exits_1_with_the_js_stack() {
    let fixture = Fixture::new("cli-fail", "");
    let _host = fixture.start_host();
    let out = run(&fixture, &["call", "fail", "--data", r#"{"message":"kaput"}"#]).await;
    assert_code(&out, 1);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.starts_with("jshost: "), "{out:?}");
    assert!(out.stderr.contains("Error: boom: kaput"), "{out:?}");
    assert!(
        out.stderr.contains("    at ") && out.stderr.contains("functions.js"),
        "the JS stack: {out:?}"
    );

    let out = run(&fixture, &["call", "throw_sync"]).await;
    assert_code(&out, 1);
    assert!(out.stderr.contains("thrown synchronously"), "{out:?}");
}

#[tokio::test]
async fn invalid_data_and_flags_exit_2() {
    let fixture = Fixture::new("cli-usage", "");
    // No host needed: the data is checked before connecting.
    let out = run(&fixture, &["call", "echo", "--data", "{nope"]).await;
    assert_code(&out, 2);
    assert!(
        out.stderr.starts_with("jshost: --data is not valid JSON"),
        "{out:?}"
    );
    let out = run(&fixture, &["call", "echo", "--data", r#""text""#]).await;
    assert_code(&out, 2);
    assert!(out.stderr.contains("must be a JSON object or array"), "{out:?}");
    let out = run_with_stdin(&fixture, &["call", "echo", "--data", "-"], Some("")).await;
    assert_code(&out, 2);
    assert!(
        out.stderr.contains("the data read from stdin is not valid JSON"),
        "{out:?}"
    );

    let out = run(&fixture, &["--timeout", "soon", "call", "echo"]).await;
    assert_code(&out, 2);
    assert!(out.stderr.contains("--timeout"), "{out:?}");
    let out = run(&fixture, &["call"]).await;
    assert_code(&out, 2);

    // A config file that does not exist is a configuration error.
    let mut cmd = command(&fixture, &["call", "echo"]);
    cmd.env("JSHOST_CONFIG_FILE", fixture.dir().join("missing.config.js"));
    let out = run_command(cmd, None).await;
    assert_code(&out, 2);
    assert!(out.stderr.contains("config file not found"), "{out:?}");
}

/// The command a hint quotes after `marker`, up to the closing backtick.
fn quoted_after<'a>(text: &'a str, marker: &str) -> &'a str {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in {text:?}"))
        + marker.len();
    let len = text[start..].find('`').expect("a closing backtick");
    &text[start..start + len]
}

#[tokio::test]
async fn nothing_running_exits_3_with_the_url_and_a_hint() {
    let fixture = managed_fixture("cli-nothing");
    for args in [&["call", "hello_world"][..], &["status"][..]] {
        let out = run(&fixture, args).await;
        assert_code(&out, 3);
        assert!(out.stderr.starts_with("jshost: "), "{out:?}");
        assert!(out.stderr.contains(&fixture.url()), "the URL: {out:?}");
        let hint = format!(
            "jshost: hint: run `jshost host start` (a managed host for {}, kept up until `jshost host stop`), then this command again",
            fixture.config.display()
        );
        assert!(out.stderr.contains(&hint), "the hint: {out:?}");
    }

    // `call` also gives the command that has the manager start the host for it alone, quoted
    // for the shell; run as given, it works.
    let out = run(&fixture, &["call", "hello_world", "--data", r#"{"name":"Foo"}"#]).await;
    assert_code(&out, 3);
    let suggested = quoted_after(&out.stderr, "for this command alone: `");
    assert_eq!(
        suggested,
        r#"jshost --use-manager call hello_world --data '{"name":"Foo"}'"#
    );
    let mut shell = Command::new("sh");
    let path = std::env::join_paths(
        std::iter::once(jshost_bin().parent().unwrap().to_path_buf()).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )),
    )
    .unwrap();
    shell
        .args(["-c", suggested])
        .current_dir(fixture.dir())
        .env("PATH", path)
        .env_remove("JSHOST_USE_MANAGER")
        .env_remove("JSHOST_ROOT_URL")
        .env("JSHOST_SOURCE_ROOT", repo_root())
        .env("JSHOST_CONFIG_FILE", &fixture.config)
        .kill_on_drop(true);
    let out = run_command(shell, None).await;
    assert_code(&out, 0);
    assert_eq!(out.stdout, "Hello, Foo!\n");
    // That call's host stops after the fixture's disconnectTimeout, then its manager.
    assert_nothing_left(&fixture).await;

    // `status --use-manager` starts nothing: it says no manager runs.
    let out = run(&fixture, &["status", "--use-manager"]).await;
    assert_code(&out, 3);
    let status = out.json();
    assert_eq!(status["manager"]["running"], false, "{out:?}");
    assert_eq!(status["manager"]["url"], fixture.url().as_str());
    assert!(status["host"].is_null());
    // Nothing to stop or read.
    for args in [
        &["manager", "stop"][..],
        &["host", "stop"][..],
        &["host", "restart"][..],
        &["logs"][..],
    ] {
        let out = run(&fixture, args).await;
        assert_code(&out, 7);
        assert!(
            out.stderr.contains("no js-host manager runs"),
            "{args:?}: {out:?}"
        );
    }
    assert_nothing_left(&fixture).await;
}

#[tokio::test]
async fn a_timeout_exits_4() {
    let fixture = Fixture::new("cli-timeout", "");
    let _host = fixture.start_host();
    jshost_bin(); // built (once per test binary) before the clock starts
    let started = Instant::now();
    let out = run(&fixture, &["--timeout", "0.2", "call", "never"]).await;
    assert_code(&out, 4);
    assert!(out.stderr.contains("never"), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    let mut cmd = command(&fixture, &["call", "never"]);
    cmd.env("JSHOST_FUNCTION_TIMEOUT", "0.2");
    assert_code(&run_command(cmd, None).await, 4);
}

#[tokio::test]
async fn status_prints_the_host_status() {
    let fixture = Fixture::new("cli-status", "");
    let _host = fixture.start_host();
    let out = run(&fixture, &["status"]).await;
    assert_code(&out, 0);
    assert!(out.stdout.contains("\n  "), "pretty-printed: {out:?}");
    let status = out.json();
    assert_eq!(status["type"], "Host");
    assert_eq!(status["config"]["port"], fixture.port);
    assert!(status["config"]["functions"]
        .as_array()
        .unwrap()
        .contains(&Value::from("hello_world")));

    // A host that no manager runs, seen with --use-manager.
    let out = run(&fixture, &["status", "--use-manager"]).await;
    assert_code(&out, 0);
    let status = out.json();
    assert_eq!(status["manager"]["running"], false, "{out:?}");
    assert_eq!(status["host"]["managed"], false);
    assert_eq!(status["host"]["url"], fixture.url().as_str());
}

#[tokio::test]
async fn managed_host_start_status_call_logs_restart_stop() {
    let fixture = managed_fixture("cli-managed");

    let started = run(&fixture, &["host", "start"]).await;
    assert_code(&started, 0);
    let url = started.field("url");
    let logfile = started.field("logfile");
    assert_eq!(started.field("manager"), fixture.url());
    assert_ne!(url, fixture.url(), "the host has a port of its own");
    let manager = manager_of(&fixture).await;
    let info = manager
        .host_status(&fixture.config)
        .await
        .unwrap()
        .expect("a host runs");
    assert_eq!(
        info.connections.len(),
        1,
        "`host start` holds a connection to keep the host up"
    );
    assert_eq!(info.logfile, Path::new(&logfile));

    // Again: the running host is reused.
    let again = run(&fixture, &["host", "start"]).await;
    assert_code(&again, 0);
    assert_eq!(
        (again.field("url"), again.field("logfile")),
        (url.clone(), logfile.clone())
    );

    let out = run(&fixture, &["status", "--use-manager"]).await;
    assert_code(&out, 0);
    let status = out.json();
    assert_eq!(status["manager"]["url"], fixture.url().as_str());
    assert_eq!(status["manager"]["running"], true);
    assert_eq!(status["host"]["url"], url.as_str());
    assert_eq!(status["host"]["logfile"], logfile.as_str());
    let held = status["host"]["connections"].as_array().unwrap().clone();
    assert_eq!(held.len(), 2, "each `host start` holds one");
    assert_eq!(status["host"]["status"]["type"], "Host");

    // Without --use-manager, `call` and `status` reach the managed host through the manager
    // answering at the config's address (the README's `host start`, `call`, `status`).
    let out = run(&fixture, &["call", "hello_world", "--data", r#"{"name":"Foo"}"#]).await;
    assert_code(&out, 0);
    assert_eq!(out.stdout, "Hello, Foo!\n");
    let out = run(&fixture, &["status"]).await;
    assert_code(&out, 0);
    let status = out.json();
    assert_eq!(status["type"], "Host", "{out:?}");
    assert!(status["config"]["functions"]
        .as_array()
        .unwrap()
        .contains(&Value::from("hello_world")));

    let out = run(
        &fixture,
        &[
            "call",
            "--use-manager",
            "hello_world",
            "--data",
            r#"{"name":"Managed"}"#,
        ],
    )
    .await;
    assert_code(&out, 0);
    assert_eq!(out.stdout, "Hello, Managed!\n");
    let connections = manager
        .host_status(&fixture.config)
        .await
        .unwrap()
        .unwrap()
        .connections;
    let connections: Vec<Value> = connections.into_iter().map(Value::from).collect();
    assert_eq!(
        connections, held,
        "the call closed its own connection; `host start`'s remain"
    );

    // The log shows a failing call (the file is created at the host's first log line).
    let out = run(
        &fixture,
        &[
            "call",
            "--use-manager",
            "fail",
            "--data",
            r#"{"message":"logged"}"#,
        ],
    )
    .await;
    assert_code(&out, 1);
    let log = wait_for(Duration::from_secs(10), "the call in the log", || async {
        let out = run(&fixture, &["logs"]).await;
        (out.code == Some(0) && out.stdout.contains("boom: logged")).then_some(out)
    })
    .await;
    assert!(log.stdout.contains("function fail produced an error"), "{log:?}");

    // Restart: same port and logfile, fresh JavaScript state (a new process).
    let pid = |out: Run| {
        assert_code(&out, 0);
        out.stdout.trim().parse::<u32>().unwrap()
    };
    let before = pid(run(&fixture, &["--use-manager", "call", "pid"]).await);
    let restarted = run(&fixture, &["host", "restart"]).await;
    assert_code(&restarted, 0);
    assert_eq!(
        (restarted.field("url"), restarted.field("logfile")),
        (url.clone(), logfile.clone())
    );
    let after = pid(run(&fixture, &["--use-manager", "call", "pid"]).await);
    assert_ne!(before, after, "a new host process");

    // Stop: the manager keeps running without a host.
    let stopped = run(&fixture, &["host", "stop"]).await;
    assert_code(&stopped, 0);
    assert_eq!(stopped.field("url"), url);
    assert!(manager.host_status(&fixture.config).await.unwrap().is_none());
    let out = run(&fixture, &["status", "--use-manager"]).await;
    assert_code(&out, 3);
    assert_eq!(out.json()["manager"]["running"], true);
    assert!(out.json()["host"].is_null());
    for args in [&["host", "stop"][..], &["host", "restart"][..], &["logs"][..]] {
        let out = run(&fixture, args).await;
        assert_code(&out, 7);
        assert!(out.stderr.contains("runs no host"), "{args:?}: {out:?}");
    }
    // Stop the manager: it is gone afterwards, and so is every process of the fixture.
    let out = run(&fixture, &["manager", "stop"]).await;
    assert_code(&out, 0);
    assert!(out.stdout.contains(&fixture.url()), "{out:?}");
    wait_for(Duration::from_secs(10), "the manager to exit", || {
        let m = manager.clone();
        async move { (!m.is_running().await).then_some(()) }
    })
    .await;
    assert_nothing_left(&fixture).await;
    let out = run(&fixture, &["manager", "stop"]).await;
    assert_code(&out, 7);
    assert!(out.stderr.contains("no js-host manager runs"), "{out:?}");
}

#[tokio::test]
async fn call_with_use_manager_starts_a_host_that_stops_after_the_call() {
    let fixture = managed_fixture("cli-call-managed");
    let mut cmd = command(&fixture, &["call", "hello_world", "--data", r#"{"name":"Env"}"#]);
    cmd.env("JSHOST_USE_MANAGER", "1");
    let out = run_command(cmd, None).await;
    assert_code(&out, 0);
    assert_eq!(out.stdout, "Hello, Env!\n");
    // The CLI closed its connection: the host stops after disconnectTimeout, then the manager.
    assert_nothing_left(&fixture).await;
}

#[tokio::test]
async fn logs_follow_prints_new_lines_until_ctrl_c() {
    let fixture = managed_fixture("cli-follow");
    assert_code(&run(&fixture, &["host", "start"]).await, 0);
    // `host start` holds a connection: the host stays up across the CLI's calls.

    let mut follower = command(&fixture, &["logs", "--follow"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = follower.id().unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let mut stdout = follower.stdout.take().unwrap();
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };

    // Each failing call shows up while following: both hosts log function errors (js-host also
    // logs every call; jshost-node is quiet about calls that succeed). The file is created at
    // the first line.
    for (n, name) in ["first", "second"].into_iter().enumerate() {
        let data = format!(r#"{{"message":"{name}"}}"#);
        let out = run(&fixture, &["call", "--use-manager", "fail", "--data", &data]).await;
        assert_code(&out, 1);
        wait_for(Duration::from_secs(10), "the call to be followed", || {
            let count = seen
                .lock()
                .unwrap()
                .matches("function fail produced an error")
                .count();
            async move { (count > n).then_some(()) }
        })
        .await;
    }
    assert!(follower.try_wait().unwrap().is_none(), "still following");

    // Ctrl-C ends following with exit code 0.
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), follower.wait())
        .await
        .expect("following ends on SIGINT")
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    reader.await.unwrap();

    let out = run(&fixture, &["manager", "stop"]).await;
    assert_code(&out, 0);
    assert_nothing_left(&fixture).await;
}
