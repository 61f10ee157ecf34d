//! Device-bound session (DBSC) proofs: a `dbsc+jwt` JWS checked by
//! `dbsc::proof::registration` (signed by the key in its own header) and
//! `dbsc::proof::refresh` (signed by the key a session registered).
//!
//! Inputs are structured: after a first byte below 0x80, each becomes a proof signed by one
//! of three fixed keys (the device's P-256 key, a thief's P-256 key, an RSA key) or by
//! none, with `alg`, `typ`, the header's `jwk` (the signer's, another key's, one edited
//! member by member, any JSON) and the claims chosen, then tampered with after signing
//! (bytes of a part changed, parts swapped, dropped or copied, padding, the standard
//! alphabet, text inserted). An all-zero input is the device's valid proof, so most inputs
//! get past the parser to the signature. After a first byte of 0x80 or above, the rest is
//! any text, as a header could carry. Invariants, each checked on ring directly rather
//! than through jsonwebtoken:
//! - nothing panics;
//! - a registration is accepted only for a compact JWS of three parts whose `typ` is
//!   exactly `dbsc+jwt`, whose `alg` is the one returned (ES256 or RS256, never `none`),
//!   whose signature verifies under the key in its header, which is the key returned (its
//!   public members only) and verifies a refresh with the same proof; the challenge
//!   returned is the payload's `jti`;
//! - a refresh against the fixed ES256 device is accepted only if the device key signed
//!   the proof (`alg` ES256, `typ` `dbsc+jwt`), and returns exactly the payload's `jti`;
//! - `Forged` only for a signature the key does not verify;
//! - an untampered, well-formed proof gets exactly the verdict its signer and header key
//!   call for (accepted, `Forged` or `Malformed`).
//!
//! ECDSA signatures are randomised (ring has no deterministic signing): each is made once
//! per signing input and kept, so an input replays the same within a process.
#![no_main]

mod common;

