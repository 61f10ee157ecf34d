//! Back-channel logout tokens, end to end: a compact JWS checked against the provider's
//! key set by `KeySet::verify`, then its claims by `logout_token::validate`.
//!
//! Inputs are structured: each becomes a token signed by one of two keys the key set
//! trusts (Ed25519 `k1`, P-256 `k2`), with a header and claims chosen field by field on
//! both sides of every rule (issuer, audience, `iat` window, `exp`, `jti`, the event,
//! `nonce`, `sid`/`sub`, `typ`, `alg`, `kid`), or tampered with after signing. So nearly
//! every input gets past the signature to the claim rules, which a random string never
//! does. Invariants:
//! - a tampered token never verifies; an untampered one verifies exactly when its `alg`
//!   is the signing key's and its `kid` names that key or none;
//! - a verified token is accepted exactly when a model of the rules (written from OpenID
//!   Connect Back-Channel Logout 1.0 §2.4/§2.6, on the claims as JSON) accepts it, and
//!   what it names is what the claims said;
//! - a signed payload of arbitrary bytes is accepted only if it is a claim set meeting
//!   every rule; any text at all as a token never panics.
#![no_main]

mod common;

use common::{object, Json};

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use openidconnect::core::{CoreJsonCurveType, CoreJsonWebKey, CoreJsonWebKeySet};
use openidconnect::{JsonWebKeyId, JsonWebKeySetUrl};
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{Map, Value};
use tokengate::crypto::b64url;
use tokengate::oidc::http_client::ProviderHttp;
use tokengate::oidc::keys::{self, KeySet};
use tokengate::oidc::logout_token::{self, BACKCHANNEL_EVENT, CLOCK_SKEW_SECS, MAX_AGE_SECS};

const ISS: &str = "https://op.example";
const CLIENT: &str = "gateway";
const NOW: u64 = 1_800_000_000;
const LABELS: &[&str] = &["signature verified, claims checked", "accepted"];

struct Fixture {
    rt: tokio::runtime::Runtime,
    keys: KeySet,
    http: ProviderHttp,
    ed: Ed25519KeyPair,
    p256: EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let rng = ring::rand::SystemRandom::new();
        let ed = Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).expect("ed25519");
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("p-256");
        let p256 = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("p-256");
        let point = p256.public_key().as_ref()[1..].to_vec();
        let (x, y) = point.split_at(32);
        let set = CoreJsonWebKeySet::new(vec![
            CoreJsonWebKey::new_okp(
                ed.public_key().as_ref().to_vec(),
                CoreJsonCurveType::Ed25519,
                Some(JsonWebKeyId::new("k1".into())),
            ),
            CoreJsonWebKey::new_ec(
                x.to_vec(),
                y.to_vec(),
                CoreJsonCurveType::P256,
                Some(JsonWebKeyId::new("k2".into())),
            ),
        ]);
        // An unknown `kid` makes `verify` refetch the set (at most every 5 s): from a port
        // nothing listens on, so the refetch fails at once and the old set stays.
        let url = JsonWebKeySetUrl::new("http://127.0.0.1:9/jwks".into()).expect("url");
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("tls")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let http = {
            let _in = rt.enter();
            ProviderHttp::new(Duration::from_millis(200), Duration::from_millis(500), tls)
        };
        Fixture {
            rt,
            keys: KeySet::new(url, set),
            http,
            ed,
            p256,
            rng,
        }
    })
}


/// A string claim: the right one, another string, or anything else.
#[derive(Arbitrary, Debug)]
enum Text {
    Right,
    Other(String),
    Value(Json),
    Missing,
}

#[derive(Arbitrary, Debug)]
enum Audience {
    Right,
    ListWith(Vec<String>, u8),
    List(Vec<String>),
    Value(Json),
    Missing,
}

/// A NumericDate, around `NOW`.
#[derive(Arbitrary, Debug)]
enum Time {
    Offset(i16),
    FarOffset(i32),
    Fraction(i16, u8),
    Value(Json),
    Missing,
}

#[derive(Arbitrary, Debug)]
enum Events {
    Right,
    RightWith(Vec<(String, Json)>),
    Event(Json),
    Others(Vec<(String, Json)>),
    Value(Json),
    Missing,
}

#[derive(Arbitrary, Debug)]
struct Claims {
    extra: Vec<(String, Json)>,
    iss: Text,
    aud: Audience,
    iat: Time,
    exp: Time,
    jti: Text,
    events: Events,
    sub: Text,
    sid: Text,
    nonce: Option<Json>,
}

#[derive(Arbitrary, Debug)]
enum Alg {
    Signer,
    OtherKey,
    Named(u8),
    Text(String),
    Value(Json),
}

