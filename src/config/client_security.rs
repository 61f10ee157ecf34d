//! `[oidc]` keys for how strongly the gateway proves itself to the provider and binds its
//! tokens: the client authentication method and its key material (`private_key_jwt`,
//! mutual TLS), DPoP and pushed authorization requests. Files are read here, at load
//! time, so a missing or malformed key is reported with its key path, never at the first
//! login.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::raw::RawOidc;
use super::validate::Checker;
use super::{ClientAuth, ProviderTls, Secret, TlsIdentity};
use crate::crypto::signing::SigningKey;

/// What the `[oidc]` security keys come to.
pub struct ClientSecurity {
    pub client_auth: ClientAuth,
    pub client_secret: Option<Secret>,
    pub private_key: Option<Arc<SigningKey>>,
    pub private_key_id: Option<String>,
    pub tls: ProviderTls,
}

pub fn check(c: &mut Checker, o: &RawOidc) -> ClientSecurity {
    let client_auth = client_auth(c, o);
    let client_secret = client_secret(c, o, client_auth);
    let private_key = private_key(c, o, client_auth);
    let identity = identity(c, o, client_auth);
    let extra_roots = o
        .tls_ca
        .as_deref()
        .map(|path| certificates(c, "oidc.tls_ca", path))
        .unwrap_or_default();

    ClientSecurity {
        client_auth,
        client_secret,
        private_key,
        private_key_id: o.private_key_id.clone(),
        tls: ProviderTls {
            identity: identity.map(Arc::new),
            extra_roots,
        },
    }
}

/// `oidc.client_auth`; `client_secret_basic` when unset.
fn client_auth(c: &mut Checker, o: &RawOidc) -> ClientAuth {
    match o.client_auth.as_deref().unwrap_or("client_secret_basic") {
        "client_secret_basic" => ClientAuth::ClientSecretBasic,
        "client_secret_post" => ClientAuth::ClientSecretPost,
        "private_key_jwt" => ClientAuth::PrivateKeyJwt,
        "tls_client_auth" => ClientAuth::TlsClientAuth,
        "self_signed_tls_client_auth" => ClientAuth::SelfSignedTlsClientAuth,
        other => {
            c.fail(
                "oidc.client_auth",
                format!(
                    "unknown method {other:?} (client_secret_basic, client_secret_post, \
                     private_key_jwt, tls_client_auth or self_signed_tls_client_auth)"
                ),
            );
            ClientAuth::ClientSecretBasic
        }
    }
}

/// `oidc.client_secret`, required by the two `client_secret_*` methods.
fn client_secret(c: &mut Checker, o: &RawOidc, client_auth: ClientAuth) -> Option<Secret> {
    let uses_secret = matches!(
        client_auth,
        ClientAuth::ClientSecretBasic | ClientAuth::ClientSecretPost
    );
    let client_secret = o
        .client_secret
        .clone()
        .filter(|s| !s.is_empty())
        .map(Secret::new);
    if uses_secret && client_secret.is_none() {
        c.fail(
            "oidc.client_secret",
            "is required for client_secret_basic and client_secret_post",
        );
    }
    client_secret
}

/// `oidc.private_key`, read and parsed, for `private_key_jwt` and only for it; and
/// `oidc.private_key_id`, which needs it.
fn private_key(c: &mut Checker, o: &RawOidc, client_auth: ClientAuth) -> Option<Arc<SigningKey>> {
    let private_key = o.private_key.as_deref().and_then(|path| {
        let pem = read(c, "oidc.private_key", path)?;
        match SigningKey::from_pem(&pem) {
            Ok(k) => Some(Arc::new(k)),
            Err(e) => {
                c.fail("oidc.private_key", format!("{path:?}: {e}"));
                None
            }
        }
    });
    match (client_auth, o.private_key.is_some()) {
        (ClientAuth::PrivateKeyJwt, false) => c.fail(
            "oidc.private_key",
            "is required for private_key_jwt (a PEM file: RSA, or EC P-256/P-384 in PKCS#8)",
        ),
        (ClientAuth::PrivateKeyJwt, true) | (_, false) => {}
        (_, true) => c.fail(
            "oidc.private_key",
            "is used only with client_auth = \"private_key_jwt\"",
        ),
    }
    if o.private_key_id.is_some() && o.private_key.is_none() {
        c.fail("oidc.private_key_id", "needs oidc.private_key");
    }
    private_key
}

/// `oidc.tls_client_cert` and `oidc.tls_client_key`: both or neither, and both for the
/// mutual-TLS methods.
fn identity(c: &mut Checker, o: &RawOidc, client_auth: ClientAuth) -> Option<TlsIdentity> {
    let identity = match (&o.tls_client_cert, &o.tls_client_key) {
        (Some(cert), Some(key)) => tls_identity(c, cert, key),
        (None, None) => None,
        (Some(_), None) => {
            c.fail(
                "oidc.tls_client_key",
                "is required with oidc.tls_client_cert",
            );
            None
        }
        (None, Some(_)) => {
            c.fail(
                "oidc.tls_client_cert",
                "is required with oidc.tls_client_key",
            );
            None
        }
    };
    let mtls = matches!(
        client_auth,
        ClientAuth::TlsClientAuth | ClientAuth::SelfSignedTlsClientAuth
    );
    if mtls && o.tls_client_cert.is_none() && o.tls_client_key.is_none() {
        c.fail(
            "oidc.tls_client_cert",
            "is required (with oidc.tls_client_key) for mutual-TLS client authentication",
        );
    }
    identity
}

fn read(c: &mut Checker, key: &str, path: &str) -> Option<Vec<u8>> {
    match std::fs::read(Path::new(path)) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            c.fail(key, format!("cannot read {path:?}: {e}"));
            None
        }
    }
}

pub(super) fn certificates(c: &mut Checker, key: &str, path: &str) -> Vec<CertificateDer<'static>> {
    let Some(pem) = read(c, key, path) else {
        return Vec::new();
    };
    match CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>() {
        Ok(certs) if !certs.is_empty() => certs,
        Ok(_) => {
            c.fail(key, format!("{path:?} holds no PEM certificate"));
            Vec::new()
        }
        Err(e) => {
            c.fail(key, format!("{path:?}: {e}"));
            Vec::new()
        }
    }
}

fn tls_identity(c: &mut Checker, cert: &str, key: &str) -> Option<TlsIdentity> {
    let certs = certificates(c, "oidc.tls_client_cert", cert);
    let pem = read(c, "oidc.tls_client_key", key)?;
    let key = match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(k) => k,
        Err(e) => {
            c.fail("oidc.tls_client_key", format!("{key:?}: {e}"));
            return None;
        }
    };
    (!certs.is_empty()).then_some(TlsIdentity { certs, key })
}
