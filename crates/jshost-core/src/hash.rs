//! The `hash` query parameter of function calls.

use sha1::{Digest, Sha1};

/// The lowercase hex SHA-1 of `data`: the value of the `hash` query parameter that identifies a
/// call's exact body, so a reverse proxy can cache a function's answers by URL.
///
/// ```
/// assert_eq!(jshost_core::hash("foo"), "0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33");
/// ```
pub fn hash(data: impl AsRef<[u8]>) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha1::digest(data.as_ref());
    let mut out = String::with_capacity(40);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::hash;

    #[test]
    fn matches_the_python_client() {
        // The python client's README: {"foo": "bar"} is sent as this hash.
        assert_eq!(
            hash(r#"{"foo": "bar"}"#),
            "bc4919c6adf7168088eaea06e27a5b23f0f9f9da"
        );
        assert_eq!(hash(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }
}
