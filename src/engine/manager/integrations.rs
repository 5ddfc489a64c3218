//! The integration hub: linked accounts, their tokens encrypted per user and refreshed in the user's actor, listening history flowing in (issue 21).
//!
//! Empty for now: the facade exists so that the work has an obvious home, behind the
//! same door and the same [`Principal`](super::Principal) rules as the rest.

use super::UserManager;

/// See [`UserManager::integrations`].
#[derive(Clone, Copy)]
pub struct Integrations<'a> {
    pub(super) _m: &'a UserManager,
}
