//! `GET /bff/callback`: finish the code flow and create the session.
//!
//! Order matters: the `state` must match a login-state cookie we sealed (CSRF and mix-up
//! defence) before anything else is looked at; `iss` must name our provider (RFC 9207)
//! before the code is sent anywhere; only then is the code redeemed and the ID token
//! validated. A **new** session ID is made on every login, and a session the browser
//! already had is ended, so a planted or old cookie never becomes a logged-in one.

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;

use super::login::{LoginState, LOGIN_STATE_TTL};
use super::query_param;
use crate::crypto::signing::SigningKey;
use crate::crypto::{self, cookie};
use crate::gateway::Gateway;
use crate::oidc::{GrantError, Provider, TokenSet};
use crate::server::respond::{redirect, PageError};
use crate::server::Body;
use crate::session::{bearer_header, unix_now, EndReason, Session, SessionId};

/// An ID token's claims, as the provider sent them.
type Claims = serde_json::Map<String, serde_json::Value>;

/// Why a phase of [`complete`] does not go on: an error page, or a silent renewal the
/// SPA is to be told about on its own page ([`back_to_spa`]).
enum Stop {
    Page(PageError),
    BackToSpa,
}

impl From<PageError> for Stop {
    fn from(page: PageError) -> Stop {
        Stop::Page(page)
    }
}

/// Errors a `prompt=none` renewal reports back to the SPA instead of an error page.
const SILENT_FAILURES: [&str; 4] = [
    "login_required",
    "consent_required",
    "interaction_required",
    "account_selection_required",
];

/// Creates the session and sends the browser back to where the login started; `Err` is
/// the page to answer with instead, when the response is not one of this browser's.
pub async fn finish(gw: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, PageError> {
    let Some(state) = query_param(req, "state") else {
        return Err(PageError::SignInRefused(
            "The sign-in response has no state parameter.",
        ));
    };
    let name = gw.cookies.login(&state);
    let Some(login) = open_login_state(gw, req, &name, &state) else {
        return Err(PageError::SignInRefused("This sign-in response does not belong to a sign-in started in this browser, or it has expired. Please sign in again."));
    };
    // From here on the login-state cookie is spent, whatever the outcome.
    let clear = gw.cookies.clear_login(&name);
    let mut resp = complete(gw, req, &login).await.unwrap_or_else(|page| {
        gw.metrics.logins_failed.inc();
        page.response()
    });
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().append(http::header::SET_COOKIE, v);
    }
    Ok(resp)
}

fn open_login_state(
    gw: &Gateway,
    req: &Request<Incoming>,
    name: &str,
    state: &str,
) -> Option<LoginState> {
    let cookie::Lookup::One(value) = cookie::find(req.headers(), name) else {
        return None;
    };
    let sealed = crypto::b64url_decode(value)?;
    let plain = gw.keys.open(&sealed, name.as_bytes()).ok()?;
    let login: LoginState = serde_json::from_slice(&plain).ok()?;
    let fresh = unix_now() < login.created_at + LOGIN_STATE_TTL.as_secs();
    (fresh && login.state == state).then_some(login)
}

/// The rest of the callback, once the login state is open, as named phases in the order
/// they run: read the provider's answer, exchange the code, validate the ID token and
/// what the login asked for, build the record, store it and answer. Each phase's `Err`
/// says why it stops; `Err` is the page of a sign-in that failed (a silent renewal
/// refused by the provider is not one: it goes back to the SPA).
async fn complete(
    gw: &Gateway,
    req: &Request<Incoming>,
    login: &LoginState,
) -> Result<Response<Body>, PageError> {
    let provider = gw.provider.get().ok_or(PageError::ProviderUnavailable)?;
    let outcome = async {
        let code = read_answer(&provider, req, login)?;
        let mut tokens = exchange(&provider, login, &code).await?;
        let (claims, sub) = validate(&provider, login, &mut tokens).await?;
        let record = build_record(gw, login, &claims, sub, &tokens);
        Ok::<_, Stop>(store_and_answer(gw, req, login, record).await?)
    };
    match outcome.await {
        Ok(resp) => Ok(resp),
        Err(Stop::BackToSpa) => Ok(back_to_spa(&login.return_url)),
        Err(Stop::Page(page)) => Err(page),
    }
}

