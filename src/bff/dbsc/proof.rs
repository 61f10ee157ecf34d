//! The DBSC proof: a JWS with `typ` `dbsc+jwt`, signed by the session's device key, whose
//! `jti` is the challenge it answers. A registration proof carries the public key in its
//! header (`jwk`); a refresh proof is checked against the key registered.
//!
//! The JWS itself (parsing, the signature check on ring) is jsonwebtoken's; what is ours
//! is which algorithms and keys are allowed and what each failure means.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::session::BoundDevice;

/// Why a proof is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Not a DBSC proof at all, or one with an algorithm or key we do not take.
    #[error("malformed proof: {0}")]
    Malformed(&'static str),
    /// Well formed, but its signature is not the key's: someone without the device key.
    #[error("the signature is not the device key's")]
    Forged,
}

/// A registration proof that checked out: the key to bind and the challenge it answers.
#[derive(Debug)]
pub struct Registration {
    pub alg: &'static str,
    /// The public key, as JSON text (what the session record keeps).
    pub jwk: String,
    pub challenge: String,
}

#[derive(Deserialize)]
struct Claims {
    jti: String,
}

/// Checks a registration proof: signed by the key in its own header.
pub fn registration(proof: &str) -> Result<Registration, ProofError> {
    let header =
        jsonwebtoken::decode_header(proof).map_err(|_| ProofError::Malformed("not a JWS"))?;
    if header.typ.as_deref() != Some("dbsc+jwt") {
        return Err(ProofError::Malformed("typ is not dbsc+jwt"));
    }
    let Some(jwk) = header.jwk else {
        return Err(ProofError::Malformed("no jwk in the header"));
    };
    let alg = algorithm(header.alg)?;
    let jti = verify(proof, &jwk, header.alg)?;
    let jwk = serde_json::to_string(&public_part(&jwk)?)
        .map_err(|_| ProofError::Malformed("unusable jwk"))?;
    Ok(Registration {
        alg,
        jwk,
        challenge: jti,
    })
}

/// Checks a refresh proof against the registered key; its challenge.
pub fn refresh(proof: &str, device: &BoundDevice) -> Result<String, ProofError> {
    let header =
        jsonwebtoken::decode_header(proof).map_err(|_| ProofError::Malformed("not a JWS"))?;
    if header.typ.as_deref() != Some("dbsc+jwt") {
        return Err(ProofError::Malformed("typ is not dbsc+jwt"));
    }
    if algorithm(header.alg)? != device.alg {
        // Signed another way than the key registered: not the device's proof.
        return Err(ProofError::Forged);
    }
    let jwk: Jwk = serde_json::from_str(&device.jwk)
        .map_err(|_| ProofError::Malformed("the registered key is unreadable"))?;
    verify(proof, &jwk, header.alg)
}

/// The algorithms DBSC names that prove a key: ES256 and RS256 (`none` proves nothing
/// and is refused).
fn algorithm(alg: Algorithm) -> Result<&'static str, ProofError> {
    match alg {
        Algorithm::ES256 => Ok("ES256"),
        Algorithm::RS256 => Ok("RS256"),
        _ => Err(ProofError::Malformed("alg is neither ES256 nor RS256")),
    }
}

/// The signature of `proof` by `jwk` (which must suit `alg`), and its `jti`.
fn verify(proof: &str, jwk: &Jwk, alg: Algorithm) -> Result<String, ProofError> {
    let suits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        _ => false,
    };
    if !suits {
        return Err(ProofError::Malformed("the jwk does not suit alg"));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| ProofError::Malformed("unusable jwk"))?;
    let mut validation = Validation::new(alg);
    // A proof's claims are `jti` (and an `authorization` we never send); no expiry or
    // audience: freshness is the challenge's.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    match jsonwebtoken::decode::<Claims>(proof, &key, &validation) {
        Ok(data) => Ok(data.claims.jti),
        Err(e) => match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => Err(ProofError::Forged),
            _ => Err(ProofError::Malformed("unreadable or unverifiable")),
        },
    }
}

