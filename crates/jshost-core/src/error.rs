//! The one error type of the jshost crates.

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A boxed error that caused an [`Error`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is.
///
/// Prefer the predicates on [`Error`] (`is_timeout()` ...) to matching on this enum; new kinds may be
/// added in minor releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The settings, the config file, node, or the js-host install are wrong; or the process that
    /// answers is not the expected js-host, or its TLS certificate is refused.
    Config,
    /// Nothing (or not the expected host) answered at a URL, or the connection broke.
    Connection,
    /// The JavaScript function reported an error (HTTP 500); the JS stack is kept.
    Function,
    /// The function name is not in the host's list of functions; nothing was sent.
    UnknownFunction,
    /// The call or the start-up did not finish before its deadline.
    Timeout,
    /// The call was cancelled through a `CancellationToken`.
    Cancelled,
    /// The host answered with an HTTP status other than 200 and 500.
    UnexpectedResponse,
    /// A host or manager process failed to start, exited, or crashed.
    Process,
    /// The data given to a call could not be encoded as a JSON object or array; nothing was sent.
    Encode,
    /// The response could not be decoded as UTF-8 text or as the requested JSON type.
    Decode,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::Config => "configuration error",
            ErrorKind::Connection => "connection error",
            ErrorKind::Function => "function error",
            ErrorKind::UnknownFunction => "unknown function",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::UnexpectedResponse => "unexpected response",
            ErrorKind::Process => "process error",
            ErrorKind::Encode => "cannot encode request data",
            ErrorKind::Decode => "cannot decode response",
        }
    }
}

/// The error returned by every fallible jshost operation.
///
/// It carries what is known about the failure: the function, URL, HTTP status, response body,
/// the JavaScript stack and the host's logfile. `Display` prints one line of context (plus the JS
/// stack for function errors); the underlying cause, if any, is available via
/// [`std::error::Error::source`] and is not repeated in `Display`.
///
/// A clone is the same failure with all it carries (its cause is shared): a request that carried
/// several calls gives each of them its failure.
#[derive(Clone)]
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    message: String,
    function: Option<String>,
    url: Option<String>,
    status: Option<u16>,
    body: Option<String>,
    js_stack: Option<String>,
    logfile: Option<PathBuf>,
    not_sent: bool,
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
}

/// Building an [`Error`]: for the SDK's own crates (`use jshost_core::error::Build as _;`), not
/// part of the public API. The `jshost` crate does not re-export it, so a user of `jshost`
/// reads errors (their kind, URL, JS stack...) and never makes one.
pub trait Build: Sized {
    /// An error of `kind` with a message saying what happened.
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self;

    /// Shorthand for `Error::new(ErrorKind::Config, message)`.
    fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// Shorthand for `Error::new(ErrorKind::Connection, message)`.
    fn connection(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Connection, message)
    }

    /// Shorthand for `Error::new(ErrorKind::Process, message)`.
    fn process(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Process, message)
    }

    /// Attaches the name of the function involved.
    #[must_use]
    fn with_function(self, name: impl Into<String>) -> Self;

    /// Attaches the URL involved.
    #[must_use]
    fn with_url(self, url: impl Into<String>) -> Self;

    /// Attaches an HTTP status code.
    #[must_use]
    fn with_status(self, status: u16) -> Self;

    /// Attaches a response body (for function errors: the JS stack text).
    #[must_use]
    fn with_body(self, body: impl Into<String>) -> Self;

    /// Attaches the JavaScript stack of a function error, when it differs from the body (the
    /// body was an HTML page).
    #[must_use]
    fn with_js_stack(self, stack: impl Into<String>) -> Self;

    /// Attaches the logfile of the host or manager involved.
    #[must_use]
    fn with_logfile(self, path: impl Into<PathBuf>) -> Self;

    /// Marks the error as happening before the request was sent (the connection could not be
    /// made, or the host is known to be down): see [`Error::is_not_sent`].
    #[must_use]
    fn with_not_sent(self) -> Self;

    /// Attaches the underlying cause, returned by `source()`.
    #[must_use]
    fn with_source(self, source: impl Into<BoxError>) -> Self;

    /// Prefixes the message with more context.
    #[must_use]
    fn context(self, context: impl fmt::Display) -> Self;
}

impl Build for Error {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                function: None,
                url: None,
                status: None,
                body: None,
                js_stack: None,
                logfile: None,
                not_sent: false,
                source: None,
            }),
        }
    }

    fn with_function(mut self, name: impl Into<String>) -> Self {
        self.inner.function = Some(name.into());
        self
    }

    fn with_url(mut self, url: impl Into<String>) -> Self {
        self.inner.url = Some(url.into());
        self
    }

    fn with_status(mut self, status: u16) -> Self {
        self.inner.status = Some(status);
        self
    }

    fn with_body(mut self, body: impl Into<String>) -> Self {
        self.inner.body = Some(body.into());
        self
    }

    fn with_js_stack(mut self, stack: impl Into<String>) -> Self {
        self.inner.js_stack = Some(stack.into());
        self
    }

    fn with_logfile(mut self, path: impl Into<PathBuf>) -> Self {
        self.inner.logfile = Some(path.into());
        self
    }

    fn with_not_sent(mut self) -> Self {
        self.inner.not_sent = true;
        self
    }

    fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(Arc::from(source.into()));
        self
    }

    fn context(mut self, context: impl fmt::Display) -> Self {
        self.inner.message = format!("{context}: {}", self.inner.message);
        self
    }
}

