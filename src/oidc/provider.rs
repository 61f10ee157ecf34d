//! Discovery and every exchange with the provider.

mod authorize;
mod discover;

use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openidconnect::core::{
    CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    ClaimsVerificationError, ClientId, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl,
    Nonce, SignatureVerificationError,
};

use super::client_auth::ClientCredentials;
use super::dpop::Nonces;
use super::grant_error::{GrantError, Invalid};
use super::http_client::ProviderHttp;
use super::keys::{JwsError, JwsHeader, KeySet};
use super::params::LoginParams;
use super::token_endpoint::{self, DpopKey, Grant, TokenResponse};
use crate::config::OidcConfig;
use crate::crypto::signing::SigningKey;

/// The client as discovery leaves it; the gateway uses it for the authorization URL only
/// (token requests go through [`token_endpoint`], ID tokens through [`KeySet`]).
type AuthClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Tokens from one successful grant. `Debug` is redacted.
#[derive(Clone)]
pub struct TokenSet {
    pub access_token: String,
    pub expires_in: Option<Duration>,
    pub refresh_token: Option<String>,
    /// The refresh token's own lifetime, when the provider states one.
    pub refresh_expires_in: Option<Duration>,
    /// The compact ID token, already validated.
    pub id_token: Option<String>,
    /// The validated ID token's claims, as the provider sent them.
    pub id_claims: Option<serde_json::Map<String, serde_json::Value>>,
    /// The userinfo endpoint's claims for this access token, when `oidc.userinfo` is on
    /// (filled in by the caller, [`Provider::userinfo`]).
    pub userinfo: Option<serde_json::Map<String, serde_json::Value>>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("expires_in", &self.expires_in)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("refresh_expires_in", &self.refresh_expires_in)
            .field("has_id_token", &self.id_token.is_some())
            .finish_non_exhaustive()
    }
}

/// A discovered provider, ready for the code flow.
pub struct Provider {
    client: AuthClient,
    http: Arc<ProviderHttp>,
    issuer: String,
    credentials: ClientCredentials,
    redirect_uri: String,
    token_url: url::Url,
    keys: KeySet,
    id_token_algs: Option<Vec<CoreJwsSigningAlgorithm>>,
    scopes: Vec<String>,
    auth_params: Vec<(String, String)>,
    end_session_endpoint: Option<url::Url>,
    revocation_endpoint: Option<url::Url>,
    iss_parameter_supported: bool,
    /// The latest DPoP nonce of the token endpoint.
    dpop_nonces: Nonces,
    par_endpoint: Option<url::Url>,
    /// Push authorization requests: configured, or required by the provider.
    use_par: bool,
    /// Where the session's claims are completed, when `oidc.userinfo` is on.
    userinfo_endpoint: Option<url::Url>,
}

/// Parameters of one authorization request.
pub struct AuthRequest<'a> {
    pub state: &'a str,
    pub nonce: &'a str,
    pub pkce_verifier: &'a str,
    /// What the page asked for through `/bff/login` (`prompt=none`: renew silently,
    /// never show the provider's pages).
    pub params: &'a LoginParams,
    /// RFC 9449 §10: the thumbprint of the DPoP key the code will be redeemed with.
    pub dpop_jkt: Option<&'a str>,
}

