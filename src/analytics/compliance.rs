//! The population's security and privacy posture for the compliance view: second
//! factors by tier (how many users enrolled one, which kinds, how many require one at
//! every login) and consents by purpose (given, withdrawn, never answered, and in force
//! once the age rule is applied).
//!
//! Counted over every stored user, whatever its consents: this is the operator's duty
//! of record (GDPR art. 30, SOC 2 CC6), not an analysis of behaviour, and nothing of a
//! user is reported but counts. The tally takes users from several scan threads at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::domain::consent::{ConsentState, Purpose};
use crate::domain::mfa::MfaState;
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;

/// Second factors among one tier's users.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MfaAdoption {
    /// Users of the tier.
    pub users: u64,
    /// With at least one enrolled factor (authenticator, passkey or verified phone).
    pub enrolled: u64,
    /// Whose own settings ask for a second factor at every login.
    pub required: u64,
    /// With a confirmed authenticator app.
    pub authenticator: u64,
    /// With at least one passkey or security key.
    pub passkey: u64,
    /// With a verified phone for texted codes.
    pub sms: u64,
    /// With recovery codes left unused.
    pub recovery_codes: u64,
}

/// Answers to one purpose's consent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConsentCounts {
    /// Users whose latest answer is yes.
    pub granted: u64,
    /// Users whose latest answer is no (given once, then withdrawn, or refused).
    pub withdrawn: u64,
    /// Users never asked, or who never answered.
    pub not_answered: u64,
    /// Users the purpose may be carried out for now: granted, and for a minor a
    /// parent's consent too (the age rule the engine applies).
    pub in_force: u64,
}

/// The report.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ComplianceReport {
    /// When.
    pub generated_at: Timestamp,
    /// Stored users counted.
    pub users: u64,
    /// Stored records that could not be read (logged with their ids; not counted).
    pub unreadable: u64,
    /// Second factors by tier.
    pub mfa_by_tier: BTreeMap<UserTier, MfaAdoption>,
    /// Every user's share with an enrolled factor, 0 to 1 (0 with no users).
    pub mfa_enrolled_share: f64,
    /// Consents by purpose.
    pub consents: BTreeMap<Purpose, ConsentCounts>,
}

const MFA_COLUMNS: usize = 7;
const CONSENT_COLUMNS: usize = 4;

/// Counts users as scan threads hand them over.
pub struct ComplianceTally {
    now: Timestamp,
    min_age: u8,
    mfa: [[AtomicU64; MFA_COLUMNS]; 4],
    consents: [[AtomicU64; CONSENT_COLUMNS]; 4],
}

impl ComplianceTally {
    /// A tally as of `now`, with the age under which a parent's consent is needed.
    pub fn new(now: Timestamp, min_age: u8) -> Self {
        Self {
            now,
            min_age,
            mfa: Default::default(),
            consents: Default::default(),
        }
    }

    /// Counts one user.
    pub fn add(&self, tier: UserTier, require_mfa: bool, mfa: &MfaState, consents: &ConsentState) {
        let row = &self.mfa[tier.index()];
        let flags = [
            true,
            mfa.has_enrolled_factor(),
            require_mfa,
            mfa.totp.is_some(),
            !mfa.passkeys.is_empty(),
            mfa.phone.is_some(),
            mfa.recovery.iter().any(|c| c.used_at.is_none()),
        ];
        for (cell, on) in row.iter().zip(flags) {
            if on {
                cell.fetch_add(1, Ordering::Relaxed);
            }
        }
        for (p, row) in Purpose::ALL.iter().zip(&self.consents) {
            let answer = consents.current(*p).map(|c| c.granted);
            let column = match answer {
                Some(true) => 0,
                Some(false) => 1,
                None => 2,
            };
            row[column].fetch_add(1, Ordering::Relaxed);
            if consents.allows(*p, self.min_age, self.now).is_ok() {
                row[3].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The report, with the count of records that could not be read.
    pub fn finish(self, unreadable: u64) -> ComplianceReport {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mfa_by_tier: BTreeMap<UserTier, MfaAdoption> = UserTier::ALL
            .iter()
            .map(|t| {
                let r = &self.mfa[t.index()];
                let a = MfaAdoption {
                    users: read(&r[0]),
                    enrolled: read(&r[1]),
                    required: read(&r[2]),
                    authenticator: read(&r[3]),
                    passkey: read(&r[4]),
                    sms: read(&r[5]),
                    recovery_codes: read(&r[6]),
                };
                (*t, a)
            })
            .collect();
        let users: u64 = mfa_by_tier.values().map(|a| a.users).sum();
        let enrolled: u64 = mfa_by_tier.values().map(|a| a.enrolled).sum();
        let consents = Purpose::ALL
            .iter()
            .zip(&self.consents)
            .map(|(p, r)| {
                let c = ConsentCounts {
                    granted: read(&r[0]),
                    withdrawn: read(&r[1]),
                    not_answered: read(&r[2]),
                    in_force: read(&r[3]),
                };
                (*p, c)
            })
            .collect();
        ComplianceReport {
            generated_at: self.now,
            users,
            unreadable,
            mfa_by_tier,
            mfa_enrolled_share: if users > 0 {
                enrolled as f64 / users as f64
            } else {
                0.0
            },
            consents,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_by_tier_and_answers_by_purpose() {
        let now = Timestamp::from_millis(1_800_000_000_000);
        let tally = ComplianceTally::new(now, 16);
        let none = MfaState::default();
        let mut consents = ConsentState::default();
        // A Free user who never answered anything and has no factor.
        tally.add(UserTier::Free, false, &none, &consents);
        // A VIP user requiring a factor, with a passkey; analytics granted, marketing
        // refused.
        let mut keyed = MfaState::default();
        keyed.passkeys.push(crate::domain::mfa::StoredPasskey {
            id: "cred".into(),
            name: "laptop".into(),
            created_at: now,
            last_used_at: None,
            credential: "{}".into(),
        });
        consents.set(Purpose::Analytics, true, now);
        consents.set(Purpose::Marketing, false, now);
        tally.add(UserTier::Vip, true, &keyed, &consents);
        let r = tally.finish(1);
        assert_eq!((r.users, r.unreadable), (2, 1));
        let vip = &r.mfa_by_tier[&UserTier::Vip];
        assert_eq!(
            (vip.users, vip.enrolled, vip.required, vip.passkey),
            (1, 1, 1, 1)
        );
        assert_eq!((vip.authenticator, vip.sms, vip.recovery_codes), (0, 0, 0));
        assert_eq!(r.mfa_by_tier[&UserTier::Free].enrolled, 0);
        assert_eq!(r.mfa_by_tier[&UserTier::Premium], MfaAdoption::default());
        assert_eq!(r.mfa_enrolled_share, 0.5);
        let a = &r.consents[&Purpose::Analytics];
        assert_eq!(
            (a.granted, a.withdrawn, a.not_answered, a.in_force),
            (1, 0, 1, 1)
        );
        let m = &r.consents[&Purpose::Marketing];
        assert_eq!(
            (m.granted, m.withdrawn, m.not_answered, m.in_force),
            (0, 1, 1, 0)
        );
    }
}
