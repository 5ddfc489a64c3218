//! A user's second factors as kept in its actor: the TOTP authenticator (confirmed or
//! pending), recovery codes (digests only), and which factors a login challenge offers.

use serde::{Deserialize, Serialize};

use super::settings::{MfaMethod, SecuritySettings};
use super::time::Timestamp;

/// A factor a login challenge or step-up may be answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecondFactor {
    /// A code from the enrolled TOTP authenticator.
    Authenticator,
    /// A code sent to the account's email address.
    Email,
    /// A code sent by SMS to the verified phone number.
    Sms,
    /// One of the recovery codes issued at enrollment.
    RecoveryCode,
    /// A registered passkey or security key (WebAuthn assertion).
    Webauthn,
}

impl SecondFactor {
    /// Stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Authenticator => "authenticator",
            Self::Email => "email",
            Self::Sms => "sms",
            Self::RecoveryCode => "recovery_code",
            Self::Webauthn => "webauthn",
        }
    }
}

/// A confirmed authenticator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpFactor {
    /// The shared secret.
    pub secret: Vec<u8>,
    /// When it was confirmed.
    pub enrolled_at: Timestamp,
    /// The newest time step accepted; codes of this step or older are replays.
    pub last_step: Option<u64>,
}

/// An authenticator enrollment waiting for its first code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTotp {
    /// The secret shown to the user.
    pub secret: Vec<u8>,
    /// When enrollment began.
    pub started_at: Timestamp,
}

/// One recovery code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryCode {
    /// SHA-256 of the normalised code.
    pub digest: [u8; 32],
    /// When it was used; a used code never works again.
    pub used_at: Option<Timestamp>,
}

/// A registered WebAuthn credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPasskey {
    /// The credential id, base64url.
    pub id: String,
    /// The user's name for it ("work laptop").
    pub name: String,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it last signed in.
    pub last_used_at: Option<Timestamp>,
    /// The credential (public key, counter, flags) as `webauthn-rs` serialises it, in
    /// JSON: kept opaque so that the snapshot's binary layout does not depend on the
    /// library's types.
    pub credential: String,
}

/// What a user sees of a passkey.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PasskeyInfo {
    /// The credential id, base64url (use it to remove the passkey).
    pub id: String,
    /// The user's name for it.
    pub name: String,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it last signed in.
    pub last_used_at: Option<Timestamp>,
}

impl From<&StoredPasskey> for PasskeyInfo {
    fn from(p: &StoredPasskey) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

/// Second factors of one user (part of the snapshot).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaState {
    /// The confirmed authenticator.
    pub totp: Option<TotpFactor>,
    /// An authenticator being enrolled.
    pub totp_pending: Option<PendingTotp>,
    /// Recovery codes, used or not.
    pub recovery: Vec<RecoveryCode>,
    /// Registered passkeys and security keys.
    pub passkeys: Vec<StoredPasskey>,
    /// The phone number codes are texted to, once verified.
    pub phone: Option<VerifiedPhone>,
}

/// A phone number the user proved to receive texts at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedPhone {
    /// E.164 (`+15550100`).
    pub number: String,
    /// When the user confirmed it with a texted code.
    pub verified_at: Timestamp,
}

/// Parses a phone number in E.164 form: `+` and 8 to 15 digits (spaces, dots and dashes
/// between digits are dropped).
pub(crate) fn parse_phone(raw: &str) -> Result<String, crate::domain::validation::ValidationError> {
    let compact: String = raw
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = compact.strip_prefix('+').unwrap_or("");
    if (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
    {
        Ok(compact)
    } else {
        Err(crate::domain::validation::ValidationError::new(
            "phone",
            "must be an international number: + then 8 to 15 digits (E.164)",
        ))
    }
}

/// What a user's MFA looks like from outside (`GET /users/{id}/mfa`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MfaStatus {
    /// Whether an authenticator is confirmed.
    pub authenticator: bool,
    /// When it was confirmed.
    pub authenticator_enrolled_at: Option<Timestamp>,
    /// Whether an enrollment waits for its first code.
    pub authenticator_pending: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: usize,
    /// Registered passkeys and security keys.
    pub passkeys: Vec<PasskeyInfo>,
    /// The verified phone number for codes by SMS.
    pub phone: Option<String>,
    /// Factors a login challenge would offer now.
    pub login_factors: Vec<SecondFactor>,
}

impl MfaState {
    /// Unused recovery codes.
    pub fn recovery_left(&self) -> usize {
        self.recovery.iter().filter(|c| c.used_at.is_none()).count()
    }

    /// Whether the user has enrolled a factor of its own (beyond its email address).
    pub fn has_enrolled_factor(&self) -> bool {
        self.totp.is_some() || !self.passkeys.is_empty() || self.phone.is_some()
    }