use common::Json;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use ring::rand::SystemRandom;
use ring::rsa::PublicKeyComponents;
use ring::signature::{
    self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::{json, Map, Value};
use tokengate::bff::dbsc::proof::{self, ProofError};
use tokengate::crypto::{b64url, b64url_decode};
use tokengate::session::BoundDevice;

const LABELS: &[&str] = &[
    "registration accepted",
    "RS256 registration accepted",
    "registration forged",
    "registration malformed",
    "refresh accepted",
    "refresh forged",
    "refresh malformed",
];

// Fixed keys (PKCS#8, made once with OpenSSL), so a corpus replays in any process.
const DEVICE_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgUA-sSKAB3enuCK-CSY4KRU4VK9NfgGE1o5JeBRAhF_yhRANCAAQ_heAHwyeEc1EBekGxi_nn0YfUmlIf7-YdyZS31OWZ_kRH6WDfFAdHClNH4H-jNIJ1bKtQPei6xTsG30mZXcP2";
const THIEF_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg-4C3GZWhr-pGk_t99MuB8rgUK_8Hgr152WW6r84bSTChRANCAAQywHqxBUpBNQlQ9lopk5VM4zZCYB_ewzSULl3ql1pmHFlYnyvsNMEqKXEkAGjYPEApyNpplOttC5whvQ_dHDAF";
const RSA_PKCS8: &str = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCWC2Y263noGCyRgskPb8WUH7pS1rtOAsC1tmlGQmhvQcO_Ed_SE0jZeMlW0dnjnAVF3G3rgzwKKNYTbhSZK5Ows0VyWFiSadZ1P3P-kWJo5wgSp_Om5E_7yXQ4tR5CAzIZt5XxSiHDvwrXdgH8zJoPMVDX529J4Uu0YuU2GgPdtR3wySWIzJf-Gn9THqkp_P87PV0v5p7RhpnIdJ1Nk8pxDxNmFyN0AtrlP-q0TLBufIW8_iHkECsG7OZgM8CXXeHP2OA_4wSW2j-g17XgfJY8I9PIjFQEW5U_d974kWoJc1nDtxVoAylrzBvN5TGGi7fq5VB6aE6otnzfkl-tboQ3AgMBAAECggEAALFDcQz_XlvxwZlDzZsZxv1xKSEmyCJ-OoMeGpbm-kHMGwSEiz4Wpt3UgAlncSBZpP2Ow2pdoMnuH224n4DHwe04-tLG4k77LNQ7sQcPnzPeMB0vpDnALL5nQjygL1gGp2LXD9xym-MYQmFnCWPZOGIP4Tncayxrqa9zJubD1VulP3Zosq0bXp7ABDIXPsRtFssg_HoqLkBOFT7WbdG00ZEk0eEcF7x_wNIhD80eOGeZGMl6BqC5IWU1vr5yYOSVBGfNBcUah93K6bKgr4OaLJQ9n-PmV99ljhxl8uE2mi2JuCRnvldPXWYyd7y0TWZ-lHiHktZNiRbva3v9ZeU9YQKBgQDTz4E04DUn8mHRMIkZA81L371hg2VJNDLg5CC03PouUYNkBk310g47iFGpfqoHqQ-ZfyDIm8U1a9Yc2BHCNUf1AxLr10TwpZB9M7PH-euQ_0LNqG4Zm7QXpip_ROq8-ieWlFc_3lNFVRt1xPTKO0aU-wCQM_zYUYlSiqr4Y9nXHwKBgQC1WQ9gCK-p1aLi8TZLhRPLt9v1_PoZor84DL3k39bEDPSxJDf9tEOt256Z3LOR2eTJTk7V5voYHYc-kS_nPekLwJtdWpdtmJvc0KgGa98oEgSXCZKmkbEA7lyPJii2mo6ft6OlUU6Ef9SwD0hmQ9L6bnvxhzrOUeMwLwgjSxwn6QKBgQCnp_FrDCmnNAlPTy7F2SeQbkp2PE5Y8nNvZcOpxdxV-3mYHBFridhwMQgKtNMbeyt44ZLul7YzAeeaL0FnS0to2gUJHv1XyoWjROCCYwWeYR7csPxtUrzrl0C-Oqvf59acL1EcofuhvqscvkjRJrhIxqF8g1oZU_jxmAea01akGwKBgDOdZpfhwQWorZTELLzv4oOAEBYCa7iyLpSoY7_pybnBKj_k3B7UmNK6CHkobN-dUdXN-Pg-pn4IoX64WhcJ8vOKXW4Do8fowKvno3s4ZqqD_lRywA-ytdta_HMt3Dak5OUmomgiLSPfMkzt_KBGu5zVp2dGIwGoIu6K5FkPPrNJAoGAaQgYS-mDPeaiK8x68HlBRVmyhRMgChtrOJ_-a56aocqg2eTO85VPovuYNLkkToJ2L5ASHd3dqVmF4hkr70uelGm7qh_zIIPoM7u52fNsiAfO6_uqYNTNMNs4Psq2hRfbW97y4FRHuPd0MKMFXXf4bcLuoatD8_qSAwqJmV5ROJU";

struct Fixture {
    rng: SystemRandom,
    device: EcdsaKeyPair,
    thief: EcdsaKeyPair,
    rsa: RsaKeyPair,
    /// The public JWK of each key: device, thief, RSA.
    jwks: [Value; 3],
    bound: BoundDevice,
}

fn ec_jwk(pair: &EcdsaKeyPair) -> Value {
    let point = pair.public_key().as_ref();
    json!({ "kty": "EC", "crv": "P-256", "x": b64url(&point[1..33]), "y": b64url(&point[33..65]) })
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rng = SystemRandom::new();
        let ec = |text: &str| {
            let der = b64url_decode(text).expect("pkcs8");
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng).expect("p-256")
        };
        let (device, thief) = (ec(DEVICE_PKCS8), ec(THIEF_PKCS8));
        let rsa = RsaKeyPair::from_pkcs8(&b64url_decode(RSA_PKCS8).expect("pkcs8")).expect("rsa");
        let c: PublicKeyComponents<Vec<u8>> = rsa.public().into();
        let jwks = [
            ec_jwk(&device),
            ec_jwk(&thief),
            json!({ "kty": "RSA", "n": b64url(&c.n), "e": b64url(&c.e) }),
        ];
        let bound = BoundDevice {
            jwk: jwks[0].to_string(),
            alg: "ES256".into(),
            ..BoundDevice::default()
        };
        Fixture {
            rng,
            device,
            thief,
            rsa,
            jwks,
            bound,
        }
    })
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Signer {
    Device,
    Thief,
    Rsa,
    /// No signature (with `alg` `none` unless chosen otherwise).
    Unsigned,
    /// These bytes as the signature.
    Garbage,
}

