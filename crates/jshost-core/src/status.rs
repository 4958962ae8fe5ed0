//! The status document a js-host process reports (`GET /status`, `--config`, `--json`).

use crate::error::Build as _;
use crate::{Error, Result};
use serde_json::Value;

/// The js-host release line this SDK speaks to.
pub const SUPPORTED_VERSION_PREFIX: &str = "0.12.";

/// What a js-host process says about itself: `{"type", "version", "config"}`.
///
/// Two statuses are equal when their JSON values are equal (key order does not matter). A host
/// "is ours" when its live status equals the status computed from our config file.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    value: Value,
}

impl Status {
    /// Parses a status from JSON text (the first JSON line of the given text is used).
    ///
    /// # Errors
    /// A config error when the text is not a status document.
    pub fn parse(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        let value: Value = serde_json::from_str(trimmed)
            .or_else(|first| {
                // Tolerate other lines (warnings, logs) around the JSON line.
                trimmed
                    .lines()
                    .find_map(|line| {
                        serde_json::from_str::<Value>(line.trim())
                            .ok()
                            .filter(Value::is_object)
                    })
                    .ok_or(first)
            })
            .map_err(|e| {
                Error::config(format!(
                    "expected a js-host status as JSON, got: {}",
                    crate::error::excerpt(trimmed, 500)
                ))
                .with_source(e)
            })?;
        Self::from_value(value)
    }

    /// Wraps a JSON value that must be an object with `type`, `version` and `config`.
    ///
    /// # Errors
    /// A config error when a field is missing.
    pub fn from_value(value: Value) -> Result<Self> {
        let ok = value.get("type").and_then(Value::as_str).is_some()
            && value.get("version").and_then(Value::as_str).is_some()
            && value.get("config").map(Value::is_object).unwrap_or(false);
        if !ok {
            return Err(Error::config(format!(
                "not a js-host status (needs `type`, `version` and `config`): {}",
                crate::error::excerpt(&value.to_string(), 500)
            )));
        }
        Ok(Status { value })
    }

    /// `"Host"` or `"Manager"`.
    pub fn kind(&self) -> &str {
        self.value["type"].as_str().unwrap_or_default()
    }

    /// Whether the process is a manager (`type: "Manager"`), not a host.
    pub fn is_manager(&self) -> bool {
        self.kind() == "Manager"
    }

    /// The js-host version, e.g. `"0.12.0"`.
    pub fn version(&self) -> &str {
        self.value["version"].as_str().unwrap_or_default()
    }

    /// Whether [`Status::version`] is a 0.12.x release, the protocol this SDK speaks.
    pub fn is_supported_version(&self) -> bool {
        self.version().starts_with(SUPPORTED_VERSION_PREFIX)
    }

    /// The serialised config (`address`, `port`, `functions`, and any user keys).
    pub fn config(&self) -> &Value {
        &self.value["config"]
    }

    /// The address the process listens on (js-host's default is `127.0.0.1`).
    pub fn address(&self) -> &str {
        self.config()["address"].as_str().unwrap_or("127.0.0.1")
    }