/// What an error says: its kind and what it carries.
impl Error {
    /// Whether the request was never sent (the host could not be reached), so trying it on
    /// another host cannot run the function twice.
    pub fn is_not_sent(&self) -> bool {
        self.inner.not_sent
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The message, without the kind, URL or JS stack.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The function that was called, if the error concerns a call.
    pub fn function_name(&self) -> Option<&str> {
        self.inner.function.as_deref()
    }

    /// The URL that was requested, if any.
    pub fn url(&self) -> Option<&str> {
        self.inner.url.as_deref()
    }

    /// The HTTP status of the response, for function errors and unexpected responses.
    pub fn status(&self) -> Option<u16> {
        self.inner.status
    }

    /// The response body, for function errors (the JS stack) and unexpected responses.
    pub fn body(&self) -> Option<&str> {
        self.inner.body.as_deref()
    }

    /// The JavaScript stack text of a function error (`Error: boom\n    at ...`).
    ///
    /// It is plain text even when the host answered with an HTML error page (js-host does for a
    /// function that throws synchronously).
    pub fn js_stack(&self) -> Option<&str> {
        if self.is_function() {
            self.inner.js_stack.as_deref().or(self.inner.body.as_deref())
        } else {
            None
        }
    }

    /// The logfile of the host or manager involved, when one is known.
    pub fn logfile(&self) -> Option<&Path> {
        self.inner.logfile.as_deref()
    }

    /// Settings, config file, node, js-host install, or the version/status of what answered is
    /// wrong, or its TLS certificate is refused.
    pub fn is_config(&self) -> bool {
        self.inner.kind == ErrorKind::Config
    }

    /// Nothing (or something unexpected) answered at the host's URL, or the connection broke.
    pub fn is_connection(&self) -> bool {
        self.inner.kind == ErrorKind::Connection
    }

    /// The JavaScript function failed; see [`Error::js_stack`].
    pub fn is_function(&self) -> bool {
        self.inner.kind == ErrorKind::Function
    }

    /// The function name is not served by the host; nothing was sent.
    pub fn is_unknown_function(&self) -> bool {
        self.inner.kind == ErrorKind::UnknownFunction
    }

    /// A deadline passed (function timeout or start-up timeout).
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::Timeout
    }

    /// The call was cancelled through its `CancellationToken`.
    pub fn is_cancelled(&self) -> bool {
        self.inner.kind == ErrorKind::Cancelled
    }

    /// The host answered with a status other than 200 or 500; see [`Error::status`] and [`Error::body`].
    pub fn is_unexpected_response(&self) -> bool {
        self.inner.kind == ErrorKind::UnexpectedResponse
    }

    /// A host or manager process failed to start, exited or crashed; see [`Error::logfile`].
    pub fn is_process(&self) -> bool {
        self.inner.kind == ErrorKind::Process
    }

    /// The call's data could not be encoded; nothing was sent.
    pub fn is_encode(&self) -> bool {
        self.inner.kind == ErrorKind::Encode
    }

    /// The response could not be decoded as text or as the requested type.
    pub fn is_decode(&self) -> bool {
        self.inner.kind == ErrorKind::Decode
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.write_str(i.kind.describe())?;
        if let Some(function) = &i.function {
            write!(f, " in function `{function}`")?;
        }
        write!(f, ": {}", i.message)?;
        if let Some(url) = &i.url {
            if !i.message.contains(url.as_str()) {
                write!(f, " (url: {url})")?;
            }
        }
        if let Some(logfile) = &i.logfile {
            let shown = logfile.display().to_string();
            if !i.message.contains(&shown) {
                write!(f, " (logfile: {shown})")?;
            }
        }
        match (i.kind, &i.body) {
            (ErrorKind::Function, Some(body)) => {
                let stack = i.js_stack.as_deref().unwrap_or(body);
                write!(f, "\n{}", stack.trim_end())?
            }
            (ErrorKind::UnexpectedResponse, Some(body)) if !i.message.contains(body.as_str()) => {
                write!(f, ": {}", excerpt(body, 300))?
            }
            _ => {}
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let mut d = f.debug_struct("Error");
        d.field("kind", &i.kind).field("message", &i.message);
        if let Some(v) = &i.function {
            d.field("function", v);
        }
        if let Some(v) = &i.url {
            d.field("url", v);
        }
        if let Some(v) = &i.status {
            d.field("status", v);
        }
        if let Some(v) = &i.body {
            d.field("body", &excerpt(v, 2000));
        }
        if let Some(v) = &i.logfile {
            d.field("logfile", v);
        }
        if let Some(v) = &i.source {
            d.field("source", v);
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|e| &**e as &(dyn StdError + 'static))
    }
}

/// The first `max` characters of `text`, with `...` when cut (on a character boundary).
#[doc(hidden)]
pub fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_and_small() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn function_error_display_keeps_the_stack() {
        let e = Error::new(ErrorKind::Function, "the function reported an error")
            .with_function("fail")
            .with_status(500)
            .with_body("Error: boom\n    at fail (host.config.js:3:9)");
        let text = e.to_string();
        assert!(text.contains("`fail`"), "{text}");
        assert!(text.contains("at fail (host.config.js:3:9)"), "{text}");
        assert_eq!(
            e.js_stack(),
            Some("Error: boom\n    at fail (host.config.js:3:9)")
        );
        assert!(e.is_function() && !e.is_timeout());
    }

    #[test]
    fn display_does_not_repeat_the_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused-xyz");
        let e = Error::connection("nothing answers").with_source(io);
        assert!(!e.to_string().contains("refused-xyz"));
        assert!(e.source().is_some());
    }

    #[test]
    fn excerpt_cuts_on_char_boundaries() {
        assert_eq!(excerpt("héllo", 2), "hé...");
        assert_eq!(excerpt("hi", 5), "hi");
    }
}
