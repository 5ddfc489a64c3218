//! The token endpoint (RFC 6749 §4.1.3 and §6) and revocation (RFC 7009) of an OAuth 2.0
//! provider, through the `oauth2` crate over our reqwest client. Runs on the caller's
//! task (a request's, or a refresher's), never on an actor thread.
//!
//! A provider's answer is sorted into what the caller must do next: a refusal of the
//! grant (`invalid_grant`: it is dead, ask the user again), a refusal of the server's
//! own client or request (`invalid_client`, `unauthorized_client`...: the operator's
//! to fix, and no reason to give up the user's grant), a rate limit or outage with the
//! wait the provider asked for (`Retry-After`), or a grant.

use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthorizationCode, ClientId, ClientSecret, ExtraTokenFields, PkceCodeVerifier, RedirectUrl,
    RefreshToken, RequestTokenError, StandardRevocableToken, StandardTokenResponse,
    TokenResponse as _, TokenUrl,
};
use serde::{Deserialize, Serialize};
use url::Url;

use super::Provider;
use crate::domain::integration::AuthMode;

/// What a token endpoint granted.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    /// The access token.
    pub access_token: String,
    /// The refresh token, when the answer carried one (a refresh answer without one
    /// keeps the old).
    pub refresh_token: Option<String>,
    /// How long the access token lives, when the provider said.
    pub expires_in: Option<Duration>,
    /// The scopes granted, when the provider said (else those asked for).
    pub scopes: Option<Vec<String>>,
    /// Salesforce's per-organisation API address.
    pub instance_url: Option<String>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Why a token request did not grant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The provider refused the grant (`invalid_grant`): retrying will not help.
    #[error("the provider refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        /// The OAuth 2.0 error code.
        error: String,
        /// The provider's description.
        description: Option<String>,
    },
    /// The provider refused the server's client or its request (`invalid_client`,
    /// `unauthorized_client`, `invalid_request`...): the grant may be good.
    #[error("the provider refused this server's client ({error}); check its credentials in config")]
    ClientRefused {
        /// The OAuth 2.0 error code.
        error: String,
    },
    /// The provider is rate limiting or failing (429, 5xx): retry after the wait, when
    /// it named one.
    #[error("the provider answered {status}; retry later")]
    Busy {
        /// Its HTTP status.
        status: u16,
        /// Its `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The provider could not be reached or answered something unreadable.
    #[error("the provider could not be reached or answered unreadably: {0}")]
    Unreachable(String),
    /// The provider has no token endpoint or client id configured.
    #[error("the provider is not configured for OAuth 2.0")]
    NotConfigured,
}

impl TokenError {
    /// Whether the grant is dead (the user must link again).
    pub fn is_refusal(&self) -> bool {
        matches!(self, TokenError::Refused { .. })
    }
}

/// Fields beyond the standard a shipped provider answers with.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Extra {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    instance_url: Option<String>,
}

impl ExtraTokenFields for Extra {}

type Answer = StandardTokenResponse<Extra, BasicTokenType>;

type Client<HasToken, HasRevocation> = oauth2::Client<
    BasicErrorResponse,
    Answer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    HasRevocation,
    HasToken,
>;

/// A failure of the transport, or a status the caller must back off from.
#[derive(Debug, thiserror::Error)]
enum Transport {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("status {status}")]
    Busy {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("{0}")]
    Request(String),
}

/// `Retry-After` in seconds (the HTTP-date form is rare from APIs and read as absent).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The oauth2 crate's HTTP client: our reqwest client (a named type rather than a
/// closure, so that the futures stay `Send` for any lifetime).
struct Http<'a>(&'a reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for Http<'_> {
    type Error = Transport;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<oauth2::HttpResponse, Transport>> + Send + Sync + 'c>,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        let http = self.0.clone();
        Box::pin(async move { send(&http, request).await })
    }
}

/// Sends one request of the oauth2 crate with `http`, turning 429 and 5xx into
/// [`Transport::Busy`].
async fn send(
    http: &reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, Transport> {
    let (parts, body) = request.into_parts();
    let url = parts.uri.to_string();
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
        .map_err(|e| Transport::Request(e.to_string()))?;
    let mut r = http.request(method, url).body(body);
    for (name, value) in &parts.headers {
        r = r.header(name.as_str(), value.as_bytes());
    }
    let answer = r.send().await?;
    let status = answer.status().as_u16();
    if status == 429 || status >= 500 {
        return Err(Transport::Busy {
            status,
            retry_after: retry_after(answer.headers()),
        });
    }
    let mut out = oauth2::http::Response::builder().status(status);
    for (name, value) in answer.headers() {
        out = out.header(name.as_str(), value.as_bytes());
    }
    let bytes = answer.bytes().await?;
    out.body(bytes.to_vec())
        .map_err(|e| Transport::Request(e.to_string()))
}

fn client(
    provider: &Provider,
) -> Result<Client<oauth2::EndpointSet, oauth2::EndpointNotSet>, TokenError> {
    let c = &provider.config;
    let (Some(id), Some(token)) = (&provider.client_id, &c.token_url) else {
        return Err(TokenError::NotConfigured);
    };
    if c.auth != AuthMode::Oauth2 {
        return Err(TokenError::NotConfigured);
    }
    let mut client =
        Client::new(ClientId::new(id.clone())).set_token_uri(TokenUrl::from_url(token.clone()));
    if let Some(s) = &provider.client_secret {
        client = client.set_client_secret(ClientSecret::new(s.expose().to_owned()));
    }
    Ok(client)
}

fn grant(answer: Answer) -> Grant {
    Grant {
        access_token: answer.access_token().secret().clone(),
        refresh_token: answer.refresh_token().map(|t| t.secret().clone()),
        expires_in: answer.expires_in(),
        scopes: answer
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect()),
        instance_url: answer.extra_fields().instance_url.clone(),
    }
}