impl Provider {
    /// The userinfo endpoint's claims for `access_token` (OpenID Connect Core §5.3), or
    /// `None` when `oidc.userinfo` is off. An answer about anyone but `sub` is refused
    /// (§5.3.2), as is a signed or encrypted one (not supported).
    pub async fn userinfo(
        &self,
        access_token: &str,
        sub: &str,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, GrantError> {
        let Some(url) = &self.userinfo_endpoint else {
            return Ok(None);
        };
        let mut authorization = http::HeaderValue::try_from(format!("Bearer {access_token}"))
            .map_err(|_| Invalid::AccessTokenNotHeader)?;
        authorization.set_sensitive(true);
        let request = http::Request::get(url.as_str())
            .header(http::header::AUTHORIZATION, authorization)
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| Invalid::UserinfoRequest(e.into()))?;
        let response = self.http.send(request).await?;
        let status = response.status();
        if !status.is_success() {
            // The token was refused (401/403) or the endpoint is wrong: nothing a retry
            // of the same request mends, but not the user's fault either.
            return Err(Invalid::UserinfoStatus(status).into());
        }
        let json = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| {
                t.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        if !json {
            return Err(Invalid::UserinfoNotJson.into());
        }
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(response.body())
                .map_err(|e| Invalid::UserinfoUnreadable(e.into()))?;
        if claims.get("sub").and_then(|v| v.as_str()) != Some(sub) {
            return Err(Invalid::UserinfoSubject.into());
        }
        Ok(Some(claims))
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Where grants are redeemed (traces name its host).
    pub fn token_endpoint(&self) -> &url::Url {
        &self.token_url
    }

    pub fn client_id(&self) -> &str {
        self.credentials.client_id()
    }

    /// RFC 9207: when the provider says it sends `iss`, a response without it is refused.
    pub fn requires_iss(&self) -> bool {
        self.iss_parameter_supported
    }

    /// The provider's signing keys, for tokens it sends us other than through a grant
    /// (back-channel logout tokens).
    pub async fn verify_jws(&self, compact: &str) -> Result<(JwsHeader, Vec<u8>), JwsError> {
        self.keys.verify(compact, &self.http).await
    }

    async fn grant(
        &self,
        grant: &Grant<'_>,
        dpop_key: Option<&SigningKey>,
    ) -> Result<TokenResponse, GrantError> {
        let dpop = dpop_key.map(|key| DpopKey {
            key,
            nonces: &self.dpop_nonces,
        });
        token_endpoint::request(&self.http, &self.token_url, &self.credentials, grant, dpop).await
    }

    /// Redeems an authorization code and validates the ID token against `nonce`. With a
    /// DPoP key, the tokens are bound to it.
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
        dpop_key: Option<&SigningKey>,
    ) -> Result<TokenSet, GrantError> {
        let response = self
            .grant(
                &Grant::AuthorizationCode {
                    code,
                    pkce_verifier,
                    redirect_uri: &self.redirect_uri,
                },
                dpop_key,
            )
            .await?;
        let Some(id_token) = response.id_token.as_deref() else {
            return Err(Invalid::NoIdToken.into());
        };
        let claims = self.verify_id_token(id_token, Some(nonce)).await?;
        Ok(token_set(response, Some(claims)))
    }

    /// The refresh-token grant, optionally for another audience (RFC 8707 `resource`). An
    /// ID token in the answer is validated (without a nonce: none was sent) before it is
    /// kept; that it names the session's user is the caller's check.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        resource: Option<&str>,
        dpop_key: Option<&SigningKey>,
    ) -> Result<TokenSet, GrantError> {
        let response = self
            .grant(
                &Grant::RefreshToken {
                    refresh_token,
                    resource,
                },
                dpop_key,
            )
            .await?;
        let claims = match response.id_token.as_deref() {
            Some(t) => Some(self.verify_id_token(t, None).await?),
            None => None,
        };
        Ok(token_set(response, claims))
    }

    /// A client-credentials token of the gateway itself (RFC 6749 §4.4).
    pub async fn client_credentials(
        &self,
        scope: Option<&str>,
        resource: Option<&str>,
    ) -> Result<TokenSet, GrantError> {
        let response = self
            .grant(&Grant::ClientCredentials { scope, resource }, None)
            .await?;
        Ok(token_set(response, None))
    }

