//! Discovery and every exchange with the provider.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreClaimName, CoreClaimType, CoreClient,
    CoreClientAuthMethod, CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthType, AuthenticationFlow, AuthorizationCode, ClientId,
    ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl,
    RefreshToken, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};

use super::grant_error::GrantError;
use super::http_client::{ProviderHttp, ProviderHttpError};
use crate::config::{ClientAuth, OidcConfig, Secret};

/// Discovery fields the core metadata type does not carry.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ExtraMetadata {
    end_session_endpoint: Option<url::Url>,
    revocation_endpoint: Option<url::Url>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

impl AdditionalProviderMetadata for ExtraMetadata {}

type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The client with the endpoints discovery guarantees: authorization and token set.
type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointMaybeSet,
>;

/// Tokens from one successful grant. `Debug` is redacted.
#[derive(Clone)]
pub struct TokenSet {
    pub access_token: String,
    pub expires_in: Option<Duration>,
    pub refresh_token: Option<String>,
    /// The compact ID token, already validated.
    pub id_token: Option<String>,
    /// The validated ID token's claims, as the provider sent them.
    pub id_claims: Option<serde_json::Map<String, serde_json::Value>>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("expires_in", &self.expires_in)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("has_id_token", &self.id_token.is_some())
            .finish_non_exhaustive()
    }
}

/// A discovered provider, ready for the code flow.
pub struct Provider {
    client: OidcClient,
    http: Arc<ProviderHttp>,
    issuer: String,
    client_id: String,
    client_secret: Option<Secret>,
    client_auth: ClientAuth,
    scopes: Vec<String>,
    auth_params: Vec<(String, String)>,
    end_session_endpoint: Option<url::Url>,
    /// Whether the end-session redirect carries the ID token (`oidc.logout_id_token_hint`).
    logout_id_token_hint: bool,
    revocation_endpoint: Option<url::Url>,
    iss_parameter_supported: bool,
}

/// Parameters of one authorization request.
pub struct AuthRequest<'a> {
    pub state: &'a str,
    pub nonce: &'a str,
    pub pkce_verifier: &'a str,
    /// `prompt=none`: renew silently, never show the provider's pages.
    pub silent: bool,
}