    /// The port, which js-host reports as a number or, for its default, as a string.
    pub fn port(&self) -> Option<u16> {
        match &self.config()["port"] {
            Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The root URL the status describes, `http://ADDRESS:PORT` (`http://[::1]:PORT` for an
    /// IPv6 address).
    pub fn url(&self) -> Option<String> {
        let address = self.address();
        self.port().map(|port| {
            if address.contains(':') && !address.starts_with('[') {
                format!("http://[{address}]:{port}")
            } else {
                format!("http://{address}:{port}")
            }
        })
    }

    /// The largest request body the host accepts, in bytes: its `requestDataLimit` (`"10mb"`,
    /// `"512kb"`, a number of bytes; the units of the `bytes` npm package, 1 kb = 1024 b).
    /// `None` when it cannot be read.
    pub fn request_data_limit(&self) -> Option<u64> {
        match &self.config()["requestDataLimit"] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => parse_size(s),
            _ => None,
        }
    }

    /// The names of the functions a host serves (empty for a manager).
    pub fn functions(&self) -> Vec<String> {
        self.config()["functions"]
            .as_array()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the host serves a function of that name.
    pub fn has_function(&self, name: &str) -> bool {
        self.config()["functions"]
            .as_array()
            .map(|names| names.iter().any(|n| n.as_str() == Some(name)))
            .unwrap_or(false)
    }

    /// The whole status document.
    pub fn as_value(&self) -> &Value {
        &self.value
    }

    /// A copy of this status with another port: what a host started with `--port N` reports.
    #[must_use]
    pub fn with_port(&self, port: u16) -> Status {
        let mut value = self.value.clone();
        value["config"]["port"] = Value::from(port);
        Status { value }
    }

    /// A copy of this status with another `type` (a manager's status from a host's, and back).
    #[must_use]
    pub fn with_kind(&self, kind: &str) -> Status {
        let mut value = self.value.clone();
        value["type"] = Value::from(kind);
        Status { value }
    }
}

/// `"10mb"` → 10485760 (units b, kb, mb, gb, tb, case-insensitive, optional space, decimals).
fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: f64 = number.parse().ok()?;
    let scale: f64 = match unit.trim() {
        "" | "b" => 1.0,
        "kb" => 1024.0,
        "mb" => 1024.0 * 1024.0,
        "gb" => 1024.0 * 1024.0 * 1024.0,
        "tb" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = (number * scale).floor();
    (bytes.is_finite() && bytes >= 0.0).then_some(bytes as u64)
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_PORT: &str = r#"{"type":"Host","version":"0.12.0","config":{"functions":["a","b"],"address":"127.0.0.1","port":"9009","requestDataLimit":"10mb"}}"#;

    #[test]
    fn port_may_be_a_string_or_a_number() {
        let s = Status::parse(DEFAULT_PORT).expect("valid");
        assert_eq!(s.port(), Some(9009));
        assert_eq!(s.url().as_deref(), Some("http://127.0.0.1:9009"));
        assert_eq!(s.with_port(8123).port(), Some(8123));
        assert!(s.is_supported_version());
        assert_eq!(s.functions(), vec!["a", "b"]);
        assert!(s.has_function("b") && !s.has_function("c"));
    }

    #[test]
    fn request_data_limit_reads_the_bytes_units() {
        let s = Status::parse(DEFAULT_PORT).expect("valid");
        assert_eq!(s.request_data_limit(), Some(10 * 1024 * 1024));
        assert_eq!(parse_size("512kb"), Some(512 * 1024));
        assert_eq!(parse_size("1.5 MB"), Some(1_572_864));
        assert_eq!(parse_size("2048"), Some(2048));
        assert_eq!(parse_size("ten"), None);
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        let s = Status::parse(r#"{"type":"Host","version":"0.12.0","config":{"address":"::1","port":8123}}"#)
            .expect("valid");
        assert_eq!(s.url().as_deref(), Some("http://[::1]:8123"));
    }

    #[test]
    fn equality_ignores_key_order() {
        let a = Status::parse(DEFAULT_PORT).expect("valid");
        let b = Status::parse(r#"{"config":{"port":"9009","requestDataLimit":"10mb","address":"127.0.0.1","functions":["a","b"]},"version":"0.12.0","type":"Host"}"#).expect("valid");
        assert_eq!(a, b);
        assert_ne!(a, a.with_port(1));
    }

    #[test]
    fn parse_skips_a_warning_line_and_rejects_junk() {
        let text = format!("(node:1) Warning: padLevels\n{DEFAULT_PORT}\n");
        assert!(Status::parse(&text).is_ok());
        let err = Status::parse("Host listening at 127.0.0.1:9009").expect_err("not json");
        assert!(err.is_config());
        assert!(Status::parse(r#"{"type":"Host"}"#)
            .expect_err("no config")
            .is_config());
    }
}