    /// Validates a compact ID token (signature, `iss`, `aud`, `exp`, and `nonce` when
    /// one was sent) and returns its claims. A key the set does not have yet triggers one
    /// refetch of the provider's keys.
    async fn verify_id_token(
        &self,
        compact: &str,
        nonce: Option<&str>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, GrantError> {
        let token =
            CoreIdToken::from_str(compact).map_err(|e| Invalid::IdTokenUnreadable(e.into()))?;
        let check = |keys: &CoreJsonWebKeySet| {
            let mut verifier = CoreIdTokenVerifier::new_public_client(
                ClientId::new(self.credentials.client_id().to_owned()),
                IssuerUrl::new(self.issuer.clone()).map_err(|e| {
                    ClaimsVerificationError::Other(format!("issuer is not a URL: {e}"))
                })?,
                keys.clone(),
            );
            if let Some(algs) = &self.id_token_algs {
                verifier = verifier.set_allowed_algs(algs.iter().cloned());
            }
            let result = match nonce {
                Some(n) => token
                    .claims(&verifier, &Nonce::new(n.to_owned()))
                    .map(|_| ()),
                None => token
                    .claims(&verifier, |_: Option<&Nonce>| Ok(()))
                    .map(|_| ()),
            };
            result
        };
        let outcome = match check(&self.keys.current()) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) if self.keys.refetch(&self.http).await => check(&self.keys.current()),
            other => other,
        };
        outcome.map_err(Invalid::IdTokenRejected)?;
        payload_claims(compact)
    }

    /// RFC 7009 revocation of a refresh token, when the provider has the endpoint.
    /// Returns whether the provider confirmed it.
    pub async fn revoke_refresh_token(&self, token: &str) -> Result<bool, GrantError> {
        let Some(endpoint) = &self.revocation_endpoint else {
            return Ok(false);
        };
        let request = token_endpoint::form_post(endpoint, &self.credentials, |form| {
            form.append_pair("token", token)
                .append_pair("token_type_hint", "refresh_token");
        })?;
        let response = self.http.send(request).await?;
        Ok(response.status().is_success())
    }

    /// Where to send the browser to end the provider's session too (RP-initiated logout),
    /// or `None` when the provider has no end-session endpoint. With `id_token_hint`
    /// `None`, `client_id` identifies us instead (OpenID Connect RP-Initiated Logout §2).
    pub fn end_session_url(
        &self,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: &str,
    ) -> Option<url::Url> {
        let mut url = self.end_session_endpoint.clone()?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(hint) = id_token_hint {
                q.append_pair("id_token_hint", hint);
            }
            q.append_pair("post_logout_redirect_uri", post_logout_redirect_uri)
                .append_pair("client_id", self.credentials.client_id());
        }
        Some(url)
    }
}

fn token_set(
    response: TokenResponse,
    id_claims: Option<serde_json::Map<String, serde_json::Value>>,
) -> TokenSet {
    TokenSet {
        access_token: response.access_token,
        expires_in: response.expires_in.map(Duration::from_secs),
        refresh_token: response.refresh_token,
        refresh_expires_in: response
            .refresh_expires_in
            .filter(|s| *s > 0)
            .map(Duration::from_secs),
        id_token: response.id_token,
        id_claims,
        userinfo: None,
    }
}

/// The claims of a compact JWT whose signature was already verified, as plain JSON (every
/// claim the provider sent, not only those the typed claims know).
fn payload_claims(compact: &str) -> Result<serde_json::Map<String, serde_json::Value>, GrantError> {
    let payload = compact
        .split('.')
        .nth(1)
        .and_then(crate::crypto::b64url_decode)
        .ok_or(Invalid::IdTokenNotJwt)?;
    serde_json::from_slice(&payload).map_err(|e| Invalid::IdTokenClaims(e.into()).into())
}

/// The provider once discovery has succeeded. Discovery runs in the background at start,
/// retrying with backoff; until it succeeds, the login endpoints answer 503 and `/readyz`
/// is not ready.
#[derive(Default)]
pub struct ProviderCell {
    /// A std `RwLock`: written once (later: on key rotation), read by the few requests that
    /// talk to the provider; never held across an await.
    inner: RwLock<Option<Arc<Provider>>>,
}

impl ProviderCell {
    pub fn get(&self) -> Option<Arc<Provider>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The provider, or why a grant cannot be asked of it yet.
    pub fn discovered(&self) -> Result<Arc<Provider>, super::grant_error::Unavailable> {
        self.get()
            .ok_or(super::grant_error::Unavailable::NotDiscovered)
    }

    fn set(&self, provider: Provider) {
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(provider));
    }

    /// Discovers the provider, retrying with capped exponential backoff until it answers.
    pub async fn discover_until_ready(
        self: Arc<Self>,
        config: OidcConfig,
        redirect_uri: String,
        http: Arc<ProviderHttp>,
    ) {
        let mut delay = Duration::from_millis(100);
        loop {
            match Provider::discover(&config, &redirect_uri, http.clone()).await {
                Ok(p) => {
                    tracing::info!(issuer = %config.issuer, "provider discovered");
                    self.set(p);
                    return;
                }
                Err(e) => {
                    tracing::warn!(issuer = %config.issuer, error = %e, retry_in = ?delay, "provider discovery failed");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}
