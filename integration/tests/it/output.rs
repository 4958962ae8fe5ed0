//! What hosts write: drained in bounded pieces (a host's output never grows this process), and
//! their JavaScript errors passed on to this program's `tracing` (owned hosts from their stderr,
//! managed hosts from their logfile). Each measuring or tracing test runs alone in a child
//! process (`run_isolated`): RSS and a global subscriber are per process.

use jshost::JsHost;
use jshost_integration::{
    host_under_test, node_processes_left, rss_kib, run_isolated, wait_for, Fixture, Host,
};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fixture whose functions also include `flood` (10 x 10 MiB on stdout and stderr, no
/// newline) and `complain` (`console.error`).
fn noisy(name: &str) -> Fixture {
    Fixture::with_body(name, |port, functions| {
        format!(
            "const f = require({functions:?})();\n\
             f.flood = function (data, cb) {{\n\
               var chunk = 'x'.repeat(10 * 1024 * 1024);\n\
               for (var i = 0; i < 10; i++) {{ process.stdout.write(chunk); process.stderr.write(chunk); }}\n\
               cb(null, 'flooded');\n\
             }};\n\
             f.complain = function (data, cb) {{ console.error('complaint: ' + data.what); cb(null, 'ok'); }};\n\
             module.exports = {{ port: {port}, functions: f }};\n"
        )
    })
}

#[test]
fn output_without_newlines_does_not_grow_the_process() {
    run_isolated("output::isolated_output_without_newlines", &[], &[]);
}

#[tokio::test]
#[ignore = "run alone in a child process by output_without_newlines_does_not_grow_the_process"]
async fn isolated_output_without_newlines() {
    let fixture = noisy("flood");
    let host = JsHost::spawn(fixture.settings()).await.unwrap();
    assert_eq!(
        host.function("hello_world").call(&()).await.unwrap(),
        "Hello, World!"
    );
    let before = rss_kib();
    let flood = host.function("flood").timeout(Duration::from_secs(60));
    assert_eq!(flood.call(&()).await.unwrap(), "flooded");
    // The host is still fine, and what it wrote has been read (pipes to node are synchronous
    // on Linux: the writes returned once this process had read all but a pipe's worth).
    assert_eq!(
        host.function("hello_world").call(&()).await.unwrap(),
        "Hello, World!"
    );
    let after = rss_kib();
    let grown_mib = after.saturating_sub(before) as f64 / 1024.0;
    println!(
        "RSS before {before} KiB, after 10 x 10 MiB on stdout and stderr {after} KiB: +{grown_mib:.1} MiB"
    );
    assert!(
        grown_mib < 32.0,
        "the process grew by {grown_mib:.1} MiB while the host wrote 200 MiB without a newline"
    );
    drop((flood, host));
    assert_eq!(
        node_processes_left(fixture.dir().to_str().unwrap(), Duration::from_secs(5)).await,
        0
    );
}

/// Everything `tracing` prints, kept for the test to search.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn install() -> Captured {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .init();
        captured
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The events printed so far (an event's message may span lines).
    fn events(&self) -> Vec<String> {
        let mut events: Vec<String> = Vec::new();
        for line in self.text().lines() {
            let head = line.get(..40).unwrap_or(line);
            let starts = line.starts_with(|c: char| c.is_ascii_digit())
                && [" TRACE ", " DEBUG ", " INFO ", " WARN ", " ERROR "]
                    .iter()
                    .any(|l| head.contains(l));
            match events.last_mut() {
                Some(event) if !starts => {
                    event.push('\n');
                    event.push_str(line);
                }
                _ => events.push(line.to_owned()),
            }
        }
        events
    }

    /// Waits for an event at `level` whose text contains `needle`.
    async fn wait_for(&self, level: &str, needle: &str) -> String {
        let (level, needle) = (format!(" {level} "), needle.to_owned());
        wait_for(
            Duration::from_secs(20),
            &format!("a{level}event with {needle:?}"),
            || {
                let found = self
                    .events()
                    .into_iter()
                    .find(|e| e.get(..40).unwrap_or(e).contains(&level) && e.contains(&needle));
                async move { found }
            },
        )
        .await
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn javascript_errors_of_owned_hosts_reach_tracing() {
    run_isolated("output::isolated_owned_errors", &[], &[]);
}

#[tokio::test]
#[ignore = "run alone in a child process by javascript_errors_of_owned_hosts_reach_tracing"]
async fn isolated_owned_errors() {
    let captured = Captured::install();
    let fixture = noisy("owned-errors");
    let watch = host_under_test() == Host::JshostNode;
    let host = JsHost::spawn(fixture.settings().watch(watch)).await.unwrap();
    host.function("complain")
        .call(&serde_json::json!({"what": "the soup is cold"}))
        .await
        .unwrap();
    let event = captured.wait_for("WARN", "complaint: the soup is cold").await;
    println!("seen: {event}");
    if watch {
        // A syntax error saved into the watched config: the old generation keeps serving, and
        // the error (with file and line) reaches this program as an error event.
        let good = std::fs::read_to_string(&fixture.config).unwrap();
        std::fs::write(&fixture.config, format!("{good}\nmodule.exports = {{ port: ;\n")).unwrap();
        let event = captured.wait_for("ERROR", "SyntaxError").await;
        println!("seen: {event}");
        let text = captured.text();
        assert!(text.contains(fixture.config.to_str().unwrap()), "{text}");
        assert_eq!(
            host.function("hello_world").call(&()).await.unwrap(),
            "Hello, World!"
        );
    }
    drop(host);
    assert_eq!(
        node_processes_left(fixture.dir().to_str().unwrap(), Duration::from_secs(5)).await,
        0
    );
}

#[test]
fn javascript_errors_of_managed_hosts_reach_tracing() {
    run_isolated("output::isolated_managed_errors", &[], &[]);
}

#[tokio::test]
#[ignore = "run alone in a child process by javascript_errors_of_managed_hosts_reach_tracing"]
async fn isolated_managed_errors() {
    if host_under_test() != Host::JshostNode {
        println!("js-host 0.12 has no --watch; its managed hosts' logfile is followed the same way");
    }
    let captured = Captured::install();
    let fixture = noisy("managed-errors");
    let watch = host_under_test() == Host::JshostNode;
    let host = JsHost::connect(fixture.settings().use_manager(true).watch(watch))
        .await
        .unwrap();
    host.function("complain")
        .call(&serde_json::json!({"what": "managed and cold"}))
        .await
        .unwrap();
    if watch {
        let good = std::fs::read_to_string(&fixture.config).unwrap();
        std::fs::write(&fixture.config, format!("{good}\nmodule.exports = {{ port: ;\n")).unwrap();
        let event = captured.wait_for("ERROR", "SyntaxError").await;
        println!("seen: {event}");
        assert_eq!(
            host.function("hello_world").call(&()).await.unwrap(),
            "Hello, World!"
        );
    } else {
        // js-host logs a function's error in its logfile: it reaches tracing as an error.
        let e = host
            .function("fail")
            .call(&serde_json::json!({"message": "in the managed log"}))
            .await
            .unwrap_err();
        assert!(e.is_function());
        let event = captured.wait_for("ERROR", "boom: in the managed log").await;
        println!("seen: {event}");
    }
    host.stop().await.unwrap();
    drop(host);
    drop(fixture);
}
