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
    let body = String::from_utf8_lossy(body);
    // A long bracket whose closing form does not occur in the body.
    let mut level = 0;
    while body.contains(&format!("]{}]", "=".repeat(level))) {
        level += 1;
    }
    let eq = "=".repeat(level);
    format!(
        "-- jshost-bench: the same request the SDK sends.\n\
         wrk.method = \"POST\"\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.body = [{eq}[{body}]{eq}]\n"
    )
}

/// Runs `wrk -t THREADS -c CONNECTIONS -d SECONDS --latency -s SCRIPT URL`.
pub async fn run(
    wrk: &Path,
    script: &Path,
    url: &str,
    connections: usize,
    seconds: u64,
) -> Result<WrkResult> {
    let threads = connections.clamp(1, 2);
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
        let s = script(br#"{"a":[[1]]}"#);
        assert!(s.contains("wrk.body = [=[{\"a\":[[1]]}]=]"), "{s}");
    }
}
