//! Asymmetric signing keys of the gateway and the compact JWS it signs with them: client
//! assertions (`private_key_jwt`, RFC 7523) and DPoP proofs (RFC 9449). The primitives are
//! ring's; this module only loads keys, names their algorithm and public form (JWK,
//! RFC 7638 thumbprint) and lays out the JWS.

use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::b64url;

pub enum SigningKey {
    Rsa(RsaKeyPair),
    P256(EcdsaKeyPair),
    P384(EcdsaKeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}, {})", self.alg(), self.thumbprint())
    }
}

impl SigningKey {
    /// An RSA (PKCS#1 or PKCS#8) or EC P-256/P-384 (PKCS#8) private key in PEM.
    pub fn from_pem(pem: &[u8]) -> Result<SigningKey, String> {
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| format!("no private key in PEM form: {e}"))?;
        let rng = SystemRandom::new();
        match der {
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der())
                .map(SigningKey::Rsa)
                .map_err(|e| format!("RSA key refused: {e}")),
            PrivateKeyDer::Pkcs8(k) => {
                let der = k.secret_pkcs8_der();
                if let Ok(rsa) = RsaKeyPair::from_pkcs8(der) {
                    return Ok(SigningKey::Rsa(rsa));
                }
                if let Ok(ec) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
                {
                    return Ok(SigningKey::P256(ec));
                }
                EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, der, &rng)
                    .map(SigningKey::P384)
                    .map_err(|_| "the key is neither RSA (2048 bits or more) nor EC P-256/P-384".into())
            }
            PrivateKeyDer::Sec1(_) => Err(
                "EC keys must be PKCS#8 (\"BEGIN PRIVATE KEY\"); convert with `openssl pkcs8 -topk8 -nocrypt`"
                    .into(),
            ),
            _ => Err("unsupported private key format".into()),
        }
    }

    /// A fresh P-256 key and its PKCS#8 form (to be kept sealed with a session).
    pub fn generate_p256() -> Result<(SigningKey, Vec<u8>), String> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "no P-256 key could be made".to_owned())?;
        let key = SigningKey::from_p256_pkcs8(pkcs8.as_ref())?;
        Ok((key, pkcs8.as_ref().to_vec()))
    }

    pub fn from_p256_pkcs8(pkcs8: &[u8]) -> Result<SigningKey, String> {
        EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &SystemRandom::new(),
        )
        .map(SigningKey::P256)
        .map_err(|e| format!("P-256 key refused: {e}"))
    }

    /// The JWS `alg` this key signs with.
    pub fn alg(&self) -> &'static str {
        match self {
            SigningKey::Rsa(_) => "RS256",
            SigningKey::P256(_) => "ES256",
            SigningKey::P384(_) => "ES384",
        }
    }

    /// The public key as a JWK, members in the lexicographic order RFC 7638 hashes.
    pub fn public_jwk(&self) -> Value {
        match self {
            SigningKey::Rsa(k) => {
                let c: ring::rsa::PublicKeyComponents<Vec<u8>> = k.public().into();
                json!({ "e": b64url(&c.e), "kty": "RSA", "n": b64url(&c.n) })
            }
            SigningKey::P256(k) => ec_jwk("P-256", k.public_key().as_ref()),
            SigningKey::P384(k) => ec_jwk("P-384", k.public_key().as_ref()),
        }
    }

    /// RFC 7638 JWK thumbprint (SHA-256, base64url): the key's `kid` when none is set,
    /// and DPoP's `jkt`.
    pub fn thumbprint(&self) -> String {
        // Only the required members, in lexicographic order, without whitespace.
        let jwk = self.public_jwk();
        let m = |k: &str| jwk[k].as_str().unwrap_or_default().to_owned();
        let canonical = match self {
            SigningKey::Rsa(_) => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, m("e"), m("n")),
            _ => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                m("crv"),
                m("x"),
                m("y")
            ),
        };
        b64url(&Sha256::digest(canonical.as_bytes()))
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let rng = SystemRandom::new();
        match self {
            SigningKey::Rsa(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| "RSA signing failed".to_owned())?;
                Ok(sig)
            }
            SigningKey::P256(k) | SigningKey::P384(k) => k
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| "ECDSA signing failed".to_owned()),
        }
    }

    /// A compact JWS of `claims` with `header` (to which `alg` is added).
    pub fn jws(
        &self,
        mut header: serde_json::Map<String, Value>,
        claims: &Value,
    ) -> Result<String, String> {
        header.insert("alg".into(), Value::from(self.alg()));
        let input = format!(
            "{}.{}",
            b64url(Value::Object(header).to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig = self.sign(input.as_bytes())?;
        Ok(format!("{input}.{}", b64url(&sig)))
    }
}

/// An EC public JWK from the uncompressed point `04 || x || y`.
fn ec_jwk(crv: &str, point: &[u8]) -> Value {
    let coords = point.get(1..).unwrap_or_default();
    let (x, y) = coords.split_at(coords.len() / 2);
    json!({ "crv": crv, "kty": "EC", "x": b64url(x), "y": b64url(y) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_signs_what_its_jwk_verifies() {
        let (key, pkcs8) = SigningKey::generate_p256().expect("key");
        let again = SigningKey::from_p256_pkcs8(&pkcs8).expect("reload");
        assert_eq!(key.thumbprint(), again.thumbprint());
        let jws = key
            .jws(serde_json::Map::new(), &json!({ "a": 1 }))
            .expect("jws");
        let parts: Vec<&str> = jws.split('.').collect();
        let jwk = key.public_jwk();
        let point = [
            vec![4u8],
            crate::crypto::b64url_decode(jwk["x"].as_str().expect("x")).expect("x"),
            crate::crypto::b64url_decode(jwk["y"].as_str().expect("y")).expect("y"),
        ]
        .concat();
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            point,
        );
        let sig = crate::crypto::b64url_decode(parts[2]).expect("sig");
        let input = format!("{}.{}", parts[0], parts[1]);
        public.verify(input.as_bytes(), &sig).expect("verifies");
    }

    #[test]
    fn rfc_7638_thumbprint_of_its_example_key() {
        // RFC 7638 §3.1: the example RSA key and its thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let canonical = format!(r#"{{"e":"AQAB","kty":"RSA","n":"{n}"}}"#);
        assert_eq!(
            b64url(&Sha256::digest(canonical.as_bytes())),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn sec1_ec_keys_get_a_conversion_hint() {
        let pem = b"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB==\n-----END EC PRIVATE KEY-----\n";
        let err = SigningKey::from_pem(pem).expect_err("refused");
        assert!(err.contains("PKCS#8") || err.contains("PEM"), "{err}");
    }
}