/// The provider's answer: `iss` must name our provider (RFC 9207) before the code is
/// sent anywhere; an `error` is shown (or, for a silent renewal, handed back to the
/// SPA). Returns the authorization code.
fn read_answer(
    provider: &Provider,
    req: &Request<Incoming>,
    login: &LoginState,
) -> Result<String, Stop> {
    match query_param(req, "iss") {
        Some(iss) if iss != provider.issuer() => {
            tracing::warn!("callback with a foreign issuer refused (possible mix-up attack)");
            return Err(PageError::SignInRefused(
                "The sign-in response came from an unexpected identity provider.",
            )
            .into());
        }
        None if provider.requires_iss() => {
            let error = query_param(req, "error");
            let is_error_response = error.is_some() && query_param(req, "code").is_none();
            // A silent renewal's error response without `iss`: it cannot be trusted (it may
            // come from another provider), so what it says is not acted on — but it carries
            // no code, so nothing is redeemed and nothing is at risk. A 400 page would strand
            // the user inside the SPA's renewal; the SPA is told to log in instead, the one
            // safe step whatever the real answer was.
            if login.silent && is_error_response {
                tracing::warn!(
                    error = error.as_deref().map_or("", known_error),
                    "silent renewal answered with an error but without the iss the provider \
                     promised (RFC 9207): not trusted; the SPA is asked to log in"
                );
                return Err(Stop::BackToSpa);
            }
            tracing::warn!(
                error_response = is_error_response,
                "sign-in response without the iss the provider promised (RFC 9207) refused"
            );
            return Err(PageError::SignInRefused(
                "The sign-in response lacks the issuer the provider promised to send.",
            )
            .into());
        }
        _ => {}
    }
    if let Some(error) = query_param(req, "error") {
        if login.silent && SILENT_FAILURES.contains(&error.as_str()) {
            // The SPA asked for a silent renewal; tell it, on its own page, to log in.
            return Err(Stop::BackToSpa);
        }
        let description = query_param(req, "error_description").unwrap_or_default();
        return Err(PageError::ProviderError { error, description }.into());
    }
    query_param(req, "code").ok_or_else(|| {
        PageError::SignInRefused("The sign-in response has no authorization code.").into()
    })
}

/// Redeems the code, with the login's DPoP key when it has one; the provider validates
/// the ID token against the login's nonce.
async fn exchange(provider: &Provider, login: &LoginState, code: &str) -> Result<TokenSet, Stop> {
    let dpop_key = match login.dpop_key.as_deref().map(|k| {
        crypto::b64url_decode(k)
            .ok_or("not base64url".to_owned())
            .and_then(|der| SigningKey::from_p256_pkcs8(&der))
    }) {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "the login state's DPoP key does not load");
            return Err(PageError::SignInRefused(
                "The sign-in could not be completed. Please sign in again.",
            )
            .into());
        }
    };
    match provider
        .exchange_code(code, &login.pkce_verifier, &login.nonce, dpop_key.as_ref())
        .await
    {
        Ok(t) => Ok(t),
        Err(GrantError::Unavailable(e)) => {
            tracing::warn!(error = %e, "code exchange failed: provider unavailable");
            Err(PageError::ProviderUnavailable.into())
        }
        Err(e) => {
            tracing::warn!(error = %e, "code exchange refused");
            Err(PageError::SignInRefused(
                "The sign-in could not be completed. Please sign in again.",
            )
            .into())
        }
    }
}

