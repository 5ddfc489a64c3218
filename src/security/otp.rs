//! One-time codes that are not TOTP: recovery codes (stored hashed, single use) and the
//! numeric codes sent by email or SMS.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Recovery codes issued at once.
pub(crate) const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code, without separators: 16 of 32 symbols = 80 bits, so a
/// fast hash is enough to store them.
const RECOVERY_LEN: usize = 16;
/// Crockford-like base32 without the easily confused `i`, `l`, `o`, `u`.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// SHA-256 of a normalised code.
pub(crate) fn digest(normalized: &str) -> [u8; 32] {
    Sha256::digest(normalized.as_bytes()).into()
}

/// Constant-time comparison of two digests.
pub fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// A fresh set of recovery codes: the codes to show the user once (`xxxx-xxxx-xxxx-xxxx`)
/// and their digests to keep.
pub fn recovery_codes() -> (Vec<String>, Vec<[u8; 32]>) {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut raw = [0u8; RECOVERY_LEN];
            rand::fill(&mut raw);
            let plain: String = raw
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
                .collect();
            let digest = digest(&plain);
            let shown = plain
                .as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("-");
            (shown, digest)
        })
        .unzip()
}

/// A recovery code as typed (any case, with or without dashes and spaces) in canonical
/// form, or `None` if it cannot be one.
pub(crate) fn normalize_recovery(typed: &str) -> Option<String> {
    let s: String = typed
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (s.len() == RECOVERY_LEN && s.bytes().all(|b| ALPHABET.contains(&b))).then_some(s)
}

/// The digest a typed recovery code is kept as, or `None` if it cannot be one.
pub(crate) fn recovery_digest(typed: &str) -> Option<[u8; 32]> {
    normalize_recovery(typed).map(|n| digest(&n))
}

/// A uniformly random numeric code of `digits` digits (leading zeros kept).
pub(crate) fn numeric_code(digits: u8) -> String {
    (0..digits)
        .map(|_| char::from(b'0' + rand::random_range(0..10u8)))
        .collect()
}

/// Whether `code` is `digits` ASCII digits.
pub(crate) fn numeric_well_formed(code: &str, digits: u8) -> bool {
    code.len() == usize::from(digits) && code.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_distinct_and_normalise_back_to_their_digest() {
        let (codes, digests) = recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        for (c, d) in codes.iter().zip(&digests) {
            assert_eq!(c.len(), 19);
            let typed = c.to_uppercase().replace('-', " ");
            assert!(same(&recovery_digest(&typed).unwrap(), d));
        }
        assert_eq!(normalize_recovery("short"), None);
        assert_eq!(normalize_recovery("iiii-iiii-iiii-iiii"), None);
    }

    #[test]
    fn numeric_codes_have_the_asked_length() {
        for d in [6, 8] {
            let c = numeric_code(d);
            assert!(numeric_well_formed(&c, d), "{c}");
        }
        assert!(!numeric_well_formed("12345a", 6));
    }
}
