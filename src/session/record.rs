//! The session record and its identifiers.
//!
//! The browser holds a [`SessionId`]; the store never sees it, only its SHA-256, the
//! [`StoreKey`]. A dump of the store therefore yields no cookie that would work.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::crypto;

/// The random 256-bit value in the session cookie. A secret: `Debug` is redacted and the
/// value is read only through [`SessionId::secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh random session ID.
    pub fn generate() -> SessionId {
        SessionId(crypto::random_token())
    }

    /// Accepts exactly the form [`SessionId::generate`] makes (43 URL-safe base64
    /// characters encoding 32 bytes) and nothing else, without allocating on rejection.
    pub fn parse(text: &str) -> Option<SessionId> {
        well_formed(text).then(|| SessionId(text.to_owned()))
    }

    /// `parse(text)?.store_key()` without the copy of the secret: what a request with a
    /// session cookie needs, so it runs for nearly every request.
    pub fn store_key_of(text: &str) -> Option<StoreKey> {
        well_formed(text).then(|| StoreKey::of(text.as_bytes()))
    }

    pub fn secret(&self) -> &str {
        &self.0
    }

    pub fn store_key(&self) -> StoreKey {
        StoreKey::of(self.0.as_bytes())
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

/// True for 43 characters of URL-safe base64 (no padding) that decode to 32 bytes, with
/// no stray bits in the last character: one spelling per ID.
///
/// Checked without decoding (the store key is the hash of the text, not of the bytes):
/// 43 characters carry 258 bits, so the last one's two low bits must be zero — its index
/// in the alphabet a multiple of four. Less than half what the base64 decoder cost, on
/// every request with a session cookie; `well_formed_is_what_the_decoder_accepts` holds
/// the two to the same answer.
fn well_formed(text: &str) -> bool {
    /// Each byte's index in the URL-safe alphabet, or `NOT` for the bytes outside it.
    const NOT: u8 = 0xff;
    const INDEX: [u8; 256] = {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut table = [NOT; 256];
        let mut i = 0;
        while i < alphabet.len() {
            table[alphabet[i] as usize] = i as u8;
            i += 1;
        }
        table
    };
    let bytes = text.as_bytes();
    let Some((&last, body)) = bytes.split_last() else {
        return false;
    };
    bytes.len() == 43
        && body.iter().all(|&b| INDEX[usize::from(b)] != NOT)
        // (`NOT` is 255, not a multiple of four: a last byte outside the alphabet fails here too.)
        && INDEX[usize::from(last)].is_multiple_of(4)
}

/// SHA-256 of the session ID: the only name a session has in the store.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoreKey(pub [u8; 32]);

/// Hashed by its first eight bytes: they are as random as the rest (a SHA-256 output of a
/// random ID), and hashing a quarter of the key is what the cache lookup of every request
/// then costs. Keys equal in full are equal in these bytes, as `Eq` requires.
impl std::hash::Hash for StoreKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut head = [0u8; 8];
        head.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(head));
    }
}

impl StoreKey {
    pub fn of(session_id: &[u8]) -> StoreKey {
        StoreKey(Sha256::digest(session_id).into())
    }

    /// Eight hex characters: enough to follow one session through the logs, far too few
    /// to find it in the store or guess its cookie.
    pub fn short(&self) -> String {
        self.0[..4].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Full hex form, for the admin API (a handle to the record, not a credential).
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The value `/bff/logout?sid=` must carry: derived from the store key, so only a
    /// page that could read `/bff/user` (same origin) knows it.
    pub fn logout_handle(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"logout\0");
        h.update(self.0);
        h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn from_hex(text: &str) -> Option<StoreKey> {
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(chunk).ok()?;
            out[i] = u8::from_str_radix(s, 16).ok()?;
        }
        Some(StoreKey(out))
    }
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreKey({})", self.short())
    }
}

/// A lookup key of a secondary index, hashed like the store key so the store holds no
/// user identifier in the clear.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum IndexKey {
    Sub([u8; 32]),
    Sid([u8; 32]),
}

