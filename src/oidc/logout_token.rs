//! The claims of a back-channel logout token (OpenID Connect Back-Channel Logout 1.0
//! §2.4, §2.6), checked once its signature has verified.
//!
//! Pure functions of the token and the clock, so every rule is unit-tested and the
//! parser can be fuzzed without a provider.

use serde::Deserialize;
use serde_json::Value;

use super::keys::JwsHeader;

/// The event that marks a JWT as a logout token.
pub const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How old a logout token may be (its `iat`), and so how long its `jti` is remembered.
pub const MAX_AGE_SECS: u64 = 300;
/// How far in the future `iat` may lie, for clocks that disagree a little.
pub const CLOCK_SKEW_SECS: u64 = 60;

/// What a valid logout token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutClaims {
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub jti: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutTokenError {
    #[error("typ is neither logout+jwt, JWT nor absent")]
    Type,
    #[error("claims are not a JSON object of the expected shape")]
    Shape,
    #[error("iss is not the provider")]
    Issuer,
    #[error("aud does not name this client")]
    Audience,
    #[error("iat is missing, too old or in the future")]
    IssuedAt,
    #[error("the token has expired")]
    Expired,
    #[error("jti is missing")]
    Jti,
    #[error("the back-channel logout event is missing")]
    Event,
    #[error("neither sid nor sub names whom to log out")]
    Subject,
    #[error("a logout token must not carry a nonce")]
    Nonce,
}

#[derive(Deserialize)]
struct Raw {
    iss: Option<String>,
    aud: Option<Value>,
    iat: Option<Value>,
    exp: Option<Value>,
    jti: Option<String>,
    events: Option<serde_json::Map<String, Value>>,
    sub: Option<String>,
    sid: Option<String>,
    nonce: Option<Value>,
}

