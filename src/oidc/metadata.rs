//! The provider's metadata, and where each endpoint the gateway uses comes from.
//!
//! In order of precedence:
//! 1. the configuration (`oidc.revocation_endpoint`, …), for a provider that publishes an
//!    endpoint wrongly or not at all;
//! 2. the OpenID discovery document, `{issuer}/.well-known/openid-configuration`;
//! 3. the provider's RFC 8414 authorization-server metadata, read only when an endpoint
//!    the gateway needs is in neither. Some providers publish their revocation endpoint
//!    there and not in discovery; without this, logout would leave the refresh token alive.
//!
//! Only endpoints come from RFC 8414 metadata. Every other field (`iss` support, signing
//! algorithms, DPoP) is read from discovery, the document OpenID Connect defines.

use serde_json::{Map, Value};
use url::Url;

use super::http_client::ProviderHttp;
use crate::config::{OidcConfig, ProviderEndpoint};

/// RFC 8414 §3: the well-known path, inserted between the host and the issuer's path.
const RFC8414_WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";

/// Where an endpoint was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Config,
    Discovery,
    Rfc8414,
    Absent,
}

impl Source {
    pub fn describe(self) -> &'static str {
        match self {
            Source::Config => "configuration",
            Source::Discovery => "discovery",
            Source::Rfc8414 => "RFC 8414 metadata",
            Source::Absent => "absent",
        }
    }
}

/// What came of the RFC 8414 metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rfc8414 {
    /// Not needed: configuration and discovery named every endpoint looked for.
    NotRead,
    /// Read from this URL.
    Read(Url),
    /// Looked for and not usable: why, for each place tried.
    Unavailable(String),
}

/// The provider's metadata as the gateway will use it.
#[derive(Debug)]
pub struct Metadata {
    /// The OpenID discovery document as the provider sent it.
    pub discovery: Map<String, Value>,
    /// Each of [`ProviderEndpoint::ALL`], in that order.
    endpoints: Resolved,
    pub rfc8414: Rfc8414,
}

/// Which endpoints, when absent, are looked for in RFC 8414 metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookFor {
    /// Those the gateway will use with this configuration: at start.
    Used,
    /// All of them: `tokengate check --online` reports on every one.
    All,
}

impl Metadata {
    pub fn endpoint(&self, which: ProviderEndpoint) -> Option<&Url> {
        self.endpoints
            .iter()
            .find(|(w, _, _)| *w == which)
            .and_then(|(_, u, _)| u.as_ref())
    }

    pub fn source(&self, which: ProviderEndpoint) -> Source {
        self.endpoints
            .iter()
            .find(|(w, _, _)| *w == which)
            .map_or(Source::Absent, |(_, _, s)| *s)
    }

    /// Every endpoint with its URL and source, in [`ProviderEndpoint::ALL`] order.
    pub fn endpoints(&self) -> impl Iterator<Item = (ProviderEndpoint, Option<&Url>, Source)> {
        self.endpoints.iter().map(|(w, u, s)| (*w, u.as_ref(), *s))
    }

    /// A boolean field of the discovery document (absent: false).
    pub fn flag(&self, key: &str) -> bool {
        self.discovery.get(key).and_then(Value::as_bool) == Some(true)
    }

