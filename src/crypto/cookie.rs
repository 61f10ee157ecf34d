//! The gateway's own cookies: their names, how they are set, read and removed.
//!
//! Two kinds, both HttpOnly and both holding nothing usable by themselves:
//! - the session cookie, whose value is a random 256-bit session ID (the store keeps only
//!   its SHA-256, see `session::record`);
//! - one login-state cookie per login in progress, named after a hash of its `state`, so
//!   two tabs logging in at once do not overwrite each other's state.
//!
//! With an `https` public URL the names carry the `__Host-` prefix (the browser then
//! insists on Secure, Path=/ and no Domain, so a sibling subdomain cannot plant one); the
//! session cookie uses `__Host-Http-`, which also forbids scripts from setting it. With a
//! plain `http` public URL (local development) the browser would drop such cookies, so
//! the names lose the prefix and the cookies lose `Secure`.

use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::{HeaderMap, HeaderValue};

const SESSION_SECURE: &str = "__Host-Http-tokengate";
const SESSION_PLAIN: &str = "tokengate";
const BOUND_SECURE: &str = "__Host-Http-tokengate-bound";
const BOUND_PLAIN: &str = "tokengate-bound";
const LOGIN_SECURE: &str = "__Host-tokengate-login-";
const LOGIN_PLAIN: &str = "tokengate-login-";

/// The cookie names in force, chosen once from `server.public_url`.
#[derive(Clone, Copy, Debug)]
pub struct CookieNames {
    secure: bool,
}

impl CookieNames {
    pub fn new(secure: bool) -> Self {
        CookieNames { secure }
    }

    pub fn session(&self) -> &'static str {
        if self.secure {
            SESSION_SECURE
        } else {
            SESSION_PLAIN
        }
    }

    /// The short-lived cookie a device-bound session needs beside the session cookie
    /// (`bff::dbsc`).
    pub fn bound(&self) -> &'static str {
        if self.secure {
            BOUND_SECURE
        } else {
            BOUND_PLAIN
        }
    }

    /// The bound cookie's attributes as a DBSC browser is told them (its `credentials`),
    /// matching what [`CookieNames::set_bound`] sets.
    pub fn bound_attributes(&self) -> &'static str {
        if self.secure {
            "Path=/; Secure; HttpOnly; SameSite=Strict"
        } else {
            "Path=/; HttpOnly; SameSite=Strict"
        }
    }

    /// `Set-Cookie` value for a device-bound session's short cookie.
    pub fn set_bound(&self, value: &str, max_age: Duration) -> String {
        self.build(self.bound(), value, SameSite::Strict, Some(max_age))
    }

    /// `Set-Cookie` value that removes the bound cookie.
    pub fn clear_bound(&self) -> String {
        self.build(self.bound(), "", SameSite::Strict, Some(Duration::ZERO))
    }

    fn login_prefix(&self) -> &'static str {
        if self.secure {
            LOGIN_SECURE
        } else {
            LOGIN_PLAIN
        }
    }

    /// Name of the login-state cookie for one login, from a short hash of its `state`.
    pub fn login(&self, state: &str) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(state.as_bytes());
        format!("{}{}", self.login_prefix(), super::b64url(&digest[..12]))
    }

    /// True for every cookie the gateway sets, in either naming scheme: these never travel
    /// upstream.
    pub fn is_own(name: &str) -> bool {
        Self::is_own_bytes(name.as_bytes())
    }

    /// [`CookieNames::is_own`] on a name as it came, in bytes.
    pub fn is_own_bytes(name: &[u8]) -> bool {
        name == SESSION_SECURE.as_bytes()
            || name == SESSION_PLAIN.as_bytes()
            || name == BOUND_SECURE.as_bytes()
            || name == BOUND_PLAIN.as_bytes()
            || name.starts_with(LOGIN_SECURE.as_bytes())
            || name.starts_with(LOGIN_PLAIN.as_bytes())
    }

    /// True for a name that is one of ours in any letter case: what an upstream may not
    /// set (the browser's `__Host-` prefix check ignores case, and nothing an upstream
    /// means to set is that close to our names).
    pub fn resembles_own(name: &[u8]) -> bool {
        let lower = name.to_ascii_lowercase();
        [SESSION_SECURE, SESSION_PLAIN, BOUND_SECURE, BOUND_PLAIN]
            .iter()
            .any(|own| lower == own.to_ascii_lowercase().as_bytes())
            || [LOGIN_SECURE, LOGIN_PLAIN]
                .iter()
                .any(|own| lower.starts_with(own.to_ascii_lowercase().as_bytes()))
    }

    /// `Set-Cookie` value for a new session.
    pub fn set_session(&self, session_id: &str, max_age: Duration) -> String {
        self.build(self.session(), session_id, SameSite::Strict, Some(max_age))
    }

    /// `Set-Cookie` value that removes the session cookie.
    pub fn clear_session(&self) -> String {
        self.build(self.session(), "", SameSite::Strict, Some(Duration::ZERO))
    }

    /// `Set-Cookie` value for a login-state cookie. SameSite=Lax: the callback arrives as a
    /// top-level navigation from the provider's site, which Strict would strip.
    pub fn set_login(&self, name: &str, sealed: &str, max_age: Duration) -> String {
        self.build(name, sealed, SameSite::Lax, Some(max_age))
    }

    pub fn clear_login(&self, name: &str) -> String {
        self.build(name, "", SameSite::Lax, Some(Duration::ZERO))
    }

    fn build(
        &self,
        name: &str,
        value: &str,
        same_site: SameSite,
        max_age: Option<Duration>,
    ) -> String {
        let mut c = Cookie::build((name.to_owned(), value.to_owned()))
            .path("/")
            .http_only(true)
            .secure(self.secure)
            .same_site(same_site);
        if let Some(age) = max_age {
            let secs = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
            c = c.max_age(cookie::time::Duration::seconds(secs));
        }
        c.build().to_string()
    }
}