impl IndexKey {
    pub fn sub(sub: &str) -> IndexKey {
        IndexKey::Sub(Self::hash(b"sub\0", sub))
    }
    pub fn sid(sid: &str) -> IndexKey {
        IndexKey::Sid(Self::hash(b"sid\0", sid))
    }
    fn hash(domain: &[u8], value: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(domain);
        h.update(value.as_bytes());
        h.finalize().into()
    }
}

/// A token the session holds (access, refresh or ID token). Its `Debug` prints no byte
/// of it, and its text is read only through [`Token::secret`], so a log line or a
/// derived `Debug` cannot carry one by accident. Stored as the plain string it wraps.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    pub fn secret(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Token {
    fn from(text: String) -> Token {
        Token(text)
    }
}

impl From<&str> for Token {
    fn from(text: &str) -> Token {
        Token(text.to_owned())
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([redacted])")
    }
}

/// What a session knows, stored sealed. Times are Unix seconds.
///
/// Fields added after the first release carry `#[serde(default)]`, so records written by
/// an older version still open.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Session {
    pub sub: String,
    /// The provider's session ID (`sid` claim), for back-channel logout.
    pub sid: Option<String>,
    /// The ID token's claims, with the userinfo endpoint's when `oidc.userinfo` is on:
    /// returned by `/bff/user`, judged by route `require` rules.
    pub claims: Claims,
    /// How the user authenticated (the login's ID token `acr`), for route `acr` rules.
    #[serde(default)]
    pub acr: Option<String>,
    /// When the user authenticated (the login's ID token `auth_time`), for `max_age`.
    #[serde(default)]
    pub auth_time: Option<u64>,
    /// Kept for `id_token_hint` at logout, when `oidc.logout_id_token_hint` asks for it.
    pub id_token: Token,
    pub access_token: Token,
    pub access_expires_at: Option<u64>,
    /// When to refresh: before expiry by `refresh_before_expiry`, or at half the lifetime
    /// of a token shorter than that. `None`: the token carries no expiry; never refreshed
    /// ahead of time.
    pub refresh_at: Option<u64>,
    pub refresh_token: Option<Token>,
    /// When the refresh token itself expires, if the provider said (`refresh_expires_in`).
    /// The session cannot outlive it.
    #[serde(default)]
    pub refresh_expires_at: Option<u64>,
    /// Access tokens for other audiences (RFC 8707 `resource` on a route), by resource.
    #[serde(default)]
    pub resource_tokens: BTreeMap<String, AccessToken>,
    /// The session's DPoP key (P-256, PKCS#8, base64url) when `oidc.dpop` is on: its
    /// tokens are bound to it and presented with proofs signed by it.
    #[serde(default)]
    pub dpop_key: Option<String>,
    /// The device key this session is bound to (DBSC), once the browser registered one:
    /// from then on the session needs a short-lived bound cookie, renewed only with proofs
    /// signed by that key.
    #[serde(default)]
    pub device: Option<BoundDevice>,
    pub created_at: u64,
    pub last_seen: u64,
}

/// The ID token's claims as the JSON text of an object, not a parsed map: a session only
/// ever hands them out whole (`/bff/user`), and a parsed map costs several times their
/// size in every cached session. Stored the same way either form is (a JSON object), so
/// records written before still open.
#[derive(Clone, Serialize, Deserialize)]
pub struct Claims(Box<RawValue>);

impl Claims {
    pub fn from_map(claims: &serde_json::Map<String, serde_json::Value>) -> Claims {
        serde_json::value::to_raw_value(claims)
            .map(Claims)
            .unwrap_or_default()
    }

    /// The claims as a JSON value, for a response that embeds them.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::Value::Object(self.to_map())
    }

    /// The claims as a map (empty if the stored text is not an object).
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(self.0.get()).unwrap_or_default()
    }

    /// The ID token's claims with the userinfo endpoint's over them: userinfo is the
    /// fresher source, but never names anyone else (`sub` is the ID token's; the caller
    /// has checked they agree).
    pub fn merged(
        id: &serde_json::Map<String, serde_json::Value>,
        userinfo: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Claims {
        let Some(userinfo) = userinfo else {
            return Claims::from_map(id);
        };
        let mut all = id.clone();
        for (k, v) in userinfo {
            if k != "sub" {
                all.insert(k.clone(), v.clone());
            }
        }
        Claims::from_map(&all)
    }
}

