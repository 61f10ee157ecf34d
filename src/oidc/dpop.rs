//! DPoP (RFC 9449): proofs of possession of a session's key, for the provider's token
//! endpoint and for upstreams, and the nonces servers hand out.
//!
//! A proof is a JWS signed by the session's key with that key's public JWK in its header;
//! it names the method and URL it is for (`htm`, `htu`), is fresh (`iat`, a new `jti`),
//! carries the server's latest nonce when it has given one, and, towards a resource
//! server, the hash of the access token it accompanies (`ath`).

use std::collections::HashMap;
use std::sync::RwLock;

use http::HeaderMap;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::crypto::b64url;
use crate::crypto::signing::SigningKey;
use crate::session::unix_now;

pub static DPOP: http::HeaderName = http::HeaderName::from_static("dpop");
pub static DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// A proof for `htm` on `htu` (scheme, authority and path: no query, no fragment).
pub fn proof(
    key: &SigningKey,
    htm: &str,
    htu: &str,
    access_token: Option<&str>,
    nonce: Option<&str>,
) -> Result<String, String> {
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), "dpop+jwt".into());
    header.insert("jwk".into(), key.public_jwk());
    let mut claims = json!({
        "jti": crate::crypto::random_token(),
        "htm": htm,
        "htu": htu,
        "iat": unix_now(),
    });
    if let Some(t) = access_token {
        claims["ath"] = Value::from(ath(t));
    }
    if let Some(n) = nonce {
        claims["nonce"] = Value::from(n);
    }
    key.jws(header, &claims)
}

/// `ath`: the base64url SHA-256 of the access token.
pub fn ath(access_token: &str) -> String {
    b64url(&Sha256::digest(access_token.as_bytes()))
}

/// `htu` of a URI: without query and fragment (RFC 9449 §4.2).
pub fn htu(uri: &http::Uri) -> String {
    match (uri.scheme_str(), uri.authority()) {
        (Some(s), Some(a)) => format!("{s}://{a}{}", uri.path()),
        _ => uri.path().to_owned(),
    }
}

/// True when a response asks for the proof again with a nonce: a 400 (authorization
/// server) or 401 (resource server) whose error is `use_dpop_nonce` and that carries a
/// `DPoP-Nonce`.
pub fn wants_nonce(status: http::StatusCode, headers: &HeaderMap, body: &[u8]) -> bool {
    if !headers.contains_key(&DPOP_NONCE) {
        return false;
    }
    let in_challenge = headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.contains("use_dpop_nonce")));
    let in_body =
        serde_json::from_slice::<Value>(body).is_ok_and(|v| v["error"] == "use_dpop_nonce");
    matches!(status.as_u16(), 400 | 401) && (in_challenge || in_body)
}

/// The latest `DPoP-Nonce` each server sent, by origin. A std `RwLock`: read for every
/// proof, written when a server hands out a new nonce; never held across an await.
#[derive(Default)]
pub struct Nonces(RwLock<HashMap<String, String>>);

impl Nonces {
    pub fn get(&self, origin: &str) -> Option<String> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(origin)
            .cloned()
    }

    /// Remembers the nonce in `headers`, if any; true when there was one.
    pub fn learn(&self, origin: &str, headers: &HeaderMap) -> bool {
        let Some(nonce) = headers.get(&DPOP_NONCE).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(origin.to_owned(), nonce.to_owned());
        true
    }
}

/// `scheme://authority` of a URI, the key of [`Nonces`].
pub fn origin(uri: &http::Uri) -> String {
    match (uri.scheme_str(), uri.authority()) {
        (Some(s), Some(a)) => format!("{s}://{a}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_names_method_url_token_and_nonce() {
        let (key, _) = SigningKey::generate_p256().expect("key");
        let p = proof(
            &key,
            "GET",
            "https://api.example/x",
            Some("tok"),
            Some("n1"),
        )
        .expect("proof");
        let part = |i: usize| -> Value {
            serde_json::from_slice(
                &crate::crypto::b64url_decode(p.split('.').nth(i).expect("part")).expect("b64"),
            )
            .expect("json")
        };
        let (header, claims) = (part(0), part(1));
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"], key.public_jwk());
        assert_eq!(claims["htm"], "GET");
        assert_eq!(claims["htu"], "https://api.example/x");
        assert_eq!(claims["ath"], ath("tok"));
        assert_eq!(claims["nonce"], "n1");
    }

    #[test]
    fn htu_drops_query_and_nonce_requests_are_recognised() {
        let uri: http::Uri = "https://api.example:8443/a/b?c=d".parse().expect("uri");
        assert_eq!(htu(&uri), "https://api.example:8443/a/b");
        assert_eq!(origin(&uri), "https://api.example:8443");
        let mut h = HeaderMap::new();
        h.insert(&DPOP_NONCE, "n".parse().expect("v"));
        let body = br#"{"error":"use_dpop_nonce"}"#;
        assert!(wants_nonce(http::StatusCode::BAD_REQUEST, &h, body));
        assert!(!wants_nonce(
            http::StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            body
        ));
        h.insert(
            http::header::WWW_AUTHENTICATE,
            r#"DPoP error="use_dpop_nonce""#.parse().expect("v"),
        );
        assert!(wants_nonce(http::StatusCode::UNAUTHORIZED, &h, b""));
    }
}
