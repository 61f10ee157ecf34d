//! The test upstream: an API that checks the bearer token the way a real one would
//! (signature against the provider's JWKS, issuer, audience, expiry) and echoes what it
//! received — never the token itself — so tests assert what the API really saw.
//!
//! Paths with a meaning (under any prefix, so token routes reach them too):
//! - `…/slow?ms=N` answers after N ms;
//! - `…/ws` with `Upgrade` switches protocols and echoes raw bytes (no WebSocket framing:
//!   a byte echo after the 101 is what proves the tunnel);
//! - `…/download?bytes=N` streams N bytes back in 1 MiB chunks, never held in memory;
//!   `…/endless` streams without end;
//! - `…/reset` drops the connection without an answer;
//! - `…/close` echoes with `Connection: close`, and the connection ends after it;
//! - `…/set-cookie` answers with `Set-Cookie` headers for the gateway's cookie names and
//!   for one of the application's own;
//! - `…/step-up` demands a second factor the RFC 9470 way: a 401 with
//!   `WWW-Authenticate: Bearer error="insufficient_user_authentication"` and
//!   `acr_values="urn:tokengate:mfa"` unless the verified token's `acr` is that; `…/deny`
//!   answers a plain 401 with `Bearer error="invalid_token"`.
//!
//! Everything else echoes, as JSON: method, path, query, headers (an `Authorization`
//! value is shown as `Bearer [redacted]`), the number of body bytes and the token's
//! verification outcome with its claims.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::op::{API_AUDIENCE, OTHER_AUDIENCE};

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: http::Method,
    pub path: String,
    pub headers: http::HeaderMap,
    pub token: Option<String>,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections accepted so far, and those still open.
    pub accepted: Arc<AtomicUsize>,
    pub open: Arc<AtomicUsize>,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

