//! The provider's signing keys (JWKS), refetched when a token names a key we do not know
//! yet: providers rotate keys by publishing the new one, and a token signed with it may
//! arrive before our copy of the set has it.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openidconnect::{JsonWebKey, JsonWebKeySetUrl};
use serde::Deserialize;

use super::http_client::ProviderHttp;

/// Refetches are at most this frequent, so tokens naming made-up key IDs cannot turn
/// the gateway into a load generator against the provider.
const REFETCH_INTERVAL: Duration = Duration::from_secs(5);

pub struct KeySet {
    url: JsonWebKeySetUrl,
    /// A std `RwLock`: replaced whole on a refetch, cloned out for each verification;
    /// never held across an await.
    current: RwLock<Arc<CoreJsonWebKeySet>>,
    last_fetch: Mutex<Option<Instant>>,
}

/// Why a compact JWS was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("signature algorithm {0:?} is not accepted")]
    Algorithm(String),
    #[error("no provider key matches the token")]
    UnknownKey,
    #[error("signature does not verify")]
    BadSignature,
}

/// The JOSE header fields the gateway looks at.
#[derive(Debug, Deserialize)]
pub struct JwsHeader {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub typ: Option<String>,
}

/// Asymmetric algorithms only: `none` and HMAC (whose key would be our client secret,
/// shared with the provider) are never accepted for provider-signed tokens.
const ACCEPTED: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
];

impl KeySet {
    pub fn new(url: JsonWebKeySetUrl, keys: CoreJsonWebKeySet) -> KeySet {
        KeySet {
            url,
            current: RwLock::new(Arc::new(keys)),
            // The first unknown key may be fetched at once; later ones wait out the interval.
            last_fetch: Mutex::new(None),
        }
    }

    pub fn current(&self) -> Arc<CoreJsonWebKeySet> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Fetches the set again unless that happened within the refetch interval. True when
    /// a new set was installed.
    pub async fn refetch(&self, http: &ProviderHttp) -> bool {
        {
            let mut last = self.last_fetch.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < REFETCH_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match CoreJsonWebKeySet::fetch_async(&self.url, http).await {
            Ok(keys) => {
                tracing::info!(keys = keys.keys().len(), "provider keys refetched");
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "provider keys could not be refetched");
                false
            }
        }
    }

    /// Verifies a compact JWS signed by the provider and returns its header and payload
    /// bytes. An unknown key ID triggers one refetch of the key set.
    pub async fn verify(
        &self,
        compact: &str,
        http: &ProviderHttp,
    ) -> Result<(JwsHeader, Vec<u8>), JwsError> {
        let mut parts = compact.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::Malformed);
        };
        let decode = |s: &str| crate::crypto::b64url_decode(s).ok_or(JwsError::Malformed);
        let header: JwsHeader =
            serde_json::from_slice(&decode(h64)?).map_err(|_| JwsError::Malformed)?;
        if !ACCEPTED.contains(&header.alg.as_str()) {
            return Err(JwsError::Algorithm(header.alg));
        }
        let alg: CoreJwsSigningAlgorithm =
            serde_json::from_value(serde_json::Value::String(header.alg.clone()))
                .map_err(|_| JwsError::Algorithm(header.alg.clone()))?;
        let payload = decode(p64)?;
        let signature = decode(s64)?;
        let message = &compact.as_bytes()[..h64.len() + 1 + p64.len()];
        let check = |keys: &CoreJsonWebKeySet| {
            let candidates: Vec<&CoreJsonWebKey> = keys
                .keys()
                .iter()
                .filter(|k| match (&header.kid, k.key_id()) {
                    (Some(kid), Some(id)) => id.as_str() == kid,
                    (Some(_), None) => false,
                    (None, _) => true,
                })
                .collect();
            if candidates.is_empty() {
                return Err(JwsError::UnknownKey);
            }
            if candidates
                .iter()
                .any(|k| k.verify_signature(&alg, message, &signature).is_ok())
            {
                Ok(())
            } else {
                Err(JwsError::BadSignature)
            }
        };
        match check(&self.current()) {
            Err(JwsError::UnknownKey) if self.refetch(http).await => check(&self.current())?,
            other => other?,
        }
        Ok((header, payload))
    }
}
