//! What the server reads of every request before it is dispatched: its ID
//! ([`RequestIds`]) and whether its path hides a `.`/`..` segment.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Request IDs: the caller's `X-Request-Id` when it is a short token of safe characters
/// (an ingress in front may have set one), else ours — a random per-process prefix and a
/// counter, unique without a random draw per request.
pub struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds {
            prefix: u64::from_le_bytes(crate::crypto::random_bytes::<8>()),
            next: AtomicU64::new(0),
        }
    }
}

impl RequestIds {
    /// The ID of a request with `headers`: its own when acceptable, else a new one.
    pub fn for_request(&self, headers: &HeaderMap) -> HeaderValue {
        // Looked up only when present: a walk over the few names a request carries costs
        // less than hashing this one's, and browsers do not send it.
        let sent = match headers.keys().any(|name| name == X_REQUEST_ID) {
            true => headers.get(&X_REQUEST_ID),
            false => None,
        };
        if let Some(v) = sent {
            let ok = (1..=128).contains(&v.len())
                && v.as_bytes()
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
            if ok {
                return v.clone();
            }
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // Shared from the start: the ID is cloned into the upstream request, the log
        // context and the response, and a copied value would allocate again at its first
        // clone.
        HeaderValue::from_maybe_shared(Bytes::from_owner(id_text(self.prefix, n)))
            .unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
}

/// A request ID's hex digits, on the stack until shared.
struct IdText([u8; 32], usize);

impl AsRef<[u8]> for IdText {
    fn as_ref(&self) -> &[u8] {
        &self.0[..self.1]
    }
}

/// `format!("{prefix:016x}{n:08x}")` written into a stack buffer: this runs for every
/// request, and the formatting machinery cost more than the rest of the request ID.
fn id_text(prefix: u64, n: u64) -> IdText {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    let n_digits = (16 - n.leading_zeros() as usize / 4).max(8);
    for (i, digit) in out[..16 + n_digits].iter_mut().enumerate() {
        let (value, shift) = if i < 16 {
            (prefix, 4 * (15 - i))
        } else {
            (n, 4 * (n_digits - 1 - (i - 16)))
        };
        *digit = HEX[(value >> shift) as usize & 0xf];
    }
    IdText(out, 16 + n_digits)
}

/// True for `.`/`..` segments, literal or percent-encoded (forward auth refuses them too).
pub(crate) fn has_dot_segment(path: &str) -> bool {
    // Most paths have neither a dot nor a `%`, and then no segment can be one.
    if !path.bytes().any(|b| b == b'.' || b == b'%') {
        return false;
    }
    path.split('/').any(|seg| match seg {
        "." | ".." => true,
        // Only short segments with a `%` can spell `.` or `..` encoded: no allocation
        // for ordinary paths.
        s if s.len() <= 6 && s.contains('%') => {
            let d = s.to_ascii_lowercase().replace("%2e", ".");
            d == "." || d == ".."
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::{has_dot_segment, id_text};

    #[test]
    fn request_id_text_is_the_hex_of_prefix_and_counter() {
        for (prefix, n) in [
            (0, 0),
            (0x0123_4567_89ab_cdef, 1),
            (u64::MAX, 0xffff_ffff),
            (7, 0x1_0000_0000),
            (7, u64::MAX),
        ] {
            let text = id_text(prefix, n);
            assert_eq!(text.as_ref(), format!("{prefix:016x}{n:08x}").as_bytes());
        }
    }

    #[test]
    fn dot_segments_are_found_in_any_spelling() {
        for p in [
            "/api/../bff",
            "/./x",
            "/api/%2e%2e/bff",
            "/api/%2E.",
            "/a/..",
        ] {
            assert!(has_dot_segment(p), "{p}");
        }
        for p in ["/", "/api/x", "/api/.well-known", "/a..b/c", "/file.txt"] {
            assert!(!has_dot_segment(p), "{p}");
        }
    }
}
