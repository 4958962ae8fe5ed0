//! Another local user, secrets and the owner's death: jshost's private state directory refuses a
//! directory planted by another user (or open to them), owned hosts work under a long `TMPDIR`
//! (their socket moves to a short private directory), `Settings`' `Debug` shows no header value,
//! and a host whose config load hangs dies with its SIGKILLed owner. The tests that need an
//! environment of their own run alone in a child process (`run_isolated`). The "another user"
//! case needs root (to hand a directory to `nobody`); CI runs as root.

use jshost::JsHost;
use jshost_integration::{
    host_under_test, node_processes_left, processes_mentioning, run_isolated, Fixture, Host,
};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn uid() -> u32 {
    std::fs::metadata("/proc/self").unwrap().uid()
}

/// A fresh directory under /tmp for one test, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        use std::sync::atomic::{AtomicU32, Ordering};
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!("/tmp/jshost-it-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `isolated_refused_private_directory` with `TMPDIR` = `tmp`, expecting the error to say
/// `why` about `tmp/jshost-UID`.
fn expect_refused(tmp: &Path, why: &str) {
    let set = [
        ("TMPDIR", tmp.as_os_str()),
        ("JSHOST_IT_EXPECT", std::ffi::OsStr::new(why)),
    ];
    run_isolated(
        "security::isolated_refused_private_directory",
        &set,
        &["XDG_RUNTIME_DIR"],
    );
}

#[test]
fn a_private_directory_planted_by_another_user_is_refused() {
    if uid() != 0 {
        println!("skipped: handing a directory to nobody needs root (CI runs as root)");
        return;
    }
    let scratch = Scratch::new("planted");
    let planted = scratch.0.join(format!("jshost-{}", uid()));
    std::fs::create_dir(&planted).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Another user's status cache entry, naming a port of theirs.
    std::fs::write(
        planted.join("status-0000.json"),
        r#"{"type":"Host","version":"0.12.0","config":{"port":1}}"#,
    )
    .unwrap();
    std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
    expect_refused(&scratch.0, "owned by uid 65534");
}

#[test]
fn a_private_directory_open_to_others_is_refused() {
    let scratch = Scratch::new("open");
    let open = scratch.0.join(format!("jshost-{}", uid()));
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    expect_refused(&scratch.0, "its mode is 777");
}

#[tokio::test]
#[ignore = "run alone in a child process by the private directory tests"]
async fn isolated_refused_private_directory() {
    let why = std::env::var("JSHOST_IT_EXPECT").unwrap();
    let dir = std::env::temp_dir().join(format!("jshost-{}", uid()));
    let fixture = Fixture::new("refused", "");
    // Managed with the status cache (which would read a planted entry), and owned.
    let managed = JsHost::connect(fixture.settings().use_manager(true).status_cache(true))
        .await
        .unwrap_err();
    let owned = JsHost::spawn(fixture.settings()).await.unwrap_err();
    for e in [managed, owned] {
        let text = e.to_string();
        println!("refused: {text}");
        assert!(e.is_config(), "{e:?}");
        assert!(
            text.contains(&dir.display().to_string()) && text.contains(&why),
            "{text}"
        );
    }
    assert!(processes_mentioning(fixture.dir().to_str().unwrap()).is_empty());
}

#[test]
fn owned_hosts_work_under_a_long_tmpdir() {
    let scratch = Scratch::new("long");
    let long = scratch.0.join("x".repeat(100 - scratch.0.as_os_str().len() - 1));
    std::fs::create_dir(&long).unwrap();
    assert_eq!(long.as_os_str().len(), 100);
    run_isolated(
        "security::isolated_long_tmpdir",
        &[("TMPDIR", long.as_os_str())],
        &["XDG_RUNTIME_DIR"],
    );
}

#[tokio::test]
#[ignore = "run alone in a child process by owned_hosts_work_under_a_long_tmpdir"]
async fn isolated_long_tmpdir() {
    let fixture = Fixture::new("long-tmpdir", "");
    let host = JsHost::spawn(fixture.settings().log_file(true)).await.unwrap();
    assert_eq!(
        host.function("hello_world").call(&()).await.unwrap(),
        "Hello, World!"
    );
    let tmp = std::env::temp_dir();
    // The logfile stays in the private directory under TMPDIR ...
    let logfile = host.logfile().unwrap();
    assert!(
        logfile.starts_with(tmp.join(format!("jshost-{}", uid()))),
        "{}",
        logfile.display()
    );
    // ... while a socket there would pass the 107-byte limit: it moves to /tmp/jshost-UID.
    if host_under_test() == Host::JshostNode {
        let url = host.url();
        println!(
            "TMPDIR {} ({} bytes): the host listens at {url}",
            tmp.display(),
            tmp.as_os_str().len()
        );
        assert!(
            url.starts_with(&format!("unix:/tmp/jshost-{}/sock-", uid())),
            "{url}"
        );
    }
    drop(host);
    assert_eq!(
        node_processes_left(fixture.dir().to_str().unwrap(), Duration::from_secs(5)).await,
        0
    );
}

#[test]
fn settings_debug_shows_no_header_value() {
    let settings = jshost::Settings::default()
        .header("authorization", "Bearer it-debug-s3cret")
        .header("cookie", "session=it-cookie-s3cret");
    let shown = format!("{settings:?}");
    assert!(
        shown.contains("authorization") && shown.contains("cookie"),
        "{shown}"
    );
    assert!(!shown.contains("s3cret"), "{shown}");
}

#[tokio::test]
async fn a_host_whose_config_load_hangs_dies_with_its_sigkilled_owner() {
    if host_under_test() != Host::JshostNode {
        println!(
            "skipped against js-host 0.12: a CommonJS config cannot hang without blocking its event loop"
        );
        return;
    }
    let fixture = Fixture::new("hung", "");
    // An ESM config whose top-level await never settles.
    let config = fixture.dir().join("host.config.mjs");
    std::fs::write(
        &config,
        "await new Promise(() => {});\nexport default { functions: {} };\n",
    )
    .unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut owner = Command::new(exe)
        .args([
            "security::isolated_owner_of_a_hung_host",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("JSHOST_IT_CONFIG", &config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let needle = fixture.dir().to_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_mentioning(&needle).iter().all(|p| !p.contains("node")) {
        assert!(Instant::now() < deadline, "the owner never started the host");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    owner.kill().unwrap();
    owner.wait().unwrap();
    assert_eq!(
        node_processes_left(&needle, Duration::from_secs(5)).await,
        0,
        "the hung host outlived its SIGKILLed owner"
    );
}

#[tokio::test]
#[ignore = "run in a child process (then SIGKILLed) by a_host_whose_config_load_hangs_dies_with_its_sigkilled_owner"]
async fn isolated_owner_of_a_hung_host() {
    let config = PathBuf::from(std::env::var("JSHOST_IT_CONFIG").unwrap());
    let settings = jshost::Settings::default()
        .source_root(jshost_integration::repo_root())
        .config_file(&config)
        .path_to_bin(jshost_integration::host_bin())
        .startup_timeout(Duration::from_secs(120));
    let _ = JsHost::spawn(settings).await;
}
