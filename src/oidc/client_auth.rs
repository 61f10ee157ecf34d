//! How the gateway proves who it is at the provider's token, revocation and PAR
//! endpoints.
//!
//! One place builds the credentials into a request, so every call to the provider (code
//! redemption, refresh, client credentials, revocation, pushed authorization requests)
//! authenticates the same way:
//! - `client_secret_basic` / `client_secret_post` (RFC 6749 §2.3.1);
//! - `private_key_jwt` (RFC 7523): a fresh signed assertion per request, with a new
//!   `jti` and a one-minute lifetime, its audience the endpoint called;
//! - `tls_client_auth` / `self_signed_tls_client_auth` (RFC 8705): the certificate is
//!   presented by the TLS layer (see `ProviderHttp`); the form names the client.

use std::sync::Arc;

use base64::Engine;
use serde_json::json;
use url::form_urlencoded::Serializer;

use crate::config::{ClientAuth, OidcConfig, Secret};
use crate::crypto::signing::SigningKey;
use crate::session::unix_now;

/// Lifetime of a client assertion: long enough for one request, short enough that a
/// captured one is soon useless.
const ASSERTION_LIFETIME_SECS: u64 = 60;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Clone)]
pub struct ClientCredentials {
    client_id: String,
    secret: Option<Secret>,
    method: ClientAuth,
    /// `private_key_jwt`: the key and the `kid` its assertions name.
    signer: Option<(Arc<SigningKey>, String)>,
}

impl ClientCredentials {
    pub fn new(config: &OidcConfig) -> ClientCredentials {
        ClientCredentials {
            client_id: config.client_id.clone(),
            secret: config.client_secret.clone(),
            method: config.client_auth,
            signer: config.private_key.clone().map(|k| {
                let kid = config
                    .private_key_id
                    .clone()
                    .unwrap_or_else(|| k.thumbprint());
                (k, kid)
            }),
        }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// True when [`ClientCredentials::apply`] puts `client_id` in the form itself.
    pub fn names_client_in_form(&self) -> bool {
        self.method != ClientAuth::ClientSecretBasic
    }

    /// Adds the credentials for a request to `endpoint`: form fields are appended to
    /// `form`; the `Authorization` header it needs, if any, is returned.
    pub fn apply(
        &self,
        form: &mut Serializer<'_, String>,
        endpoint: &str,
    ) -> Result<Option<String>, String> {
        match self.method {
            ClientAuth::ClientSecretBasic => Ok(Some(self.basic())),
            ClientAuth::ClientSecretPost => {
                form.append_pair("client_id", &self.client_id);
                if let Some(s) = &self.secret {
                    form.append_pair("client_secret", s.secret());
                }
                Ok(None)
            }
            ClientAuth::PrivateKeyJwt => {
                form.append_pair("client_id", &self.client_id)
                    .append_pair("client_assertion_type", ASSERTION_TYPE)
                    .append_pair("client_assertion", &self.assertion(endpoint)?);
                Ok(None)
            }
            ClientAuth::TlsClientAuth | ClientAuth::SelfSignedTlsClientAuth => {
                form.append_pair("client_id", &self.client_id);
                Ok(None)
            }
        }
    }

    /// RFC 7523 §3: `iss` and `sub` the client, `aud` the endpoint, a fresh `jti`.
    fn assertion(&self, audience: &str) -> Result<String, String> {
        let (key, kid) = self
            .signer
            .as_ref()
            .ok_or("private_key_jwt without a key")?;
        let now = unix_now();
        let mut header = serde_json::Map::new();
        header.insert("kid".into(), kid.clone().into());
        header.insert("typ".into(), "JWT".into());
        key.jws(
            header,
            &json!({
                "iss": self.client_id,
                "sub": self.client_id,
                "aud": audience,
                "jti": crate::crypto::random_token(),
                "iat": now,
                "exp": now + ASSERTION_LIFETIME_SECS,
            }),
        )
    }

    /// RFC 6749 §2.3.1: id and secret are form-encoded before the Basic encoding, so a
    /// secret with `:` or non-ASCII characters survives.
    fn basic(&self) -> String {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let secret = self.secret.as_ref().map_or("", |s| s.secret());
        let pair = format!("{}:{}", enc(&self.client_id), enc(secret));
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(method: ClientAuth, secret: &str) -> ClientCredentials {
        ClientCredentials {
            client_id: "gate way".into(),
            secret: Some(Secret::new(secret.into())),
            method,
            signer: None,
        }
    }

    #[test]
    fn basic_form_encodes_before_base64() {
        let mut form = Serializer::new(String::new());
        let header = creds(ClientAuth::ClientSecretBasic, "a:b")
            .apply(&mut form, "https://op/token")
            .expect("applies");
        let expected = base64::engine::general_purpose::STANDARD.encode("gate+way:a%3Ab");
        assert_eq!(header, Some(format!("Basic {expected}")));
        assert_eq!(form.finish(), "");
    }

    #[test]
    fn post_puts_the_credentials_in_the_form() {
        let mut form = Serializer::new(String::new());
        let header = creds(ClientAuth::ClientSecretPost, "s&t")
            .apply(&mut form, "https://op/token")
            .expect("applies");
        assert_eq!(header, None);
        assert_eq!(form.finish(), "client_id=gate+way&client_secret=s%26t");
    }

    #[test]
    fn private_key_jwt_sends_a_fresh_assertion_for_the_endpoint() {
        let (key, _) = SigningKey::generate_p256().expect("key");
        let mut c = creds(ClientAuth::PrivateKeyJwt, "unused");
        c.signer = Some((Arc::new(key), "k1".into()));
        let assertion = |c: &ClientCredentials| {
            let mut form = Serializer::new(String::new());
            assert_eq!(
                c.apply(&mut form, "https://op/token").expect("applies"),
                None
            );
            let body = form.finish();
            assert!(!body.contains("client_secret"), "{body}");
            url::form_urlencoded::parse(body.as_bytes())
                .find(|(k, _)| k == "client_assertion")
                .map(|(_, v)| v.into_owned())
                .expect("assertion")
        };
        let (a, b) = (assertion(&c), assertion(&c));
        assert_ne!(a, b, "a new jti every time");
        let claims: serde_json::Value = serde_json::from_slice(
            &crate::crypto::b64url_decode(a.split('.').nth(1).expect("payload")).expect("b64"),
        )
        .expect("json");
        assert_eq!(claims["aud"], "https://op/token");
        assert_eq!(claims["iss"], "gate way");
        assert_eq!(claims["sub"], "gate way");
        assert_eq!(
            claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
            ASSERTION_LIFETIME_SECS
        );
    }
}