impl Signer {
    fn key(self) -> Option<usize> {
        match self {
            Signer::Device => Some(0),
            Signer::Thief => Some(1),
            Signer::Rsa => Some(2),
            Signer::Unsigned | Signer::Garbage => None,
        }
    }

    fn alg(self) -> &'static str {
        match self {
            Signer::Device | Signer::Thief => "ES256",
            Signer::Rsa => "RS256",
            Signer::Unsigned | Signer::Garbage => "none",
        }
    }
}

const ALGS: &[&str] = &[
    "ES256", "RS256", "none", "None", "NONE", "HS256", "ES384", "PS256", "EdDSA", "es256", "",
];
const TYPS: &[&str] = &[
    "JWT",
    "dbsc+jwt ",
    "DBSC+JWT",
    "application/dbsc+jwt",
    "dbsc+JWT",
    "dpop+jwt",
    "",
];

#[derive(Arbitrary, Debug)]
enum Alg {
    /// The signer's own.
    Signers,
    Named(u8),
    Text(String),
    Value(Json),
    Missing,
}

#[derive(Arbitrary, Debug)]
enum Typ {
    Right,
    Named(u8),
    Text(String),
    Value(Json),
    Missing,
}

#[derive(Arbitrary, Debug)]
enum Key {
    /// The signer's public key (none for an unsigned proof).
    Signers,
    /// One of the three keys (device, thief, RSA).
    Of(u8),
    /// One of them with members set (a `None` value removes the member).
    Edited(u8, Vec<(Member, Option<Json>)>),
    /// One of them with `x` and `y` (or `n` and `e`) swapped.
    Swapped(u8),
    /// One of them with its private part as well.
    WithPrivate(u8),
    Value(Json),
    Missing,
}

#[derive(Arbitrary, Debug)]
enum Member {
    Kty,
    Crv,
    X,
    Y,
    N,
    E,
    D,
    Alg,
    Use,
    Kid,
    Other(String),
}

