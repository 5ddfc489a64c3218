//! Self-routing session tokens: `<user id>.<session id>.<secret>`.
//!
//! The user id routes a check to one actor, the session id finds the session there, and
//! the 256-bit secret proves possession. The server keeps only SHA-256 of the secret (a
//! fast hash is right for a random 256-bit value: there is nothing to brute-force).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::hex;
use crate::domain::ids::{SessionId, UserId};
use crate::security::keys::DataKey;

/// Bytes of token secret.
pub(crate) const SECRET_LEN: usize = 32;

/// A bearer token as issued to a client.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken {
    user: UserId,
    session: SessionId,
    secret: [u8; SECRET_LEN],
}

/// A string that is not a well-formed token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed session token")]
pub struct MalformedToken;

impl SessionToken {
    /// A new token for a new session of `user`.
    pub fn issue(user: UserId) -> Self {
        let mut secret = [0u8; SECRET_LEN];
        rand::fill(&mut secret);
        Self {
            user,
            session: SessionId::generate(),
            secret,
        }
    }

    /// Parses a token string; checks shape only (validity is the actor's call).
    pub fn parse(s: &str) -> Result<Self, MalformedToken> {
        let mut parts = s.split('.');
        let (Some(u), Some(sid), Some(sec), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(MalformedToken);
        };
        let user = UserId::from_bytes(hex16(u)?);
        let session = SessionId::from_bytes(hex16(sid)?);
        let raw = URL_SAFE_NO_PAD.decode(sec).map_err(|_| MalformedToken)?;
        let secret: [u8; SECRET_LEN] = raw.try_into().map_err(|_| MalformedToken)?;
        Ok(Self {
            user,
            session,
            secret,
        })
    }

    /// The user the token belongs to.
    pub fn user_id(&self) -> UserId {
        self.user
    }

    /// The session the token opens.
    pub fn session_id(&self) -> SessionId {
        self.session
    }

    /// SHA-256 of the secret: what the server stores.
    pub fn secret_hash(&self) -> [u8; 32] {
        Sha256::digest(self.secret).into()
    }

    /// Whether this token's secret hashes to `stored`, compared in constant time.
    pub fn matches(&self, stored: &[u8; 32]) -> bool {
        self.secret_hash().ct_eq(stored).into()
    }

    /// The token string to hand to the client. Deliberately not `Display`, so a token
    /// never reaches a log line through `{}` by accident.
    pub(crate) fn expose(&self) -> String {
        format!(
            "{}.{}.{}",
            hex::encode(self.user.as_bytes()),
            hex::encode(self.session.as_bytes()),
            URL_SAFE_NO_PAD.encode(self.secret)
        )
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionToken({}, {}, <secret>)", self.user, self.session)
    }
}

/// An invitation to set a password, sent by email to a user created without one:
/// `<user id>.<secret>`. The user id routes the acceptance; the server keeps SHA-256 of
/// the 256-bit secret.
#[derive(Clone, PartialEq, Eq)]
pub struct InvitationToken {
    user: UserId,
    secret: [u8; SECRET_LEN],
}

impl InvitationToken {
    /// A new invitation for `user`.
    pub fn issue(user: UserId) -> Self {
        let mut secret = [0u8; SECRET_LEN];
        rand::fill(&mut secret);
        Self { user, secret }
    }

    /// Parses an invitation string; checks shape only.
    pub fn parse(s: &str) -> Result<Self, MalformedToken> {
        let (u, sec) = s.trim().split_once('.').ok_or(MalformedToken)?;
        let user = UserId::from_bytes(hex16(u)?);
        let raw = URL_SAFE_NO_PAD.decode(sec).map_err(|_| MalformedToken)?;
        let secret: [u8; SECRET_LEN] = raw.try_into().map_err(|_| MalformedToken)?;
        Ok(Self { user, secret })
    }

    /// The invited user.
    pub fn user_id(&self) -> UserId {
        self.user
    }

    /// SHA-256 of the secret: what the server stores.
    pub fn secret_hash(&self) -> [u8; 32] {
        Sha256::digest(self.secret).into()
    }

    /// Whether this token's secret hashes to `stored`, compared in constant time.
    pub fn matches(&self, stored: &[u8; 32]) -> bool {
        self.secret_hash().ct_eq(stored).into()
    }

    /// The string the invitation email carries (not `Display`, as for sessions).
    pub(crate) fn expose(&self) -> String {
        format!(
            "{}.{}",
            hex::encode(self.user.as_bytes()),
            URL_SAFE_NO_PAD.encode(self.secret)
        )
    }
}

impl fmt::Debug for InvitationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InvitationToken({}, <secret>)", self.user)
    }
}

