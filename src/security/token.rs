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

use crate::domain::ids::{SessionId, UserId};

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
            hex(self.user.as_bytes()),
            hex(self.session.as_bytes()),
            URL_SAFE_NO_PAD.encode(self.secret)
        )
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionToken({}, {}, <secret>)", self.user, self.session)
    }
}

fn hex(bytes: &[u8; 16]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
