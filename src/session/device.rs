//! Device-bound sessions (DBSC), what the session layer keeps: the values sealed for a
//! bound session (challenges, bound cookies, the DBSC session identifier), and whether a
//! request may use a session ([`admit`]). The endpoints a DBSC browser talks to are
//! `bff::dbsc`'s.

use http::HeaderMap;

use super::{LiveSession, StoreKey};
use crate::config::{DeviceBinding, SessionConfig};
use crate::crypto::cookie::{self, CookieNames};
use crate::crypto::{b64url, b64url_decode, KeyRing};

/// How long a challenge may be answered: the browser signs as soon as it has one.
pub(crate) const CHALLENGE_LIFETIME_MS: u64 = 5 * 60 * 1000;

/// What a sealed value is for; part of its associated data, so one kind never passes for
/// another.
#[derive(Clone, Copy)]
pub(crate) enum Sealed {
    RegistrationChallenge,
    RefreshChallenge,
    BoundCookie,
    SessionIdentifier,
}

impl Sealed {
    fn aad(self, key: Option<&StoreKey>) -> Vec<u8> {
        let purpose: &[u8] = match self {
            Sealed::RegistrationChallenge => b"tokengate dbsc registration challenge\0",
            Sealed::RefreshChallenge => b"tokengate dbsc refresh challenge\0",
            Sealed::BoundCookie => b"tokengate dbsc bound cookie\0",
            Sealed::SessionIdentifier => b"tokengate dbsc session identifier\0",
        };
        let mut aad = purpose.to_vec();
        if let Some(key) = key {
            aad.extend_from_slice(&key.0);
        }
        aad
    }

    pub(crate) fn seal(self, keys: &KeyRing, key: Option<&StoreKey>, payload: &[u8]) -> String {
        b64url(&keys.seal(payload, &self.aad(key)))
    }

    pub(crate) fn open(
        self,
        keys: &KeyRing,
        key: Option<&StoreKey>,
        text: &str,
    ) -> Option<Vec<u8>> {
        keys.open(&b64url_decode(text)?, &self.aad(key)).ok()
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A challenge for `key`: its sequence number sealed. The number is the issue time in
/// milliseconds, or one past the last answered if that is later (an instance whose clock
/// is behind still issues challenges that count).
pub(crate) fn challenge(keys: &KeyRing, what: Sealed, key: &StoreKey, last: u64) -> String {
    let seq = now_ms().max(last.saturating_add(1));
    what.seal(keys, Some(key), &seq.to_be_bytes())
}

/// The sequence number of `text` if it is a challenge of this kind for `key`, still fresh.
pub(crate) fn challenge_seq(
    keys: &KeyRing,
    what: Sealed,
    key: &StoreKey,
    text: &str,
) -> Option<u64> {
    let seq = u64::from_be_bytes(what.open(keys, Some(key), text)?.try_into().ok()?);
    let now = now_ms();
    (seq.saturating_add(CHALLENGE_LIFETIME_MS) >= now
        && seq <= now.saturating_add(CHALLENGE_LIFETIME_MS))
    .then_some(seq)
}

/// The DBSC session identifier of the session under `key`.
pub(crate) fn identifier(keys: &KeyRing, key: &StoreKey) -> String {
    Sealed::SessionIdentifier.seal(keys, None, &key.0)
}

pub(crate) fn session_of(keys: &KeyRing, identifier: &str) -> Option<StoreKey> {
    let bytes = Sealed::SessionIdentifier.open(keys, None, identifier)?;
    Some(StoreKey(bytes.try_into().ok()?))
}

/// A bound cookie for `key`, good until `expires` (Unix milliseconds, so that it lasts its
/// whole `Max-Age`): checked by the gateway, whatever the browser does with `Max-Age`.
pub(crate) fn bound_cookie(keys: &KeyRing, key: &StoreKey, expires: u64) -> String {
    Sealed::BoundCookie.seal(keys, Some(key), &expires.to_be_bytes())
}

/// Whether `value` is a bound cookie for `key` still good at `now` (Unix milliseconds).
pub(crate) fn bound_cookie_valid(keys: &KeyRing, key: &StoreKey, value: &str, now: u64) -> bool {
    Sealed::BoundCookie
        .open(keys, Some(key), value)
        .and_then(|p| p.try_into().ok())
        .is_some_and(|expires| u64::from_be_bytes(expires) > now)
}

/// Whether a request may use the session it named.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Not with this request (a bound session without a valid bound cookie): treated as
    /// no session, the session itself lives on.
    No,
    /// The session must end: unbound past its grace under `device_binding = "required"`.
    End,
}

/// The policy's verdict on `live` for a request with `headers`, at `now` (Unix seconds).
/// An unbound session under the default policy costs one comparison.
pub fn admit(
    session: &SessionConfig,
    cookies: &CookieNames,
    keys: &KeyRing,
    live: &LiveSession,
    headers: &HeaderMap,
    now: u64,
) -> Admit {
    match &live.record.device {
        None if session.device_binding == DeviceBinding::Required
            && now >= live.record.created_at + session.bound_cookie_lifetime.as_secs() =>
        {
            Admit::End
        }
        None => Admit::Yes,
        Some(_) => match cookie::find(headers, cookies.bound()) {
            cookie::Lookup::One(v) if bound_cookie_valid(keys, &live.key, v, now_ms()) => {
                Admit::Yes
            }
            _ => Admit::No,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(&[[7; 32]]).expect("ring")
    }

    #[test]
    fn sealed_values_serve_only_their_purpose_and_session() {
        let keys = ring();
        let (a, b) = (StoreKey([1; 32]), StoreKey([2; 32]));
        let c = challenge(&keys, Sealed::RefreshChallenge, &a, 0);
        assert!(challenge_seq(&keys, Sealed::RefreshChallenge, &a, &c).is_some());
        assert!(challenge_seq(&keys, Sealed::RefreshChallenge, &b, &c).is_none());
        assert!(challenge_seq(&keys, Sealed::RegistrationChallenge, &a, &c).is_none());
        let now = now_ms();
        let cookie = bound_cookie(&keys, &a, now + 1500);
        assert!(bound_cookie_valid(&keys, &a, &cookie, now + 1499));
        assert!(!bound_cookie_valid(&keys, &b, &cookie, now));
        assert!(!bound_cookie_valid(&keys, &a, &cookie, now + 1500));
        assert!(!bound_cookie_valid(&keys, &a, &c, now));
        assert_eq!(session_of(&keys, &identifier(&keys, &a)), Some(a));
        assert_eq!(session_of(&keys, &cookie), None);
        // Another ring (a gateway with other keys) opens none of them.
        let other = KeyRing::new(&[[8; 32]]).expect("ring");
        assert!(!bound_cookie_valid(&other, &a, &cookie, now));
    }

    #[test]
    fn challenges_count_up_past_the_last_answered() {
        let keys = ring();
        let a = StoreKey([1; 32]);
        let ahead = now_ms() + 60_000;
        let c = challenge(&keys, Sealed::RefreshChallenge, &a, ahead);
        assert_eq!(
            challenge_seq(&keys, Sealed::RefreshChallenge, &a, &c),
            Some(ahead + 1)
        );
    }
}