/// Seals the challenge tokens handed to callers who are not signed in (a login's second
/// step, a passwordless start), so that nothing in them names an account.
///
/// A challenge token routes like a session token — to the user's actor, which holds the
/// challenge — but a session token carries its user id in clear, and an anonymous
/// passwordless start would then tell anyone which emails have a passkey, and their ids.
/// Sealed, every challenge token is `base64url(nonce ‖ AES-256-GCM(user ‖ challenge ‖
/// secret) ‖ tag)`: 123 characters, different on every call, for a real account and a
/// decoy alike. The key lives in memory only, as the challenges themselves do: a restart
/// ends both.
pub struct ChallengeSeal(DataKey);

/// Bytes of a sealed challenge token, before base64: nonce, ids and secret, tag.
const SEALED_LEN: usize = 12 + 16 + 16 + SECRET_LEN + 16;

/// Binds sealed challenge tokens to their purpose.
const CHALLENGE_AAD: &[u8] = b"roster challenge token v1";

impl ChallengeSeal {
    /// A new random key.
    pub fn generate() -> Self {
        Self(DataKey::generate())
    }

    /// The opaque text of `token`.
    pub fn seal(&self, token: &SessionToken) -> String {
        let mut plain = zeroize::Zeroizing::new([0u8; 16 + 16 + SECRET_LEN]);
        plain[..16].copy_from_slice(token.user.as_bytes());
        plain[16..32].copy_from_slice(token.session.as_bytes());
        plain[32..].copy_from_slice(&token.secret);
        let mut out = Vec::with_capacity(SEALED_LEN);
        self.0.seal_into(CHALLENGE_AAD, &plain[..], &mut out);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The token inside `text`, if this key sealed it.
    pub fn open(&self, text: &str) -> Result<SessionToken, MalformedToken> {
        if text.len() != (SEALED_LEN * 4).div_ceil(3) {
            return Err(MalformedToken);
        }
        let sealed = URL_SAFE_NO_PAD.decode(text).map_err(|_| MalformedToken)?;
        let plain = zeroize::Zeroizing::new(
            self.0
                .open(CHALLENGE_AAD, &sealed)
                .map_err(|_| MalformedToken)?,
        );
        let ids: &[u8; 16 + 16 + SECRET_LEN] = plain[..].try_into().map_err(|_| MalformedToken)?;
        let mut user = [0u8; 16];
        let mut session = [0u8; 16];
        let mut secret = [0u8; SECRET_LEN];
        user.copy_from_slice(&ids[..16]);
        session.copy_from_slice(&ids[16..32]);
        secret.copy_from_slice(&ids[32..]);
        Ok(SessionToken {
            user: UserId::from_bytes(user),
            session: SessionId::from_bytes(session),
            secret,
        })
    }
}

fn hex16(s: &str) -> Result<[u8; 16], MalformedToken> {
    // Every request parses a token: decode nibbles directly rather than via str parsing.
    fn nibble(c: u8) -> Result<u8, MalformedToken> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(MalformedToken),
        }
    }
    let bytes: &[u8; 32] = s.as_bytes().try_into().map_err(|_| MalformedToken)?;
    let mut out = [0u8; 16];
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_only_its_own_hash() {
        let t = SessionToken::issue(UserId::generate());
        let s = t.expose();
        let back = SessionToken::parse(&s).unwrap();
        assert_eq!(back, t);
        assert!(back.matches(&t.secret_hash()));
        let other = SessionToken::issue(t.user_id());
        assert!(!other.matches(&t.secret_hash()));
        assert!(
            !format!("{t:?}").contains(&s[66..]),
            "debug hides the secret"
        );
    }

    #[test]
    fn sealed_challenges_name_nobody_and_open_only_with_their_key() {
        let seal = ChallengeSeal::generate();
        let t = SessionToken::issue(UserId::generate());
        let a = seal.seal(&t);
        let b = seal.seal(&t);
        assert_ne!(a, b, "a fresh nonce every time");
        assert_eq!(a.len(), 123);
        assert_eq!(seal.open(&a).unwrap(), t);
        let user_hex = hex::encode(t.user_id().as_bytes());
        assert!(!a.contains(&user_hex) && !a.contains(&t.user_id().to_string()));
        assert!(ChallengeSeal::generate().open(&a).is_err(), "another key");
        assert!(
            seal.open(&t.expose()).is_err(),
            "a session token is not a challenge"
        );
        let mut tampered = a.clone().into_bytes();
        tampered[60] = if tampered[60] == b'A' { b'B' } else { b'A' };
        assert!(seal.open(std::str::from_utf8(&tampered).unwrap()).is_err());
        for bad in ["", "x", &a[..122]] {
            assert!(seal.open(bad).is_err());
        }
    }

    #[test]
    fn rejects_malformed_tokens() {
        let good = SessionToken::issue(UserId::generate()).expose();
        let head = &good[..good.len() - 1];
        for bad in [
            String::new(),
            "a.b.c".into(),
            format!("{good}.x"),
            head.to_owned(),
            format!("{head}!"),
            format!("g{}", &good[1..]),
            format!("é{}", &good[2..]),
        ] {
            assert_eq!(SessionToken::parse(&bad), Err(MalformedToken), "{bad:?}");
        }
    }
}
