//! Access tokens for proxied calls: when to refresh, and refreshing one session at a time.

pub mod client_credentials;
mod lease;
pub mod refresh;

use std::time::Duration;

use crate::oidc::TokenSet;
use crate::session::{AccessToken, Claims, Session};

/// When a token issued `now` with `lifetime` is refreshed: `skew` before it expires, or at
/// half its life when the lifetime is shorter than twice the skew (so a 5-second token
/// under a 60-second skew is refreshed after 2.5 s, not on every request).
pub fn refresh_at(now: u64, lifetime: Option<Duration>, skew: Duration) -> Option<u64> {
    let life = lifetime?.as_secs();
    let lead = skew.as_secs().min(life / 2);
    // The lifetime is the provider's number: a huge one saturates rather than wraps.
    Some(now.saturating_add(life - lead))
}

/// Puts a grant's tokens into a session record: the default access token when
/// `resource` is `None`, else the token for that audience. A missing refresh token in
/// the answer keeps the old one (providers that do not rotate); a present one replaces
/// it, so a rotated refresh token is stored in the same write as the access token it
/// came with.
pub fn apply(
    session: &mut Session,
    resource: Option<&str>,
    tokens: &TokenSet,
    now: u64,
    skew: Duration,
) {
    let expires_at = tokens.expires_in.map(|d| now.saturating_add(d.as_secs()));
    let due = refresh_at(now, tokens.expires_in, skew);
    match resource {
        None => {
            session.access_token = tokens.access_token.as_str().into();
            session.access_expires_at = expires_at;
            session.refresh_at = due;
        }
        Some(r) => {
            session.resource_tokens.insert(
                r.to_owned(),
                AccessToken {
                    token: tokens.access_token.as_str().into(),
                    expires_at,
                    refresh_at: due,
                },
            );
        }
    }
    if let Some(rt) = &tokens.refresh_token {
        session.refresh_token = Some(rt.as_str().into());
        // A new refresh token comes with its own lifetime, or none that we know of.
        session.refresh_expires_at = tokens
            .refresh_expires_in
            .map(|d| now.saturating_add(d.as_secs()));
    } else if let Some(d) = tokens.refresh_expires_in {
        session.refresh_expires_at = Some(now.saturating_add(d.as_secs()));
    }
    if let Some(id) = &tokens.id_token {
        session.id_token = id.as_str().into();
    }
    // The default token's grant brings the user's current claims: a new ID token's, and
    // userinfo's over them. (`acr` and `auth_time` stay the login's: a refresh is no
    // new authentication.)
    if resource.is_none() && (tokens.id_claims.is_some() || tokens.userinfo.is_some()) {
        let id = match &tokens.id_claims {
            Some(id) => id.clone(),
            None => session.claims.to_map(),
        };
        session.claims = Claims::merged(&id, tokens.userinfo.as_ref());
    }
    session.last_seen = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_token_refreshes_skew_before_expiry() {
        let at = refresh_at(
            1000,
            Some(Duration::from_secs(300)),
            Duration::from_secs(60),
        );
        assert_eq!(at, Some(1240));
    }

    #[test]
    fn short_token_refreshes_at_half_life() {
        let at = refresh_at(1000, Some(Duration::from_secs(5)), Duration::from_secs(60));
        assert_eq!(at, Some(1003)); // 5 / 2 = 2 whole seconds of lead
    }

    #[test]
    fn token_without_lifetime_is_not_refreshed_ahead() {
        assert_eq!(refresh_at(1000, None, Duration::from_secs(60)), None);
    }

    #[test]
    fn a_providers_huge_lifetimes_saturate_rather_than_wrap() {
        // `expires_in` is the provider's number; u64::MAX seconds parses.
        let forever = Some(Duration::from_secs(u64::MAX));
        let tokens = TokenSet {
            access_token: "at".into(),
            expires_in: forever,
            refresh_token: Some("rt".into()),
            refresh_expires_in: forever,
            id_token: None,
            id_claims: None,
            userinfo: None,
        };
        let mut session = Session::default();
        apply(&mut session, None, &tokens, 1000, Duration::from_secs(60));
        assert_eq!(session.access_expires_at, Some(u64::MAX));
        assert_eq!(session.refresh_at, Some(u64::MAX));
        assert_eq!(session.refresh_expires_at, Some(u64::MAX));
    }
}