struct State {
    issuer: String,
    addr: SocketAddr,
    jwks: tokio::sync::Mutex<Option<JwkSet>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub async fn start(issuer: &str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(State {
            issuer: issuer.to_owned(),
            addr,
            jwks: tokio::sync::Mutex::new(None),
            seen: seen.clone(),
        });
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let state = state.clone();
            let (accepted, open) = (accepted.clone(), open.clone());
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    open.fetch_add(1, Ordering::SeqCst);
                    let state = state.clone();
                    let open = open.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req: Request<Incoming>| {
                            let state = state.clone();
                            async move {
                                // `…/reset`: the connection is dropped without an answer.
                                if req.uri().path().ends_with("/reset") {
                                    return Err(std::io::Error::other("reset on purpose"));
                                }
                                Ok(handle(state, req).await)
                            }
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                            .await;
                        open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            }
        });
        Upstream {
            addr,
            seen,
            accepted,
            open,
            state,
            task,
        }
    }

    /// Verifies an access token the way this upstream does for every request: RS256
    /// against the provider's JWKS, `iss`, `aud`, `exp`. Returns the claims.
    pub async fn verify(&self, token: &str) -> Result<Value, String> {
        verify(&self.state, token).await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The most recent request whose path starts with `prefix`.
    pub fn last(&self, prefix: &str) -> Option<Seen> {
        self.seen
            .lock()
            .expect("seen")
            .iter()
            .rev()
            .find(|s| s.path.starts_with(prefix))
            .cloned()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn query_u64(req: &Request<Incoming>, name: &str) -> Option<u64> {
    url::form_urlencoded::parse(req.uri().query()?.as_bytes())
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse().ok())
}

async fn handle(state: Arc<State>, mut req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (scheme, token) = match authorization.split_once(' ') {
        Some((scheme, token)) => (scheme.to_owned(), Some(token.to_owned())),
        None => (String::new(), None),
    };
    state.seen.lock().expect("seen").push(Seen {
        method: req.method().clone(),
        path: path.clone(),
        headers: req.headers().clone(),
        token: token.clone(),
    });

    // `…/dpop-nonce`: like a resource server that wants a nonce in DPoP proofs.
    let dpop_view = match (&token, scheme.as_str()) {
        (Some(t), "DPoP") => dpop::check(&req, &format!("http://{}", state.addr), t),
        _ => json!(null),
    };
    if path.ends_with("/dpop-nonce") && dpop_view["nonce"] != dpop::NONCE {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(
                http::header::WWW_AUTHENTICATE,
                "DPoP error=\"use_dpop_nonce\", error_description=\"a nonce is required\"",
            )
            .header("dpop-nonce", dpop::NONCE)
            .body(full(Bytes::new()))
            .expect("401");
    }
    if path.ends_with("/slow") {
        let ms = query_u64(&req, "ms").unwrap_or(5000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if path.ends_with("/download") {
        return download(query_u64(&req, "bytes").unwrap_or(0));
    }
    if path.ends_with("/endless") {
        return download(u64::MAX);
    }
    if path.ends_with("/set-cookie") {
        return Response::builder()
            .header(http::header::SET_COOKIE, "tokengate=planted; Path=/")
            .header(
                http::header::SET_COOKIE,
                "__Host-Http-tokengate=planted; Path=/; Secure",
            )
            .header(
                http::header::SET_COOKIE,
                "tokengate-login-x=planted; Path=/",
            )
            .header(http::header::SET_COOKIE, "app-pref=dark; Path=/")
            .body(full(Bytes::new()))
            .expect("set-cookie response");
    }
    if path.ends_with("/ws") && req.headers().contains_key(http::header::UPGRADE) {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = TokioIo::new(up);
                let (mut r, mut w) = tokio::io::split(&mut io);
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(http::header::CONNECTION, "upgrade")
            .header(http::header::UPGRADE, "websocket")
            .body(full(Bytes::new()))
            .expect("101");
    }

    let token_view = match &token {
        None => json!({ "valid": false, "error": "no token" }),
        Some(t) => match verify(&state, t).await {
            Ok(claims) => json!({ "valid": true, "claims": claims }),
            Err(e) => json!({ "valid": false, "error": e }),
        },
    };
    let challenge = if path.ends_with("/deny") {
        Some(r#"Bearer error="invalid_token", error_description="refused by the test upstream""#)
    } else if path.ends_with("/step-up") && token_view["claims"]["acr"] != super::op::ACR_MFA {
        Some(
            r#"Bearer realm="api", error="insufficient_user_authentication", error_description="a second factor is required", acr_values="urn:tokengate:mfa""#,
        )
    } else {
        None
    };
    if let Some(challenge) = challenge {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(http::header::WWW_AUTHENTICATE, challenge)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(full(r#"{"error":"from the upstream"}"#))
            .expect("401");
    }
    let mut headers = serde_json::Map::new();
    for name in req.headers().keys() {
        let values: Vec<Value> = req
            .headers()
            .get_all(name)
            .iter()
            .map(|v| {
                // Never echo a credential: the answer travels back to the browser.
                let text = if name == http::header::AUTHORIZATION {
                    let scheme = v.to_str().ok().and_then(|s| s.split(' ').next());
                    format!("{} [redacted]", scheme.unwrap_or("?"))
                } else {
                    String::from_utf8_lossy(v.as_bytes()).into_owned()
                };
                Value::String(text)
            })
            .collect();
        headers.insert(name.as_str().to_owned(), Value::Array(values));
    }
    let (parts, mut body) = req.into_parts();
    // Count the body frame by frame: a 50 MiB upload is never held in memory here.
    let mut body_bytes: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    body_bytes += d.len() as u64;
                }
            }
            Err(_) => break,
        }
    }
    let answer = json!({
        "method": parts.method.as_str(),
        "path": path,
        "query": parts.uri.query(),
        "headers": headers,
        "body_bytes": body_bytes,
        "token": token_view,
        "scheme": scheme,
        "dpop": dpop_view,
    });
    let mut resp = Response::builder().header(http::header::CONTENT_TYPE, "application/json");
    if path.ends_with("/close") {
        resp = resp.header(http::header::CONNECTION, "close");
    }
    resp.body(full(answer.to_string())).expect("response")
}

/// `bytes` zero bytes, produced one 1 MiB chunk at a time as the client reads them.
fn download(bytes: u64) -> Response<Body> {
    const CHUNK: u64 = 1024 * 1024;
    let chunks = stream::unfold(bytes, |left| async move {
        (left > 0).then(|| {
            let n = left.min(CHUNK);
            let data = Bytes::from(vec![0u8; usize::try_from(n).expect("chunk size")]);
            (Ok(hyper::body::Frame::data(data)), left - n)
        })
    });
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/octet-stream")
        .body(BodyExt::boxed(StreamBody::new(chunks)))
        .expect("download response")
}

async fn verify(state: &State, token: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
    let kid = header.kid.ok_or("no kid")?;
    let mut jwks = state.jwks.lock().await;
    if jwks.as_ref().and_then(|s| s.find(&kid)).is_none() {
        *jwks = Some(fetch_jwks(&state.issuer).await?);
    }
    let jwk = jwks
        .as_ref()
        .and_then(|s| s.find(&kid))
        .ok_or("unknown kid")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("jwk: {e}"))?;
    let mut validation = Validation::new(Algorithm::RS256);
    // The API's audience, or the other one that `resource` routes ask for; tests assert
    // which one a token carried.
    validation.set_audience(&[API_AUDIENCE, OTHER_AUDIENCE]);
    validation.set_issuer(&[&state.issuer]);
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| format!("invalid: {e}"))
}

