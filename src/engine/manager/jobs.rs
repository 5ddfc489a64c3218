//! The scheduler and its jobs (provisioning, analytics, cleanup, backups): clients of this front door acting as [`Principal::System`](super::Principal::System) (issue 20).
//!
//! Empty for now: the facade exists so that the work has an obvious home, behind the
//! same door and the same [`Principal`](super::Principal) rules as the rest.

use super::UserManager;

/// See [`UserManager::jobs`].
#[derive(Clone, Copy)]
pub struct Jobs<'a> {
    pub(super) _m: &'a UserManager,
}
