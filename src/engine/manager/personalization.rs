//! AI personalization: the track catalog, taste models, recommendations that honour every `AIPreferences` field, custom models and federated rounds (issues 18 and 19).
//!
//! Empty for now: the facade exists so that the work has an obvious home, behind the
//! same door and the same [`Principal`](super::Principal) rules as the rest.

use super::UserManager;

/// See [`UserManager::personalization`].
#[derive(Clone, Copy)]
pub struct Personalization<'a> {
    pub(super) _m: &'a UserManager,
}
