//! Consents per purpose and the age rule (COPPA): what a user agreed to, when, and
//! whether its account may use features that collect activity data.

use serde::{Deserialize, Serialize};

use super::time::Timestamp;
use super::validation::ValidationError;

/// Consent changes kept per user (the newest; each is also in the audit log).
pub(crate) const MAX_CONSENT_HISTORY: usize = 64;

/// Why data is processed.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Counting listening activity (tracks played, skipped, liked, searches).
    Analytics,
    /// Recommendations from personal history, mood detection, a model of one's own.
    Personalisation,
    /// Marketing messages.
    Marketing,
    /// Contributing to federated model training.
    FederatedLearning,
}

impl Purpose {
    /// Every purpose.
    pub const ALL: [Purpose; 4] = [
        Self::Analytics,
        Self::Personalisation,
        Self::Marketing,
        Self::FederatedLearning,
    ];

    /// Stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Analytics => "analytics",
            Self::Personalisation => "personalisation",
            Self::Marketing => "marketing",
            Self::FederatedLearning => "federated_learning",
        }
    }
}

/// One recorded change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsentChange {
    /// The purpose.
    pub purpose: Purpose,
    /// Granted (`true`) or withdrawn.
    pub granted: bool,
    /// When.
    pub at: Timestamp,
}

/// A parental consent, recorded by an operator after verifying it out of band.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ParentalConsent {
    /// When it was recorded.
    pub at: Timestamp,
    /// The operator's reference to the verification (a ticket, a signed form).
    pub reference: String,
}

/// A calendar date (birth dates).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct Date {
    /// Year.
    pub year: i32,
    /// Month, 1 to 12.
    pub month: u8,
    /// Day, 1 to 31.
    pub day: u8,
}

impl Date {
    /// Parses `YYYY-MM-DD`, checking the calendar.
    pub fn parse(s: &str) -> Result<Date, ValidationError> {
        let bad = || ValidationError::new("birth_date", "must be a date as YYYY-MM-DD");
        let mut it = s.trim().split('-');
        let (Some(y), Some(m), Some(d), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err(bad());
        };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let (year, month, day): (i32, u8, u8) = (
            y.parse().map_err(|_| bad())?,
            m.parse().map_err(|_| bad())?,
            d.parse().map_err(|_| bad())?,
        );
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Err(bad()),
        };
        if day == 0 || day > days {
            return Err(bad());
        }
        Ok(Date { year, month, day })
    }

    /// The UTC calendar date of `t`.
    pub fn of(t: Timestamp) -> Date {
        // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
        let z = t.as_millis().div_euclid(86_400_000) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date {
            year: i32::try_from(year).unwrap_or(i32::MAX),
            month: u8::try_from(month).unwrap_or(1),
            day: u8::try_from(day).unwrap_or(1),
        }
    }

    /// Whole years from `self` to `on`.
    pub fn age_on(self, on: Date) -> i32 {
        let had_birthday = (on.month, on.day) >= (self.month, self.day);
        on.year - self.year - i32::from(!had_birthday)
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// A user's consents and age (part of the snapshot).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentState {
    /// The newest changes, oldest first; the current consent of a purpose is its last.
    pub history: Vec<ConsentChange>,
    /// The user's birth date, if given.
    pub birth_date: Option<Date>,
    /// A verified parental consent, for a minor.
    /// Boxed: most users have none, and every live actor would carry its room.
    pub parental: Option<Box<ParentalConsent>>,
}

/// Why a feature may not process data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentRefusal {
    /// The user has not granted (or has withdrawn) the purpose.
    NotGranted(Purpose),
    /// The user is under the minimum age and no parental consent is recorded.
    ParentalConsentRequired,
}

impl ConsentState {
    /// The current consent to `purpose`: the last change, if any.
    pub fn current(&self, purpose: Purpose) -> Option<&ConsentChange> {
        self.history.iter().rev().find(|c| c.purpose == purpose)
    }

    /// Whether `purpose` is granted now.
    pub fn granted(&self, purpose: Purpose) -> bool {
        self.current(purpose).is_some_and(|c| c.granted)
    }