    /// The factors a challenge offers. Enrolled factors the user accepts come first;
    /// when none remains, a code by email (the address the account is recovered
    /// through anyway) is offered, so that MFA required by a tier or by risk never locks
    /// out a user who has not enrolled anything yet.
    pub fn challenge_factors(&self, settings: &SecuritySettings) -> Vec<SecondFactor> {
        let accepts = |m| settings.mfa_methods.contains(&m);
        let mut out = Vec::new();
        if !self.passkeys.is_empty() && accepts(MfaMethod::Webauthn) {
            out.push(SecondFactor::Webauthn);
        }
        if self.totp.is_some() && accepts(MfaMethod::Authenticator) {
            out.push(SecondFactor::Authenticator);
        }
        if self.phone.is_some() && accepts(MfaMethod::Sms) {
            out.push(SecondFactor::Sms);
        }
        if accepts(MfaMethod::Email) || out.is_empty() {
            out.push(SecondFactor::Email);
        }
        if self.recovery_left() > 0 {
            out.push(SecondFactor::RecoveryCode);
        }
        out
    }

    /// Uses the unused recovery code whose digest is `digest` (the caller hashes what
    /// was typed: `security::otp::recovery_digest`), if there is one.
    pub fn use_recovery(&mut self, digest: &[u8; 32], now: Timestamp) -> bool {
        use subtle::ConstantTimeEq as _;
        match self
            .recovery
            .iter_mut()
            .find(|c| c.used_at.is_none() && bool::from(c.digest.ct_eq(digest)))
        {
            Some(c) => {
                c.used_at = Some(now);
                true
            }
            None => false,
        }
    }

    /// Replaces the recovery codes with the ones of these digests (fresh codes come
    /// from `security::otp::recovery_codes`, which shows the codes once).
    pub fn set_recovery(&mut self, digests: Vec<[u8; 32]>) {
        self.recovery = digests
            .into_iter()
            .map(|digest| RecoveryCode {
                digest,
                used_at: None,
            })
            .collect();
    }

    /// The outside view.
    pub fn status(&self, settings: &SecuritySettings) -> MfaStatus {
        MfaStatus {
            authenticator: self.totp.is_some(),
            authenticator_enrolled_at: self.totp.as_ref().map(|t| t.enrolled_at),
            authenticator_pending: self.totp_pending.is_some(),
            recovery_codes_left: self.recovery_left(),
            passkeys: self.passkeys.iter().map(PasskeyInfo::from).collect(),
            phone: self.phone.as_ref().map(|p| p.number.clone()),
            login_factors: self.challenge_factors(settings),
        }
    }
}

/// How codes are made (the `[mfa]` section of the configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotpConfig {
    /// Digits per code (6 to 8).
    pub digits: u8,
    /// Seconds per time step.
    pub step_secs: u64,
    /// Steps of clock difference accepted either side of now.
    pub skew_steps: u8,
    /// The issuer shown in authenticator apps.
    pub issuer: String,
}

impl Default for TotpConfig {
    fn default() -> Self {
        Self {
            digits: 6,
            step_secs: 30,
            skew_steps: 1,
            issuer: "Roster".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(methods: &[MfaMethod]) -> SecuritySettings {
        SecuritySettings {
            require_mfa: false,
            mfa_methods: methods.to_vec(),
            session_timeout_minutes: 60,
            risk_score_threshold: 0.5,
            anomaly_detection_enabled: true,
        }
    }

    #[test]
    fn phone_numbers_are_e164() {
        assert_eq!(parse_phone(" +1 (555) 010-0123 ").unwrap(), "+15550100123");
        assert_eq!(parse_phone("+33.6.12.34.56.78").unwrap(), "+33612345678");
        for bad in [
            "5550100123",
            "+0123456789",
            "+1234567",
            "+1234567890123456",
            "+1555abc0123",
            "",
        ] {
            assert_eq!(parse_phone(bad).unwrap_err().field, "phone", "{bad:?}");
        }
    }

    #[test]
    fn recovery_codes_work_once_and_a_new_set_voids_the_old_one() {
        let t = Timestamp::from_millis(1);
        let mut m = MfaState::default();
        let first: Vec<[u8; 32]> = (0..10u8).map(|i| [i; 32]).collect();
        m.set_recovery(first);
        assert_eq!(m.recovery_left(), 10);
        assert!(m.use_recovery(&[3; 32], t));
        assert!(!m.use_recovery(&[3; 32], t), "second use");
        assert!(!m.use_recovery(&[99; 32], t));
        assert_eq!(m.recovery_left(), 9);
        m.set_recovery(vec![[50; 32]]);
        assert!(!m.use_recovery(&[0; 32], t), "old set is void");
        assert!(m.use_recovery(&[50; 32], t));
    }

    #[test]
    fn challenge_offers_enrolled_factors_and_falls_back_to_email() {
        let mut m = MfaState::default();
        assert_eq!(
            m.challenge_factors(&settings(&[MfaMethod::Authenticator])),
            vec![SecondFactor::Email]
        );
        m.totp = Some(TotpFactor {
            secret: vec![1; 20],
            enrolled_at: Timestamp::from_millis(1),
            last_step: None,
        });
        m.set_recovery(vec![[1; 32]]);
        assert_eq!(
            m.challenge_factors(&settings(&[MfaMethod::Authenticator])),
            vec![SecondFactor::Authenticator, SecondFactor::RecoveryCode]
        );
        assert_eq!(
            m.challenge_factors(&settings(&[MfaMethod::Authenticator, MfaMethod::Email])),
            vec![
                SecondFactor::Authenticator,
                SecondFactor::Email,
                SecondFactor::RecoveryCode
            ]
        );
    }
}
