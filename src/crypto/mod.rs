//! Cryptography the gateway uses, all from well-kept crates: the key ring that seals
//! session records and login-state cookies, random identifiers, and cookie handling.

pub mod cookie;
pub mod keyring;
pub mod signing;

pub use keyring::{KeyRing, OpenError};

/// `n` bytes from the operating system's CSPRNG.
///
/// Panics only if the OS has no randomness to give, in which case no secure session could
/// be made anyway; this is the one place that may stop the process for it.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    #[allow(clippy::expect_used)]
    getrandom::getrandom(&mut out).expect("the operating system has no randomness to give");
    out
}

/// URL-safe base64 without padding: the form of every random value we hand out.
pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes [`b64url`] text; `None` for anything else.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
}

/// A fresh random value of 256 bits, URL-safe (state, nonce, PKCE verifier, session ID).
pub fn random_token() -> String {
    b64url(&random_bytes::<32>())
}
