//! Hosts on Unix sockets. A URL's authority cannot hold a path, so a socket is named by the URL
//! `http://HEX.sock` (HEX: the path's bytes), which the connector and the probes recognise; it
//! is shown to people as `unix:PATH`.

use std::borrow::Cow;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

const SUFFIX: &str = ".sock";

/// The root URL of a host listening on the Unix socket `path`.
///
/// ```
/// let url = jshost_client::socket_url(std::path::Path::new("/tmp/h.sock"));
/// assert_eq!(url, "http://2f746d702f682e736f636b.sock");
/// assert_eq!(jshost_client::display_url(&url), "unix:/tmp/h.sock");
/// ```
pub fn socket_url(path: &Path) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = path.as_os_str().as_bytes();
    let mut url = String::with_capacity(7 + bytes.len() * 2 + SUFFIX.len());
    url.push_str("http://");
    for b in bytes {
        url.push(char::from(HEX[usize::from(b >> 4)]));
        url.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    url.push_str(SUFFIX);
    url
}

/// The socket path a URL host names, if it is a `HEX.sock` host.
pub(crate) fn socket_path(host: &str) -> Option<PathBuf> {
    let hex = host.strip_suffix(SUFFIX)?;
    if hex.is_empty() || hex.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
}

/// A URL as people should read it: `unix:PATH/rest` for a socket URL, else as it is.
pub fn display_url(url: &str) -> Cow<'_, str> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Cow::Borrowed(url);
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match socket_path(&rest[..end]) {
        Some(path) => Cow::Owned(format!("unix:{}{}", path.display(), &rest[end..])),
        None => Cow::Borrowed(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_urls_round_trip() {
        let path = Path::new("/tmp/jshost-12-0/host.sock");
        let url = socket_url(path);
        let uri: http::Uri = format!("{url}/function/echo?hash=1")
            .parse()
            .expect("a valid URI");
        assert_eq!(socket_path(uri.host().expect("host")).as_deref(), Some(path));
        assert_eq!(
            display_url(&format!("{url}/status")),
            "unix:/tmp/jshost-12-0/host.sock/status"
        );
        assert_eq!(
            display_url("http://127.0.0.1:1/status"),
            "http://127.0.0.1:1/status"
        );
        assert_eq!(socket_path("example.sock"), None);
        assert_eq!(socket_path("127.0.0.1"), None);
    }
}
