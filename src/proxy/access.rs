//! Who may use a route, and how they must have signed in: the route's `require` claim
//! rules (403 `forbidden`), its `acr` and `max_age` (401 `step_up_required`), and an
//! upstream's own demand for a stronger sign-in (RFC 9470). All of it is judged before
//! any token work, on the session as the cache holds it.

use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Map, Value};

use crate::config::ClaimRule;
use crate::oidc::params;
use crate::route::Route;
use crate::server::return_url;
use crate::server::Reject;
use crate::session::LiveSession;

/// The route's rules against the session at `now` (Unix seconds). `referer` picks where
/// a step-up login returns to.
pub fn check(
    route: &Route,
    live: &LiveSession,
    now: u64,
    referer: Option<&HeaderValue>,
    public_origin: &str,
) -> Result<(), Reject> {
    if !route.require.is_empty() && !satisfied(&route.require, live.claims()) {
        return Err(Reject::Forbidden(route.prefix.as_str().into()));
    }
    let step_up = &route.step_up;
    if step_up.is_empty() {
        return Ok(());
    }
    let record = &live.record;
    let acr_met = step_up.acr.as_ref().is_none_or(|wanted| {
        record
            .acr
            .as_ref()
            .is_some_and(|acr| wanted.iter().any(|w| w == acr))
    });
    let max_age = step_up.max_age.map(|d| d.as_secs());
    let recent = max_age.is_none_or(|limit| {
        record
            .auth_time
            .is_some_and(|at| now.saturating_sub(at) <= limit)
    });
    if acr_met && recent {
        return Ok(());
    }
    let acr_values = step_up.acr.as_ref().map(|v| v.join(" "));
    Err(step_up_required(
        acr_values.as_deref(),
        max_age,
        referer,
        public_origin,
    ))
}

/// True when every rule holds: the claim equals one of the rule's values, or, when it is
/// a list, holds one of them. A missing claim holds nothing.
pub fn satisfied(rules: &[ClaimRule], claims: &Map<String, Value>) -> bool {
    rules.iter().all(|rule| match claims.get(&rule.claim) {
        None => false,
        Some(Value::Array(items)) => items.iter().any(|item| rule.values.contains(item)),
        Some(scalar) => rule.values.contains(scalar),
    })
}