/// What the request's `Cookie` headers hold under one name.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    Absent,
    One(&'a str),
    /// The name appears more than once with different values: we cannot tell which one the
    /// browser meant (or whether one was planted), so neither is used.
    Ambiguous,
}

/// Finds the cookie `name` in every `Cookie` header of `headers`, without allocating.
pub fn find<'a>(headers: &'a HeaderMap, name: &str) -> Lookup<'a> {
    scan(headers, name).named
}

/// Whether the `Cookie` headers carry one of the gateway's cookies, and whether they carry
/// any other: what tells the upstream rewrite whether the header must go (only ours), be
/// rewritten by [`without_own`] (both), or can stay (none of ours).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mix {
    pub own: bool,
    pub others: bool,
}

/// One look at every `Cookie` header: the cookie `name`, and the [`Mix`].
#[derive(Debug, PartialEq, Eq)]
pub struct Scan<'a> {
    pub named: Lookup<'a>,
    pub mix: Mix,
}

/// Reads every `Cookie` header once, as bytes, without allocating: a proxied request
/// needs both the session cookie and the mix. A header is never skipped for holding bytes
/// that are not ASCII: a cookie beside such bytes is found, and counted in the mix, like
/// any other. A value under `name` that is not UTF-8 cannot be a session ID: it makes the
/// lookup [`Lookup::Ambiguous`], so no session is used.
pub fn scan<'a>(headers: &'a HeaderMap, name: &str) -> Scan<'a> {
    let mut mix = Mix::default();
    let mut found: Option<&'a [u8]> = None;
    let mut ambiguous = false;
    for pair in pairs(headers) {
        mix.own |= pair.own;
        mix.others |= !pair.own;
        match (pair.name == name.as_bytes(), pair.value, found) {
            (false, _, _) | (true, None, _) => {}
            (true, Some(v), None) => found = Some(v),
            (true, Some(v), Some(prev)) => ambiguous |= prev != v,
        }
    }
    let named = match found.map(std::str::from_utf8) {
        // The name appears with two values, or with bytes no session ID has: unused.
        _ if ambiguous => Lookup::Ambiguous,
        Some(Err(_)) => Lookup::Ambiguous,
        None => Lookup::Absent,
        Some(Ok(v)) => Lookup::One(v),
    };
    Scan { named, mix }
}

/// One `name=value` pair of a `Cookie` header, trimmed, as bytes.
struct Pair<'a> {
    /// The whole pair.
    text: &'a [u8],
    name: &'a [u8],
    /// `None` for a pair without `=`.
    value: Option<&'a [u8]>,
    /// The name is one of the gateway's.
    own: bool,
}

