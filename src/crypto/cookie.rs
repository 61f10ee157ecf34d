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
use http::HeaderMap;

const SESSION_SECURE: &str = "__Host-Http-tokengate";
const SESSION_PLAIN: &str = "tokengate";
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
        name == SESSION_SECURE
            || name == SESSION_PLAIN
            || name.starts_with(LOGIN_SECURE)
            || name.starts_with(LOGIN_PLAIN)
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
    let mut found: Option<&'a str> = None;
    for value in headers.get_all(http::header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            let pair = pair.trim_start_matches(' ');
            let Some((n, v)) = pair.split_once('=') else {
                continue;
            };
            if n.trim() != name {
                continue;
            }
            let v = v.trim();
            match found {
                None => found = Some(v),
                Some(prev) if prev == v => {}
                Some(_) => return Lookup::Ambiguous,
            }
        }
    }
    match found {
        None => Lookup::Absent,
        Some(v) => Lookup::One(v),
    }
}

/// Every `name=value` pair of every `Cookie` header, trimmed, with whether the name is
/// one of the gateway's. Values that are not visible ASCII are skipped.
fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, bool)> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n).trim();
            (pair, CookieNames::is_own(name))
        })
}

/// The `Cookie` header value with the gateway's own cookies removed, or `None` when
/// nothing else is left. Multiple `Cookie` headers (HTTP/2) are joined, as RFC 9113
/// §8.2.3 allows.
pub fn without_own(headers: &HeaderMap) -> Option<String> {
    let mut out = String::new();
    for (pair, _) in pairs(headers).filter(|(_, own)| !own) {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(pair);
    }
    (!out.is_empty()).then_some(out)
}

/// Whether the `Cookie` headers carry one of the gateway's cookies, and whether they carry
/// any other: one look that tells whether the header must go (only ours), be rewritten
/// by [`without_own`] (both), or can stay (none of ours).
pub fn own_and_others(headers: &HeaderMap) -> (bool, bool) {
    pairs(headers).fold((false, false), |(own, others), (_, is_own)| {
        (own || is_own, others || !is_own)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

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

    #[test]
    fn only_our_exact_names_are_removed() {
        // Fuzzing regression: `0tokengate=` is someone else's cookie, kept as it is.
        let h = headers(&["0tokengate=; tokengate=x; app=1; tokengate-login-s=y"]);
        assert_eq!(
            without_own(&h).as_deref(),
            Some("0tokengate=; app=1"),
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
    fn own_cookies_are_removed_others_kept() {
        let h = headers(&[
            "a=1; tokengate=s; __Host-Http-tokengate=x",
            "tokengate-login-abc=y; b=2",
        ]);
        assert_eq!(own_and_others(&h), (true, true));
        assert_eq!(without_own(&h).as_deref(), Some("a=1; b=2"));
        let only_own = headers(&["tokengate=s"]);
        assert_eq!(own_and_others(&only_own), (true, false));
        assert_eq!(without_own(&only_own), None);
        assert_eq!(
            own_and_others(&headers(&["a=1; tokengatex=2"])),
            (false, true)
        );
        assert_eq!(own_and_others(&HeaderMap::new()), (false, false));
    }
}
