//! Apple Music: the developer token the server signs and the Music User Token a client
//! obtains with it.
//!
//! The developer token is a JWT signed ES256 with the team's MusicKit private key:
//! header `{"alg":"ES256","kid":<key id>}`, claims `{"iss":<team id>,"iat","exp"}`,
//! good for six months at most. Clients (MusicKit JS, the iOS and Android SDKs) take it
//! to ask the user for a Music User Token, which they hand back to link the account;
//! the server checks it against `GET {api}/me/storefront` with both tokens.

use std::time::Duration;

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey as _;
use serde::Serialize;
use url::Url;

use super::tokens::retry_after;
use crate::domain::time::Timestamp;

/// Why a developer token cannot be signed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// The client secret is not a PKCS#8 PEM P-256 key (Apple's `.p8` file).
    #[error("the signing key is not a PKCS#8 PEM P-256 private key (Apple's .p8 file)")]
    BadKey,
}

/// A developer token and when it expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeveloperToken {
    /// The JWT to hand MusicKit.
    pub token: String,
    /// When it stops being good.
    pub expires_at: Timestamp,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    kid: &'a str,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: u64,
    exp: u64,
}

/// Reads the team's private key from its PEM (as Apple's `.p8` file holds it; an
/// environment variable may write its line breaks as `\n`).
pub fn signing_key(pem: &str) -> Result<SigningKey, SigningError> {
    let pem = pem.trim().replace("\\n", "\n");
    SigningKey::from_pkcs8_pem(&pem).map_err(|_| SigningError::BadKey)
}

/// The developer token of key `key_id` of team `team_id`, issued at `now` for `ttl`.
pub fn developer_token(
    key: &SigningKey,
    key_id: &str,
    team_id: &str,
    now: Timestamp,
    ttl: Duration,
) -> DeveloperToken {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let iat = now.unix_secs();
    let expires_at = now.plus(ttl);
    let header = Header {
        alg: "ES256",
        kid: key_id,
    };
    let claims = Claims {
        iss: team_id,
        iat,
        exp: expires_at.unix_secs(),
    };
    let signed = format!("{}.{}", part(&header), part(&claims));
    // JWS takes the signature as r ‖ s, 32 bytes each (RFC 7518 §3.4), not DER.
    let signature: Signature = key.sign(signed.as_bytes());
    DeveloperToken {
        token: format!("{signed}.{}", b64.encode(signature.to_bytes())),
        expires_at,
    }
}

/// A JWT part: base64url of the JSON of `v` (plain structs of strings and numbers,
/// which always serialize).
fn part<T: Serialize>(v: &T) -> String {
    let json = serde_json::to_vec(v).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// What Apple said of a Music User Token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserTokenError {
    /// 401/403: the token (or the developer token) is not good.
    #[error("Apple Music refused the music user token")]
    Refused,
    /// 429 or 5xx.
    #[error("Apple Music answered {status}; retry later")]
    Busy {
        /// Its status.
        status: u16,
        /// Its `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Unreachable, or an unexpected answer.
    #[error("Apple Music could not be reached or answered unexpectedly: {0}")]
    Unreachable(String),
}

/// Checks `user_token` at Apple's API (`base`): the user's storefront, which only a
/// good pair of tokens reads. Answers the storefront's id (`us`).
pub async fn check_user_token(
    http: &reqwest::Client,
    base: &Url,
    developer_token: &str,
    user_token: &str,
) -> Result<Option<String>, UserTokenError> {
    let mut url = base.clone();
    let path = format!("{}/me/storefront", base.path().trim_end_matches('/'));
    url.set_path(&path);
    let answer = http
        .get(url)
        .bearer_auth(developer_token)
        .header("Music-User-Token", user_token)
        .send()
        .await
        .map_err(|e| UserTokenError::Unreachable(e.to_string()))?;
    let status = answer.status().as_u16();
    match status {
        200..=299 => {}
        401 | 403 => return Err(UserTokenError::Refused),
        429 | 500.. => {
            return Err(UserTokenError::Busy {
                status,
                retry_after: retry_after(answer.headers()),
            });
        }
        _ => return Err(UserTokenError::Unreachable(format!("status {status}"))),
    }
    #[derive(serde::Deserialize)]
    struct Storefronts {
        #[serde(default)]
        data: Vec<Storefront>,
    }
    #[derive(serde::Deserialize)]
    struct Storefront {
        id: String,
    }
    let body: Storefronts = answer
        .json()
        .await
        .map_err(|e| UserTokenError::Unreachable(format!("unreadable answer: {e}")))?;
    Ok(body.data.into_iter().next().map(|s| s.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier as _;
    use p256::pkcs8::{EncodePrivateKey as _, LineEnding};

    #[test]
    fn the_developer_token_verifies_with_the_public_key() {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let key = signing_key(&pem).unwrap();
        let now = Timestamp::from_millis(1_700_000_000_000);
        let ttl = Duration::from_secs(86_400);
        let t = developer_token(&key, "ABC123DEFG", "TEAM123456", now, ttl);
        assert_eq!(t.expires_at, now.plus(ttl));

        let parts: Vec<&str> = t.token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "ES256", "kid": "ABC123DEFG"})
        );
        let claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({"iss": "TEAM123456", "iat": 1_700_000_000, "exp": 1_700_086_400})
        );
        // The public key verifies the signature over `header.claims`, and nothing else.
        let public: VerifyingKey = *key.verifying_key();
        let sig = Signature::from_slice(&b64.decode(parts[2]).unwrap()).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        assert!(public.verify(signed.as_bytes(), &sig).is_ok());
        assert!(public.verify(b"another.payload", &sig).is_err());
        let other = SigningKey::from_slice(&[8u8; 32]).unwrap();
        assert!(
            other
                .verifying_key()
                .verify(signed.as_bytes(), &sig)
                .is_err()
        );
    }

    #[test]
    fn a_key_that_is_not_a_p256_pem_is_refused() {
        assert_eq!(signing_key("not a key").unwrap_err(), SigningError::BadKey);
        assert_eq!(
            signing_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .unwrap_err(),
            SigningError::BadKey
        );
    }
}