#[derive(Arbitrary, Debug)]
enum Kid {
    Signer,
    OtherKey,
    Text(String),
    Value(Json),
    Missing,
}

#[derive(Arbitrary, Debug)]
enum Typ {
    Logout,
    Application,
    Shouting,
    Jwt,
    ApplicationJwt,
    AccessToken,
    Text(String),
    Value(Json),
    Missing,
}

#[derive(Arbitrary, Debug)]
struct Header {
    extra: Vec<(String, Json)>,
    alg: Alg,
    kid: Kid,
    typ: Typ,
}

#[derive(Arbitrary, Debug)]
enum Payload {
    Claims(Claims),
    Bytes(Vec<u8>),
}

/// A change made after signing: which part, where, to which base64url character.
#[derive(Arbitrary, Debug, PartialEq)]
enum Tamper {
    None,
    Header(u16, u8),
    Payload(u16, u8),
    Signature(u16, u8),
    CutSignature(u8),
    NoSignature,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Signed {
        ed25519: bool,
        header: Header,
        payload: Payload,
        tamper: Tamper,
    },
    /// Any text as the token, for the parser.
    Text(String),
}

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `text` with the character at `at` replaced by another base64url character.
fn replace(text: &mut String, at: u16, to: u8) {
    if text.is_empty() {
        text.push('A');
        return;
    }
    let i = usize::from(at) % text.len();
    let mut bytes = std::mem::take(text).into_bytes();
    let mut c = ALPHABET[usize::from(to) % 64];
    if c == bytes[i] {
        c = ALPHABET[(usize::from(to) + 1) % 64];
    }
    bytes[i] = c;
    *text = String::from_utf8(bytes).unwrap_or_default();
}

fn alg_name(ed25519: bool) -> &'static str {
    if ed25519 {
        "EdDSA"
    } else {
        "ES256"
    }
}

fn kid_name(ed25519: bool) -> &'static str {
    if ed25519 {
        "k1"
    } else {
        "k2"
    }
}

fn header_json(h: &Header, ed25519: bool) -> Value {
    let mut m = match object(&h.extra) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let alg = match &h.alg {
        Alg::Signer => Value::from(alg_name(ed25519)),
        Alg::OtherKey => Value::from(alg_name(!ed25519)),
        Alg::Named(i) => Value::from(
            [
                "RS256", "PS256", "ES384", "ES512", "HS256", "none", "EdDSA", "ES256",
            ][usize::from(*i) % 8],
        ),
        Alg::Text(s) => Value::from(s.as_str()),
        Alg::Value(j) => j.value(),
    };
    m.insert("alg".into(), alg);
    match &h.kid {
        Kid::Signer => set(&mut m, "kid", Some(Value::from(kid_name(ed25519)))),
        Kid::OtherKey => set(&mut m, "kid", Some(Value::from(kid_name(!ed25519)))),
        Kid::Text(s) => set(&mut m, "kid", Some(Value::from(s.as_str()))),
        Kid::Value(j) => set(&mut m, "kid", Some(j.value())),
        Kid::Missing => set(&mut m, "kid", None),
    }
    let typ = match &h.typ {
        Typ::Logout => Some(Value::from("logout+jwt")),
        Typ::Application => Some(Value::from("application/logout+jwt")),
        Typ::Shouting => Some(Value::from("Logout+JWT")),
        Typ::Jwt => Some(Value::from("JWT")),
        Typ::ApplicationJwt => Some(Value::from("application/jwt")),
        Typ::AccessToken => Some(Value::from("at+jwt")),
        Typ::Text(s) => Some(Value::from(s.as_str())),
        Typ::Value(j) => Some(j.value()),
        Typ::Missing => None,
    };
    set(&mut m, "typ", typ);
    Value::Object(m)
}

fn set(m: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        Some(v) => m.insert(key.into(), v),
        None => m.remove(key),
    };
}

fn text(t: &Text, right: &str) -> Option<Value> {
    match t {
        Text::Right => Some(Value::from(right)),
        Text::Other(s) => Some(Value::from(s.as_str())),
        Text::Value(j) => Some(j.value()),
        Text::Missing => None,
    }
}

fn time(t: &Time) -> Option<Value> {
    let at = |off: i64| Value::from(NOW as i64 + off);
    match t {
        Time::Offset(o) => Some(at(i64::from(*o))),
        Time::FarOffset(o) => Some(at(i64::from(*o))),
        Time::Fraction(o, f) => Some(Value::from(
            NOW as f64 + f64::from(*o) + f64::from(*f) / 256.0,
        )),
        Time::Value(j) => Some(j.value()),
        Time::Missing => None,
    }
}