impl Default for Claims {
    fn default() -> Self {
        // `{}` is valid JSON, so this cannot fail; the fallback would be `null`.
        Claims(RawValue::from_string("{}".to_owned()).unwrap_or_default())
    }
}

impl PartialEq for Claims {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

/// A DBSC device key, as the registration proof carried it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BoundDevice {
    /// The public key, a JWK as JSON text.
    pub jwk: String,
    /// `ES256` or `RS256`: proofs must be signed as the registration was.
    pub alg: String,
    pub bound_at: u64,
    /// Issue time (Unix milliseconds) of the newest challenge a proof has answered: a
    /// challenge issued no later is refused, so each one serves once.
    pub last_challenge: u64,
}

/// An access token for one audience, with when to refresh it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct AccessToken {
    pub token: Token,
    pub expires_at: Option<u64>,
    pub refresh_at: Option<u64>,
}

/// Why a session ended, for the metrics and the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// Unused for `idle_timeout`.
    Idle,
    /// Reached `absolute_timeout`.
    Absolute,
    /// The refresh token's own lifetime is over, or the access token expired with no
    /// refresh token to renew it.
    TokensExpired,
    /// The provider refused the refresh token.
    RefreshRejected,
    /// `/bff/logout`.
    Logout,
    /// The provider's back-channel logout.
    Backchannel,
    /// The admin API.
    Admin,
    /// A newer login in the same browser replaced it.
    Replaced,
    /// A refresh of its device-bound cookie came with a proof its device key did not sign.
    DeviceProof,
    /// `session.device_binding = "required"` and the browser never bound it.
    Unbound,
}

impl EndReason {
    pub const ALL: [EndReason; 10] = [
        EndReason::Idle,
        EndReason::Absolute,
        EndReason::TokensExpired,
        EndReason::RefreshRejected,
        EndReason::Logout,
        EndReason::Backchannel,
        EndReason::Admin,
        EndReason::Replaced,
        EndReason::DeviceProof,
        EndReason::Unbound,
    ];

    pub fn label(self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::Absolute => "absolute",
            EndReason::TokensExpired => "tokens_expired",
            EndReason::RefreshRejected => "refresh_rejected",
            EndReason::Logout => "logout",
            EndReason::Backchannel => "backchannel",
            EndReason::Admin => "admin",
            EndReason::Replaced => "replaced",
            EndReason::DeviceProof => "device_proof",
            EndReason::Unbound => "unbound",
        }
    }
}

impl Session {
    /// The moment the session ends if nothing extends it: the earliest of the idle limit,
    /// the absolute limit and the refresh token's expiry.
    pub fn ends_at(&self, idle: u64, absolute: u64) -> u64 {
        self.end(idle, absolute).0
    }

    /// When the session ends and which limit ends it.
    pub fn end(&self, idle: u64, absolute: u64) -> (u64, EndReason) {
        let mut end = (self.last_seen.saturating_add(idle), EndReason::Idle);
        let abs = self.created_at.saturating_add(absolute);
        if abs < end.0 {
            end = (abs, EndReason::Absolute);
        }
        if let Some(rt) = self.refresh_expires_at.filter(|at| *at < end.0) {
            end = (rt, EndReason::TokensExpired);
        }
        end
    }

