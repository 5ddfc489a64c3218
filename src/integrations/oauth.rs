//! OAuth 2.0 authorization code requests (RFC 6749) with PKCE (RFC 7636, S256), built
//! with the `oauth2` crate: the address the user is sent to, with the `state` the
//! callback must bring back and the verifier the code exchange must prove.

use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};
use url::Url;

use super::Provider;
use crate::domain::integration::AuthMode;

/// An authorization request: where to send the user, and what to keep for the callback.
#[derive(Clone, Debug)]
pub struct Authorization {
    /// The provider's authorization address with every parameter.
    pub url: Url,
    /// The PKCE verifier (when the provider takes PKCE): kept secret until the code
    /// exchange.
    pub verifier: Option<String>,
}

/// Why an authorization request cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    /// The provider is not linked by OAuth 2.0.
    #[error("the provider is not linked through OAuth 2.0")]
    NotOauth2,
    /// Its client id or authorization address is not configured.
    #[error("the provider is not configured (no client id or authorization address)")]
    Unavailable,
}

/// The request sending the user to `provider` to approve a link, coming back to
/// `redirect` with `state`.
pub fn authorization(
    provider: &Provider,
    redirect: &Url,
    state: &str,
) -> Result<Authorization, AuthorizationError> {
    let c = &provider.config;
    if c.auth != AuthMode::Oauth2 {
        return Err(AuthorizationError::NotOauth2);
    }
    let (Some(id), Some(auth)) = (&provider.client_id, &c.authorization_url) else {
        return Err(AuthorizationError::Unavailable);
    };
    let client = BasicClient::new(ClientId::new(id.clone()))
        .set_auth_uri(AuthUrl::from_url(auth.clone()))
        .set_redirect_uri(RedirectUrl::from_url(redirect.clone()));
    let state = state.to_owned();
    let mut request = client
        .authorize_url(move || CsrfToken::new(state))
        .add_scopes(c.scopes.iter().cloned().map(Scope::new));
    for (k, v) in &c.authorization_params {
        request = request.add_extra_param(k.as_str(), v.as_str());
    }
    let verifier = if c.pkce {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        request = request.set_pkce_challenge(challenge);
        Some(verifier.secret().clone())
    } else {
        None
    };
    let (url, _) = request.url();
    Ok(Authorization { url, verifier })
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use sha2::Digest as _;

    use super::*;
    use crate::integrations::Registry;

    fn registry(extra: &str) -> Registry {
        let c = crate::integrations::registry::tests::config(extra);
        Registry::new(&c.integrations, |_| None)
    }

    fn query(url: &Url) -> std::collections::BTreeMap<String, String> {
        url.query_pairs()
            .map(|(k, v)| (k.into(), v.into()))
            .collect()
    }

    #[test]
    fn the_request_carries_state_scopes_and_an_s256_challenge_of_its_verifier() {
        let r = registry(
            "[integrations.providers.google_calendar]\nclient_id = \"cid\"\n\
             authorization_url = \"http://127.0.0.1:4/authorize\"",
        );
        let p = r.get("google_calendar").unwrap();
        let redirect =
            Url::parse("https://roster.example/api/v1/integrations/google_calendar/callback")
                .unwrap();
        let a = authorization(p, &redirect, "the-state").unwrap();
        assert!(a.url.as_str().starts_with("http://127.0.0.1:4/authorize?"));
        let q = query(&a.url);
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "cid");
        assert_eq!(q["state"], "the-state");
        assert_eq!(q["redirect_uri"], redirect.as_str());
        assert_eq!(
            q["scope"],
            "https://www.googleapis.com/auth/calendar.readonly"
        );
        assert_eq!(q["access_type"], "offline");
        assert_eq!(q["code_challenge_method"], "S256");
        // The challenge is BASE64URL(SHA-256(verifier)), computed apart here.
        let verifier = a.verifier.unwrap();
        assert!((43..=128).contains(&verifier.len()));
        let digest = sha2::Sha256::digest(verifier.as_bytes());
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        assert_eq!(q["code_challenge"], expected);
        // A new request, a new verifier.
        let b = authorization(p, &redirect, "s").unwrap();
        assert_ne!(b.verifier.unwrap(), verifier);
    }

    #[test]
    fn a_provider_without_pkce_or_credentials_or_oauth_is_told_apart() {
        let r =
            registry("[integrations.providers.slack]\nclient_id = \"cid\"\nclient_secret = \"s\"");
        let redirect = Url::parse("https://roster.example/cb").unwrap();
        let slack = authorization(r.get("slack").unwrap(), &redirect, "s").unwrap();
        assert!(slack.verifier.is_none());
        assert!(!query(&slack.url).contains_key("code_challenge"));
        let spotify = authorization(r.get("spotify").unwrap(), &redirect, "s");
        assert_eq!(spotify.unwrap_err(), AuthorizationError::Unavailable);
        let lastfm = authorization(r.get("lastfm").unwrap(), &redirect, "s");
        assert_eq!(lastfm.unwrap_err(), AuthorizationError::NotOauth2);
    }
}
