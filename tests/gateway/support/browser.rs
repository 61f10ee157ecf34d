//! An HTTP "browser": follows redirects by hand and keeps cookies by name, recording
//! every `Set-Cookie` it receives so tests can check their attributes. (Everything runs
//! on 127.0.0.1, and cookies do not care about ports, so one jar serves the gateway and
//! the provider alike.)

use std::collections::BTreeMap;
use std::sync::Mutex;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

pub struct Browser {
    client: reqwest::Client,
    jar: Mutex<BTreeMap<String, String>>,
    /// Every `Set-Cookie` header received, in order.
    pub set_cookies: Mutex<Vec<String>>,
}

/// The end of a navigation: the last response and its URL.
pub struct Landed {
    pub url: String,
    pub status: StatusCode,
    pub body: String,
}

impl Default for Browser {
    fn default() -> Self {
        Browser {
            client: super::http_client(),
            jar: Mutex::new(BTreeMap::new()),
            set_cookies: Mutex::new(Vec::new()),
        }
    }
}

impl Browser {
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().expect("jar").get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar
            .lock()
            .expect("jar")
            .insert(name.into(), value.into());
    }

    pub fn remove_cookie(&self, name: &str) {
        self.jar.lock().expect("jar").remove(name);
    }

    /// The last `Set-Cookie` header that set `name` to a non-empty value.
    pub fn set_cookie_header(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.set_cookies
            .lock()
            .expect("set-cookies")
            .iter()
            .rev()
            .find(|h| h.starts_with(&prefix) && !h[prefix.len()..].starts_with(';'))
            .cloned()
    }

    fn cookie_header(&self) -> Option<String> {
        let jar = self.jar.lock().expect("jar");
        (!jar.is_empty()).then(|| {
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn absorb(&self, resp: &Response) {
        for h in resp.headers().get_all(SET_COOKIE) {
            let Ok(text) = h.to_str() else { continue };
            self.set_cookies
                .lock()
                .expect("set-cookies")
                .push(text.to_owned());
            let first = text.split(';').next().unwrap_or("");
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let expired = text.to_ascii_lowercase().contains("max-age=0") || value.is_empty();
            let mut jar = self.jar.lock().expect("jar");
            if expired {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    /// One request with the jar's cookies and extra headers; records cookies set.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        form: Option<&[(&str, &str)]>,
    ) -> Response {
        let mut req = self.client.request(method, url);
        if let Some(c) = self.cookie_header() {
            req = req.header(COOKIE, c);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(f) = form {
            req = req.form(f);
        }
        let resp = req.send().await.expect("request");
        self.absorb(&resp);
        resp
    }

    /// Follows redirects from `resp` (at `url`) like a browser, GET after every 3xx.
    pub async fn follow(&self, mut url: String, mut resp: Response) -> Landed {
        for _ in 0..20 {
            if !resp.status().is_redirection() {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                return Landed { url, status, body };
            }
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .expect("redirect has a Location")
                .to_owned();
            url = reqwest::Url::parse(&url)
                .and_then(|base| base.join(&location))
                .expect("location resolves")
                .to_string();
            resp = self.send(Method::GET, &url, &[], None).await;
        }
        panic!("too many redirects, last at {url}");
    }

    pub async fn navigate(&self, url: &str) -> Landed {
        let resp = self.send(Method::GET, url, &[], None).await;
        self.follow(url.to_owned(), resp).await
    }

    /// The whole login: gateway → provider's form → credentials → back through the
    /// callback to `return_url`. Returns where the browser landed.
    pub async fn login(
        &self,
        gateway: &str,
        user: &str,
        password: &str,
        return_url: &str,
    ) -> Landed {
        let start = format!("{gateway}/bff/login?returnUrl={}", urlencode(return_url));
        let form_page = self.navigate(&start).await;
        assert_eq!(
            form_page.status,
            StatusCode::OK,
            "login form expected at {}",
            form_page.url
        );
        let action = form_action(&form_page.body).expect("login form has an action");
        let post_url = reqwest::Url::parse(&form_page.url)
            .and_then(|b| b.join(&action))
            .expect("action resolves")
            .to_string();
        let resp = self
            .send(
                Method::POST,
                &post_url,
                &[],
                Some(&[("login", user), ("password", password)]),
            )
            .await;
        self.follow(post_url, resp).await
    }

    /// GET with `X-CSRF: 1`, as the SPA calls its API; returns status and JSON (or Null).
    pub async fn api(&self, url: &str) -> (StatusCode, Value) {
        let resp = self.send(Method::GET, url, &[("x-csrf", "1")], None).await;
        let status = resp.status();
        let json = resp.json().await.unwrap_or(Value::Null);
        (status, json)
    }
}

impl Browser {
    /// Signs out at the provider itself (not through the gateway): its end-session page,
    /// then its confirmation form posted with every hidden field, as the page's script
    /// would. Returns where the browser landed.
    pub async fn sign_out_at_provider(&self, issuer: &str, client_id: &str) -> Landed {
        let page = self
            .navigate(&format!("{issuer}/session/end?client_id={client_id}"))
            .await;
        assert_eq!(page.status, StatusCode::OK, "logout page at {}", page.url);
        let action = form_action(&page.body).expect("logout form has an action");
        let post_url = reqwest::Url::parse(&page.url)
            .and_then(|b| b.join(&action))
            .expect("action resolves")
            .to_string();
        let fields = hidden_fields(&page.body);
        let form: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let resp = self.send(Method::POST, &post_url, &[], Some(&form)).await;
        self.follow(post_url, resp).await
    }
}

/// `name`/`value` of the hidden inputs of the first form in `html`.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let Some(start) = html.find("<form") else {
        return Vec::new();
    };
    let form = &html[start
        ..html[start..]
            .find("</form>")
            .map_or(html.len(), |e| start + e)];
    let attr = |tag: &str, name: &str| {
        let key = format!("{name}=\"");
        let s = tag.find(&key)? + key.len();
        let e = tag[s..].find('"')?;
        Some(tag[s..s + e].replace("&amp;", "&"))
    };
    form.split("<input")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>').unwrap_or(rest.len())];
            if !tag.contains("type=\"hidden\"") {
                return None;
            }
            Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
        })
        .collect()
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn form_action(html: &str) -> Option<String> {
    let form = &html[html.find("<form")?..];
    let start = form.find("action=\"")? + "action=\"".len();
    let end = form[start..].find('"')?;
    Some(form[start..start + end].replace("&amp;", "&"))
}