fn claims_json(c: &Claims) -> Value {
    let mut m = match object(&c.extra) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    set(&mut m, "iss", text(&c.iss, ISS));
    let aud = match &c.aud {
        Audience::Right => Some(Value::from(CLIENT)),
        Audience::ListWith(list, at) => {
            let mut list: Vec<Value> = list.iter().map(|s| Value::from(s.as_str())).collect();
            let at = usize::from(*at) % (list.len() + 1);
            list.insert(at, Value::from(CLIENT));
            Some(Value::Array(list))
        }
        Audience::List(list) => Some(Value::Array(
            list.iter().map(|s| Value::from(s.as_str())).collect(),
        )),
        Audience::Value(j) => Some(j.value()),
        Audience::Missing => None,
    };
    set(&mut m, "aud", aud);
    set(&mut m, "iat", time(&c.iat));
    set(&mut m, "exp", time(&c.exp));
    set(&mut m, "jti", text(&c.jti, "jti-1"));
    let event = |members: &[(String, Json)]| {
        let mut e = Map::new();
        e.insert(BACKCHANNEL_EVENT.into(), object(members));
        Value::Object(e)
    };
    let events = match &c.events {
        Events::Right => Some(event(&[])),
        Events::RightWith(members) => Some(event(members)),
        Events::Event(j) => {
            let mut e = Map::new();
            e.insert(BACKCHANNEL_EVENT.into(), j.value());
            Some(Value::Object(e))
        }
        Events::Others(members) => Some(object(members)),
        Events::Value(j) => Some(j.value()),
        Events::Missing => None,
    };
    set(&mut m, "events", events);
    set(&mut m, "sub", text(&c.sub, "alice"));
    set(&mut m, "sid", text(&c.sid, "sid-1"));
    set(&mut m, "nonce", c.nonce.as_ref().map(Json::value));
    Value::Object(m)
}

/// What a claim holds as an optional string: `Err` when it is neither a string nor
/// absent (`null` counts as absent).
fn optional_str<'a>(claims: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ()> {
    match claims.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(()),
    }
}

/// A NumericDate: a non-negative number of seconds (RFC 7519 §2), fractions cut.
fn numeric_date(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        }),
        _ => None,
    }
}

/// The model: whether a verified token with these claims (as JSON) and `typ` is a logout
/// token for client `CLIENT` of issuer `ISS` at `NOW`, and if so its `(sub, sid, jti)`.
#[allow(clippy::type_complexity)]
fn model(
    claims: &Value,
    typ: Option<&str>,
) -> Result<(Option<String>, Option<String>, String), &'static str> {
    // Explicitly typed `logout+jwt` or the generic `JWT`, any case, with or without
    // `application/` (RFC 7515 §4.1.9); any other type names another kind of token.
    if let Some(t) = typ {
        let t = t.to_ascii_lowercase();
        let t = t.strip_prefix("application/").unwrap_or(&t);
        if t != "logout+jwt" && t != "jwt" {
            return Err("typ");
        }
    }
    let Value::Object(c) = claims else {
        return Err("not an object");
    };
    let iss = optional_str(c, "iss").map_err(|_| "iss type")?;
    let jti = optional_str(c, "jti").map_err(|_| "jti type")?;
    let sub = optional_str(c, "sub").map_err(|_| "sub type")?;
    let sid = optional_str(c, "sid").map_err(|_| "sid type")?;
    let events = match c.get("events") {
        None | Some(Value::Null) => None,
        Some(Value::Object(e)) => Some(e),
        Some(_) => return Err("events type"),
    };
    if iss != Some(ISS) {
        return Err("iss");
    }
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => a == CLIENT,
        Some(Value::Array(list)) => list.iter().any(|a| a == CLIENT),
        _ => false,
    };
    if !aud_ok {
        return Err("aud");
    }
    let iat = c
        .get("iat")
        .filter(|v| !v.is_null())
        .map(numeric_date)
        .ok_or("iat missing")?
        .ok_or("iat not a date")?;
    if iat > NOW + CLOCK_SKEW_SECS || NOW.saturating_sub(iat) > MAX_AGE_SECS {
        return Err("iat window");
    }
    if let Some(exp) = c.get("exp").filter(|v| !v.is_null()) {
        let exp = numeric_date(exp).ok_or("exp not a date")?;
        if exp.saturating_add(CLOCK_SKEW_SECS) <= NOW {
            return Err("expired");
        }
    }
    let jti = jti.filter(|j| !j.is_empty()).ok_or("jti")?;
    if !events
        .and_then(|e| e.get(BACKCHANNEL_EVENT))
        .is_some_and(Value::is_object)
    {
        return Err("event");
    }
    if c.get("nonce").is_some_and(|n| !n.is_null()) {
        return Err("nonce");
    }
    let sub = sub.filter(|s| !s.is_empty()).map(str::to_owned);
    let sid = sid.filter(|s| !s.is_empty()).map(str::to_owned);
    if sub.is_none() && sid.is_none() {
        return Err("neither sid nor sub");
    }
    Ok((sub, sid, jti.to_owned()))
}