/// The tokens against what the login needs: a usable access token, an ID token with a
/// subject that authenticated as the login asked; then the userinfo claims, when
/// `oidc.userinfo` is on. Returns the ID token's claims and its subject.
async fn validate(
    provider: &Provider,
    login: &LoginState,
    tokens: &mut TokenSet,
) -> Result<(Claims, String), Stop> {
    if bearer_header(&tokens.access_token).is_none() {
        return Err(PageError::SignInRefused(
            "The identity provider issued an unusable access token.",
        )
        .into());
    }
    let claims = tokens.id_claims.clone().unwrap_or_default();
    let Some(sub) = claims
        .get("sub")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
    else {
        return Err(PageError::SignInRefused("The ID token has no subject.").into());
    };
    if let Err(why) = authentication_as_asked(login, &claims) {
        tracing::warn!(
            why,
            "sign-in refused: the provider did not authenticate as asked"
        );
        return Err(PageError::SignInRefused(
            "The identity provider did not sign you in the way this page asks for. Please try again.",
        ).into());
    }
    match provider.userinfo(&tokens.access_token, &sub).await {
        Ok(userinfo) => tokens.userinfo = userinfo,
        Err(GrantError::Unavailable(e)) => {
            tracing::warn!(error = %e, "userinfo unavailable at login");
            return Err(PageError::ProviderUnavailable.into());
        }
        Err(e) => {
            tracing::warn!(error = %e, "userinfo refused at login");
            return Err(PageError::SignInRefused(
                "The sign-in could not be completed. Please sign in again.",
            )
            .into());
        }
    }
    Ok((claims, sub))
}

/// The new session's record: who signed in and how, and the tokens.
fn build_record(
    gw: &Gateway,
    login: &LoginState,
    claims: &Claims,
    sub: String,
    tokens: &TokenSet,
) -> Session {
    let now = unix_now();
    let mut record = Session {
        sub,
        sid: claims
            .get("sid")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        acr: claims
            .get("acr")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        auth_time: claims.get("auth_time").and_then(|v| v.as_u64()),
        created_at: now,
        last_seen: now,
        dpop_key: login.dpop_key.clone(),
        ..Session::default()
    };
    crate::token::apply(
        &mut record,
        None,
        tokens,
        now,
        gw.config.tokens.refresh_before_expiry,
    );
    record
}

/// Ends the session the browser already had, stores the new one under a new ID, and
/// sends the browser back with its cookie (and a DBSC offer).
async fn store_and_answer(
    gw: &Gateway,
    req: &Request<Incoming>,
    login: &LoginState,
    record: Session,
) -> Result<Response<Body>, PageError> {
    // A session this browser already had ends here: one login, one live session.
    // (Whatever its state: a device-bound one without its bound cookie ends too.)
    if let cookie::Lookup::One(old) = cookie::find(req.headers(), gw.cookies.session()) {
        if let Some(old) = SessionId::store_key_of(old) {
            let _ = gw.sessions.end(old, EndReason::Replaced).await;
        }
    }
    let (id, live) = match gw.sessions.create(record).await {
        Ok(created) => created,
        Err(e) => {
            tracing::error!(error = %e, "could not store a new session");
            return Err(PageError::StoreUnavailable);
        }
    };
    tracing::info!(session = %live.key.short(), "login completed");
    gw.metrics.logins_completed.inc();
    let mut resp = redirect(&login.return_url);
    let set = gw
        .cookies
        .set_session(id.secret(), gw.config.session.absolute_timeout);
    if let Ok(v) = HeaderValue::from_str(&set) {
        resp.headers_mut().append(http::header::SET_COOKIE, v);
    }
    // Browsers with DBSC bind the session to a device key; the rest ignore the header.
    if let Some(offer) = super::dbsc::offer(gw, &live.key) {
        resp.headers_mut().insert(
            http::HeaderName::from_static("secure-session-registration"),
            offer,
        );
    }
    Ok(resp)
}

