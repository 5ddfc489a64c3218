//! The parts of a user actor that are empty nearly all the time: events waiting to be
//! archived, the import ledger, logins waiting for a second factor and the pending
//! ceremonies. They sit behind one pointer that is null while all are empty, so a live
//! actor carries 8 bytes for them instead of 104, and the task holding it fits a smaller
//! allocation (see `BENCHMARKS.md`, analytics).
//!
//! Reading never allocates; [`Rare::make_mut`] does, for a part about to be filled, and
//! [`Rare::tidy`] (on the actor's periodic tick) lets go of what nothing is left in.

use std::time::Duration;

use super::challenge::{MAX_PENDING_LOGINS, PendingLogins};
use super::mfa::PendingPhone;
use super::refresh::Refreshes;
use crate::domain::ids::SessionId;
use crate::domain::import_ledger::ImportLedger;
use crate::domain::time::Timestamp;
use crate::security::passkey::{PasskeyAuthentication, PasskeyRegistration};
use crate::store::Op;

/// The parts themselves.
pub(crate) struct RareParts {
    /// Events the state no longer holds, to archive with its next write.
    pub archive: Vec<Op>,
    /// Plays, skips, likes and app opens for the listening log, written as one chunk
    /// with the next write ([`crate::engine::listening`]).
    pub listens: Vec<crate::domain::activity::ActivityEvent>,
    /// The ledger of imported history, once an import loaded it (cold state: dropped
    /// at the next tick).
    pub ledger: Option<ImportLedger>,
    /// The version of the user's own model that serves its lists (`Some(None)`: none
    /// does), once read from the store (cold state: dropped at the next tick, and set
    /// by every change of the models).
    pub own: Option<Option<Box<crate::engine::custom::CustomVersion>>>,
    /// Logins waiting for their second factor (memory only: a restart voids them and
    /// the user logs in again).
    pub challenges: PendingLogins,
    /// A passkey registration waiting for the authenticator's answer. The ceremonies
    /// stay boxed: the parts are allocated for an archived event too.
    pub pending_registration: Option<Box<(PasskeyRegistration, Timestamp)>>,
    /// A phone number waiting for its texted code.
    pub pending_phone: Option<Box<PendingPhone>>,
    /// WebAuthn options handed out for a step-up, for one session.
    pub step_up_auth: Option<Box<(SessionId, PasskeyAuthentication, Timestamp)>>,
    /// Token refreshes of linked accounts in flight, and providers backed off from.
    pub refreshes: Option<Box<Refreshes>>,
}

impl Default for RareParts {
    fn default() -> Self {
        Self {
            archive: Vec::new(),
            listens: Vec::new(),
            ledger: None,
            own: None,
            challenges: PendingLogins::new(MAX_PENDING_LOGINS),
            pending_registration: None,
            pending_phone: None,
            step_up_auth: None,
            refreshes: None,
        }
    }
}

impl RareParts {
    fn is_empty(&self) -> bool {
        self.archive.is_empty()
            && self.listens.is_empty()
            && self.ledger.is_none()
            && self.own.is_none()
            && self.challenges.is_empty()
            && self.pending_registration.is_none()
            && self.pending_phone.is_none()
            && self.step_up_auth.is_none()
            && self.refreshes.is_none()
    }
}

/// [`RareParts`], allocated only while one of them holds something.
#[derive(Default)]
pub(crate) struct Rare(Option<Box<RareParts>>);

impl Rare {
    /// The parts, if any holds something.
    pub fn get(&self) -> Option<&RareParts> {
        self.0.as_deref()
    }

    /// The parts, to change what they hold, if any holds something.
    pub fn held_mut(&mut self) -> Option<&mut RareParts> {
        self.0.as_deref_mut()
    }

    /// The parts, allocated if none held anything: for one about to be filled.
    pub fn make_mut(&mut self) -> &mut RareParts {
        self.0.get_or_insert_with(Box::default)
    }

    /// The pending logins, if any part holds something.
    pub fn challenges(&mut self) -> Option<&mut PendingLogins> {
        self.held_mut().map(|p| &mut p.challenges)
    }

    /// Takes the events waiting to be archived.
    pub fn take_archive(&mut self) -> Vec<Op> {
        self.held_mut()
            .map(|p| std::mem::take(&mut p.archive))
            .unwrap_or_default()
    }

    /// Lets the allocation go if nothing is held any more (after a write took the
    /// archive, say).
    pub fn release_if_empty(&mut self) {
        if self.get().is_some_and(RareParts::is_empty) {
            self.0 = None;
        }
    }

    /// Drops the import ledger (the next import reads it again) and the own model read,
    /// expired logins and
    /// ceremonies older than `ttl` (or whose code expired), token refreshes quiet for
    /// `refresh_stale` and backoffs that ended, then the allocation if nothing is
    /// left. What is dropped was refused anyway once expired.
    pub fn tidy(&mut self, now: Timestamp, ttl: Duration, refresh_stale: Duration) {
        let Some(p) = self.held_mut() else {
            return;
        };
        p.ledger = None;
        p.own = None;
        p.challenges.prune(now);
        if p.pending_registration
            .as_ref()
            .is_some_and(|r| now.since(r.1) >= ttl)
        {
            p.pending_registration = None;
        }
        if p.step_up_auth
            .as_ref()
            .is_some_and(|s| now.since(s.2) >= ttl)
        {
            p.step_up_auth = None;
        }
        if p.pending_phone.as_ref().is_some_and(|ph| ph.expired(now)) {
            p.pending_phone = None;
        }
        if p.refreshes
            .as_mut()
            .is_some_and(|r| r.settle(now, refresh_stale))
        {
            p.refreshes = None;
        }
        if p.is_empty() {
            self.0 = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_cost_one_pointer_while_empty_and_are_let_go_of_once_empty_again() {
        assert_eq!(size_of::<Rare>(), size_of::<usize>());
        let mut r = Rare::default();
        assert!(r.get().is_none() && r.challenges().is_none());
        assert!(r.take_archive().is_empty());
        let now = Timestamp::from_millis(1_800_000_000_000);
        r.tidy(now, Duration::from_secs(300), Duration::from_secs(25));
        assert!(r.get().is_none(), "tidying nothing allocates nothing");

        r.make_mut().ledger = Some(ImportLedger::default());
        r.make_mut().archive.push(Op::PutImportLedger {
            user: crate::domain::ids::UserId::generate(),
            blob: vec![1],
        });
        r.tidy(now, Duration::from_secs(300), Duration::from_secs(25));
        assert!(
            r.get().is_some_and(|p| p.ledger.is_none()),
            "the ledger is dropped"
        );
        assert_eq!(r.take_archive().len(), 1, "an unwritten archive is kept");
        r.release_if_empty();
        assert!(r.get().is_none(), "nothing left: nothing allocated");
        r.make_mut().ledger = Some(ImportLedger::default());
        r.release_if_empty();
        assert!(r.get().is_some(), "a part still held keeps the allocation");
    }
}
