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
    /// Every `Secure-Session-Registration` header received (DBSC offers), in order.
    pub registrations: Mutex<Vec<String>>,
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
            registrations: Mutex::new(Vec::new()),
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
        for h in resp.headers().get_all("secure-session-registration") {
            if let Ok(text) = h.to_str() {
                (self.registrations.lock().expect("registrations")).push(text.to_owned());
            }
        }
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

    /// A login that starts at `start_url`, an absolute URL (e.g. the gateway's origin
    /// joined with the `login_url` of a `step_up_required` answer, such as
    /// `/bff/login?acr_values=urn%3Atokengate%3Amfa&returnUrl=%2F`). When the navigation
    /// ends at the provider's login form, it fills in `user` and `password`, and `code`
    /// when the form has a one-time code field (the provider shows one when `acr_values`
    /// names [`super::op::ACR_MFA`]; the right code is [`super::op::MFA_CODE`]), posts it
    /// and follows the redirects. When the provider still has a session that suffices and
    /// answers without a form, nothing is filled in. Returns where the browser landed: the
    /// return URL, the gateway's error answer, or the provider's form again (a wrong
    /// password or code, or a code that was needed and not given).
    pub async fn login_from(
        &self,
        start_url: &str,
        user: &str,
        password: &str,
        code: Option<&str>,
    ) -> Landed {
        let page = self.navigate(start_url).await;
        if !is_login_form(&page.body) {
            return page;
        }
        let action = form_action(&page.body).expect("login form has an action");
        let post_url = reqwest::Url::parse(&page.url)
            .and_then(|b| b.join(&action))
            .expect("action resolves")
            .to_string();
        let mut fields = vec![("login", user), ("password", password)];
        if let Some(code) = code.filter(|_| has_code_field(&page.body)) {
            fields.push(("code", code));
        }
        let resp = self.send(Method::POST, &post_url, &[], Some(&fields)).await;
        self.follow(post_url, resp).await
    }

    /// A login up to, not including, the gateway's callback: returns the callback URL the
    /// provider redirected to, code and state in it.
    pub async fn login_until_callback(&self, gateway: &str, user: &str, password: &str) -> String {
        let form_page = self
            .navigate(&format!("{gateway}/bff/login?returnUrl=%2F"))
            .await;
        let action = form_action(&form_page.body).expect("login form has an action");
        let mut url = reqwest::Url::parse(&form_page.url)
            .and_then(|b| b.join(&action))
            .expect("action resolves")
            .to_string();
        let mut resp = self
            .send(
                Method::POST,
                &url,
                &[],
                Some(&[("login", user), ("password", password)]),
            )
            .await;
        for _ in 0..20 {
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .expect("a redirect towards the callback")
                .to_owned();
            url = reqwest::Url::parse(&url)
                .and_then(|base| base.join(&location))
                .expect("location resolves")
                .to_string();
            if url.starts_with(&format!("{gateway}/bff/callback")) {
                return url;
            }
            resp = self.send(Method::GET, &url, &[], None).await;
        }
        panic!("the provider never redirected to the callback");
    }

    /// `POST /bff/logout` with `X-CSRF: 1` at `gateway`, as the SPA's logout button
    /// sends it; the whole response.
    pub async fn logout(&self, gateway: &str) -> Response {
        self.send(
            Method::POST,
            &format!("{gateway}/bff/logout"),
            &[("x-csrf", "1")],
            None,
        )
        .await
    }

    /// GET with `X-CSRF: 1`, as the SPA calls its API; the whole response.
    pub async fn api_response(&self, url: &str) -> Response {
        self.send(Method::GET, url, &[("x-csrf", "1")], None).await
    }

    /// GET with `X-CSRF: 1`, as the SPA calls its API; returns status and JSON (or Null).
    pub async fn api(&self, url: &str) -> (StatusCode, Value) {
        let resp = self.api_response(url).await;
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

/// Whether `html` is the test provider's login form (username and password fields).
pub fn is_login_form(html: &str) -> bool {
    html.contains("<form") && html.contains("name=\"login\"") && html.contains("name=\"password\"")
}

/// Whether `html` is a login form with the one-time code field (`acr_values` asked for
/// [`super::op::ACR_MFA`]).
pub fn has_code_field(html: &str) -> bool {
    is_login_form(html) && html.contains("name=\"code\"")
}

fn form_action(html: &str) -> Option<String> {
    let form = &html[html.find("<form")?..];
    let start = form.find("action=\"")? + "action=\"".len();
    let end = form[start..].find('"')?;
    Some(form[start..start + end].replace("&amp;", "&"))
}