    /// Records a change; returns whether it changed anything.
    pub fn set(&mut self, purpose: Purpose, granted: bool, now: Timestamp) -> bool {
        if self.current(purpose).map(|c| c.granted) == Some(granted) {
            return false;
        }
        self.history.push(ConsentChange {
            purpose,
            granted,
            at: now,
        });
        let excess = self.history.len().saturating_sub(MAX_CONSENT_HISTORY);
        if excess > 0 {
            // Keep each purpose's current state even when trimming.
            let mut keep = Vec::with_capacity(self.history.len() - excess);
            let mut dropped = 0;
            for (i, c) in self.history.iter().enumerate() {
                let is_current = !self.history[i + 1..].iter().any(|l| l.purpose == c.purpose);
                if dropped < excess && !is_current {
                    dropped += 1;
                } else {
                    keep.push(c.clone());
                }
            }
            self.history = keep;
        }
        true
    }

    /// Whether the user is under `min_age` on `now`'s date (unknown age: not a minor).
    pub fn is_minor(&self, min_age: u8, now: Timestamp) -> bool {
        self.birth_date
            .is_some_and(|b| b.age_on(Date::of(now)) < i32::from(min_age))
    }

    /// Whether a feature that collects data for `purpose` may run now.
    pub fn allows(
        &self,
        purpose: Purpose,
        min_age: u8,
        now: Timestamp,
    ) -> Result<(), ConsentRefusal> {
        if purpose == Purpose::Analytics && self.is_minor(min_age, now) && self.parental.is_none() {
            return Err(ConsentRefusal::ParentalConsentRequired);
        }
        if self.granted(purpose) {
            Ok(())
        } else {
            Err(ConsentRefusal::NotGranted(purpose))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(days: i64) -> Timestamp {
        Timestamp::from_millis(days * 86_400_000)
    }

    #[test]
    fn dates_parse_and_ages_count_birthdays() {
        assert_eq!(
            Date::parse("2012-02-29").unwrap(),
            Date {
                year: 2012,
                month: 2,
                day: 29
            }
        );
        for bad in [
            "2013-02-29",
            "2012-13-01",
            "2012-1-01",
            "12-01-01",
            "2012-00-10",
            "x",
        ] {
            assert_eq!(Date::parse(bad).unwrap_err().field, "birth_date", "{bad}");
        }
        assert_eq!(
            Date::of(Timestamp::from_millis(0)).to_string(),
            "1970-01-01"
        );
        assert_eq!(
            Date::of(Timestamp::from_millis(1_764_028_800_000)).to_string(),
            "2025-11-25"
        );
        let b = Date::parse("2012-11-25").unwrap();
        assert_eq!(b.age_on(Date::parse("2025-11-24").unwrap()), 12);
        assert_eq!(b.age_on(Date::parse("2025-11-25").unwrap()), 13);
    }

    #[test]
    fn consent_is_opt_in_withdrawable_and_minors_need_a_parent() {
        let mut c = ConsentState::default();
        assert_eq!(
            c.allows(Purpose::Analytics, 13, t(20_000)),
            Err(ConsentRefusal::NotGranted(Purpose::Analytics))
        );
        assert!(c.set(Purpose::Analytics, true, t(20_000)));
        assert!(
            !c.set(Purpose::Analytics, true, t(20_001)),
            "no change, no record"
        );
        assert_eq!(c.allows(Purpose::Analytics, 13, t(20_001)), Ok(()));
        c.birth_date = Some(Date::of(t(20_000 - 365 * 10)));
        assert_eq!(
            c.allows(Purpose::Analytics, 13, t(20_001)),
            Err(ConsentRefusal::ParentalConsentRequired)
        );
        c.parental = Some(Box::new(ParentalConsent {
            at: t(20_001),
            reference: "ticket-1".into(),
        }));
        assert_eq!(c.allows(Purpose::Analytics, 13, t(20_001)), Ok(()));
        assert!(c.set(Purpose::Analytics, false, t(20_002)));
        assert!(c.allows(Purpose::Analytics, 13, t(20_002)).is_err());
        assert_eq!(c.history.len(), 2);
    }

    #[test]
    fn trimming_keeps_each_purposes_current_state() {
        let mut c = ConsentState::default();
        c.set(Purpose::Marketing, true, t(1));
        for i in 0..200 {
            c.set(Purpose::Analytics, i % 2 == 0, t(2 + i));
        }
        assert!(c.history.len() <= MAX_CONSENT_HISTORY);
        assert!(
            c.granted(Purpose::Marketing),
            "the old marketing grant survives"
        );
    }
}
