//! [`Function`]: a named JavaScript function of a host, and its calls.

use crate::{default_host, JsHost};
use bytes::Bytes;
use jshost_core::error::Build as _;
use jshost_core::{Error, ErrorKind, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A function of a js-host's config, ready to be called.
///
/// Get one from [`JsHost::function`], or with [`Function::new`] for the process-wide host set by
/// [`crate::configure`]. Cheap to clone (the name is shared and the host is a handle).
///
/// ```no_run
/// # async fn demo(host: jshost::JsHost) -> Result<(), jshost::Error> {
/// use serde_json::json;
/// let hello = host.function("hello_world");
/// assert_eq!(hello.call(&json!({"name": "Foo"})).await?, "Hello, Foo!");
/// let quick = hello.timeout(std::time::Duration::from_millis(200));
/// let text = quick.call(&()).await?; // `()` sends `{}`
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Function {
    name: Arc<str>,
    host: Option<JsHost>,
    timeout: Option<Duration>,
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .field("host", &self.host.as_ref().map(JsHost::url))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Function {
    /// A function of the process-wide host set by [`crate::configure`] (looked up at call time).
    pub fn new(name: impl Into<String>) -> Self {
        Function {
            name: Arc::from(name.into()),
            host: None,
            timeout: None,
        }
    }

    pub(crate) fn on(host: JsHost, name: &str) -> Self {
        Function {
            name: Arc::from(name),
            host: Some(host),
            timeout: None,
        }
    }

    /// Binds the function to `host` instead of the process-wide one.
    #[must_use]
    pub fn with_host(mut self, host: JsHost) -> Self {
        self.host = Some(host);
        self
    }

    /// The function's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host the function is bound to (`None`: the process-wide host).
    pub fn host(&self) -> Option<&JsHost> {
        self.host.as_ref()
    }

    /// A copy of this function whose calls time out after `timeout` instead of the settings'
    /// `function_timeout` (default 10 s).
    #[must_use]
    pub fn timeout(&self, timeout: Duration) -> Function {
        Function {
            timeout: Some(timeout),
            ..self.clone()
        }
    }

    /// Calls the function with `data` serialised as JSON and returns its output text.
    ///
    /// `data` must serialise to a JSON object or array (js-host's rule); `()` or `None` sends `{}`.
    /// The request is `POST /function/NAME?hash=SHA1` where the hash is of the exact body bytes.
    ///
    /// # Errors
    /// - [`Error::is_unknown_function`]: the host has no such function; nothing was sent;
    /// - [`Error::is_encode`]: `data` is not an object or array, or cannot be serialised;
    /// - [`Error::is_function`]: the JS function failed; [`Error::js_stack`] has its stack;
    /// - [`Error::is_timeout`]: no answer within the timeout;
    /// - [`Error::is_unexpected_response`]: another HTTP status (413 for a body over the host's
    ///   `requestDataLimit`...);
    /// - [`Error::is_process`]: the managed or owned host has crashed (the error names its logfile);
    /// - [`Error::is_connection`]: nothing answers at the host's URL.
    ///
    /// # Cancel safety
    /// Dropping the future abandons the call at once; the pool stays healthy.
    pub async fn call<T: Serialize + ?Sized>(&self, data: &T) -> Result<String> {
        let body = self.encode(data)?;
        self.send(body).await
    }

    /// Like [`Function::call`], then parses the output as JSON into `R`.
    ///
    /// # Errors
    /// As [`Function::call`], and [`Error::is_decode`] when the output is not JSON of type `R`
    /// (the message shows the start of the output).
    ///
    /// # Cancel safety
    /// As [`Function::call`].
    pub async fn call_json<R: DeserializeOwned, T: Serialize + ?Sized>(&self, data: &T) -> Result<R> {
        let text = self.call(data).await?;
        serde_json::from_str(&text).map_err(|e| {
            Error::new(
                ErrorKind::Decode,
                format!(
                    "the output is not JSON of type {} ({e}); it starts with: {:?}",
                    std::any::type_name::<R>(),
                    jshost_core::error::excerpt(&text, 200)
                ),
            )
            .with_function(self.name.as_ref())
            .with_source(e)
        })
    }

    /// Like [`Function::call`], but ends early with [`Error::is_cancelled`] when `token` is
    /// cancelled.
    ///
    /// # Errors
    /// As [`Function::call`], and a cancelled error.
    ///
    /// # Cancel safety
    /// As [`Function::call`].
    pub async fn call_with_cancel<T: Serialize + ?Sized>(
        &self,
        data: &T,
        token: &CancellationToken,
    ) -> Result<String> {
        // Dropping the call's future is the one cancellation mechanism; the token only races it.
        let call = self.call(data);
        tokio::select! {
            biased;
            _ = token.cancelled() => Err(Error::new(ErrorKind::Cancelled, "the call was cancelled")
                .with_function(self.name.as_ref())),
            result = call => result,
        }
    }

    /// Sends `body` as it is (already-serialised JSON, not checked) and returns the output text.
    ///
    /// # Errors
    /// As [`Function::call`]; invalid JSON gets an unexpected response with HTTP 400.
    ///
    /// # Cancel safety
    /// As [`Function::call`].
    pub async fn call_raw(&self, body: impl Into<Bytes>) -> Result<String> {
        self.send(body.into()).await
    }

    fn encode<T: Serialize + ?Sized>(&self, data: &T) -> Result<Bytes> {
        let body = serde_json::to_vec(data).map_err(|e| {
            Error::new(
                ErrorKind::Encode,
                format!("cannot serialise the data as JSON: {e}"),
            )
            .with_function(self.name.as_ref())
            .with_source(e)
        })?;
        match body.first() {
            Some(b'{') | Some(b'[') => Ok(Bytes::from(body)),
            _ if body == b"null" => Ok(Bytes::from_static(b"{}")),
            _ => Err(Error::new(
                ErrorKind::Encode,
                format!(
                    "js-host accepts a JSON object or array as data, got {}",
                    jshost_core::error::excerpt(&String::from_utf8_lossy(&body), 80)
                ),
            )
            .with_function(self.name.as_ref())),
        }
    }

    async fn send(&self, body: Bytes) -> Result<String> {
        match &self.host {
            Some(host) => host.call_function(self.name.clone(), body, self.timeout).await,
            None => {
                let host = default_host().map_err(|e| e.with_function(self.name.as_ref()))?;
                host.call_function(self.name.clone(), body, self.timeout).await
            }
        }
    }
}