/// The key's public parameters only: whatever else a client put in its JWK (`d` cannot
/// even be expressed by the crate's type) is not kept.
fn public_part(jwk: &Jwk) -> Result<Jwk, ProofError> {
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => AlgorithmParameters::EllipticCurve(ec.clone()),
        AlgorithmParameters::RSA(rsa) => AlgorithmParameters::RSA(rsa.clone()),
        _ => return Err(ProofError::Malformed("the jwk is neither EC nor RSA")),
    };
    Ok(Jwk {
        common: Default::default(),
        algorithm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    use crate::crypto::b64url;

    struct Device {
        pkcs8: Vec<u8>,
        jwk: Jwk,
    }

    fn device() -> Device {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("key")
            .as_ref()
            .to_vec();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng).expect("pair");
        let point = pair.public_key().as_ref();
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": b64url(&point[1..33]), "y": b64url(&point[33..65]),
        }))
        .expect("jwk");
        Device { pkcs8, jwk }
    }

    fn sign(d: &Device, with_jwk: bool, typ: &str, jti: &str) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(typ.into());
        header.jwk = with_jwk.then(|| d.jwk.clone());
        jsonwebtoken::encode(
            &header,
            &serde_json::json!({ "jti": jti }),
            &EncodingKey::from_ec_der(&d.pkcs8),
        )
        .expect("sign")
    }

    fn bound(d: &Device) -> BoundDevice {
        BoundDevice {
            jwk: serde_json::to_string(&d.jwk).expect("jwk"),
            alg: "ES256".into(),
            ..BoundDevice::default()
        }
    }

    #[test]
    fn a_registration_yields_its_key_and_challenge() {
        let d = device();
        let r = registration(&sign(&d, true, "dbsc+jwt", "c1")).expect("valid");
        assert_eq!((r.alg, r.challenge.as_str()), ("ES256", "c1"));
        // The key kept verifies the device's later proofs.
        let kept = BoundDevice {
            jwk: r.jwk,
            alg: r.alg.into(),
            ..BoundDevice::default()
        };
        assert_eq!(
            refresh(&sign(&d, false, "dbsc+jwt", "c2"), &kept),
            Ok("c2".into())
        );
    }

    #[test]
    fn a_registration_without_key_or_type_is_malformed() {
        let d = device();
        assert!(matches!(
            registration(&sign(&d, false, "dbsc+jwt", "c")),
            Err(ProofError::Malformed(_))
        ));
        assert!(matches!(
            registration(&sign(&d, true, "JWT", "c")),
            Err(ProofError::Malformed(_))
        ));
        assert!(matches!(registration("a.b"), Err(ProofError::Malformed(_))));
    }

    #[test]
    fn a_header_key_that_did_not_sign_is_a_forgery() {
        let (d, other) = (device(), device());
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dbsc+jwt".into());
        header.jwk = Some(d.jwk.clone());
        let proof = jsonwebtoken::encode(
            &header,
            &serde_json::json!({ "jti": "c" }),
            &EncodingKey::from_ec_der(&other.pkcs8),
        )
        .expect("sign");
        assert_eq!(registration(&proof).map(|_| ()), Err(ProofError::Forged));
    }

    #[test]
    fn a_refresh_signed_by_another_key_is_a_forgery() {
        let (d, thief) = (device(), device());
        assert_eq!(
            refresh(&sign(&thief, false, "dbsc+jwt", "c"), &bound(&d)),
            Err(ProofError::Forged)
        );
        // A signature with its last byte changed, likewise.
        let mut proof = sign(&d, false, "dbsc+jwt", "c");
        let last = if proof.ends_with('A') { 'B' } else { 'A' };
        proof.pop();
        proof.push(last);
        assert!(refresh(&proof, &bound(&d)).is_err());
    }

    #[test]
    fn an_unsigned_proof_is_refused() {
        let d = device();
        let header = b64url(br#"{"alg":"none","typ":"dbsc+jwt"}"#);
        let claims = b64url(br#"{"jti":"c"}"#);
        let proof = format!("{header}.{claims}.");
        assert!(matches!(
            refresh(&proof, &bound(&d)),
            Err(ProofError::Malformed(_))
        ));
    }
}