/// An upstream's 401 that asks for a stronger sign-in (RFC 9470: a `Bearer` challenge
/// with `error="insufficient_user_authentication"`), as the browser's `step_up_required`.
/// `None` for any other answer, which goes back as the upstream gave it.
pub fn upstream_step_up(
    status: StatusCode,
    headers: &HeaderMap,
    referer: Option<&HeaderValue>,
    public_origin: &str,
) -> Option<Reject> {
    if status != StatusCode::UNAUTHORIZED {
        return None;
    }
    for value in headers.get_all(http::header::WWW_AUTHENTICATE) {
        // A header that is not text or not a valid challenge list asks for nothing.
        let Ok(text) = value.to_str() else { continue };
        let Ok(challenges) = http_auth::parse_challenges(text) else {
            continue;
        };
        for challenge in challenges {
            if !challenge.scheme.eq_ignore_ascii_case("bearer") {
                continue;
            }
            let param = |name: &str| {
                challenge
                    .params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            if param("error").as_deref() != Some("insufficient_user_authentication") {
                continue;
            }
            // What the upstream asks for is passed on only when it is well formed; a
            // malformed value is left out (the login then asks for nothing more).
            let acr_values = param("acr_values").and_then(|v| params::acr_values(&v).ok());
            let max_age = param("max_age").and_then(|v| {
                let mut p = params::LoginParams::default();
                p.set("max_age", &v).ok().and(p.max_age)
            });
            return Some(step_up_required(
                acr_values.as_deref(),
                max_age,
                referer,
                public_origin,
            ));
        }
    }
    None
}

/// `step_up_required` with its `/bff/login` URL. The login returns to the page that made
/// the call (its `Referer`, when that is on our origin), else to `/`.
fn step_up_required(
    acr_values: Option<&str>,
    max_age: Option<u64>,
    referer: Option<&HeaderValue>,
    public_origin: &str,
) -> Reject {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(acr) = acr_values {
        query.append_pair("acr_values", acr);
    }
    if let Some(secs) = max_age {
        query.append_pair("max_age", &secs.to_string());
    }
    query.append_pair("returnUrl", &return_to(referer, public_origin));
    Reject::StepUpRequired(format!("/bff/login?{}", query.finish()).into())
}

/// The path and query of `referer` when it is a page of `public_origin`, else `/`.
fn return_to(referer: Option<&HeaderValue>, public_origin: &str) -> String {
    referer
        .and_then(|v| v.to_str().ok())
        .and_then(|text| url::Url::parse(text).ok())
        .filter(|url| url.origin().ascii_serialization() == public_origin)
        .map(|url| match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        })
        .filter(|path| return_url::is_local(path))
        .unwrap_or_else(|| "/".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(claim: &str, values: Value) -> ClaimRule {
        let Value::Array(values) = values else {
            panic!("a list of values")
        };
        ClaimRule {
            claim: claim.into(),
            values,
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        let Value::Object(m) = v else {
            panic!("an object")
        };
        m
    }

    #[test]
    fn list_and_scalar_claims_match_any_listed_value_and_every_rule_must_hold() {
        let c = claims(json!({
            "groups": ["staff", "admins"], "email_verified": true, "tenant": "acme", "level": 3
        }));
        assert!(satisfied(&[rule("groups", json!(["ops", "admins"]))], &c));
        assert!(!satisfied(&[rule("groups", json!(["ops"]))], &c));
        assert!(satisfied(&[rule("email_verified", json!([true]))], &c));
        assert!(!satisfied(&[rule("email_verified", json!(["true"]))], &c));
        assert!(satisfied(&[rule("level", json!([3]))], &c));
        let both = [
            rule("tenant", json!(["acme"])),
            rule("groups", json!(["admins"])),
        ];
        assert!(satisfied(&both, &c));
        let one_fails = [
            rule("tenant", json!(["globex"])),
            rule("groups", json!(["admins"])),
        ];
        assert!(!satisfied(&one_fails, &c));
        assert!(!satisfied(&[rule("roles", json!(["admins"]))], &c));
        // A list claim is matched by its items, never as a whole or by a nested list.
        let nested = claims(json!({ "groups": [["admins"]] }));
        assert!(!satisfied(&[rule("groups", json!(["admins"]))], &nested));
    }

    fn challenge(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_str(value).expect("header"),
        );
        h
    }

    fn login_url(r: Option<Reject>) -> Option<String> {
        match r {
            Some(Reject::StepUpRequired(url)) => Some(url.into()),
            _ => None,
        }
    }

    #[test]
    fn an_rfc_9470_challenge_becomes_a_step_up_login() {
        const ORIGIN: &str = "https://app.example";
        let referer = HeaderValue::from_static("https://app.example/pay?x=1");
        let h = challenge(
            r#"Bearer error="insufficient_user_authentication", error_description="needs mfa", acr_values="urn:mfa urn:hw", max_age="300""#,
        );
        assert_eq!(
            login_url(upstream_step_up(
                StatusCode::UNAUTHORIZED,
                &h,
                Some(&referer),
                ORIGIN
            ))
            .as_deref(),
            Some("/bff/login?acr_values=urn%3Amfa+urn%3Ahw&max_age=300&returnUrl=%2Fpay%3Fx%3D1")
        );
        // Another page's Referer is not where the login returns.
        let foreign = HeaderValue::from_static("https://evil.example/x");
        assert_eq!(
            login_url(upstream_step_up(
                StatusCode::UNAUTHORIZED,
                &h,
                Some(&foreign),
                ORIGIN
            ))
            .as_deref(),
            Some("/bff/login?acr_values=urn%3Amfa+urn%3Ahw&max_age=300&returnUrl=%2F")
        );
        // Only a 401 with that error, in a Bearer challenge, counts.
        assert!(upstream_step_up(StatusCode::FORBIDDEN, &h, None, ORIGIN).is_none());
        for other in [
            r#"Bearer error="invalid_token""#,
            r#"Basic realm="x", error="insufficient_user_authentication""#,
            "Bearer",
            "not a challenge list ===",
        ] {
            assert!(
                upstream_step_up(StatusCode::UNAUTHORIZED, &challenge(other), None, ORIGIN)
                    .is_none(),
                "{other}"
            );
        }
        // A second challenge in the same header, and malformed values left out.
        let h = challenge(
            r#"DPoP algs="ES256", Bearer error="insufficient_user_authentication", acr_values="bad\"quote", max_age="soon""#,
        );
        assert_eq!(
            login_url(upstream_step_up(StatusCode::UNAUTHORIZED, &h, None, ORIGIN)).as_deref(),
            Some("/bff/login?returnUrl=%2F")
        );
    }
}
