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
    /// Holds a character that shows nothing or turns the text around (Unicode's format
    /// characters: zero-width spaces and joiners, the soft hyphen, bidirectional
    /// controls), a space or a control character: an address that looks like another.
    #[error(
        "email must not contain invisible, spacing or direction-changing characters (found U+{0:04X})"
    )]
    Invisible(u32),
}

/// Whether `c`, outside ASCII, shows nothing, spaces or controls: Unicode's format
/// characters (category Cf), separators (Z*) and controls (Cc). (ASCII spaces and
/// controls make an address malformed.)
fn invisible(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};
    let ignorable = DEFAULT_IGNORABLE
        .iter()
        .any(|&(lo, hi)| (lo..=hi).contains(&u32::from(c)));
    !c.is_ascii()
        && (ignorable
            || matches!(
                c.general_category(),
                GeneralCategory::Format
                    | GeneralCategory::Control
                    | GeneralCategory::SpaceSeparator
                    | GeneralCategory::LineSeparator
                    | GeneralCategory::ParagraphSeparator
            ))
}

/// Unicode's `Default_Ignorable_Code_Point` ranges (DerivedCoreProperties.txt): what a
/// renderer shows nothing for, whatever its category — besides the format characters,
/// the combining grapheme joiner, variation selectors and Hangul fillers, which
/// normalisation keeps.
const DEFAULT_IGNORABLE: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
];

impl utoipa::PartialSchema for Email {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::ids::string_schema(utoipa::openapi::KnownFormat::Email)
    }
}
impl utoipa::ToSchema for Email {}

impl Email {
    /// Validates an address: one `@`, a non-empty local part of at most 64 characters, a
    /// dotted domain of letters, digits and hyphens, and nothing invisible: no spaces,
    /// control or format characters (zero-width, soft hyphen, bidirectional controls).
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        if let Some(c) = raw.trim().chars().find(|&c| invisible(c)) {
            return Err(EmailError::Invisible(u32::from(c)));
        }
        Self::parse_shape(raw)
    }

    /// An address as a lookup takes it: the shape checked, invisible characters let
    /// through, so that an account whose address predates their refusal is still found.
    pub fn parse_for_lookup(raw: &str) -> Result<Self, EmailError> {
        Self::parse_shape(raw)
    }

    fn parse_shape(raw: &str) -> Result<Self, EmailError> {
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

    /// The key of the unique index, so that addresses that read alike are one account:
    /// compatibility-normalised (NFKC: fullwidth `Ａ` is `A`, the ligature `ﬁ` is `fi`),
    /// lowercased, and normalised again (lowercasing can undo it). Close to RFC 8265's
    /// `UsernameCaseMapped` profile: its width mapping, case mapping and normalisation,
    /// with NFKC for its NFC. `Ann@X.com`, `ann@x.com` and `Ａnn@ｘ.com` are one key.
    pub fn normalized(&self) -> String {
        use unicode_normalization::UnicodeNormalization as _;
        let lower = self.0.nfkc().collect::<String>().to_lowercase();
        lower.nfkc().collect()
    }

    /// The key as it was derived before [`Self::normalized`] normalised Unicode
    /// (lowercased only): where an account signed up before then may still be indexed.
    pub fn legacy_normalized(&self) -> String {
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
    fn look_alikes_are_one_key_and_invisible_characters_are_refused() {
        let key = |s: &str| Email::parse(s).unwrap().normalized();
        let plain = key("admin@example.com");
        for alike in [
            "\u{FF21}dmin@example.com", // fullwidth A
            "ADMIN@EXAMPLE.COM",        // case
            "admin@\u{FF45}xample.com", // fullwidth e in the domain
            "\u{FF41}\u{FF44}min@example.com",
        ] {
            assert_eq!(key(alike), plain, "{alike}");
        }
        assert_eq!(
            key("\u{FB01}n@example.com"),
            key("fin@example.com"),
            "ligature"
        );
        // Composed and decomposed accents are one key too.
        assert_eq!(key("jos\u{E9}@example.com"), key("jose\u{301}@example.com"));
        for (bad, code) in [
            ("ad\u{200B}min@example.com", 0x200B), // zero-width space
            ("ad\u{200D}min@example.com", 0x200D), // zero-width joiner
            ("ad\u{AD}min@example.com", 0xAD),     // soft hyphen
            ("\u{202E}admin@example.com", 0x202E), // right-to-left override
            ("admin@exa\u{2060}mple.com", 0x2060), // word joiner
            ("ad\u{A0}min@example.com", 0xA0),     // no-break space
            ("ad\u{3000}min@example.com", 0x3000), // ideographic space
            ("ad\u{FEFF}min@example.com", 0xFEFF), // byte order mark
            ("adm\u{FE0F}in@example.com", 0xFE0F), // variation selector (Mn)
            ("ad\u{34F}min@example.com", 0x34F),   // combining grapheme joiner
            ("admin@ex\u{3164}ample.com", 0x3164), // Hangul filler (Lo) in the domain
        ] {
            assert_eq!(
                Email::parse(bad),
                Err(EmailError::Invisible(code)),
                "{bad:?}"
            );
        }
        assert!(
            EmailError::Invisible(0x200B).to_string().contains("U+200B"),
            "the message names the character"
        );
        // What was lowercased only before stays findable under its old key.
        let e = Email::parse("\u{FF21}nn@example.com").unwrap();
        assert_eq!(e.legacy_normalized(), "\u{FF41}nn@example.com");
        assert_ne!(e.legacy_normalized(), e.normalized());
        // A lookup still takes an address from before the refusal.
        let old = Email::parse_for_lookup("ad\u{200B}min@example.com").unwrap();
        assert_eq!(old.as_str(), "ad\u{200B}min@example.com");
        assert!(Email::parse_for_lookup("not an address").is_err());
    }

    #[test]
    fn debug_output_hides_the_local_part() {
        let e = Email::parse("secret.person@example.com").unwrap();
        assert_eq!(format!("{e:?}"), "Email(***@example.com)");
    }
}
