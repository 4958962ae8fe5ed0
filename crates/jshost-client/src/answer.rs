//! From a host's answer to a call's result: one mapping for plain calls and for the items of a
//! batch, so that a call gives the same result and the same error (kind, function, URL, status,
//! body, JS stack) however it travelled.

use crate::unix::display_url;
use bytes::Bytes;
use jshost_core::error::Build as _;
use jshost_core::{Error, ErrorKind, Result};
use std::time::Duration;

/// The header carrying a plain call's deadline to the host, in milliseconds (jshost-node's wire
/// contract; js-host ignores it).
pub const TIMEOUT_HEADER: &str = "x-jshost-timeout";

/// The header of a `503` by which jshost-node says it did not run the request (it is shutting
/// down): the request may be sent again.
pub const NOT_RUN_HEADER: &str = "x-jshost-not-run";

/// Node's timers fire at once for any delay above this many milliseconds: a deadline further
/// away is sent as no deadline at all (the SDK still enforces it).
const MAX_HOST_TIMEOUT_MS: u128 = 2_147_483_647;

/// What the host is told of a deadline `left` away: whole milliseconds, rounded up, at least 1;
/// `None` (no host timer) when it is further than Node's timers reach.
pub fn host_timeout_ms(left: Duration) -> Option<u64> {
    let ms = left.as_nanos().div_ceil(1_000_000).max(1);
    if ms > MAX_HOST_TIMEOUT_MS {
        return None;
    }
    u64::try_from(ms).ok()
}

/// The result of the call of `function` for the host's answer `status` and `body`.
///
/// `url` gives the call's URL (`{root}/function/NAME?hash=...`), worked out only for an error and
/// shown as people know it (`unix:PATH` for a socket host).
///
/// - 200: the output text (a decode error when it is not UTF-8);
/// - 500: a function error with the JS stack (plain text, also from js-host's HTML error page);
/// - 504: a timeout error (the host's timer for the call's deadline, or a gateway's);
/// - 404 naming an unknown function: an unknown-function error;
/// - anything else: an unexpected response with status and body.
pub fn call_result(status: u16, body: Bytes, function: &str, url: impl FnOnce() -> String) -> Result<String> {
    if status == 200 {
        // `Vec::from(Bytes)` reuses the buffer when it is not shared: no copy of the output.
        return String::from_utf8(Vec::from(body)).map_err(|e| {
            Error::new(ErrorKind::Decode, "the function's output is not UTF-8 text")
                .with_function(function)
                .with_url(display_url(&url()).as_ref())
                .with_source(e)
        });
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let error = match status {
        500 => {
            let error = Error::new(ErrorKind::Function, "the function reported an error");
            match stack_from_html(&text) {
                Some(stack) => error.with_js_stack(stack),
                None => error,
            }
        }
        504 => Error::new(
            ErrorKind::Timeout,
            "the host answered that the call did not finish in time",
        ),
        404 if text.starts_with("Not found. Unknown function") => Error::new(
            ErrorKind::UnknownFunction,
            "the host has no function of that name (any more)",
        ),
        status => Error::new(
            ErrorKind::UnexpectedResponse,
            match crate::auth_hint(status) {
                Some(hint) => format!("the host answered with HTTP {status}: {hint}"),
                None => format!("the host answered with HTTP {status}"),
            },
        ),
    };
    Err(error
        .with_function(function)
        .with_url(display_url(&url()).as_ref())
        .with_status(status)
        .with_body(text))
}

/// The error of a request to `url` (a call, a probe, a manager request) that got no answer
/// within `timeout`: the one timeout error of the protocol.
pub(crate) fn no_answer(url: &str, timeout: Duration) -> Error {
    let url = display_url(url);
    Error::new(
        ErrorKind::Timeout,
        format!("no answer from {url} within {timeout:?}"),
    )
    .with_url(url.as_ref())
}

/// The error of a call of `function` at `url` that got no answer within `timeout`.
pub fn call_timeout(function: &str, url: &str, timeout: Duration) -> Error {
    no_answer(url, timeout).with_function(function)
}

/// The stack text of an HTML error page (js-host 0.12 answers a synchronous throw with Express's
/// page: the stack in a `<pre>`, lines joined by `<br>`, indented with `&nbsp;`); `None` for a
/// body that is no such page.
pub(crate) fn stack_from_html(body: &str) -> Option<String> {
    let start = body.find("<pre>")? + "<pre>".len();
    let end = start + body[start..].find("</pre>")?;
    let text = body[start..end]
        .replace("<br>", "\n")
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_past_nodes_timers_are_sent_as_none() {
        assert_eq!(host_timeout_ms(Duration::ZERO), Some(1));
        assert_eq!(host_timeout_ms(Duration::from_micros(1)), Some(1));
        assert_eq!(host_timeout_ms(Duration::from_micros(1_500)), Some(2));
        assert_eq!(
            host_timeout_ms(Duration::from_millis(2_147_483_647)),
            Some(2_147_483_647)
        );
        assert_eq!(host_timeout_ms(Duration::from_millis(2_147_483_648)), None);
        assert_eq!(host_timeout_ms(Duration::from_secs(30 * 24 * 3600)), None);
        assert_eq!(host_timeout_ms(Duration::MAX), None);
    }

    #[test]
    fn answers_map_to_one_result_whatever_carried_them() {
        let url = || "http://2f746d702f682e736f636b.sock/function/f?hash=1".to_owned();
        assert_eq!(
            call_result(200, Bytes::from_static(b"ok"), "f", url).expect("ok"),
            "ok"
        );
        let e = call_result(500, Bytes::from_static(b"Error: boom\n    at f"), "f", url).expect_err("500");
        assert!(e.is_function(), "{e:?}");
        assert_eq!(e.js_stack(), Some("Error: boom\n    at f"));
        assert_eq!(e.url(), Some("unix:/tmp/h.sock/function/f?hash=1"));
        assert_eq!((e.function_name(), e.status()), (Some("f"), Some(500)));
        let e = call_result(
            404,
            Bytes::from_static(b"Not found. Unknown function \"f\""),
            "f",
            url,
        )
        .expect_err("404");
        assert!(e.is_unknown_function(), "{e:?}");
        let e = call_result(404, Bytes::from_static(b"Cannot POST /x"), "f", url).expect_err("404");
        assert!(e.is_unexpected_response(), "{e:?}");
        let e = call_result(504, Bytes::from_static(b"late"), "f", url).expect_err("504");
        assert!(e.is_timeout() && e.status() == Some(504), "{e:?}");
        let e = call_result(200, Bytes::from_static(&[0xff]), "f", url).expect_err("utf-8");
        assert!(e.is_decode(), "{e:?}");
    }
}