fn sign(f: &Fixture, ed25519: bool, message: &[u8]) -> Vec<u8> {
    if ed25519 {
        f.ed.sign(message).as_ref().to_vec()
    } else {
        f.p256
            .sign(&f.rng, message)
            .expect("p-256 signature")
            .as_ref()
            .to_vec()
    }
}

fuzz_target!(|data: &[u8]| {
    common::input("logout_token", LABELS, data);
    let Ok(input) = Input::arbitrary_take_rest(arbitrary::Unstructured::new(data)) else {
        return;
    };
    let f = fixture();
    let (ed25519, header, payload, tamper) = match input {
        Input::Signed {
            ed25519,
            header,
            payload,
            tamper,
        } => (ed25519, header, payload, tamper),
        Input::Text(token) => {
            if let Ok(jws) = keys::parse(&token) {
                let _ = logout_token::validate(&jws.header, &jws.payload, ISS, CLIENT, NOW);
            }
            let verified = f.rt.block_on(f.keys.verify(&token, &f.http));
            assert!(verified.is_err(), "an unsigned text verified: {token:?}");
            return;
        }
    };

    let header_value = header_json(&header, ed25519);
    let header_bytes = header_value.to_string().into_bytes();
    let payload_bytes = match &payload {
        Payload::Claims(c) => claims_json(c).to_string().into_bytes(),
        Payload::Bytes(b) => b.clone(),
    };
    let (mut h64, mut p64) = (b64url(&header_bytes), b64url(&payload_bytes));
    let mut s64 = b64url(&sign(f, ed25519, format!("{h64}.{p64}").as_bytes()));
    match tamper {
        Tamper::None => {}
        Tamper::Header(at, to) => replace(&mut h64, at, to),
        Tamper::Payload(at, to) => replace(&mut p64, at, to),
        Tamper::Signature(at, to) => replace(&mut s64, at, to),
        Tamper::CutSignature(n) => {
            let keep = usize::from(n) % s64.len();
            s64.truncate(keep);
        }
        Tamper::NoSignature => s64.clear(),
    }
    let token = format!("{h64}.{p64}.{s64}");
    let verified = f.rt.block_on(f.keys.verify(&token, &f.http));

    // The signature: what the header says against the key that signed.
    if tamper != Tamper::None {
        assert!(
            verified.is_err(),
            "a tampered token verified: {tamper:?} {token}"
        );
    } else {
        let h = header_value.as_object().expect("header object");
        let header_parses = h.get("alg").is_some_and(Value::is_string)
            && optional_str(h, "kid").is_ok()
            && optional_str(h, "typ").is_ok();
        let alg_ok = h.get("alg").and_then(Value::as_str) == Some(alg_name(ed25519));
        let kid_ok = match optional_str(h, "kid") {
            Ok(None) => true,
            Ok(Some(k)) => k == kid_name(ed25519),
            Err(()) => false,
        };
        let expected = header_parses && alg_ok && kid_ok;
        assert_eq!(
            verified.is_ok(),
            expected,
            "signature check: {verified:?}, header {header_value}"
        );
    }
    let Ok((jws_header, verified_payload)) = verified else {
        return;
    };
    assert_eq!(
        verified_payload, payload_bytes,
        "verify hands back what was signed"
    );
    common::hit(0);

    let result = logout_token::validate(&jws_header, &verified_payload, ISS, CLIENT, NOW);
    if result.is_ok() {
        common::hit(1);
    }
    let typ = jws_header.typ.as_deref();
    match payload {
        Payload::Claims(_) => {
            let claims: Value = serde_json::from_slice(&payload_bytes).expect("our JSON");
            let expected = model(&claims, typ);
            match (&result, &expected) {
                (Ok(got), Ok((sub, sid, jti))) => {
                    assert_eq!(&got.sub, sub);
                    assert_eq!(&got.sid, sid);
                    assert_eq!(&got.jti, jti);
                }
                (Err(_), Err(_)) => {}
                _ => {
                    panic!("validate {result:?}, model {expected:?}: typ {typ:?}, claims {claims}")
                }
            }
        }
        Payload::Bytes(_) => {
            // Bytes the provider signed: accepted only if they are a claim set meeting
            // every rule.
            if let Ok(got) = &result {
                let claims: Value =
                    serde_json::from_slice(&payload_bytes).expect("accepted claims are JSON");
                match model(&claims, typ) {
                    Ok((sub, sid, jti)) => {
                        assert_eq!((&got.sub, &got.sid, &got.jti), (&sub, &sid, &jti));
                    }
                    Err(why) => panic!("accepted, but {why}: {claims}"),
                }
            }
        }
    }
});
