//! Parts of a user's state that most users leave empty, held behind a pointer that stays
//! null while they are: second factors (most users have none), the risk engine's
//! profile (empty until a first login), failed logins and requests refused for the
//! tier's rate. Inline the first three took 384 bytes of every live actor.
//!
//! Serde sees the part itself, so a stored record reads and writes exactly as before.

use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::lockout::FailureState;
use crate::domain::mfa::MfaState;
use crate::domain::rate::RateRefusals;
use crate::domain::risk::RiskProfile;
use crate::domain::time::Timestamp;

/// A part with an empty value to read while nothing is held.
pub trait Empty: Clone + PartialEq + 'static {
    /// The empty value (what `Default` gives).
    const EMPTY: &'static Self;
}

impl Empty for MfaState {
    const EMPTY: &'static Self = &MfaState {
        totp: None,
        totp_pending: None,
        recovery: Vec::new(),
        passkeys: Vec::new(),
        phone: None,
    };
}

impl Empty for FailureState {
    const EMPTY: &'static Self = &FailureState {
        failures: 0,
        window_start: Timestamp::from_millis(0),
        locked_until: Timestamp::from_millis(0),
    };
}

impl Empty for RateRefusals {
    const EMPTY: &'static Self = &RateRefusals { days: Vec::new() };
}

impl Empty for RiskProfile {
    const EMPTY: &'static Self = &RiskProfile {
        networks: Vec::new(),
        countries: Vec::new(),
        last_location: None,
        hours: [0; 24],
        logins: 0,
    };
}

/// `T`, allocated only once something is written to it (see the module documentation).
/// Reads go through [`Deref`]; a mutable borrow allocates.
#[derive(Clone, Default)]
pub struct Sparse<T: Empty>(Option<Box<T>>);

impl<T: Empty> Sparse<T> {
    /// Whether the part is held (something was written since it was last empty).
    pub fn is_held(&self) -> bool {
        self.0.is_some()
    }

    /// Lets the allocation go if what it holds is empty again (the last factor
    /// removed, failures reset by hand).
    pub fn release_if_empty(&mut self) {
        if self.0.as_deref().is_some_and(|t| t == T::EMPTY) {
            self.0 = None;
        }
    }
}

impl<T: Empty> From<T> for Sparse<T> {
    fn from(t: T) -> Self {
        Self((t != *T::EMPTY).then(|| Box::new(t)))
    }
}

impl<T: Empty> Deref for Sparse<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_deref().unwrap_or(T::EMPTY)
    }
}

impl<T: Empty> DerefMut for Sparse<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.get_or_insert_with(|| Box::new(T::EMPTY.clone()))
    }
}

impl<T: Empty> PartialEq for Sparse<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Empty + Eq> Eq for Sparse<T> {}

impl<T: Empty + fmt::Debug> fmt::Debug for Sparse<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: Empty + Serialize> Serialize for Sparse<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(s)
    }
}

impl<'de, T: Empty + Deserialize<'de>> Deserialize<'de> for Sparse<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec;

    #[test]
    fn the_empty_values_are_the_defaults() {
        assert_eq!(MfaState::EMPTY, &MfaState::default());
        assert_eq!(RiskProfile::EMPTY, &RiskProfile::default());
        assert_eq!(FailureState::EMPTY, &FailureState::default());
        assert_eq!(RateRefusals::EMPTY, &RateRefusals::default());
    }

    #[test]
    fn a_part_not_held_costs_one_pointer() {
        assert_eq!(size_of::<Sparse<MfaState>>(), size_of::<usize>());
        assert_eq!(size_of::<Sparse<RiskProfile>>(), size_of::<usize>());
        assert_eq!(size_of::<Sparse<FailureState>>(), size_of::<usize>());
        assert_eq!(size_of::<Sparse<RateRefusals>>(), size_of::<usize>());
    }

    #[test]
    fn an_empty_part_holds_nothing_until_written_and_stores_as_itself() {
        let mut r: Sparse<RiskProfile> = RiskProfile::default().into();
        assert!(!r.is_held());
        assert_eq!(r.logins, 0);
        r.logins = 3;
        assert!(r.is_held());
        let stored = codec::encode_as_version(1, &*r).unwrap();
        assert_eq!(codec::encode_as_version(1, &r).unwrap(), stored);
        let back: Sparse<RiskProfile> = codec::decode_plain(&stored).unwrap();
        assert_eq!(back, r);
        assert!(back.is_held());
        let empty = codec::encode_as_version(1, &RiskProfile::default()).unwrap();
        let back: Sparse<RiskProfile> = codec::decode_plain(&empty).unwrap();
        assert!(!back.is_held(), "an empty part read back holds nothing");
        r.logins = 0;
        assert!(r.is_held());
        r.release_if_empty();
        assert!(!r.is_held(), "emptied, it lets its allocation go");
        assert_eq!(*r, RiskProfile::default());
        assert_eq!(back, Sparse::default());
    }
}
