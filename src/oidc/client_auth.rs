//! How the gateway proves who it is at the provider's token and revocation endpoints.
//!
//! One place builds the credentials into a request, so every call to the provider (code
//! redemption, refresh, client credentials, revocation) authenticates the same way.

use base64::Engine;
use url::form_urlencoded::Serializer;

use crate::config::{ClientAuth, OidcConfig, Secret};

#[derive(Clone)]
pub struct ClientCredentials {
    client_id: String,
    secret: Option<Secret>,
    method: ClientAuth,
}

impl ClientCredentials {
    pub fn new(config: &OidcConfig) -> ClientCredentials {
        ClientCredentials {
            client_id: config.client_id.clone(),
            secret: config.client_secret.clone(),
            method: config.client_auth,
        }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Adds the credentials to a form-encoded request: the `Authorization` header it
    /// needs, if any, is returned; form fields are appended to `form`.
    pub fn apply(&self, form: &mut Serializer<'_, String>) -> Option<String> {
        match self.method {
            ClientAuth::ClientSecretPost => {
                form.append_pair("client_id", &self.client_id);
                if let Some(s) = &self.secret {
                    form.append_pair("client_secret", s.secret());
                }
                None
            }
            ClientAuth::ClientSecretBasic | ClientAuth::PrivateKeyJwt => Some(self.basic()),
        }
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
        }
    }

    #[test]
    fn basic_form_encodes_before_base64() {
        let mut form = Serializer::new(String::new());
        let header = creds(ClientAuth::ClientSecretBasic, "a:b").apply(&mut form);
        let expected = base64::engine::general_purpose::STANDARD.encode("gate+way:a%3Ab");
        assert_eq!(header, Some(format!("Basic {expected}")));
        assert_eq!(form.finish(), "");
    }

    #[test]
    fn post_puts_the_credentials_in_the_form() {
        let mut form = Serializer::new(String::new());
        let header = creds(ClientAuth::ClientSecretPost, "s&t").apply(&mut form);
        assert_eq!(header, None);
        assert_eq!(form.finish(), "client_id=gate+way&client_secret=s%26t");
    }
}