/// Every pair of every `Cookie` header, whatever bytes the headers hold.
fn pairs(headers: &HeaderMap) -> impl Iterator<Item = Pair<'_>> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b';'))
        .map(<[u8]>::trim_ascii)
        .filter(|pair| !pair.is_empty())
        .map(|text| {
            let (name, value) = match text.iter().position(|&b| b == b'=') {
                Some(at) => (text[..at].trim_ascii(), Some(text[at + 1..].trim_ascii())),
                None => (text, None),
            };
            Pair {
                text,
                name,
                value,
                own: CookieNames::is_own_bytes(name),
            }
        })
}

/// The `Cookie` header value with the gateway's own cookies removed, or `None` when
/// nothing else is left. Multiple `Cookie` headers (HTTP/2) are joined, as RFC 9113
/// §8.2.3 allows. The other cookies keep their bytes as sent.
pub fn without_own(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut out = Vec::new();
    for pair in pairs(headers).filter(|p| !p.own) {
        if !out.is_empty() {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(pair.text);
    }
    // The pairs come from valid header values and are joined by `; `: always valid.
    (!out.is_empty())
        .then(|| HeaderValue::from_maybe_shared(bytes::Bytes::from(out)).ok())
        .flatten()
}

/// The name a `Set-Cookie` value sets, as bytes: before its first `=`, or the whole first
/// attribute when there is none (browsers then store a cookie with an empty name).
pub fn set_cookie_name(value: &[u8]) -> &[u8] {
    let first = value.split(|&b| b == b';').next().unwrap_or_default();
    let name = match first.iter().position(|&b| b == b'=') {
        Some(at) => &first[..at],
        None => first,
    };
    name.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(
                http::header::COOKIE,
                HeaderValue::from_str(c).expect("valid"),
            );
        }
        h
    }

    fn rest(h: &HeaderMap) -> Option<Vec<u8>> {
        without_own(h).map(|v| v.as_bytes().to_vec())
    }

    fn raw(cookies: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(
                http::header::COOKIE,
                HeaderValue::from_bytes(c).expect("valid"),
            );
        }
        h
    }

    #[test]
    fn our_cookie_is_found_and_removed_beside_bytes_that_are_not_ascii() {
        // Latin-1 and UTF-8 bytes in a sibling cookie, in the same header and in another.
        for h in [
            raw(&[b"tokengate=s1; lang=Jos\xe9"]),
            raw(&["tokengate=s1; lang=Jos\u{e9}".as_bytes()]),
            raw(&[b"lang=Jos\xe9", b"tokengate=s1"]),
        ] {
            let scanned = scan(&h, "tokengate");
            assert_eq!(scanned.named, Lookup::One("s1"));
            assert_eq!(
                scanned.mix,
                Mix {
                    own: true,
                    others: true
                }
            );
            let left = rest(&h).expect("the sibling stays");
            assert!(!left.windows(9).any(|w| w == b"tokengate"), "{left:?}");
            assert!(left.starts_with(b"lang=Jos"), "its bytes kept: {left:?}");
        }
        // Our name with a value that is not UTF-8 is no session, and still removed.
        let h = raw(&[b"tokengate=\xff\xfe; a=1"]);
        assert_eq!(find(&h, "tokengate"), Lookup::Ambiguous);
        assert_eq!(rest(&h).as_deref(), Some(&b"a=1"[..]));
    }

    #[test]
    fn a_set_cookie_name_is_read_as_bytes() {
        assert_eq!(set_cookie_name(b"tokengate=evil; X=\xe9"), b"tokengate");
        assert_eq!(set_cookie_name(b" tokengate =x"), b"tokengate");
        assert_eq!(set_cookie_name(b"tokengate; Path=/"), b"tokengate");
        assert_eq!(set_cookie_name(b""), b"");
        assert!(CookieNames::resembles_own(b"__host-http-TOKENGATE"));
        assert!(CookieNames::resembles_own(b"Tokengate-Login-abc"));
        assert!(!CookieNames::resembles_own(b"tokengatex"));
    }

    #[test]
    fn only_our_exact_names_are_removed() {
        // Fuzzing regression: `0tokengate=` is someone else's cookie, kept as it is.
        let h = headers(&["0tokengate=; tokengate=x; app=1; tokengate-login-s=y"]);
        assert_eq!(
            rest(&h).as_deref(),
            Some(&b"0tokengate=; app=1"[..]),
            "only ours removed"
        );
    }

    #[test]
    fn secure_session_cookie_has_host_http_prefix_and_attributes() {
        let set = CookieNames::new(true).set_session("abc", Duration::from_secs(60));
        assert!(set.starts_with("__Host-Http-tokengate=abc"), "{set}");
        for attr in [
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=60",
        ] {
            assert!(set.contains(attr), "{attr} missing in {set}");
        }
        assert!(!set.contains("Domain"), "{set}");
    }

    #[test]
    fn plain_http_cookie_drops_prefix_and_secure() {
        let set = CookieNames::new(false).set_session("abc", Duration::from_secs(60));
        assert!(set.starts_with("tokengate=abc"), "{set}");
        assert!(!set.contains("Secure"), "{set}");
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
    }

    #[test]
    fn login_cookie_is_lax_and_named_per_state() {
        let names = CookieNames::new(true);
        let a = names.login("state-a");
        assert_ne!(a, names.login("state-b"));
        assert!(a.starts_with("__Host-tokengate-login-"));
        assert!(names
            .set_login(&a, "x", Duration::from_secs(600))
            .contains("SameSite=Lax"));
    }

    #[test]
    fn find_reads_across_headers() {
        let h = headers(&["a=1; tokengate=s1", "b=2"]);
        assert_eq!(find(&h, "tokengate"), Lookup::One("s1"));
        assert_eq!(find(&h, "b"), Lookup::One("2"));
        assert_eq!(find(&h, "c"), Lookup::Absent);
    }

    #[test]
    fn duplicate_with_different_values_is_ambiguous() {
        let h = headers(&["tokengate=s1; tokengate=s2"]);
        assert_eq!(find(&h, "tokengate"), Lookup::Ambiguous);
        let same = headers(&["tokengate=s1", "tokengate=s1"]);
        assert_eq!(find(&same, "tokengate"), Lookup::One("s1"));
    }

    #[test]
    fn the_bound_cookie_is_one_of_ours_in_both_schemes() {
        for secure in [false, true] {
            let names = CookieNames::new(secure);
            assert!(CookieNames::is_own(names.bound()));
            assert!(CookieNames::resembles_own(
                names.bound().to_ascii_uppercase().as_bytes()
            ));
            let set = names.set_bound("v", Duration::from_secs(300));
            assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
            assert_eq!(set.contains("Secure"), secure, "{set}");
            // What the DBSC browser is told matches what is set.
            for attribute in names.bound_attributes().split("; ") {
                assert!(set.contains(attribute), "{attribute} not in {set}");
            }
        }
    }

    #[test]
    fn own_cookies_are_removed_others_kept() {
        let h = headers(&[
            "a=1; tokengate=s; __Host-Http-tokengate=x; tokengate-bound=z",
            "tokengate-login-abc=y; b=2; __Host-Http-tokengate-bound=w",
        ]);
        let mix = |h: &HeaderMap| scan(h, "tokengate").mix;
        let both = Mix {
            own: true,
            others: true,
        };
        assert_eq!(mix(&h), both);
        assert_eq!(rest(&h).as_deref(), Some(&b"a=1; b=2"[..]));
        let only_own = headers(&["tokengate=s"]);
        assert_eq!(
            scan(&only_own, "tokengate"),
            Scan {
                named: Lookup::One("s"),
                mix: Mix {
                    own: true,
                    others: false
                }
            }
        );
        assert_eq!(rest(&only_own), None);
        assert_eq!(
            mix(&headers(&["a=1; tokengatex=2"])),
            Mix {
                own: false,
                others: true
            }
        );
        assert_eq!(mix(&HeaderMap::new()), Mix::default());
        // The mix is told whole even when the session cookie is ambiguous.
        let twice = headers(&["tokengate=s1; a=1", "tokengate=s2"]);
        assert_eq!(
            scan(&twice, "tokengate"),
            Scan {
                named: Lookup::Ambiguous,
                mix: both
            }
        );
    }
}
