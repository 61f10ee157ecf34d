//! `[session]`: lifetimes, sealing keys, the store and device binding.

use std::path::PathBuf;
use std::time::Duration;

use super::Checker;
use crate::config::raw::RawSession;
use crate::config::{DeviceBinding, SessionConfig, StoreKind};

pub(super) fn session(c: &mut Checker, se: &RawSession) -> SessionConfig {
    let idle_timeout = c.duration("session.idle_timeout", se.idle_timeout.as_deref(), "8h");
    let absolute_timeout = c.duration(
        "session.absolute_timeout",
        se.absolute_timeout.as_deref(),
        "7d",
    );
    if idle_timeout > absolute_timeout {
        c.fail(
            "session.idle_timeout",
            "must not be longer than session.absolute_timeout",
        );
    }
    let keys = session_keys(c, se.keys.as_deref());
    let store = store(c, se);
    redis_target(c, se, store);
    let device_binding = device_binding(c, se);
    let bound_cookie_lifetime = c.duration(
        "session.bound_cookie_lifetime",
        se.bound_cookie_lifetime.as_deref(),
        "5m",
    );
    if bound_cookie_lifetime < Duration::from_secs(1) {
        c.fail("session.bound_cookie_lifetime", "must be at least 1s");
    }
    let cache_capacity = c.int(
        "session.cache_capacity",
        se.cache_capacity,
        100_000,
        1,
        i64::MAX,
    ) as u64;
    SessionConfig {
        idle_timeout,
        absolute_timeout,
        keys,
        store,
        path: PathBuf::from(se.path.as_deref().unwrap_or("data/sessions")),
        redis_url: se.redis_url.clone(),
        redis_cluster: se.redis_cluster.clone().unwrap_or_default(),
        cache_capacity,
        device_binding,
        bound_cookie_lifetime,
    }
}

/// `session.store`.
fn store(c: &mut Checker, se: &RawSession) -> StoreKind {
    match se.store.as_deref().unwrap_or("embedded") {
        "memory" => StoreKind::Memory,
        "embedded" => StoreKind::Embedded,
        "redis" => StoreKind::Redis,
        other => {
            c.fail(
                "session.store",
                format!("unknown store {other:?} (memory, embedded or redis)"),
            );
            StoreKind::Memory
        }
    }
}

/// `session.device_binding`.
fn device_binding(c: &mut Checker, se: &RawSession) -> DeviceBinding {
    match se.device_binding.as_deref().unwrap_or("optional") {
        "off" => DeviceBinding::Off,
        "optional" => DeviceBinding::Optional,
        "required" => DeviceBinding::Required,
        other => {
            c.fail(
                "session.device_binding",
                format!("unknown value {other:?} (off, optional or required)"),
            );
            DeviceBinding::Optional
        }
    }
}

/// `session.redis_url` (standalone) or `session.redis_cluster` (seed nodes), never both;
/// one of them when the store is Redis. Every URL `redis://` or `rediss://`, a cluster's
/// all with the same scheme (TLS is all or nothing).
fn redis_target(c: &mut Checker, se: &RawSession, store: StoreKind) {
    let scheme = |url: &str| {
        url::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "redis" | "rediss") && u.host().is_some())
            .map(|u| u.scheme().to_owned())
    };
    if let Some(url) = &se.redis_url {
        if scheme(url).is_none() {
            c.fail("session.redis_url", "must be a redis:// or rediss:// URL");
        }
    }
    match (&se.redis_url, &se.redis_cluster) {
        (Some(_), Some(_)) => c.fail(
            "session.redis_cluster",
            "set either session.redis_url (standalone) or session.redis_cluster, not both",
        ),
        (None, None) if store == StoreKind::Redis => c.fail(
            "session.redis_url",
            "is required when session.store is \"redis\" (or list the nodes of a cluster in session.redis_cluster)",
        ),
        _ => {}
    }
    let Some(nodes) = &se.redis_cluster else {
        return;
    };
    if nodes.is_empty() {
        c.fail("session.redis_cluster", "must list at least one node URL");
    }
    let mut first: Option<String> = None;
    for (i, url) in nodes.iter().enumerate() {
        let at = format!("session.redis_cluster[{i}]");
        match (scheme(url), &first) {
            (None, _) => c.fail(&at, "must be a redis:// or rediss:// URL"),
            (Some(s), Some(f)) if &s != f => c.fail(
                &at,
                format!("is {s}:// but session.redis_cluster[0] is {f}://; use one scheme for every node"),
            ),
            (Some(s), None) => first = Some(s),
            _ => {}
        }
    }
}

fn session_keys(c: &mut Checker, keys: Option<&[String]>) -> Vec<[u8; 32]> {
    use base64::Engine;
    let Some(keys) = keys.filter(|k| !k.is_empty()) else {
        c.fail(
            "session.keys",
            "at least one key is required; make one with \"tokengate keygen\"",
        );
        return Vec::new();
    };
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let mut out: Vec<[u8; 32]> = Vec::new();
    for (i, text) in keys.iter().enumerate() {
        let path = format!("session.keys[{i}]");
        // The key itself is never echoed in a message.
        let decoded = engines.iter().find_map(|e| e.decode(text.trim()).ok());
        match decoded {
            Some(bytes) if bytes.len() == 32 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(&bytes);
                if out.contains(&k) {
                    c.fail(&path, "duplicates an earlier key");
                }
                out.push(k);
            }
            Some(bytes) => c.fail(
                &path,
                format!(
                    "must be 32 bytes of base64 (got {} bytes); make one with \"tokengate keygen\"",
                    bytes.len()
                ),
            ),
            None => c.fail(&path, "is not base64; make one with \"tokengate keygen\""),
        }
    }
    out
}