fn failure(e: RequestTokenError<Transport, BasicErrorResponse>) -> TokenError {
    match e {
        RequestTokenError::ServerResponse(r) => match r.error() {
            BasicErrorResponseType::InvalidGrant => TokenError::Refused {
                error: r.error().as_ref().to_owned(),
                description: r.error_description().cloned(),
            },
            other => TokenError::ClientRefused {
                error: other.as_ref().to_owned(),
            },
        },
        RequestTokenError::Request(Transport::Busy {
            status,
            retry_after,
        }) => TokenError::Busy {
            status,
            retry_after,
        },
        RequestTokenError::Request(e) => TokenError::Unreachable(e.to_string()),
        RequestTokenError::Parse(e, _) => {
            TokenError::Unreachable(format!("unreadable answer: {e}"))
        }
        RequestTokenError::Other(e) => TokenError::Unreachable(e),
    }
}

/// Exchanges the authorization `code` the callback brought, proving `verifier` (PKCE).
pub async fn exchange_code(
    http: &reqwest::Client,
    provider: &Provider,
    redirect: &Url,
    code: &str,
    verifier: Option<&str>,
) -> Result<Grant, TokenError> {
    let client = client(provider)?.set_redirect_uri(RedirectUrl::from_url(redirect.clone()));
    let mut request = client.exchange_code(AuthorizationCode::new(code.to_owned()));
    if let Some(v) = verifier {
        request = request.set_pkce_verifier(PkceCodeVerifier::new(v.to_owned()));
    }
    let call = Http(http);
    request
        .request_async(&call)
        .await
        .map(grant)
        .map_err(failure)
}

/// Trades `refresh_token` for a new access token (and, with rotating providers, a new
/// refresh token).
pub async fn refresh(
    http: &reqwest::Client,
    provider: &Provider,
    refresh_token: &str,
) -> Result<Grant, TokenError> {
    let client = client(provider)?;
    let token = RefreshToken::new(refresh_token.to_owned());
    let call = Http(http);
    client
        .exchange_refresh_token(&token)
        .request_async(&call)
        .await
        .map(grant)
        .map_err(failure)
}

/// Revokes `token` at the provider (RFC 7009), when it has a revocation endpoint:
/// `Ok(false)` when it has none. Sent directly rather than through the oauth2 crate,
/// which refuses a revocation address that is not https: config already allows plain
/// http only to loopback (a local fake or sidecar).
pub async fn revoke(
    http: &reqwest::Client,
    provider: &Provider,
    token: &str,
    is_refresh: bool,
) -> Result<bool, TokenError> {
    let c = &provider.config;
    let Some(url) = &c.revocation_url else {
        return Ok(false);
    };
    let id = provider
        .client_id
        .as_deref()
        .ok_or(TokenError::NotConfigured)?;
    let hint = if is_refresh {
        "refresh_token"
    } else {
        "access_token"
    };
    let mut request = http.post(url.clone());
    // The serializer is not `Send`: done with before the request is sent.
    let body = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token)
            .append_pair("token_type_hint", hint);
        match &provider.client_secret {
            // RFC 6749 §2.3.1: Basic with the form-encoded id and secret.
            Some(secret) => {
                let enc = |v: &str| {
                    url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                };
                request = request.basic_auth(enc(id), Some(enc(secret.expose())));
            }
            None => {
                form.append_pair("client_id", id);
            }
        }
        form.finish()
    };
    let answer = request
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .map_err(|e| TokenError::Unreachable(e.to_string()))?;
    let status = answer.status().as_u16();
    if status == 429 || status >= 500 {
        return Err(TokenError::Busy {
            status,
            retry_after: retry_after(answer.headers()),
        });
    }
    if answer.status().is_success() {
        return Ok(true);
    }
    #[derive(Deserialize)]
    struct Refusal {
        error: String,
        error_description: Option<String>,
    }
    match answer.json::<Refusal>().await {
        Ok(r) => Err(TokenError::Refused {
            error: r.error,
            description: r.error_description,
        }),
        Err(_) => Err(TokenError::Refused {
            error: format!("status {status}"),
            description: None,
        }),
    }
}