/// Checks every claim rule; `now` is Unix seconds.
pub fn validate(
    header: &JwsHeader,
    payload: &[u8],
    issuer: &str,
    client_id: &str,
    now: u64,
) -> Result<LogoutClaims, LogoutTokenError> {
    if let Some(typ) = &header.typ {
        if !accepted_type(typ) {
            return Err(LogoutTokenError::Type);
        }
    }
    // A claim set is a JSON object (RFC 7519 §7.2): a derived `Deserialize` would also
    // take an array of the fields in order.
    let object: serde_json::Map<String, Value> =
        serde_json::from_slice(payload).map_err(|_| LogoutTokenError::Shape)?;
    let raw: Raw =
        serde_json::from_value(Value::Object(object)).map_err(|_| LogoutTokenError::Shape)?;
    if raw.iss.as_deref() != Some(issuer) {
        return Err(LogoutTokenError::Issuer);
    }
    let aud_ok = match &raw.aud {
        Some(Value::String(a)) => a == client_id,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if !aud_ok {
        return Err(LogoutTokenError::Audience);
    }
    let iat = raw
        .iat
        .as_ref()
        .and_then(seconds)
        .ok_or(LogoutTokenError::IssuedAt)?;
    if iat > now.saturating_add(CLOCK_SKEW_SECS) || now.saturating_sub(iat) > MAX_AGE_SECS {
        return Err(LogoutTokenError::IssuedAt);
    }
    // `exp` is optional (several providers omit it); when present it is enforced.
    if let Some(exp) = &raw.exp {
        let exp = seconds(exp).ok_or(LogoutTokenError::Expired)?;
        if exp.saturating_add(CLOCK_SKEW_SECS) <= now {
            return Err(LogoutTokenError::Expired);
        }
    }
    let jti = raw
        .jti
        .filter(|j| !j.is_empty())
        .ok_or(LogoutTokenError::Jti)?;
    if !raw
        .events
        .as_ref()
        .and_then(|e| e.get(BACKCHANNEL_EVENT))
        .is_some_and(Value::is_object)
    {
        return Err(LogoutTokenError::Event);
    }
    if raw.nonce.is_some() {
        return Err(LogoutTokenError::Nonce);
    }
    let sub = raw.sub.filter(|s| !s.is_empty());
    let sid = raw.sid.filter(|s| !s.is_empty());
    if sub.is_none() && sid.is_none() {
        return Err(LogoutTokenError::Subject);
    }
    Ok(LogoutClaims { sub, sid, jti })
}

/// Whether a `typ` header may head a logout token. Back-Channel Logout 1.0 §2.4 only
/// *recommends* explicit typing; its validation steps (§2.6) do not check `typ`, and many
/// providers send the generic `JWT`, which JOSE libraries treat like an absent `typ`.
/// Any *other* explicit type (`at+jwt`, an ID token's `id_token+jwt`…) names a different
/// kind of token and is refused; the `events` claim and the no-`nonce` rule stop an
/// untyped ID token. Media types compare case-insensitively (RFC 7515 §4.1.9), with or
/// without the `application/` prefix.
fn accepted_type(typ: &str) -> bool {
    let t = typ.to_ascii_lowercase();
    let t = t.strip_prefix("application/").unwrap_or(&t);
    t == "logout+jwt" || t == "jwt"
}

/// A NumericDate: a non-negative JSON number (fractions are cut).
fn seconds(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;
    const ISS: &str = "https://op.example";

    fn header(typ: Option<&str>) -> JwsHeader {
        JwsHeader {
            alg: "RS256".into(),
            kid: None,
            typ: typ.map(str::to_owned),
        }
    }

    fn good() -> Value {
        json!({
            "iss": ISS, "aud": "gateway", "iat": NOW - 10, "jti": "j1",
            "events": { BACKCHANNEL_EVENT: {} }, "sid": "s1", "sub": "alice"
        })
    }

    fn check(claims: &Value) -> Result<LogoutClaims, LogoutTokenError> {
        let payload = serde_json::to_vec(claims).expect("json");
        validate(&header(Some("logout+jwt")), &payload, ISS, "gateway", NOW)
    }

    fn with(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
        let mut v = good();
        change(v.as_object_mut().expect("object"));
        v
    }

    #[test]
    fn a_good_token_names_sid_and_sub() {
        let c = check(&good()).expect("valid");
        assert_eq!(c.sid.as_deref(), Some("s1"));
        assert_eq!(c.sub.as_deref(), Some("alice"));
        assert_eq!(c.jti, "j1");
        let aud_list = with(|m| {
            m.insert("aud".into(), json!(["other", "gateway"]));
        });
        assert!(check(&aud_list).is_ok());
        let no_exp_but_sub_only = with(|m| {
            m.remove("sid");
        });
        assert!(check(&no_exp_but_sub_only).is_ok());
    }

    #[test]
    fn every_rule_is_enforced() {
        use LogoutTokenError::*;
        let cases: Vec<(Value, LogoutTokenError)> = vec![
            (
                with(|m| {
                    m.insert("iss".into(), json!("https://evil"));
                }),
                Issuer,
            ),
            (
                with(|m| {
                    m.insert("aud".into(), json!("someone-else"));
                }),
                Audience,
            ),
            (
                with(|m| {
                    m.remove("aud");
                }),
                Audience,
            ),
            (
                with(|m| {
                    m.insert("iat".into(), json!(NOW - MAX_AGE_SECS - 1));
                }),
                IssuedAt,
            ),
            (
                with(|m| {
                    m.insert("iat".into(), json!(NOW + CLOCK_SKEW_SECS + 1));
                }),
                IssuedAt,
            ),
            (
                with(|m| {
                    m.remove("iat");
                }),
                IssuedAt,
            ),
            (
                with(|m| {
                    m.insert("exp".into(), json!(NOW - CLOCK_SKEW_SECS));
                }),
                Expired,
            ),
            (
                with(|m| {
                    m.remove("jti");
                }),
                Jti,
            ),
            (
                with(|m| {
                    m.remove("events");
                }),
                Event,
            ),
            (
                with(|m| {
                    m.insert("events".into(), json!({ BACKCHANNEL_EVENT: "yes" }));
                }),
                Event,
            ),
            (
                with(|m| {
                    m.remove("sid");
                    m.remove("sub");
                }),
                Subject,
            ),
            (
                with(|m| {
                    m.insert("nonce".into(), json!("n"));
                }),
                Nonce,
            ),
        ];
        for (claims, expected) in cases {
            assert_eq!(check(&claims), Err(expected.clone()), "{claims}");
        }
        assert_eq!(
            validate(&header(None), b"[1,2]", ISS, "gateway", NOW),
            Err(Shape)
        );
    }

    #[test]
    fn generic_and_absent_types_pass_other_types_do_not() {
        let payload = serde_json::to_vec(&good()).expect("json");
        for typ in [
            Some("logout+jwt"),
            Some("application/logout+jwt"),
            Some("Logout+JWT"),
            Some("JWT"),
            Some("jwt"),
            Some("Jwt"),
            Some("application/jwt"),
            None,
        ] {
            assert!(
                validate(&header(typ), &payload, ISS, "gateway", NOW).is_ok(),
                "{typ:?} should be accepted"
            );
        }
        for typ in [
            "at+jwt",
            "application/at+jwt",
            "id_token+jwt",
            "secevent+jwt",
            "JOSE",
            "",
            "jwt+logout",
        ] {
            assert_eq!(
                validate(&header(Some(typ)), &payload, ISS, "gateway", NOW),
                Err(LogoutTokenError::Type),
                "{typ:?} should be refused"
            );
        }
    }

    #[test]
    fn an_untyped_id_token_is_still_refused() {
        // An ID token has no `events`; one that has them is still refused for its nonce.
        let id_token = with(|m| {
            m.remove("events");
            m.insert("nonce".into(), json!("n"));
        });
        let payload = serde_json::to_vec(&id_token).expect("json");
        assert_eq!(
            validate(&header(Some("JWT")), &payload, ISS, "gateway", NOW),
            Err(LogoutTokenError::Event)
        );
        let with_events = with(|m| {
            m.insert("nonce".into(), json!("n"));
        });
        let payload = serde_json::to_vec(&with_events).expect("json");
        assert_eq!(
            validate(&header(None), &payload, ISS, "gateway", NOW),
            Err(LogoutTokenError::Nonce)
        );
    }

    #[test]
    fn a_claim_set_must_be_an_object_not_an_array_of_the_claims_in_order() {
        let array = serde_json::json!([
            ISS,
            "gateway",
            NOW,
            NOW + 60,
            "jti-array",
            { BACKCHANNEL_EVENT: {} },
            "alice",
            null,
            null
        ]);
        let payload = serde_json::to_vec(&array).expect("json");
        assert!(matches!(
            validate(&header(Some("logout+jwt")), &payload, ISS, "gateway", NOW),
            Err(LogoutTokenError::Shape)
        ));
    }
}
