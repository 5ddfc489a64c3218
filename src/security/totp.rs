//! TOTP authenticators (RFC 6238) on top of `totp-rs`: secrets, enrollment documents
//! (`otpauth://` URI and a QR code) and verification with clock skew and replay refusal.

use totp_rs::{Algorithm, TOTP};

/// Bytes of a generated secret: 160 bits, the size RFC 4226 recommends.
pub(crate) const SECRET_LEN: usize = 20;

pub use crate::domain::mfa::TotpConfig;

/// What a user needs to add the authenticator to an app.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TotpEnrollment {
    /// The secret in base32, for typing in by hand.
    pub secret: String,
    /// The `otpauth://totp/...` URI apps read.
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG image.
    pub qr_svg: String,
}

/// The outcome of checking a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotpCheck {
    /// The code is right for `step`, which is newer than any step used before.
    Valid {
        /// The time step the code belongs to; store it to refuse the code's reuse.
        step: u64,
    },
    /// The code is right but its step was already used: a replay.
    Replayed,
    /// Wrong, or outside the accepted clock skew.
    Invalid,
}

/// A new random secret.
pub(crate) fn generate_secret() -> Vec<u8> {
    let mut s = vec![0u8; SECRET_LEN];
    rand::fill(&mut s[..]);
    s
}

fn totp(secret: &[u8], cfg: &TotpConfig, account: &str) -> Option<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        usize::from(cfg.digits),
        cfg.skew_steps,
        cfg.step_secs,
        secret.to_vec(),
        Some(cfg.issuer.replace(':', " ")),
        account.replace(':', " "),
    )
    .ok()
}

/// The enrollment document for `secret`, labelled with the user's `account` name.
pub fn enrollment(secret: &[u8], account: &str, cfg: &TotpConfig) -> Option<TotpEnrollment> {
    let t = totp(secret, cfg, account)?;
    let otpauth_uri = t.get_url();
    let qr_svg = qrcode::QrCode::new(otpauth_uri.as_bytes())
        .ok()?
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Some(TotpEnrollment {
        secret: t.get_secret_base32(),
        otpauth_uri,
        qr_svg,
    })
}

/// The code for the step containing `unix_secs` (for tests and the load generator).
pub fn code_at(secret: &[u8], cfg: &TotpConfig, unix_secs: u64) -> String {
    totp(secret, cfg, "x").map_or_else(String::new, |t| t.generate(unix_secs))
}

/// Whether `code` has the shape of a code: exactly `digits` ASCII digits.
pub(crate) fn well_formed(code: &str, cfg: &TotpConfig) -> bool {
    code.len() == usize::from(cfg.digits) && code.bytes().all(|b| b.is_ascii_digit())
}

/// Checks `code` at `unix_secs`, accepting `skew_steps` steps either side. A code whose
/// step is not newer than `last_step` (the newest step accepted before) is a replay: each
/// code works once, and so does any older one.
pub fn check(
    secret: &[u8],
    code: &str,
    cfg: &TotpConfig,
    unix_secs: u64,
    last_step: Option<u64>,
) -> TotpCheck {
    if !well_formed(code, cfg) || cfg.step_secs == 0 {
        return TotpCheck::Invalid;
    }
    let Some(t) = totp(secret, cfg, "x") else {
        return TotpCheck::Invalid;
    };
    let now_step = unix_secs / cfg.step_secs;
    let skew = u64::from(cfg.skew_steps);
    // Newest first, so that the freshest matching step is the one remembered.
    for step in (now_step.saturating_sub(skew)..=now_step + skew).rev() {
        let expected = t.generate(step * cfg.step_secs);
        if bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            code.as_bytes(),
        )) {
            return if last_step.is_some_and(|l| step <= l) {
                TotpCheck::Replayed
            } else {
                TotpCheck::Valid { step }
            };
        }
    }
    TotpCheck::Invalid
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B: the secrets are the ASCII digits repeated to the hash's size.
    fn rfc_secret(len: usize) -> Vec<u8> {
        b"1234567890".iter().copied().cycle().take(len).collect()
    }

    #[test]
    fn rfc_6238_test_vectors() {
        let vectors: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for (time, sha1, sha256, sha512) in vectors {
            for (alg, len, want) in [
                (Algorithm::SHA1, 20, sha1),
                (Algorithm::SHA256, 32, sha256),
                (Algorithm::SHA512, 64, sha512),
            ] {
                let t = TOTP::new(alg, 8, 1, 30, rfc_secret(len), None, "x".into()).unwrap();
                assert_eq!(t.generate(time), want, "{alg:?} at {time}");
            }
        }
        // Our own path (SHA-1, configured digits) gives the same codes.
        let cfg = TotpConfig {
            digits: 8,
            ..TotpConfig::default()
        };
        assert_eq!(code_at(&rfc_secret(20), &cfg, 59), "94287082");
        assert_eq!(
            check(&rfc_secret(20), "94287082", &cfg, 59, None),
            TotpCheck::Valid { step: 1 }
        );
    }

    #[test]
    fn one_step_of_skew_passes_two_fail() {
        let cfg = TotpConfig::default();
        let secret = generate_secret();
        let now = 1_700_000_010; // mid-step
        let at = |offset_steps: i64| {
            let t = now as i64 + offset_steps * 30;
            code_at(&secret, &cfg, t as u64)
        };
        for ok in [-1, 0, 1] {
            assert!(
                matches!(
                    check(&secret, &at(ok), &cfg, now, None),
                    TotpCheck::Valid { .. }
                ),
                "{ok} steps"
            );
        }
        for bad in [-2, 2] {
            assert_eq!(
                check(&secret, &at(bad), &cfg, now, None),
                TotpCheck::Invalid,
                "{bad} steps"
            );
        }
    }

    #[test]
    fn a_code_works_once_and_older_codes_never_again() {
        let cfg = TotpConfig::default();
        let secret = generate_secret();
        let now = 1_700_000_010;
        let code = code_at(&secret, &cfg, now);
        let TotpCheck::Valid { step } = check(&secret, &code, &cfg, now, None) else {
            panic!("fresh code refused");
        };
        assert_eq!(step, now / 30);
        assert_eq!(
            check(&secret, &code, &cfg, now, Some(step)),
            TotpCheck::Replayed
        );
        let previous = code_at(&secret, &cfg, now - 30);
        assert_eq!(
            check(&secret, &previous, &cfg, now, Some(step)),
            TotpCheck::Replayed
        );
        let next = code_at(&secret, &cfg, now + 30);
        assert_eq!(
            check(&secret, &next, &cfg, now + 30, Some(step)),
            TotpCheck::Valid { step: step + 1 }
        );
    }

    #[test]
    fn malformed_codes_are_invalid_and_enrollment_is_readable() {
        let cfg = TotpConfig::default();
        let secret = generate_secret();
        for bad in ["", "12345", "1234567", "12a456", "１２３４５６", " 123456"] {
            assert_eq!(
                check(&secret, bad, &cfg, 0, None),
                TotpCheck::Invalid,
                "{bad:?}"
            );
        }
        let e = enrollment(&secret, "ann@example.com", &cfg).unwrap();
        assert!(
            e.otpauth_uri
                .starts_with("otpauth://totp/Roster:ann%40example.com?")
        );
        assert!(e.otpauth_uri.contains(&format!("secret={}", e.secret)));
        assert!(e.qr_svg.starts_with("<?xml") && e.qr_svg.contains("<svg"));
    }
}
