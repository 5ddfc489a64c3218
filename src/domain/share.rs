//! Read-only links to a dashboard: whoever holds a link's token sees the dashboard's
//! figures without the operator key, until the link expires or an operator revokes it.
//! Only the token's SHA-256 is kept, in the dashboard's record.

use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

use super::time::Timestamp;
use super::validation::ValidationError;

/// Live read-only links of one dashboard at most.
pub const MAX_SHARES: usize = 20;
/// The longest a read-only link lasts, in days.
pub const MAX_SHARE_DAYS: u32 = 365;
/// How long a link lasts unless the operator says, in days.
pub const DEFAULT_SHARE_DAYS: u32 = 30;
/// What a link's token starts with (so a leaked one is recognised by secret scanners).
pub const TOKEN_PREFIX: &str = "rds_";
/// Random bytes of a token.
const TOKEN_BYTES: usize = 32;

/// A read-only link as an operator asks for it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareDraft {
    /// Who or what the link is for, to recognise it in the list (up to 80 characters).
    #[serde(default)]
    pub label: Option<String>,
    /// Days until it stops working: 1 to 365 (default 30).
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A read-only link of a dashboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Share {
    /// Its id, to revoke it by.
    pub id: String,
    /// Who or what it is for.
    pub label: Option<String>,
    /// The hex SHA-256 of its token: all that is kept of it.
    pub token_sha256: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
}

impl Share {
    /// Whether it still opens its dashboard at `now`.
    pub fn live(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }

    /// Whether it is the link of a token whose digest is `digest` and still works.
    pub fn opens(&self, digest: &str, now: Timestamp) -> bool {
        let same: bool = self.token_sha256.as_bytes().ct_eq(digest.as_bytes()).into();
        same && self.live(now)
    }
}

impl ShareDraft {
    /// The link it makes at `now`, with the token to hand out (shown once, never kept).
    pub fn issue(self, now: Timestamp) -> Result<(Share, String), ValidationError> {
        let days = self.expires_in_days.unwrap_or(DEFAULT_SHARE_DAYS);
        if !(1..=MAX_SHARE_DAYS).contains(&days) {
            return Err(ValidationError::new(
                "expires_in_days",
                format!("must be 1 to {MAX_SHARE_DAYS}"),
            ));
        }
        let label = match self.label.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(l) if l.chars().count() > 80 || l.chars().any(char::is_control) => {
                return Err(ValidationError::new(
                    "label",
                    "must be at most 80 characters, none a control character",
                ));
            }
            Some(l) => Some(l.to_owned()),
        };
        let mut secret = [0u8; TOKEN_BYTES];
        rand::fill(&mut secret);
        let token = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        let mut id = [0u8; 6];
        rand::fill(&mut id);
        let share = Share {
            id: super::hex::encode(&id),
            label,
            token_sha256: token_digest(&token),
            created_at: now,
            expires_at: now.plus(Duration::from_secs(u64::from(days) * 86_400)),
        };
        Ok((share, token))
    }
}

/// The digest a token is kept as.
pub fn token_digest(token: &str) -> String {
    super::hex::encode(&sha2::Sha256::digest(token.trim().as_bytes()))
}

/// Whether `token` has the shape of a link's token (before any lookup).
pub fn looks_like_token(token: &str) -> bool {
    let t = token.trim();
    t.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);

    #[test]
    fn a_link_keeps_only_its_digest_and_opens_until_it_expires() {
        let draft = ShareDraft {
            label: Some(" board ".into()),
            expires_in_days: Some(2),
        };
        let (share, token) = draft.issue(NOW).unwrap();
        assert!(looks_like_token(&token), "{token}");
        assert_eq!(share.label.as_deref(), Some("board"));
        assert!(!share.token_sha256.contains(&token[TOKEN_PREFIX.len()..]));
        let digest = token_digest(&token);
        assert!(share.opens(&digest, NOW));
        let day = Duration::from_secs(86_400);
        assert!(share.opens(&digest, NOW.plus(day)));
        assert!(!share.opens(&digest, NOW.plus(day * 2)));
        let (_, other) = ShareDraft::default().issue(NOW).unwrap();
        assert_ne!(other, token);
        assert!(!share.opens(&token_digest(&other), NOW));
    }

    #[test]
    fn a_bad_draft_names_its_field() {
        for days in [0, MAX_SHARE_DAYS + 1] {
            let d = ShareDraft {
                label: None,
                expires_in_days: Some(days),
            };
            assert_eq!(d.issue(NOW).unwrap_err().field, "expires_in_days");
        }
        let d = ShareDraft {
            label: Some("a\nb".into()),
            expires_in_days: None,
        };
        assert_eq!(d.issue(NOW).unwrap_err().field, "label");
        for bad in ["", "rds_short", &format!("xyz_{}", "a".repeat(43))] {
            assert!(!looks_like_token(bad), "{bad}");
        }
    }
}