    /// When the token for `resource` (`None`: the default audience) is due for refresh
    /// (`Some(None)`: never ahead of time); `None` when the session has no token for that
    /// resource yet.
    pub fn refresh_due(&self, resource: Option<&str>) -> Option<Option<u64>> {
        match resource {
            None => Some(self.refresh_at),
            Some(r) => self.resource_tokens.get(r).map(|t| t.refresh_at),
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are never printed, not even by accident in a debug log.
        f.debug_struct("Session")
            .field("sub", &self.sub)
            .field("sid", &self.sid)
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_at", &self.refresh_at)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field(
                "resources",
                &self.resource_tokens.keys().collect::<Vec<_>>(),
            )
            .field("device_bound", &self.device.is_some())
            .field("created_at", &self.created_at)
            .field("last_seen", &self.last_seen)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_id_parses_and_maps_to_a_stable_key() {
        let id = SessionId::generate();
        let again = SessionId::parse(id.secret()).expect("own format");
        assert_eq!(again.store_key(), id.store_key());
        assert_eq!(SessionId::store_key_of(id.secret()), Some(id.store_key()));
        assert_ne!(SessionId::generate().store_key(), id.store_key());
    }

    #[test]
    fn malformed_ids_are_rejected() {
        let id = SessionId::generate();
        for bad in [
            "",
            "short",
            &id.secret()[..42],
            &format!("{}A", id.secret()),
            &id.secret().replace(|_: char| true, "%"),
            "===========================================",
            // 43 characters whose last one carries bits beyond the 256: a second spelling.
            &format!("{}B", &id.secret()[..42]),
            &format!("{}+", &id.secret()[..42]),
        ] {
            assert!(SessionId::parse(bad).is_none(), "{bad:?}");
            assert!(SessionId::store_key_of(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn well_formed_is_what_the_decoder_accepts() {
        use base64::Engine;
        let decodes = |text: &str| {
            let mut bytes = [0u8; 33];
            text.len() == 43
                && base64::engine::general_purpose::URL_SAFE_NO_PAD.decode_slice(text, &mut bytes)
                    == Ok(32)
        };
        let id = SessionId::generate();
        let head = &id.secret()[..42];
        // Every byte in every place: the last (where the stray bits are) and the others.
        for b in 0..=255u8 {
            let c = char::from(b);
            for text in [
                format!("{head}{c}"),
                format!("{c}{}", &id.secret()[1..]),
                format!("{}{c}{}", &id.secret()[..20], &id.secret()[21..]),
            ] {
                assert_eq!(well_formed(&text), decodes(&text), "{text:?}");
            }
        }
        for _ in 0..1000 {
            let id = SessionId::generate();
            assert!(well_formed(id.secret()) && decodes(id.secret()));
        }
        for text in ["", "A", &"A".repeat(42), &"A".repeat(44), &"A".repeat(43)] {
            assert_eq!(well_formed(text), decodes(text), "{text:?}");
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let id = SessionId::generate();
        assert!(!format!("{id:?}").contains(id.secret()));
        let s = Session {
            sub: "alice".into(),
            sid: None,
            claims: Default::default(),
            id_token: "ID.TOKEN.X".into(),
            access_token: "ACCESS.TOKEN.X".into(),
            access_expires_at: None,
            refresh_at: None,
            refresh_token: Some("REFRESH-X".into()),
            resource_tokens: [(
                "https://r".to_owned(),
                AccessToken {
                    token: "RESOURCE.TOKEN.X".into(),
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        };
        let dbg = format!("{s:?}");
        for secret in [
            "ID.TOKEN.X",
            "ACCESS.TOKEN.X",
            "REFRESH-X",
            "RESOURCE.TOKEN.X",
        ] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
        // Each token by itself too, and in any derived `Debug` that holds one.
        let token = Token::from("ACCESS.TOKEN.X");
        assert_eq!(format!("{token:?}"), "Token([redacted])");
        let resource = format!("{:?}", s.resource_tokens);
        assert!(!resource.contains("RESOURCE.TOKEN.X"), "{resource}");
        assert_eq!(token.secret(), "ACCESS.TOKEN.X");
    }

    #[test]
    fn the_earliest_limit_ends_a_session() {
        let s = Session {
            created_at: 1000,
            last_seen: 5000,
            ..Default::default()
        };
        assert_eq!(s.end(600, 10_000), (5600, EndReason::Idle));
        assert_eq!(s.end(600, 4_000), (5000, EndReason::Absolute));
        let s = Session {
            refresh_expires_at: Some(5100),
            ..s
        };
        assert_eq!(s.end(600, 10_000), (5100, EndReason::TokensExpired));
    }

    #[test]
    fn store_key_hex_round_trips() {
        let k = SessionId::generate().store_key();
        assert_eq!(StoreKey::from_hex(&k.hex()), Some(k));
        assert_eq!(StoreKey::from_hex("zz"), None);
    }
}