impl Member {
    fn name(&self) -> &str {
        match self {
            Member::Kty => "kty",
            Member::Crv => "crv",
            Member::X => "x",
            Member::Y => "y",
            Member::N => "n",
            Member::E => "e",
            Member::D => "d",
            Member::Alg => "alg",
            Member::Use => "use",
            Member::Kid => "kid",
            Member::Other(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Claims {
    /// `{"jti": …}` with other members.
    Jti(String, Vec<(String, Json)>),
    /// Any JSON (a `jti` that is not a string, no `jti`, not an object).
    Value(Json),
    /// Any bytes as the payload.
    Bytes(Vec<u8>),
}

/// A change made after signing.
#[derive(Arbitrary, Debug)]
enum Tamper {
    /// The bytes a part decodes to (its text if it does not decode), re-encoded.
    Bytes(u8, u16, Edit),
    /// The whole text.
    Text(u16, TextEdit),
    Swap(u8, u8),
    Drop(u8),
    /// Part `a` replaced by part `b`.
    Copy(u8, u8),
    /// A part appended.
    Append(String),
    /// `=` padding added to a part.
    Padded(u8, bool),
    /// A part in the standard base64 alphabet.
    Standard(u8),
    /// A part replaced by the encoding of these bytes.
    Replace(u8, Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Xor(u8),
    Insert(Vec<u8>),
    Remove(u8),
    Truncate,
}

#[derive(Arbitrary, Debug)]
enum TextEdit {
    Set(char),
    Insert(String),
    Remove(u8),
}

#[derive(Arbitrary, Debug)]
struct Made {
    signer: Signer,
    alg: Alg,
    typ: Typ,
    jwk: Key,
    claims: Claims,
    header_extra: Vec<(String, Json)>,
    garbage: Vec<u8>,
    tamper: Vec<Tamper>,
}

/// What the proof was, when it is clean enough to know its verdicts exactly: the signer's
/// key and the header key (indices into `Fixture::jwks`), and the `jti`.
struct Clean {
    signer: usize,
    header_key: Option<usize>,
    jti: String,
}

fn key_index(i: u8) -> usize {
    usize::from(i % 3)
}

impl Made {
    fn header(&self, f: &Fixture) -> Value {
        let mut h = Map::new();
        match &self.alg {
            Alg::Signers => {
                h.insert("alg".into(), self.signer.alg().into());
            }
            Alg::Named(i) => {
                h.insert("alg".into(), ALGS[usize::from(*i) % ALGS.len()].into());
            }
            Alg::Text(s) => {
                h.insert("alg".into(), s.as_str().into());
            }
            Alg::Value(v) => {
                h.insert("alg".into(), v.value());
            }
            Alg::Missing => {}
        }
        match &self.typ {
            Typ::Right => {
                h.insert("typ".into(), "dbsc+jwt".into());
            }
            Typ::Named(i) => {
                h.insert("typ".into(), TYPS[usize::from(*i) % TYPS.len()].into());
            }
            Typ::Text(s) => {
                h.insert("typ".into(), s.as_str().into());
            }
            Typ::Value(v) => {
                h.insert("typ".into(), v.value());
            }
            Typ::Missing => {}
        }
        let jwk = match &self.jwk {
            Key::Signers => self.signer.key().map(|i| f.jwks[i].clone()),
            Key::Of(i) => Some(f.jwks[key_index(*i)].clone()),
            Key::Edited(i, members) => {
                let mut jwk = f.jwks[key_index(*i)].clone();
                let object = jwk.as_object_mut().expect("object");
                for (member, value) in members {
                    match value {
                        Some(v) => object.insert(member.name().into(), v.value()),
                        None => object.remove(member.name()),
                    };
                }
                Some(jwk)
            }
            Key::Swapped(i) => {
                let mut jwk = f.jwks[key_index(*i)].clone();
                let o = jwk.as_object_mut().expect("object");
                let (a, b) = if o.contains_key("x") {
                    ("x", "y")
                } else {
                    ("n", "e")
                };
                let (va, vb) = (o[a].clone(), o[b].clone());
                o.insert(a.into(), vb);
                o.insert(b.into(), va);
                Some(jwk)
            }
            Key::WithPrivate(i) => {
                let mut jwk = f.jwks[key_index(*i)].clone();
                let o = jwk.as_object_mut().expect("object");
                o.insert("d".into(), b64url(&[7u8; 32]).into());
                Some(jwk)
            }
            Key::Value(v) => Some(v.value()),
            Key::Missing => None,
        };
        if let Some(jwk) = jwk {
            h.insert("jwk".into(), jwk);
        }
        for (k, v) in &self.header_extra {
            h.insert(k.clone(), v.value());
        }
        Value::Object(h)
    }

    fn payload(&self) -> Vec<u8> {
        match &self.claims {
            Claims::Jti(jti, extra) => {
                let mut c = Map::new();
                for (k, v) in extra {
                    c.insert(k.clone(), v.value());
                }
                c.insert("jti".into(), jti.as_str().into());
                Value::Object(c).to_string().into_bytes()
            }
            Claims::Value(v) => v.value().to_string().into_bytes(),
            Claims::Bytes(b) => b.clone(),
        }
    }

    fn clean(&self) -> Option<Clean> {
        let signer = self.signer.key()?;
        let header_key = match &self.jwk {
            Key::Signers => Some(signer),
            Key::Of(i) => Some(key_index(*i)),
            Key::Missing => None,
            _ => return None,
        };
        match (&self.alg, &self.typ, &self.claims) {
            (Alg::Signers, Typ::Right, Claims::Jti(jti, extra))
                if extra.is_empty() && self.header_extra.is_empty() && self.tamper.is_empty() =>
            {
                Some(Clean {
                    signer,
                    header_key,
                    jti: jti.clone(),
                })
            }
            _ => None,
        }
    }

    fn proof(&self, f: &Fixture) -> String {
        let input = format!(
            "{}.{}",
            b64url(self.header(f).to_string().as_bytes()),
            b64url(&self.payload())
        );
        let signature = match self.signer.key() {
            Some(k) => sign(f, k, &input),
            None if self.signer == Signer::Garbage => self.garbage.clone(),
            None => Vec::new(),
        };
        let mut parts: Vec<String> = format!("{input}.{}", b64url(&signature))
            .split('.')
            .map(str::to_owned)
            .collect();
        for t in self.tamper.iter().take(4) {
            tamper(&mut parts, t);
        }
        parts.join(".")
    }
}

/// The signature of `input` by key `k` (0 device, 1 thief, 2 RSA), made once per input.
fn sign(f: &Fixture, k: usize, input: &str) -> Vec<u8> {
    thread_local! {
        static MADE: RefCell<HashMap<(usize, String), Vec<u8>>> = RefCell::new(HashMap::new());
    }
    MADE.with(|made| {
        let mut made = made.borrow_mut();
        if made.len() > 50_000 {
            made.clear();
        }
        made.entry((k, input.to_owned()))
            .or_insert_with(|| match k {
                0 => f
                    .device
                    .sign(&f.rng, input.as_bytes())
                    .expect("sign")
                    .as_ref()
                    .to_vec(),
                1 => f
                    .thief
                    .sign(&f.rng, input.as_bytes())
                    .expect("sign")
                    .as_ref()
                    .to_vec(),
                _ => {
                    let mut s = vec![0; f.rsa.public().modulus_len()];
                    f.rsa
                        .sign(
                            &signature::RSA_PKCS1_SHA256,
                            &f.rng,
                            input.as_bytes(),
                            &mut s,
                        )
                        .expect("sign");
                    s
                }
            })
            .clone()
    })
}

fn part(parts: &[String], i: u8) -> usize {
    usize::from(i) % parts.len().max(1)
}

fn tamper(parts: &mut Vec<String>, t: &Tamper) {
    if parts.is_empty() {
        parts.push(String::new());
    }
    match t {
        Tamper::Bytes(p, at, edit) => {
            let p = part(parts, *p);
            let decoded = b64url_decode(&parts[p]);
            let mut bytes = decoded
                .clone()
                .unwrap_or_else(|| parts[p].clone().into_bytes());
            let at = usize::from(*at) % (bytes.len() + 1);
            match edit {
                Edit::Xor(x) => {
                    if at < bytes.len() {
                        bytes[at] ^= x | 1;
                    }
                }
                Edit::Insert(b) => {
                    bytes.splice(at..at, b.iter().copied());
                }
                Edit::Remove(n) => {
                    let end = (at + usize::from(*n) + 1).min(bytes.len());
                    bytes.drain(at..end);
                }
                Edit::Truncate => bytes.truncate(at),
            }
            parts[p] = match decoded {
                Some(_) => b64url(&bytes),
                None => String::from_utf8_lossy(&bytes).into_owned(),
            };
        }
        Tamper::Text(at, edit) => {
            let mut text = parts.join(".");
            let mut at = usize::from(*at) % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match edit {
                TextEdit::Set(c) => {
                    if let Some(old) = text[at..].chars().next() {
                        text.replace_range(at..at + old.len_utf8(), c.encode_utf8(&mut [0; 4]));
                    }
                }
                TextEdit::Insert(s) => text.insert_str(at, s),
                TextEdit::Remove(n) => {
                    let mut end = (at + usize::from(*n) + 1).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, "");
                }
            }
            *parts = text.split('.').map(str::to_owned).collect();
        }
        Tamper::Swap(a, b) => {
            let (a, b) = (part(parts, *a), part(parts, *b));
            parts.swap(a, b);
        }
        Tamper::Drop(p) => {
            let p = part(parts, *p);
            parts.remove(p);
        }
        Tamper::Copy(a, b) => {
            let (a, b) = (part(parts, *a), part(parts, *b));
            parts[a] = parts[b].clone();
        }
        Tamper::Append(s) => parts.push(s.clone()),
        Tamper::Padded(p, two) => {
            let p = part(parts, *p);
            parts[p].push_str(if *two { "==" } else { "=" });
        }
        Tamper::Standard(p) => {
            let p = part(parts, *p);
            parts[p] = parts[p].replace('-', "+").replace('_', "/");
        }
        Tamper::Replace(p, bytes) => {
            let p = part(parts, *p);
            parts[p] = b64url(bytes);
        }
    }
}

/// The three parts of a compact JWS: header and payload as JSON, the signing input and the
/// signature's bytes. Panics for anything else: only called on proofs already accepted.
struct Parsed<'a> {
    header: Value,
    payload: Value,
    input: &'a str,
    signature: Vec<u8>,
}

fn parse(proof: &str) -> Parsed<'_> {
    let parts: Vec<&str> = proof.split('.').collect();
    assert_eq!(
        parts.len(),
        3,
        "an accepted proof has three parts: {proof:?}"
    );
    let json = |p: &str| -> Value {
        let bytes = b64url_decode(p).expect("an accepted part is base64url");
        serde_json::from_slice(&bytes).expect("an accepted part is JSON")
    };
    Parsed {
        header: json(parts[0]),
        payload: json(parts[1]),
        input: &proof[..parts[0].len() + 1 + parts[1].len()],
        signature: b64url_decode(parts[2]).expect("an accepted signature is base64url"),
    }
}

/// Whether `jwk` (its public members) verifies `signature` over `input` for `alg`, on ring.
fn verifies(jwk: &Value, alg: &str, input: &str, signature: &[u8]) -> bool {
    let member = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .and_then(b64url_decode)
    };
    match (alg, jwk.get("kty").and_then(Value::as_str)) {
        ("ES256", Some("EC")) => {
            if jwk.get("crv").and_then(Value::as_str) != Some("P-256") {
                return false;
            }
            let (Some(x), Some(y)) = (member("x"), member("y")) else {
                return false;
            };
            let mut point = vec![4u8];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(input.as_bytes(), signature)
                .is_ok()
        }
        ("RS256", Some("RSA")) => {
            let (Some(n), Some(e)) = (member("n"), member("e")) else {
                return false;
            };
            PublicKeyComponents { n, e }
                .verify(
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    input.as_bytes(),
                    signature,
                )
                .is_ok()
        }
        _ => false,
    }
}

/// Whether `proof` splits into three parts whose header (`alg`, `jwk`) `jwk` or the
/// header's own key verifies: for the checks that a `Forged` proof did not verify.
fn signature_of(proof: &str) -> Option<(Value, String, &str, Vec<u8>)> {
    let parts: Vec<&str> = proof.split('.').collect();
    if parts.len() != 3 {
        return None;
    }
    let header: Value = serde_json::from_slice(&b64url_decode(parts[0])?).ok()?;
    let alg = header.get("alg")?.as_str()?.to_owned();
    let signature = b64url_decode(parts[2])?;
    Some((
        header,
        alg,
        &proof[..parts[0].len() + 1 + parts[1].len()],
        signature,
    ))
}

fn check(f: &Fixture, proof: &str, clean: Option<Clean>) {
    let registered = proof::registration(proof);
    let refreshed = proof::refresh(proof, &f.bound);

    match &registered {
        Ok(r) => {
            common::hit(0);
            if r.alg == "RS256" {
                common::hit(1);
            }
            let p = parse(proof);
            assert_eq!(p.header["typ"], "dbsc+jwt", "{proof:?}");
            assert!(r.alg == "ES256" || r.alg == "RS256", "{r:?}");
            assert_eq!(p.header["alg"], r.alg, "{proof:?}");
            let kept: Value = serde_json::from_str(&r.jwk).expect("the key kept is JSON");
            let header_jwk = &p.header["jwk"];
            let public: &[&str] = if r.alg == "ES256" {
                &["kty", "crv", "x", "y"]
            } else {
                &["kty", "n", "e"]
            };
            for m in public {
                assert_eq!(kept[m], header_jwk[m], "{m} of the key kept, {proof:?}");
            }
            let members = kept.as_object().expect("the key kept is an object");
            assert!(
                members.keys().all(|k| public.contains(&k.as_str())),
                "only public members are kept: {kept}"
            );
            assert!(
                verifies(&kept, r.alg, p.input, &p.signature),
                "a registration accepted a proof its key did not sign: {proof:?}"
            );
            assert_eq!(p.payload["jti"], r.challenge.as_str(), "{proof:?}");
            // The key kept verifies the same proof as a refresh.
            let kept_device = BoundDevice {
                jwk: r.jwk.clone(),
                alg: r.alg.into(),
                ..BoundDevice::default()
            };
            assert_eq!(
                proof::refresh(proof, &kept_device).as_ref(),
                Ok(&r.challenge)
            );
        }
        Err(ProofError::Forged) => {
            common::hit(2);
            if let Some((header, alg, input, signature)) = signature_of(proof) {
                assert!(
                    !verifies(&header["jwk"], &alg, input, &signature),
                    "a proof its header key signed called forged: {proof:?}"
                );
            }
        }
        Err(ProofError::Malformed(_)) => common::hit(3),
    }

    match &refreshed {
        Ok(jti) => {
            common::hit(4);
            let p = parse(proof);
            assert_eq!(p.header["typ"], "dbsc+jwt", "{proof:?}");
            assert_eq!(p.header["alg"], "ES256", "{proof:?}");
            assert!(
                verifies(&f.jwks[0], "ES256", p.input, &p.signature),
                "a refresh accepted a proof the device key did not sign: {proof:?}"
            );
            assert_eq!(p.payload["jti"], jti.as_str(), "{proof:?}");
        }
        Err(ProofError::Forged) => {
            common::hit(5);
            if let Some((_, alg, input, signature)) = signature_of(proof) {
                assert!(
                    !verifies(&f.jwks[0], &alg, input, &signature),
                    "a proof the device key signed called forged: {proof:?}"
                );
            }
        }
        Err(ProofError::Malformed(_)) => common::hit(6),
    }

    // An untampered, well-formed proof: the verdicts are known.
    if let Some(c) = clean {
        let alg = if c.signer == 2 { "RS256" } else { "ES256" };
        let suits = |k: usize| (k == 2) == (c.signer == 2);
        match c.header_key {
            None => assert!(matches!(registered, Err(ProofError::Malformed(_)))),
            Some(k) if !suits(k) => assert!(matches!(registered, Err(ProofError::Malformed(_)))),
            Some(k) if k == c.signer => {
                let r = registered.as_ref().expect("a clean proof registers");
                assert_eq!((r.alg, r.challenge.as_str()), (alg, c.jti.as_str()));
            }
            Some(_) => assert_eq!(registered.as_ref().err(), Some(&ProofError::Forged)),
        }
        if c.signer == 0 {
            assert_eq!(refreshed.as_ref(), Ok(&c.jti), "{proof:?}");
        } else {
            assert_eq!(
                refreshed.as_ref().err(),
                Some(&ProofError::Forged),
                "{proof:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    common::input("dbsc_proof", LABELS, data);
    let f = fixture();
    match data.split_first() {
        Some((first, rest)) if *first >= 0x80 => {
            check(f, &String::from_utf8_lossy(rest), None);
        }
        _ => {
            let rest = data.get(1..).unwrap_or_default();
            let Ok(made) = Made::arbitrary_take_rest(Unstructured::new(rest)) else {
                return;
            };
            let proof = made.proof(f);
            check(f, &proof, made.clean());
        }
    }
});
