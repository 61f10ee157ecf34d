//! Where the browser is sent to log in: the authorization URL, or with pushed
//! authorization requests (RFC 9126) the `request_uri` the provider gave back for it.

use openidconnect::core::{CoreAuthPrompt, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, CsrfToken, Nonce, PkceCodeChallenge, PkceCodeVerifier, Scope,
};
use serde::Deserialize;

use super::{AuthRequest, Provider};
use crate::oidc::grant_error::{self, GrantError};
use crate::oidc::params::Prompt;
use crate::oidc::token_endpoint;

impl Provider {
    /// The authorization URL the browser is sent to: code flow, PKCE S256, our scopes and
    /// the configured extra parameters.
    pub fn authorize_url(&self, req: &AuthRequest<'_>) -> url::Url {
        let state = req.state.to_owned();
        let nonce = req.nonce.to_owned();
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            req.pkce_verifier.to_owned(),
        ));
        let mut auth = self
            .client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .set_pkce_challenge(challenge);
        for scope in self.scopes.iter().filter(|s| *s != "openid") {
            auth = auth.add_scope(Scope::new(scope.clone()));
        }
        let asked = req.params;
        for (k, v) in &self.auth_params {
            // What the page asked for wins over the configuration; a silent renew must not
            // show a page, so its `prompt=none` replaces a configured `prompt` (such as
            // `consent`), while an interactive prompt joins it.
            if k == "prompt" && asked.prompt.is_some() {
                continue;
            }
            if asked.pairs().any(|(name, _)| name == k) {
                continue;
            }
            auth = auth.add_extra_param(k.clone(), v.clone());
        }
        match &asked.prompt {
            None => {}
            Some(Prompt::None) => auth = auth.add_prompt(CoreAuthPrompt::None),
            Some(Prompt::Interactive(p)) => {
                let configured = self.auth_params.iter().find(|(k, _)| k == "prompt");
                let mut values: Vec<&str> = p.split(' ').collect();
                for v in configured.map(|(_, v)| v.as_str()).unwrap_or("").split(' ') {
                    if !v.is_empty() && v != "none" && !values.contains(&v) {
                        values.push(v);
                    }
                }
                auth = auth.add_extra_param("prompt", values.join(" "));
            }
        }
        for (k, v) in asked.pairs() {
            auth = auth.add_extra_param(k, v);
        }
        if let Some(jkt) = req.dpop_jkt {
            auth = auth.add_extra_param("dpop_jkt", jkt.to_owned());
        }
        auth.url().0
    }

    /// Where to send the browser to log in. With pushed authorization requests (RFC 9126:
    /// configured, or required by the provider) the parameters go to the provider first,
    /// over the back channel and authenticated, and the browser carries only `client_id`
    /// and the `request_uri` the provider gave back.
    pub async fn login_redirect(&self, req: &AuthRequest<'_>) -> Result<url::Url, GrantError> {
        let url = self.authorize_url(req);
        let Some(par) = self.par_endpoint.as_ref().filter(|_| self.use_par) else {
            return Ok(url);
        };
        // Credentials that name the client in the form bring their own client_id; a
        // second one would be a repeated parameter, which providers refuse.
        let own_client_id = self.credentials.names_client_in_form();
        let request = token_endpoint::form_post(par, &self.credentials, |form| {
            for (k, v) in url.query_pairs() {
                if !(own_client_id && k == "client_id") {
                    form.append_pair(&k, &v);
                }
            }
        })?;
        let response = self.http.send(request).await?;
        if !response.status().is_success() {
            return Err(grant_error::classify(response.status(), response.body()));
        }
        #[derive(Deserialize)]
        struct Pushed {
            request_uri: String,
        }
        let pushed: Pushed = serde_json::from_slice(response.body())
            .map_err(|e| grant_error::Invalid::ParResponse(e.into()))?;
        let mut redirect = url.clone();
        redirect
            .query_pairs_mut()
            .clear()
            .append_pair("client_id", self.credentials.client_id())
            .append_pair("request_uri", &pushed.request_uri);
        Ok(redirect)
    }
}
