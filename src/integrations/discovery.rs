//! Endpoint discovery for an operator's own OAuth 2.0 / OpenID Connect provider: its
//! `issuer` is all config needs. The metadata is read from
//! `{issuer}/.well-known/openid-configuration` (OpenID Connect Discovery 1.0), or where
//! that is not found from RFC 8414's `/.well-known/oauth-authorization-server{path}`,
//! and taken only when the document names the configured issuer exactly, byte for
//! byte (Discovery §4.3: a document served for another issuer is not this
//! provider's), and every endpoint is https (http only to a loopback host), like an
//! endpoint in config. A document is at most [`MAX_DOCUMENT`] bytes.

use serde::Deserialize;
use url::Url;

use crate::config::Issuer;

/// The largest discovery document read: real ones are a few KiB.
pub const MAX_DOCUMENT: usize = 64 * 1024;

/// The endpoints a discovery document gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// Where the user authorizes a link.
    pub authorization: Url,
    /// Where codes and refresh tokens are exchanged.
    pub token: Url,
    /// Where a token is revoked (RFC 7009), if the provider has one.
    pub revocation: Option<Url>,
}

/// Why discovery failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// No metadata at either well-known address, or the provider is unreachable.
    #[error("no discovery document at {0}")]
    Unreachable(String),
    /// The document is not metadata of an authorization server.
    #[error("the discovery document is malformed: {0}")]
    Malformed(String),
    /// The document names another issuer.
    #[error("the discovery document names the issuer {found:?}, not {expected:?}")]
    IssuerMismatch { expected: String, found: String },
    /// An endpoint is not https.
    #[error("{0}")]
    Endpoint(String),
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
}

/// The two well-known addresses of `issuer`'s metadata, in the order tried.
pub fn metadata_urls(issuer: &Issuer) -> [String; 2] {
    let base = issuer.as_str().trim_end_matches('/');
    let url = issuer.url();
    let origin = url.origin().ascii_serialization();
    let path = url.path().trim_end_matches('/');
    [
        format!("{base}/.well-known/openid-configuration"),
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
    ]
}

/// The endpoints `issuer` publishes, read with `http` (which follows no redirects).
pub async fn discover(
    http: &reqwest::Client,
    issuer: &Issuer,
) -> Result<Endpoints, DiscoveryError> {
    let mut tried = Vec::new();
    for url in metadata_urls(issuer) {
        let answer = match http.get(&url).send().await {
            Ok(a) if a.status().is_success() => a,
            Ok(a) => {
                tried.push(format!("{url} ({})", a.status().as_u16()));
                continue;
            }
            Err(e) => {
                tried.push(format!("{url} ({e})"));
                continue;
            }
        };
        let body = capped(answer).await?;
        let doc: Metadata =
            serde_json::from_slice(&body).map_err(|e| DiscoveryError::Malformed(e.to_string()))?;
        return endpoints(issuer, doc);
    }
    Err(DiscoveryError::Unreachable(tried.join(", ")))
}

/// The body of `answer`, refused past [`MAX_DOCUMENT`] bytes (read no further).
async fn capped(mut answer: reqwest::Response) -> Result<Vec<u8>, DiscoveryError> {
    let too_large = || DiscoveryError::Malformed(format!("larger than {MAX_DOCUMENT} bytes"));
    if answer
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = answer
        .chunk()
        .await
        .map_err(|e| DiscoveryError::Unreachable(e.to_string()))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The endpoints of `doc`, checked against the configured `issuer`.
fn endpoints(issuer: &Issuer, doc: Metadata) -> Result<Endpoints, DiscoveryError> {
    if doc.issuer != issuer.as_str() {
        return Err(DiscoveryError::IssuerMismatch {
            expected: issuer.as_str().to_owned(),
            found: doc.issuer,
        });
    }
    let check = |field: &str, v: Option<String>| {
        crate::config::endpoint(field, v.as_deref().unwrap_or_default())
            .map_err(|e| DiscoveryError::Endpoint(format!("{}: {}", e.key, e.reason)))
    };
    let required = |field: &str, v: Option<String>| {
        check(field, v)?.ok_or_else(|| DiscoveryError::Malformed(format!("no {field}")))
    };
    Ok(Endpoints {
        authorization: required("authorization_endpoint", doc.authorization_endpoint)?,
        token: required("token_endpoint", doc.token_endpoint)?,
        revocation: check("revocation_endpoint", doc.revocation_endpoint)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(v: &str) -> Issuer {
        Issuer::parse("issuer", v).unwrap().unwrap()
    }

    fn doc(issuer: &str, token: &str) -> Metadata {
        Metadata {
            issuer: issuer.into(),
            authorization_endpoint: Some("https://id.example.com/authorize".into()),
            token_endpoint: Some(token.into()),
            revocation_endpoint: None,
        }
    }

    #[test]
    fn both_well_known_addresses_of_an_issuer_with_a_path() {
        assert_eq!(
            metadata_urls(&issuer("https://id.example.com/tenant/a/")),
            [
                "https://id.example.com/tenant/a/.well-known/openid-configuration".to_owned(),
                "https://id.example.com/.well-known/oauth-authorization-server/tenant/a".to_owned(),
            ]
        );
    }

    #[test]
    fn a_document_for_another_issuer_or_with_a_plain_http_endpoint_is_refused() {
        let issuer = issuer("https://id.example.com");
        let ok = endpoints(
            &issuer,
            doc("https://id.example.com", "https://id.example.com/t"),
        );
        assert_eq!(ok.unwrap().token.as_str(), "https://id.example.com/t");
        let other = endpoints(
            &issuer,
            doc("https://evil.example", "https://id.example.com/t"),
        );
        assert!(matches!(other, Err(DiscoveryError::IssuerMismatch { .. })));
        // Exactly as configured: not even a trailing slash more.
        let slash = endpoints(
            &issuer,
            doc("https://id.example.com/", "https://id.example.com/t"),
        );
        assert!(matches!(slash, Err(DiscoveryError::IssuerMismatch { .. })));
        let plain = endpoints(
            &issuer,
            doc("https://id.example.com", "http://id.example.com/t"),
        );
        assert!(matches!(plain, Err(DiscoveryError::Endpoint(_))));
        let mut none = doc("https://id.example.com", "https://id.example.com/t");
        none.token_endpoint = None;
        assert!(matches!(
            endpoints(&issuer, none),
            Err(DiscoveryError::Malformed(_))
        ));
    }
}
