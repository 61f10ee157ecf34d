//! Requests to the provider's token endpoint (RFC 6749 §4.1.3, §6, §4.4) and their
//! answers, done here rather than through the openidconnect crate's typed client so that
//! the gateway sees the whole answer: `refresh_expires_in`, RFC 8707 `resource`, an
//! empty-bodied refusal, and later DPoP headers.

use serde::{Deserialize, Deserializer};
use url::form_urlencoded::Serializer;

use super::client_auth::ClientCredentials;
use super::dpop::{self, Nonces};
use super::grant_error::{classify, GrantError, Invalid};
use super::http_client::ProviderHttp;
use crate::crypto::signing::SigningKey;

/// One grant request.
pub enum Grant<'a> {
    AuthorizationCode {
        code: &'a str,
        pkce_verifier: &'a str,
        redirect_uri: &'a str,
    },
    RefreshToken {
        refresh_token: &'a str,
        /// RFC 8707: an access token for this audience instead of the default one.
        resource: Option<&'a str>,
    },
    ClientCredentials {
        scope: Option<&'a str>,
        resource: Option<&'a str>,
    },
}

impl Grant<'_> {
    fn append(&self, form: &mut Serializer<'_, String>) {
        match self {
            Grant::AuthorizationCode {
                code,
                pkce_verifier,
                redirect_uri,
            } => {
                form.append_pair("grant_type", "authorization_code")
                    .append_pair("code", code)
                    .append_pair("code_verifier", pkce_verifier)
                    .append_pair("redirect_uri", redirect_uri);
            }
            Grant::RefreshToken {
                refresh_token,
                resource,
            } => {
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", refresh_token);
                if let Some(r) = resource {
                    form.append_pair("resource", r);
                }
            }
            Grant::ClientCredentials { scope, resource } => {
                form.append_pair("grant_type", "client_credentials");
                if let Some(s) = scope {
                    form.append_pair("scope", s);
                }
                if let Some(r) = resource {
                    form.append_pair("resource", r);
                }
            }
        }
    }
}

/// A successful token response (RFC 6749 §5.1), as sent. `Debug` is redacted.
#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_seconds")]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
    /// Lifetime of the refresh token (Keycloak and others); absent or 0: no known limit.
    #[serde(default, deserialize_with = "lenient_seconds")]
    pub refresh_expires_in: Option<u64>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("has_id_token", &self.id_token.is_some())
            .field("refresh_expires_in", &self.refresh_expires_in)
            .finish_non_exhaustive()
    }
}

/// Seconds as a JSON number or a numeric string (both are seen in the wild).
fn lenient_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Int(u64),
        Float(f64),
        Text(String),
    }
    Ok(match Option::<N>::deserialize(d)? {
        Some(N::Int(n)) => Some(n),
        Some(N::Float(f)) if f.is_finite() && f >= 0.0 => Some(f as u64),
        Some(N::Text(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A session's DPoP key for a grant, and where the provider's nonces are kept.
#[derive(Clone, Copy)]
pub struct DpopKey<'a> {
    pub key: &'a SigningKey,
    pub nonces: &'a Nonces,
}

/// Sends `grant` to `token_url` with the client's credentials and, with `dpop`, a proof
/// of the session's key (sent again once with the nonce the provider asks for).
pub async fn request(
    http: &ProviderHttp,
    token_url: &url::Url,
    client: &ClientCredentials,
    grant: &Grant<'_>,
    dpop: Option<DpopKey<'_>>,
) -> Result<TokenResponse, GrantError> {
    let origin = token_url.origin().ascii_serialization();
    let mut retried = false;
    let response = loop {
        let mut request = form_post(token_url, client, |form| grant.append(form))?;
        if let Some(d) = dpop {
            let proof = dpop::proof(
                d.key,
                "POST",
                &htu(token_url),
                None,
                d.nonces.get(&origin).as_deref(),
            )
            .map_err(Invalid::DpopProof)?;
            let value =
                http::HeaderValue::from_str(&proof).map_err(|e| Invalid::DpopHeader(e.into()))?;
            request.headers_mut().insert(&dpop::DPOP, value);
        }
        let response = http.send(request).await?;
        if let Some(d) = dpop {
            d.nonces.learn(&origin, response.headers());
            if !retried && dpop::wants_nonce(response.status(), response.headers(), response.body())
            {
                retried = true;
                continue;
            }
        }
        break response;
    };
    let status = response.status();
    if !status.is_success() {
        return Err(classify(status, response.body()));
    }
    let tokens: TokenResponse =
        serde_json::from_slice(response.body()).map_err(|e| Invalid::TokenResponse(e.into()))?;
    let expected = if dpop.is_some() { "DPoP" } else { "Bearer" };
    match tokens.token_type.as_deref() {
        None if dpop.is_none() => {}
        Some(t) if t.eq_ignore_ascii_case(expected) => {}
        found => {
            return Err(Invalid::TokenType {
                found: found.map(str::to_owned),
                expected,
            }
            .into())
        }
    }
    if tokens.access_token.is_empty() {
        return Err(Invalid::EmptyAccessToken.into());
    }
    Ok(tokens)
}

/// `htu` of an endpoint URL: no query, no fragment.
fn htu(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// A form-encoded POST to one of the provider's endpoints, authenticated as the client.
pub fn form_post(
    url: &url::Url,
    client: &ClientCredentials,
    fields: impl FnOnce(&mut Serializer<'_, String>),
) -> Result<http::Request<Vec<u8>>, GrantError> {
    let mut form = Serializer::new(String::new());
    fields(&mut form);
    let authorization = client
        .apply(&mut form, url.as_str())
        .map_err(Invalid::ClientAuth)?;
    let mut builder = http::Request::post(url.as_str())
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json");
    if let Some(a) = authorization {
        builder = builder.header(http::header::AUTHORIZATION, a);
    }
    builder
        .body(form.finish().into_bytes())
        .map_err(|e| Invalid::Request(e.into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_response_reads_what_providers_send() {
        let t: TokenResponse = serde_json::from_str(
            r#"{"access_token":"a","token_type":"Bearer","expires_in":"300",
                "refresh_token":"r","refresh_expires_in":1800,"scope":"openid"}"#,
        )
        .expect("parses");
        assert_eq!(t.expires_in, Some(300));
        assert_eq!(t.refresh_expires_in, Some(1800));
        assert_eq!(t.refresh_token.as_deref(), Some("r"));
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("\"a\"") && !dbg.contains("\"r\""), "{dbg}");
    }

    #[test]
    fn refresh_with_resource_names_it() {
        let mut form = Serializer::new(String::new());
        Grant::RefreshToken {
            refresh_token: "rt",
            resource: Some("https://api.example"),
        }
        .append(&mut form);
        assert_eq!(
            form.finish(),
            "grant_type=refresh_token&refresh_token=rt&resource=https%3A%2F%2Fapi.example"
        );
    }
}
