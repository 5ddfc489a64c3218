//! Email addresses: validation and the normalised form the unique index is keyed by.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest address accepted (RFC 5321's path limit).
pub(crate) const MAX_EMAIL_LEN: usize = 254;

/// A syntactically valid email address, kept as the user typed it (trimmed).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Longer than [`MAX_EMAIL_LEN`].
    #[error("email is longer than {MAX_EMAIL_LEN} characters")]
    TooLong,
    /// Not of the form `local@domain.tld`.
    #[error("email must look like name@example.com")]
    Malformed,
}

impl utoipa::PartialSchema for Email {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::ids::string_schema(utoipa::openapi::KnownFormat::Email)
    }
}
impl utoipa::ToSchema for Email {}

impl Email {
    /// Validates an address: one `@`, a non-empty local part of at most 64 characters, a
    /// dotted domain of letters, digits and hyphens, no spaces or control characters.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let s = raw.trim();
        if s.chars().count() > MAX_EMAIL_LEN {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = s.split_once('@').ok_or(EmailError::Malformed)?;
        let local_ok = !local.is_empty()
            && local.chars().count() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && !"@,;:<>()[]\\\"".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(EmailError::Malformed)
        }
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of the unique index: lowercased, so `Ann@X.com` and `ann@x.com` are one
    /// account.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Debug for Email {
    // Emails are personal data: debug output (and so logs) shows only the domain.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = self.0.split_once('@').map(|(_, d)| d).unwrap_or("");
        write!(f, "Email(***@{domain})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_normalizes_case() {
        let e = Email::parse("  Ann.Lee+music@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Ann.Lee+music@Example.COM");
        assert_eq!(e.normalized(), "ann.lee+music@example.com");
        assert!(Email::parse("jo@sub.domain-x.io").is_ok());
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "plain",
            "@x.com",
            "a@",
            "a@b",
            "a b@x.com",
            "a@@x.com",
            "a@x..com",
            "a@-x.com",
            ".a@x.com",
            "a\0@x.com",
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError::Malformed), "{bad:?}");
        }
        let long = format!("{}@x.com", "a".repeat(300));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
    }

    #[test]
    fn debug_output_hides_the_local_part() {
        let e = Email::parse("secret.person@example.com").unwrap();
        assert_eq!(format!("{e:?}"), "Email(***@example.com)");
    }
}
