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

/// Reads every `Cookie` header once, without allocating: a proxied request needs both the
/// session cookie and the mix, and reading twice cost it a second pass.
pub fn scan<'a>(headers: &'a HeaderMap, name: &str) -> Scan<'a> {
    let mut mix = Mix::default();
    let mut found: Option<&'a str> = None;
    let mut ambiguous = false;
    for pair in pairs(headers) {
        mix.own |= pair.own;
        mix.others |= !pair.own;
        match (pair.name == name, pair.value, found) {
            (false, _, _) | (true, None, _) => {}
            (true, Some(v), None) => found = Some(v),
            (true, Some(v), Some(prev)) => ambiguous |= prev != v,
        }
    }
    let named = match found {
        // The name appears with two values: neither is used.
        _ if ambiguous => Lookup::Ambiguous,
        None => Lookup::Absent,
        Some(v) => Lookup::One(v),
    };
    Scan { named, mix }
}

/// One `name=value` pair of a `Cookie` header, trimmed.
struct Pair<'a> {
    /// The whole pair.
    text: &'a str,
    name: &'a str,
    /// `None` for a pair without `=`.
    value: Option<&'a str>,
    /// The name is one of the gateway's.
    own: bool,
}

/// Every pair of every `Cookie` header. Values that are not visible ASCII are skipped.
fn pairs(headers: &HeaderMap) -> impl Iterator<Item = Pair<'_>> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|text| {
            let (name, value) = match text.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (text, None),
            };
            Pair {
                text,
                name,
                value,
                own: CookieNames::is_own(name),
            }
        })
}

/// The `Cookie` header value with the gateway's own cookies removed, or `None` when
/// nothing else is left. Multiple `Cookie` headers (HTTP/2) are joined, as RFC 9113
/// §8.2.3 allows.
pub fn without_own(headers: &HeaderMap) -> Option<String> {
    let mut out = String::new();
    for pair in pairs(headers).filter(|p| !p.own) {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(pair.text);
    }
    (!out.is_empty()).then_some(out)
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
        let mix = |h: &HeaderMap| scan(h, "tokengate").mix;
        let both = Mix {
            own: true,
            others: true,
        };
        assert_eq!(mix(&h), both);
        assert_eq!(without_own(&h).as_deref(), Some("a=1; b=2"));
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
        assert_eq!(without_own(&only_own), None);
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