async fn fetch_jwks(issuer: &str) -> Result<JwkSet, String> {
    let client = super::http_client();
    let meta: Value = client
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let uri = meta["jwks_uri"].as_str().ok_or("no jwks_uri")?;
    client
        .get(uri)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())
}

/// Checks a DPoP proof the way a resource server must (RFC 9449 §7): signed by the key in
/// its header, `typ`, `htm`, `htu`, `ath`, and that key is the one the token is bound
/// to (`cnf.jkt`). Reports the outcome and the proof's nonce.
mod dpop {
    use base64::Engine;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use serde_json::{json, Value};
    use sha2::{Digest, Sha256};

    pub const NONCE: &str = "upstream-nonce-1";

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn check<B>(req: &hyper::Request<B>, origin: &str, token: &str) -> Value {
        match verify(req, origin, token) {
            Ok(nonce) => json!({ "valid": true, "nonce": nonce }),
            Err(e) => json!({ "valid": false, "error": e }),
        }
    }

    fn verify<B>(req: &hyper::Request<B>, origin: &str, token: &str) -> Result<Value, String> {
        let proof = req
            .headers()
            .get("dpop")
            .and_then(|v| v.to_str().ok())
            .ok_or("no DPoP header")?;
        let header = jsonwebtoken::decode_header(proof).map_err(|e| e.to_string())?;
        if header.typ.as_deref() != Some("dpop+jwt") {
            return Err("typ is not dpop+jwt".into());
        }
        let jwk = header.jwk.ok_or("no jwk in the proof header")?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Value>(proof, &key, &validation)
            .map_err(|e| format!("proof signature: {e}"))?
            .claims;
        if claims["htm"] != req.method().as_str() {
            return Err(format!("htm {} for {}", claims["htm"], req.method()));
        }
        let htu = format!("{origin}{}", req.uri().path());
        if claims["htu"] != htu.as_str() {
            return Err(format!("htu {} for {htu}", claims["htu"]));
        }
        if claims["ath"] != b64(&Sha256::digest(token.as_bytes())).as_str() {
            return Err("ath does not match the token".into());
        }
        let jwk = serde_json::to_value(&jwk).map_err(|e| e.to_string())?;
        let canonical = format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["crv"].as_str().unwrap_or(""),
            jwk["x"].as_str().unwrap_or(""),
            jwk["y"].as_str().unwrap_or("")
        );
        let jkt = b64(&Sha256::digest(canonical.as_bytes()));
        let payload = token.split('.').nth(1).ok_or("token is not a JWT")?;
        let token_claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        if token_claims["cnf"]["jkt"] != jkt.as_str() {
            return Err("the proof's key is not the one the token is bound to".into());
        }
        Ok(claims["nonce"].clone())
    }
}
