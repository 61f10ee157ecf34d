//! The authentication-request parameters a page may pass through `/bff/login`
//! (OpenID Connect Core §3.1.2.1), each held to its syntax. An allow-list: a page cannot
//! slip `redirect_uri`, `scope`, `request` or anything else to the provider.

/// What `/bff/login` forwards to the provider, checked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoginParams {
    pub prompt: Option<Prompt>,
    /// Space-separated ACR values, in the order asked.
    pub acr_values: Option<String>,
    /// Seconds.
    pub max_age: Option<u64>,
    pub login_hint: Option<String>,
    pub ui_locales: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// `prompt=none`: a silent renewal.
    None,
    /// `login`, `consent`, `select_account`, alone or together (space-separated).
    Interactive(String),
}

/// The query parameters `/bff/login` takes besides these: `returnUrl`.
pub const FORWARDED: [&str; 5] = [
    "prompt",
    "acr_values",
    "max_age",
    "login_hint",
    "ui_locales",
];

/// The longest `max_age` taken: ten years, far beyond any session.
const MAX_AGE_LIMIT: u64 = 10 * 365 * 86_400;

impl LoginParams {
    /// Sets `name` from the browser's `value`; `Err` says what is wrong in words of ours
    /// (never an echo of the value).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), &'static str> {
        match name {
            "prompt" => self.prompt = Some(prompt(value)?),
            "acr_values" => self.acr_values = Some(acr_values(value)?),
            "max_age" => {
                let secs = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| value.parse::<u64>().ok())
                    .flatten()
                    .filter(|s| *s <= MAX_AGE_LIMIT)
                    .ok_or("max_age must be a whole number of seconds")?;
                self.max_age = Some(secs);
            }
            "login_hint" => {
                let ok = (1..=256).contains(&value.chars().count())
                    && !value.chars().any(char::is_control);
                if !ok {
                    return Err("login_hint must be 1 to 256 printable characters");
                }
                self.login_hint = Some(value.to_owned());
            }
            "ui_locales" => self.ui_locales = Some(ui_locales(value)?),
            _ => {
                return Err(
                    "only returnUrl, prompt, acr_values, max_age, login_hint and \
                            ui_locales are accepted",
                );
            }
        }
        Ok(())
    }

    pub fn silent(&self) -> bool {
        self.prompt == Some(Prompt::None)
    }

    /// The parameters as they go to the provider, `prompt` aside (merged with the
    /// configured one by the caller).
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        [
            ("acr_values", self.acr_values.clone()),
            ("max_age", self.max_age.map(|s| s.to_string())),
            ("login_hint", self.login_hint.clone()),
            ("ui_locales", self.ui_locales.clone()),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
    }
}

fn prompt(value: &str) -> Result<Prompt, &'static str> {
    const INTERACTIVE: [&str; 3] = ["login", "consent", "select_account"];
    const WRONG: &str =
        "prompt must be none, or login, consent and select_account (space-separated)";
    if value == "none" {
        return Ok(Prompt::None);
    }
    let mut seen: Vec<&str> = Vec::new();
    for v in value.split(' ') {
        if !INTERACTIVE.contains(&v) || seen.contains(&v) {
            return Err(WRONG);
        }
        seen.push(v);
    }
    Ok(Prompt::Interactive(seen.join(" ")))
}

/// An ACR value as a parameter or a claim may carry it (defined with the route `acr`
/// rules the configuration checks).
pub use crate::config::is_acr_value;

/// Up to ten space-separated ACR values.
pub fn acr_values(value: &str) -> Result<String, &'static str> {
    let values: Vec<&str> = value.split(' ').collect();
    if values.len() > 10 || !values.iter().all(|v| is_acr_value(v)) {
        return Err("acr_values must be up to ten space-separated values of printable ASCII");
    }
    Ok(values.join(" "))
}

fn ui_locales(value: &str) -> Result<String, &'static str> {
    let tags: Vec<&str> = value.split(' ').collect();
    let tag = |t: &str| {
        (1..=35).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if tags.len() > 10 || !tags.iter().all(|t| tag(t)) {
        return Err("ui_locales must be up to ten space-separated language tags");
    }
    Ok(tags.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &str, value: &str) -> Result<LoginParams, &'static str> {
        let mut p = LoginParams::default();
        p.set(name, value).map(|()| p)
    }

    #[test]
    fn each_allowed_parameter_is_held_to_its_syntax() {
        assert!(with("prompt", "none").is_ok_and(|p| p.silent()));
        assert_eq!(
            with("prompt", "login consent").map(|p| p.prompt),
            Ok(Some(Prompt::Interactive("login consent".into())))
        );
        for bad in [
            "",
            "none login",
            "login login",
            "create",
            "LOGIN",
            "login  consent",
        ] {
            assert!(with("prompt", bad).is_err(), "{bad:?}");
        }
        assert!(with("acr_values", "urn:a urn:b").is_ok());
        for bad in ["", "a  b", "a\"b", "a\\b", "ü", &"a ".repeat(11)] {
            assert!(with("acr_values", bad).is_err(), "{bad:?}");
        }
        assert_eq!(with("max_age", "900").map(|p| p.max_age), Ok(Some(900)));
        assert_eq!(with("max_age", "0").map(|p| p.max_age), Ok(Some(0)));
        for bad in [
            "",
            "-1",
            "+5",
            "1.5",
            "1e3",
            "99999999999999999999",
            "400000000",
        ] {
            assert!(with("max_age", bad).is_err(), "{bad:?}");
        }
        assert!(with("login_hint", "alice@example.test").is_ok());
        for bad in ["", "a\nb", &"x".repeat(257)] {
            assert!(with("login_hint", bad).is_err(), "{bad:?}");
        }
        assert!(with("ui_locales", "fr-CA en").is_ok());
        for bad in ["", "fr_CA", "en  fr", "<x>"] {
            assert!(with("ui_locales", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for name in [
            "redirect_uri",
            "scope",
            "request",
            "request_uri",
            "client_id",
            "claims",
            "nonce",
            "state",
        ] {
            assert!(with(name, "x").is_err(), "{name}");
        }
    }
}
