//! The analytics engine: activity history, engagement scores, the churn model, segments and cohorts (issue 17). Batch work reads the store off the actor threads, never by activating every user.
//!
//! Empty for now: the facade exists so that the work has an obvious home, behind the
//! same door and the same [`Principal`](super::Principal) rules as the rest.

use super::UserManager;

/// See [`UserManager::analytics`].
#[derive(Clone, Copy)]
pub struct Analytics<'a> {
    pub(super) _m: &'a UserManager,
}
