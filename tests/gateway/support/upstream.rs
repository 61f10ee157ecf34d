//! The test upstream: an API that checks the bearer token the way a real one would
//! (signature against the provider's JWKS, issuer, audience, expiry) and echoes what it
//! received — never the token itself — so tests assert what the API really saw.
//!
//! Paths with a meaning (under any prefix, so token routes reach them too):
//! - `…/slow?ms=N` answers after N ms;
//! - `…/ws` with `Upgrade` switches protocols and echoes raw bytes (no WebSocket framing:
//!   a byte echo after the 101 is what proves the tunnel);
//! - `…/download?bytes=N` streams N bytes back in 1 MiB chunks, never held in memory;
//! - `…/set-cookie` answers with `Set-Cookie` headers for the gateway's cookie names and
//!   for one of the application's own.
//!
//! Everything else echoes, as JSON: method, path, query, headers (an `Authorization`
//! value is shown as `Bearer [redacted]`), the number of body bytes and the token's
//! verification outcome with its claims.

use std::convert::Infallible;
use std::net::SocketAddr;
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
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

struct State {
    issuer: String,
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
            jwks: tokio::sync::Mutex::new(None),
            seen: seen.clone(),
        });
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = state.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(handle(state, req).await) }
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            }
        });
        Upstream {
            addr,
            seen,
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
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    state.seen.lock().expect("seen").push(Seen {
        method: req.method().clone(),
        path: path.clone(),
        headers: req.headers().clone(),
        token: token.clone(),
    });

    if path.ends_with("/slow") {
        let ms = query_u64(&req, "ms").unwrap_or(5000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if path.ends_with("/download") {
        return download(query_u64(&req, "bytes").unwrap_or(0));
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
        None => json!({ "valid": false, "error": "no bearer token" }),
        Some(t) => match verify(&state, t).await {
            Ok(claims) => json!({ "valid": true, "claims": claims }),
            Err(e) => json!({ "valid": false, "error": e }),
        },
    };
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
    });
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(full(answer.to_string()))
        .expect("response")
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
    let meta: Value = reqwest::get(format!("{issuer}/.well-known/openid-configuration"))
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let uri = meta["jwks_uri"].as_str().ok_or("no jwks_uri")?;
    reqwest::get(uri)
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())
}
