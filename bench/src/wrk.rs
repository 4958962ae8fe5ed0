//! `wrk`, a C load generator, posting the bytes the SDK would send to the same URL.

use crate::measure::Fig;
use anyhow::{bail, Context, Result};
use std::time::Duration;

/// Runs `wrk -t1 -cCONNECTIONS` for `length` posting `body` as JSON to `url`, with the
/// `X-Jshost-Timeout` header the SDK sends with a 10 s deadline.
pub async fn run(url: &str, body: &[u8], connections: usize, length: Duration) -> Result<Fig> {
    let dir = crate::work_dir();
    let (body_file, script) = (dir.join(format!("wrk-{}.body", body.len())), dir.join("wrk.lua"));
    std::fs::write(&body_file, body)?;
    let lua = format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.headers[\"X-Jshost-Timeout\"] = \"10000\"\nwrk.body = io.open({:?}, \"rb\"):read(\"*a\")\n",
        body_file.display().to_string()
    );
    std::fs::write(&script, lua)?;
    let out = tokio::process::Command::new("wrk")
        .arg("-t1")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", length.as_secs().max(1)))
        .args(["--latency", "-s"])
        .arg(&script)
        .arg(url)
        .kill_on_drop(true)
        .output()
        .await
        .context("running wrk (install it: apt-get install wrk)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!("wrk failed ({}): {stdout}{stderr}", out.status);
    }
    let after = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(str::trim)
    };
    let rate = after("Requests/sec:").and_then(|v| v.parse::<f64>().ok());
    let rate = rate.with_context(|| format!("no Requests/sec in wrk's output:\n{stdout}"))?;
    // Answers other than 2xx and socket errors (connect, read, write, timeout) are failed calls.
    let numbers = |v: &str| {
        v.split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse::<u64>().ok())
            .sum()
    };
    let failed =
        after("Non-2xx or 3xx responses:").map_or(0, numbers) + after("Socket errors:").map_or(0, numbers);
    let percentile = |p: &str| after(p).and_then(parse_duration).unwrap_or_default();
    Ok(Fig {
        rate,
        p50: percentile("50%"),
        p99: percentile("99%"),
        failed,
        ..Fig::default()
    })
}

/// wrk's `120.00us`, `1.23ms`, `2.00s`, `1.00m`.
fn parse_duration(text: &str) -> Option<Duration> {
    let (number, scale) = [("us", 1e-6), ("ms", 1e-3), ("s", 1.0), ("m", 60.0)]
        .into_iter()
        .find_map(|(unit, scale)| Some((text.strip_suffix(unit)?, scale)))?;
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
        assert_eq!(parse_duration("1.00m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("x"), None);
    }
}
