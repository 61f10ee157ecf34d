//! Realistic session records for the benchmarks: a 1,024-byte JWT-like access token, a
//! 1,000-byte ID token, a 43-character opaque refresh token (the test provider's kind),
//! and the fifteen claims a provider puts in an ID token, each session with its own
//! values.

#![allow(dead_code)] // each benchmark uses part of it

use tokengate::session::Session;

pub const ACCESS_TOKEN_BYTES: usize = 1024;
pub const ID_TOKEN_BYTES: usize = 1000;
pub const REFRESH_TOKEN_BYTES: usize = 43;
pub const TOKEN_BYTES: usize = ACCESS_TOKEN_BYTES + ID_TOKEN_BYTES + REFRESH_TOKEN_BYTES;

/// Session `i`: the tokens and claims of a real login, with values of its own.
pub fn record(i: usize) -> Session {
    let now = tokengate::session::unix_now();
    let user = format!("user-{i:08}");
    let claims = serde_json::json!({
        "sub": user,
        "sid": format!("sid-{i:016x}-5f1c0a7e"),
        "iss": "https://login.example.com/realms/main",
        "aud": "tokengate",
        "exp": now + 3600,
        "iat": now,
        "auth_time": now,
        "nonce": format!("n-{i:040}"),
        "at_hash": "mT2v3s9b-Ewq5xq7U9nIPw",
        "name": "Alice Example",
        "given_name": "Alice",
        "family_name": "Example",
        "preferred_username": user,
        "email": format!("{user}@example.com"),
        "email_verified": true,
    });
    let serde_json::Value::Object(claims) = claims else {
        unreachable!("a JSON object literal")
    };
    Session {
        sub: user,
        sid: Some(format!("sid-{i:016x}-5f1c0a7e")),
        claims: tokengate::session::Claims::from_map(&claims),
        id_token: token(i, 'i', ID_TOKEN_BYTES).into(),
        access_token: token(i, 'a', ACCESS_TOKEN_BYTES).into(),
        access_expires_at: Some(now + 300),
        refresh_at: Some(now + 240),
        refresh_token: Some(token(i, 'r', REFRESH_TOKEN_BYTES).into()),
        created_at: now,
        last_seen: now,
        ..Default::default()
    }
}

/// A token-like string of exactly `len` URL-safe characters, unique to `i` and `kind`.
pub fn token(i: usize, kind: char, len: usize) -> String {
    let mut s = format!("{kind}{i:016x}.");
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push(ALPHABET[(x % 64) as usize] as char);
    }
    s
}
