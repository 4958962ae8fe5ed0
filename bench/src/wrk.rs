//! The `wrk` reference: a C load generator posting the same body to the same URL.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What one wrk run measured.
#[derive(Debug, Clone)]
pub struct WrkResult {
    pub connections: usize,
    pub threads: usize,
    pub seconds: u64,
    pub rate: f64,
    /// Requests completed (wrk's `N requests in ...`).
    pub requests: Option<u64>,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
}

/// `wrk`'s path, when it is installed (`which wrk`).
pub fn find() -> Option<PathBuf> {
    let out = std::process::Command::new("which").arg("wrk").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// `wrk -v`'s first line (`wrk 4.1.0 [epoll] ...`).
pub fn version(wrk: &Path) -> Option<String> {
    let out = std::process::Command::new(wrk).arg("-v").output().ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .next()
        .map(|l| l.split(" Copyright").next().unwrap_or(l).trim().to_owned())
}

/// A Lua script making wrk post `body` as JSON.
pub fn script(body: &[u8]) -> String {
    format!(
        "-- jshost-bench: the same request the SDK sends.\n\
         wrk.method = \"POST\"\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.body = {}\n",
        lua_string(body)
    )
}

/// `bytes` as a quoted Lua string: printable ASCII as is (but `"` and `\`), every other byte as a
/// decimal escape (`\ddd`), so any body, whatever it contains or ends with, is sent byte for byte.
fn lua_string(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        if (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\{b:03}"));
        }
    }
    out.push('"');
    out
}

/// Runs `wrk -t THREADS -c CONNECTIONS -d SECONDS --latency -s SCRIPT URL`.
pub async fn run(
    wrk: &Path,
    script: &Path,
    url: &str,
    threads: usize,
    connections: usize,
    seconds: u64,
) -> Result<WrkResult> {
    let threads = threads.clamp(1, connections.max(1));
    let out = tokio::process::Command::new(wrk)
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if let Some(line) = stdout
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
    {
        bail!("wrk saw failures: {}\n{stdout}", line.trim());
    }
    let rate = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{stdout}"))?;
    let requests = stdout.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        let n = words.next()?.parse::<u64>().ok()?;
        (words.next() == Some("requests")).then_some(n)
    });
    let percentile = |p: &str| {
        stdout.lines().find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(p))
                .then(|| words.next().and_then(parse_duration))
                .flatten()
        })
    };
    Ok(WrkResult {
        connections,
        threads,
        seconds,
        rate,
        requests,
        p50: percentile("50%"),
        p99: percentile("99%"),
    })
}

/// wrk's `120.00us`, `1.23ms`, `2.00s`.
fn parse_duration(text: &str) -> Option<Duration> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    number
        .parse::<f64>()
        .ok()
        .map(|v| Duration::from_secs_f64(v * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_durations() {
        assert_eq!(parse_duration("120.00us"), Some(Duration::from_micros(120)));
        assert_eq!(parse_duration("1.50ms"), Some(Duration::from_micros(1500)));
        assert_eq!(parse_duration("2.00s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("x"), None);
    }

    #[test]
    fn the_script_quotes_any_body() {
        let s = script(br#"[{"a":[[1]]}]"#);
        assert!(s.contains(r#"wrk.body = "[{\034a\034:[[1]]}]""#), "{s}");
        assert_eq!(lua_string("é\\\n".as_bytes()), r#""\195\169\092\010""#);
    }
}