/// How long before the login started an `auth_time` may lie and still meet its
/// `max_age`: the clocks of the provider and the gateway may differ this much.
const CLOCK_SKEW_SECS: u64 = 60;

/// The ID token against what the login asked for (OpenID Connect Core §3.1.2.1): an
/// `acr` among the `acr_values`, and with `max_age` an `auth_time` no older than that
/// before the login started. `Err` says what is missing, for the log.
fn authentication_as_asked(
    login: &LoginState,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), &'static str> {
    if let Some(asked) = &login.acr_values {
        let acr = claims.get("acr").and_then(|v| v.as_str());
        if !acr.is_some_and(|acr| asked.split(' ').any(|a| a == acr)) {
            return Err("the ID token's acr is none of the acr_values asked for");
        }
    }
    if let Some(max_age) = login.max_age {
        let Some(auth_time) = claims.get("auth_time").and_then(|v| v.as_u64()) else {
            return Err("max_age was sent and the ID token has no auth_time");
        };
        let earliest = login
            .created_at
            .saturating_sub(max_age.saturating_add(CLOCK_SKEW_SECS));
        if auth_time < earliest {
            return Err("the ID token's auth_time is older than max_age allows");
        }
    }
    Ok(())
}

/// The SPA's own page with `error=login_required`, what its helper takes as "log in
/// interactively" (examples/spa/src/bff.ts, `takeLoginError`).
fn back_to_spa(return_url: &str) -> Response<Body> {
    let sep = if return_url.contains('?') { '&' } else { '?' };
    redirect(&format!("{return_url}{sep}error=login_required"))
}

/// An `error` value fit for the log: one of the codes OAuth 2.0 and OpenID Connect
/// define, or a placeholder, so that an unauthenticated request cannot write what it
/// likes into the log.
fn known_error(error: &str) -> &'static str {
    const KNOWN: [&str; 12] = [
        "login_required",
        "consent_required",
        "interaction_required",
        "account_selection_required",
        "invalid_request",
        "unauthorized_client",
        "access_denied",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "invalid_request_uri",
    ];
    KNOWN
        .into_iter()
        .find(|k| *k == error)
        .unwrap_or("(another value)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn login(acr_values: Option<&str>, max_age: Option<u64>) -> LoginState {
        LoginState {
            state: String::new(),
            nonce: String::new(),
            pkce_verifier: String::new(),
            return_url: "/".into(),
            silent: false,
            created_at: 10_000,
            dpop_key: None,
            acr_values: acr_values.map(str::to_owned),
            max_age,
        }
    }

    fn claims(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn the_id_token_must_carry_what_the_login_asked_for() {
        let nothing_asked = login(None, None);
        assert!(authentication_as_asked(&nothing_asked, &claims(json!({}))).is_ok());

        let mfa = login(Some("urn:mfa urn:hw"), None);
        assert!(authentication_as_asked(&mfa, &claims(json!({"acr": "urn:hw"}))).is_ok());
        assert!(authentication_as_asked(&mfa, &claims(json!({"acr": "urn:pwd"}))).is_err());
        assert!(authentication_as_asked(&mfa, &claims(json!({}))).is_err());
        // A value is matched whole, never as part of the list's text.
        assert!(authentication_as_asked(&mfa, &claims(json!({"acr": "urn:mfa urn:hw"}))).is_err());

        let recent = login(None, Some(300));
        assert!(authentication_as_asked(&recent, &claims(json!({}))).is_err());
        // Authenticated within max_age before the login started (with the clock skew).
        for ok in [10_000, 9_700, 9_640] {
            assert!(authentication_as_asked(&recent, &claims(json!({"auth_time": ok}))).is_ok());
        }
        assert!(authentication_as_asked(&recent, &claims(json!({"auth_time": 9_639}))).is_err());
        assert!(authentication_as_asked(&recent, &claims(json!({"auth_time": "9700"}))).is_err());
    }
}