impl Provider {
    /// Fetches the discovery document and JWKS and builds the client.
    pub async fn discover(
        config: &OidcConfig,
        redirect_uri: &str,
        http: Arc<ProviderHttp>,
    ) -> Result<Provider, String> {
        let issuer = IssuerUrl::new(config.issuer.clone()).map_err(|e| e.to_string())?;
        let metadata = Metadata::discover_async(issuer, &*http)
            .await
            .map_err(|e| discovery_error(&e))?;
        let token_url = metadata
            .token_endpoint()
            .cloned()
            .ok_or("discovery document has no token_endpoint")?;
        let extra = metadata.additional_metadata().clone();
        let redirect = RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| e.to_string())?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(config.client_id.clone()),
            config
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.secret().to_owned())),
        )
        .set_token_uri(token_url)
        .set_redirect_uri(redirect)
        .set_auth_type(match config.client_auth {
            ClientAuth::ClientSecretPost => AuthType::RequestBody,
            _ => AuthType::BasicAuth,
        });
        Ok(Provider {
            client,
            http,
            issuer: config.issuer.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            client_auth: config.client_auth,
            scopes: config.scopes.clone(),
            auth_params: config.auth_params.clone(),
            end_session_endpoint: extra.end_session_endpoint,
            logout_id_token_hint: config.logout_id_token_hint,
            revocation_endpoint: extra.revocation_endpoint,
            iss_parameter_supported: extra.authorization_response_iss_parameter_supported,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// RFC 9207: when the provider says it sends `iss`, a response without it is refused.
    pub fn requires_iss(&self) -> bool {
        self.iss_parameter_supported
    }

    /// The authorization URL the browser is sent to: code flow, PKCE S256, our scopes and
    /// the configured extra parameters.
    pub fn authorize_url(&self, req: &AuthRequest<'_>) -> url::Url {
        let state = req.state.to_owned();
        let nonce = req.nonce.to_owned();
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            req.pkce_verifier.to_owned(),
        ));
        let mut auth = self
            .client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .set_pkce_challenge(challenge);
        for scope in self.scopes.iter().filter(|s| *s != "openid") {
            auth = auth.add_scope(Scope::new(scope.clone()));
        }
        for (k, v) in &self.auth_params {
            // A silent renew must not show a page: its `prompt=none` wins over a configured
            // `prompt` (such as `consent`).
            if req.silent && k == "prompt" {
                continue;
            }
            auth = auth.add_extra_param(k.clone(), v.clone());
        }
        if req.silent {
            auth = auth.add_prompt(CoreAuthPrompt::None);
        }
        auth.url().0
    }

    /// Redeems an authorization code and validates the ID token against `nonce`.
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<TokenSet, GrantError> {
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&*self.http)
            .await
            .map_err(GrantError::from)?;
        let id_token = response
            .id_token()
            .ok_or_else(|| GrantError::Invalid("token response has no id_token".into()))?;
        let expected = Nonce::new(nonce.to_owned());
        id_token
            .claims(&self.client.id_token_verifier(), &expected)
            .map_err(|e| GrantError::Invalid(format!("ID token rejected: {e}")))?;
        let compact = id_token.to_string();
        let claims = payload_claims(&compact)?;
        Ok(TokenSet {
            access_token: response.access_token().secret().clone(),
            expires_in: response.expires_in(),
            refresh_token: response.refresh_token().map(|t| t.secret().clone()),
            id_token: Some(compact),
            id_claims: Some(claims),
        })
    }

    /// The refresh-token grant. An ID token in the answer is validated (without a nonce:
    /// none was sent) before it is kept.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, GrantError> {
        let token = RefreshToken::new(refresh_token.to_owned());
        let response = self
            .client
            .exchange_refresh_token(&token)
            .request_async(&*self.http)
            .await
            .map_err(GrantError::from)?;
        let (id_token, id_claims) = match response.id_token() {
            Some(t) => {
                t.claims(&self.client.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
                    .map_err(|e| GrantError::Invalid(format!("ID token rejected: {e}")))?;
                let compact = t.to_string();
                let claims = payload_claims(&compact)?;
                (Some(compact), Some(claims))
            }
            None => (None, None),
        };
        Ok(TokenSet {
            access_token: response.access_token().secret().clone(),
            expires_in: response.expires_in(),
            refresh_token: response.refresh_token().map(|t| t.secret().clone()),
            id_token,
            id_claims,
        })
    }

    /// RFC 7009 revocation of a refresh token, when the provider has the endpoint.
    /// Returns whether the provider confirmed it.
    pub async fn revoke_refresh_token(&self, token: &str) -> Result<bool, GrantError> {
        let Some(endpoint) = &self.revocation_endpoint else {
            return Ok(false);
        };
        let mut builder = http::Request::post(endpoint.as_str())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json");
        // The serializer is not `Send`; it must be gone before the await below.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token)
                .append_pair("token_type_hint", "refresh_token");
            match self.client_auth {
                ClientAuth::ClientSecretPost => {
                    form.append_pair("client_id", &self.client_id);
                    if let Some(s) = &self.client_secret {
                        form.append_pair("client_secret", s.secret());
                    }
                }
                _ => {
                    builder = builder.header(http::header::AUTHORIZATION, self.basic_auth());
                }
            }
            form.finish().into_bytes()
        };
        let request = builder
            .body(body)
            .map_err(|e| GrantError::Invalid(e.to_string()))?;
        let response = self.http.send(request).await.map_err(|e| match e {
            ProviderHttpError::ServerError(_)
            | ProviderHttpError::Timeout
            | ProviderHttpError::Unreachable(_) => GrantError::Unavailable(e.to_string()),
            ProviderHttpError::Body(m) => GrantError::Invalid(m),
        })?;
        Ok(response.status().is_success())
    }

    /// RFC 6749 §2.3.1: client id and secret are form-encoded before the Basic encoding.
    fn basic_auth(&self) -> String {
        use base64::Engine;
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let secret = self.client_secret.as_ref().map_or("", |s| s.secret());
        let pair = format!("{}:{}", enc(&self.client_id), enc(secret));
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    /// Where to send the browser to end the provider's session too (RP-initiated logout),
    /// or `None` when the provider has no end-session endpoint.
    ///
    /// This URL is a redirect the browser follows, so whatever it carries the browser
    /// holds. `client_id` names the client for `post_logout_redirect_uri` (RP-Initiated
    /// Logout 1.0 §2); the ID token goes along as `id_token_hint` only when the operator
    /// asked for it, for providers that require it.
    pub fn end_session_url(
        &self,
        id_token: &str,
        post_logout_redirect_uri: &str,
    ) -> Option<url::Url> {
        let mut url = self.end_session_endpoint.clone()?;
        let mut query = url.query_pairs_mut();
        if self.logout_id_token_hint {
            query.append_pair("id_token_hint", id_token);
        }
        query
            .append_pair("post_logout_redirect_uri", post_logout_redirect_uri)
            .append_pair("client_id", &self.client_id);
        drop(query);
        Some(url)
    }
}

fn discovery_error<E: std::error::Error>(e: &E) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// The claims of a compact JWT whose signature was already verified, as plain JSON (every
/// claim the provider sent, not only those the typed claims know).
fn payload_claims(compact: &str) -> Result<serde_json::Map<String, serde_json::Value>, GrantError> {
    let payload = compact
        .split('.')
        .nth(1)
        .and_then(crate::crypto::b64url_decode)
        .ok_or_else(|| GrantError::Invalid("ID token is not a compact JWT".into()))?;
    serde_json::from_slice(&payload)
        .map_err(|e| GrantError::Invalid(format!("ID token claims: {e}")))
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