    /// A list-of-strings field of the discovery document (absent or malformed: empty).
    pub fn strings(&self, key: &str) -> Vec<String> {
        self.discovery
            .get(key)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The discovery document with the resolved endpoints written in (and those absent
    /// everywhere removed), for the openidconnect crate's typed metadata.
    pub fn merged_document(&self) -> Value {
        let mut doc = self.discovery.clone();
        for (which, url, _) in &self.endpoints {
            match url {
                Some(u) => doc.insert(which.key().to_owned(), Value::String(u.to_string())),
                None => doc.remove(which.key()),
            };
        }
        Value::Object(doc)
    }
}

/// Fetches the discovery document (and, when needed, the RFC 8414 metadata) and resolves
/// every endpoint. Fails only when discovery itself fails; an RFC 8414 document that is
/// missing or unusable leaves its endpoints absent.
pub async fn fetch(
    config: &OidcConfig,
    http: &ProviderHttp,
    look_for: LookFor,
) -> Result<Metadata, String> {
    let discovery_url = Url::parse(&format!(
        "{}/.well-known/openid-configuration",
        config.issuer.trim_end_matches('/')
    ))
    .map_err(|e| format!("the issuer does not make a discovery URL: {e}"))?;
    let discovery = get_json(http, &discovery_url).await?;
    if discovery.get("issuer").and_then(Value::as_str) != Some(config.issuer.as_str()) {
        return Err(format!(
            "{discovery_url}: its issuer {} is not the configured issuer {:?}",
            discovery.get("issuer").unwrap_or(&Value::Null),
            config.issuer
        ));
    }
    let mut endpoints = from_config_and_discovery(config, &discovery)
        .map_err(|e| format!("{discovery_url}: {e}"))?;
    let par_used =
        config.par || discovery.get("require_pushed_authorization_requests") == Some(&true.into());
    let wanted = |which: ProviderEndpoint| match which {
        _ if look_for == LookFor::All => true,
        ProviderEndpoint::PushedAuthorizationRequest => par_used,
        ProviderEndpoint::Userinfo => config.userinfo,
        _ => true,
    };
    let missing = endpoints.iter().any(|(w, u, _)| u.is_none() && wanted(*w));
    let mut rfc8414 = Rfc8414::NotRead;
    if missing {
        match rfc8414_document(&config.issuer, http).await {
            Ok((url, doc)) => {
                fill_from_rfc8414(&mut endpoints, &doc);
                rfc8414 = Rfc8414::Read(url);
            }
            Err(why) => rfc8414 = Rfc8414::Unavailable(why),
        }
    }
    Ok(Metadata {
        discovery,
        endpoints,
        rfc8414,
    })
}

type Resolved = Vec<(ProviderEndpoint, Option<Url>, Source)>;

/// Each endpoint from the configuration, else from discovery (a malformed one there is an
/// error: discovery is the document the provider stands behind).
fn from_config_and_discovery(
    config: &OidcConfig,
    discovery: &Map<String, Value>,
) -> Result<Resolved, String> {
    ProviderEndpoint::ALL
        .into_iter()
        .map(|which| {
            if let Some(u) = config.endpoint(which) {
                return Ok((which, Some(u.clone()), Source::Config));
            }
            Ok(match endpoint_in(discovery, which)? {
                Some(u) => (which, Some(u), Source::Discovery),
                None => (which, None, Source::Absent),
            })
        })
        .collect()
}

/// Fills the endpoints still absent from an RFC 8414 document. A malformed entry there is
/// the same as none: the document is only a fallback, and discovery has succeeded.
fn fill_from_rfc8414(endpoints: &mut Resolved, doc: &Map<String, Value>) {
    for (which, found, source) in endpoints.iter_mut() {
        if found.is_none() {
            if let Ok(Some(u)) = endpoint_in(doc, *which) {
                *found = Some(u);
                *source = Source::Rfc8414;
            }
        }
    }
}

/// The RFC 8414 metadata URLs to try for `issuer`, in order. RFC 8414 §3.1 inserts the
/// well-known path between the host and the issuer's path; many providers with a path in
/// their issuer (a realm, a tenant) serve it after the path instead, the way OpenID
/// discovery does, so that form is tried second.
pub fn rfc8414_urls(issuer: &str) -> Vec<Url> {
    let Ok(base) = Url::parse(issuer) else {
        return Vec::new();
    };
    let path = base.path().trim_end_matches('/').to_owned();
    let at = |p: String| {
        let mut u = base.clone();
        u.set_path(&p);
        u.set_query(None);
        u.set_fragment(None);
        u
    };
    let mut urls = vec![at(format!("{RFC8414_WELL_KNOWN}{path}"))];
    if !path.is_empty() {
        urls.push(at(format!("{path}{RFC8414_WELL_KNOWN}")));
    }
    urls
}

/// The first RFC 8414 document found whose `issuer` is ours (§3.3: one naming another
/// issuer must not be used).
async fn rfc8414_document(
    issuer: &str,
    http: &ProviderHttp,
) -> Result<(Url, Map<String, Value>), String> {
    let mut why = Vec::new();
    for url in rfc8414_urls(issuer) {
        match get_json(http, &url).await {
            Ok(doc) if doc.get("issuer").and_then(Value::as_str) == Some(issuer) => {
                return Ok((url, doc));
            }
            Ok(doc) => why.push(format!(
                "{url}: its issuer {} is not the configured issuer",
                doc.get("issuer").unwrap_or(&Value::Null)
            )),
            Err(e) => why.push(e),
        }
    }
    Err(why.join("; "))
}

/// The endpoint `which` in a metadata document: absent, an absolute http(s) URL, or an
/// error naming the field.
fn endpoint_in(doc: &Map<String, Value>, which: ProviderEndpoint) -> Result<Option<Url>, String> {
    let Some(value) = doc.get(which.key()) else {
        return Ok(None);
    };
    let text = value
        .as_str()
        .ok_or_else(|| format!("{} is not a string", which.key()))?;
    match Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(Some(u)),
        _ => Err(format!(
            "{} {text:?} is not an absolute http(s) URL",
            which.key()
        )),
    }
}

async fn get_json(http: &ProviderHttp, url: &Url) -> Result<Map<String, Value>, String> {
    let request = http::Request::get(url.as_str())
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let response = http
        .send(request)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if response.status() != http::StatusCode::OK {
        return Err(format!("{url} answered {}", response.status()));
    }
    serde_json::from_slice(response.body()).map_err(|e| format!("{url}: not a JSON object: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8414_url_of_an_issuer_without_a_path() {
        let urls: Vec<String> = rfc8414_urls("https://op.example")
            .iter()
            .map(Url::to_string)
            .collect();
        assert_eq!(
            urls,
            ["https://op.example/.well-known/oauth-authorization-server"]
        );
        let slash: Vec<String> = rfc8414_urls("https://op.example/")
            .iter()
            .map(Url::to_string)
            .collect();
        assert_eq!(slash, urls);
    }

    #[test]
    fn rfc8414_urls_of_an_issuer_with_a_path_insert_first_then_append() {
        let urls: Vec<String> = rfc8414_urls("https://op.example:8443/realms/main/")
            .iter()
            .map(Url::to_string)
            .collect();
        assert_eq!(
            urls,
            [
                "https://op.example:8443/.well-known/oauth-authorization-server/realms/main",
                "https://op.example:8443/realms/main/.well-known/oauth-authorization-server",
            ]
        );
    }

    fn doc(v: Value) -> Map<String, Value> {
        serde_json::from_value(v).expect("object")
    }

    #[test]
    fn configuration_wins_over_discovery_which_wins_over_rfc8414() {
        let toml = r#"
[oidc]
issuer = "https://op.example"
client_id = "gateway"
client_secret = "s"
end_session_endpoint = "https://op.example/from-config"
[session]
keys = ["AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]
[[route]]
path = "/"
upstream = "http://127.0.0.1:1"
token = "none"
"#;
        let config = crate::config::Config::from_toml_str(toml).expect("config");
        let discovery = doc(serde_json::json!({
            "issuer": "https://op.example",
            "authorization_endpoint": "https://op.example/auth",
            "token_endpoint": "https://op.example/token",
            "jwks_uri": "https://op.example/jwks",
            "end_session_endpoint": "https://op.example/from-discovery",
        }));
        let rfc8414 = doc(serde_json::json!({
            "issuer": "https://op.example",
            "token_endpoint": "https://op.example/token-8414",
            "revocation_endpoint": "https://op.example/revoke-8414",
            "end_session_endpoint": "https://op.example/end-8414",
            "pushed_authorization_request_endpoint": "not a url",
        }));
        let mut endpoints = from_config_and_discovery(&config.oidc, &discovery).expect("valid");
        fill_from_rfc8414(&mut endpoints, &rfc8414);
        let found = Metadata {
            discovery,
            endpoints,
            rfc8414: Rfc8414::NotRead,
        };
        let at = |w| {
            (
                found.endpoint(w).map(|u| u.path().to_owned()),
                found.source(w),
            )
        };
        use ProviderEndpoint::*;
        assert_eq!(
            at(EndSession),
            (Some("/from-config".into()), Source::Config)
        );
        assert_eq!(at(Token), (Some("/token".into()), Source::Discovery));
        assert_eq!(
            at(Revocation),
            (Some("/revoke-8414".into()), Source::Rfc8414)
        );
        assert_eq!(at(PushedAuthorizationRequest), (None, Source::Absent));
        let merged = found.merged_document();
        assert_eq!(
            merged["end_session_endpoint"],
            "https://op.example/from-config"
        );
        assert_eq!(
            merged["revocation_endpoint"],
            "https://op.example/revoke-8414"
        );
        assert!(merged
            .get("pushed_authorization_request_endpoint")
            .is_none());
    }

    #[test]
    fn a_malformed_endpoint_in_discovery_is_an_error_naming_it() {
        let config = crate::config::Config::from_toml_str(
            "[oidc]\nissuer = \"https://op.example\"\nclient_id = \"g\"\nclient_secret = \"s\"\n\
             [session]\nkeys = [\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"]\n\
             [[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:1\"\ntoken = \"none\"\n",
        )
        .expect("config");
        let discovery = doc(serde_json::json!({ "revocation_endpoint": "revoke" }));
        let e = from_config_and_discovery(&config.oidc, &discovery).expect_err("malformed");
        assert!(e.contains("revocation_endpoint"), "{e}");
    }

    #[test]
    fn endpoints_in_a_document_are_absolute_http_urls() {
        let doc: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "revocation_endpoint": "https://op.example/revoke",
            "end_session_endpoint": "/logout",
            "jwks_uri": 7,
        }))
        .expect("object");
        assert_eq!(
            endpoint_in(&doc, ProviderEndpoint::Revocation)
                .expect("valid")
                .map(String::from),
            Some("https://op.example/revoke".to_owned())
        );
        assert_eq!(endpoint_in(&doc, ProviderEndpoint::Token), Ok(None));
        let bad = endpoint_in(&doc, ProviderEndpoint::EndSession).expect_err("relative");
        assert!(bad.contains("end_session_endpoint"), "{bad}");
        let bad = endpoint_in(&doc, ProviderEndpoint::Jwks).expect_err("a number");
        assert!(bad.contains("jwks_uri"), "{bad}");
    }
}
