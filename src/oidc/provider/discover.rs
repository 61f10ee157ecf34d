//! Discovery: the provider's metadata (configuration, discovery document, RFC 8414) and
//! keys, read into a [`Provider`].

use std::sync::Arc;

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType,
    CoreSubjectIdentifierType,
};
use openidconnect::{AdditionalProviderMetadata, ClientId, ProviderMetadata, RedirectUrl};
use serde::{Deserialize, Serialize};

use super::Provider;
use crate::config::{OidcConfig, ProviderEndpoint};
use crate::oidc::client_auth::ClientCredentials;
use crate::oidc::dpop::Nonces;
use crate::oidc::http_client::ProviderHttp;
use crate::oidc::keys::KeySet;
use crate::oidc::metadata::{self, LookFor, Source};

/// Discovery fields the core metadata type does not carry.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct ExtraMetadata {
    end_session_endpoint: Option<url::Url>,
    revocation_endpoint: Option<url::Url>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
    pushed_authorization_request_endpoint: Option<url::Url>,
    #[serde(default)]
    require_pushed_authorization_requests: bool,
    /// RFC 8705 §5: endpoints to use instead when authenticating with a certificate.
    #[serde(default)]
    mtls_endpoint_aliases: MtlsAliases,
    #[serde(default)]
    dpop_signing_alg_values_supported: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct MtlsAliases {
    token_endpoint: Option<url::Url>,
    revocation_endpoint: Option<url::Url>,
    pushed_authorization_request_endpoint: Option<url::Url>,
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

impl Provider {
    /// Fetches the discovery document and JWKS and builds the client.
    pub async fn discover(
        config: &OidcConfig,
        redirect_uri: &str,
        http: Arc<ProviderHttp>,
    ) -> Result<Provider, String> {
        let found = metadata::fetch(config, &http, LookFor::Used).await?;
        require_endpoints(&found)?;
        let mut metadata: Metadata = serde_json::from_value(found.merged_document())
            .map_err(|e| format!("discovery document: {e}"))?;
        let jwks = CoreJsonWebKeySet::fetch_async(metadata.jwks_uri(), &*http)
            .await
            .map_err(|e| format!("jwks_uri: {}", discovery_error(&e)))?;
        metadata = metadata.set_jwks(jwks);
        let extra = metadata.additional_metadata().clone();
        let endpoints = Endpoints::pick(config, &found, &extra)?;
        let keys = KeySet::new(metadata.jwks_uri().clone(), metadata.jwks().clone());
        let id_token_algs = Some(
            metadata
                .id_token_signing_alg_values_supported()
                .iter()
                .filter(|a| !matches!(a, CoreJwsSigningAlgorithm::None))
                .cloned()
                .collect(),
        );
        let redirect = RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| e.to_string())?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(config.client_id.clone()),
            None,
        )
        .set_redirect_uri(redirect);
        Ok(Provider {
            client,
            http,
            issuer: config.issuer.clone(),
            credentials: ClientCredentials::new(config),
            redirect_uri: redirect_uri.to_owned(),
            token_url: endpoints.token_url,
            keys,
            id_token_algs,
            scopes: config.scopes.clone(),
            auth_params: config.auth_params.clone(),
            end_session_endpoint: found.endpoint(ProviderEndpoint::EndSession).cloned(),
            revocation_endpoint: endpoints.revocation_endpoint,
            iss_parameter_supported: extra.authorization_response_iss_parameter_supported,
            dpop_nonces: Nonces::default(),
            par_endpoint: endpoints.par_endpoint,
            use_par: endpoints.use_par,
            userinfo_endpoint: endpoints.userinfo_endpoint,
        })
    }
}

/// The endpoints the gateway cannot work without, found in the configuration, discovery
/// or RFC 8414 metadata.
fn require_endpoints(found: &metadata::Metadata) -> Result<(), String> {
    for which in [
        ProviderEndpoint::Authorization,
        ProviderEndpoint::Token,
        ProviderEndpoint::Jwks,
    ] {
        if found.endpoint(which).is_none() {
            let key = which.key();
            return Err(format!(
                "the provider publishes no {key} (in discovery or RFC 8414 metadata); \
                 set oidc.{key}"
            ));
        }
    }
    Ok(())
}

/// The back-channel endpoints the provider is called at, as the configuration and the
/// client's authentication choose them.
struct Endpoints {
    token_url: url::Url,
    revocation_endpoint: Option<url::Url>,
    par_endpoint: Option<url::Url>,
    /// Push authorization requests: configured, or required by the provider.
    use_par: bool,
    userinfo_endpoint: Option<url::Url>,
}

impl Endpoints {
    fn pick(
        config: &OidcConfig,
        found: &metadata::Metadata,
        extra: &ExtraMetadata,
    ) -> Result<Endpoints, String> {
        // With a client certificate, the provider's mTLS aliases (RFC 8705 §5) where it
        // publishes them — unless the configuration names the endpoint itself.
        let mtls = config.tls.identity.is_some();
        let pick = |which: ProviderEndpoint, alias: &Option<url::Url>| match alias {
            Some(u) if mtls && found.source(which) != Source::Config => Some(u.clone()),
            _ => found.endpoint(which).cloned(),
        };
        let aliases = &extra.mtls_endpoint_aliases;
        let token_url = pick(ProviderEndpoint::Token, &aliases.token_endpoint)
            .ok_or("the provider publishes no token_endpoint")?;
        let revocation_endpoint = pick(ProviderEndpoint::Revocation, &aliases.revocation_endpoint);
        let par_endpoint = pick(
            ProviderEndpoint::PushedAuthorizationRequest,
            &aliases.pushed_authorization_request_endpoint,
        );
        let use_par = config.par || extra.require_pushed_authorization_requests;
        if use_par && par_endpoint.is_none() {
            return Err(
                "pushed authorization requests are asked for, but the provider \
                 publishes no pushed_authorization_request_endpoint; set \
                 oidc.pushed_authorization_request_endpoint"
                    .into(),
            );
        }
        let userinfo_endpoint = match config.userinfo {
            false => None,
            true => Some(found.endpoint(ProviderEndpoint::Userinfo).cloned().ok_or(
                "oidc.userinfo is on, but the provider publishes no userinfo_endpoint; set \
                 oidc.userinfo_endpoint",
            )?),
        };
        Ok(Endpoints {
            token_url,
            revocation_endpoint,
            par_endpoint,
            use_par,
            userinfo_endpoint,
        })
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
