//! Persistence: the snapshot codec, the storage traits with their sled backend, and group
//! commit.
//!
//! The store holds bytes; it does not know what a user's state looks like. The engine
//! encodes state with [`codec`] and decides when a write must be durable.
//!
//! Reads are split by concern — [`UserStore`] (records, routes, the email index),
//! [`KeyStore`] (wrapped data keys and the keyring record), [`AuditStore`],
//! [`ArchiveStore`] (archived security events), [`ModelStore`] (trained models),
//! [`CatalogStore`] (the track catalog), [`JobStore`] (the scheduler's jobs), [`ProvisionStore`] (external ids, invitations),
//! [`PolicyStore`] (the runtime deny-list) — and
//! a point-in-time copy of it all ([`Store::backup`], the file format in [`backup`]) —
//! every change goes through one door,
//! [`Store::apply`]: a [`Batch`] of [`Op`]s applied atomically, whose expected refusals
//! (an email already taken, a record written meanwhile by someone else) are values of
//! [`Applied`], as sled's `CompareAndSwapResult` makes a lost race a value rather than an
//! error. A user's record carries a [`Revision`] that every write bumps; a write names the
//! revision it was made from, so a writer holding a stale copy (an actor that should not
//! be alive, a node whose lease ran out) is refused by the store itself.
//!
//! [`open`] picks the backend from the configuration: sled in the data directory today;
//! the traits are what a second backend implements.

pub(crate) mod audit;
pub mod backup;
pub mod codec;
pub(crate) mod commit;
mod reads;
pub(crate) mod sled;

use std::sync::Arc;

use crate::config::{Backend, StoreConfig};
use crate::domain::ids::UserId;
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;

pub use self::sled::SledStore;
pub use codec::CodecError;
pub use commit::GroupCommit;
pub use reads::*;

/// A failure of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed (I/O, corruption it detected).
    #[error("store I/O: {0}")]
    Io(String),
    /// A routing entry is not what this version writes.
    #[error("corrupt index entry for user {user}: {reason}")]
    CorruptIndex {
        /// The user whose entry is bad.
        user: String,
        /// What is wrong.
        reason: String,
    },
}

impl From<::sled::Error> for StoreError {
    fn from(e: ::sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// The version of a user's record: how many times it was written in the high 32 bits,
/// and a random tag drawn at each write in the low 32. A write names the exact revision
/// it was made from ([`Op::PutUser::expect`]), so a writer whose copy was replaced cannot
/// match the store again by counting on: after one refusal its next write expects its
/// own refused revision, which the store never held. Records written before revisions
/// were kept are revision 0.
pub type Revision = u64;

/// The revision a write made from `from` gives its record.
pub fn next_revision(from: Revision) -> Revision {
    let count = (from >> 32).wrapping_add(1) & u64::from(u32::MAX);
    (count << 32) | u64::from(rand::random::<u32>())
}

/// A user's tier and wrapped data key, as [`UserStore::route_of`] reads them.
pub type Route = (UserTier, Option<Vec<u8>>);

/// A blind email index entry: HMAC-SHA256 of the normalised email.
pub type EmailIndex = [u8; 32];

/// The blind index of an external id (HMAC under the index key, like the email's).
pub type ExternalIndex = [u8; 32];

/// Every stored user with its snapshot record, in id order.
pub type UserScan<'a> = Box<dyn Iterator<Item = Result<(UserId, Vec<u8>), StoreError>> + 'a>;

/// Every stored user with its wrapped data key and record, as
/// [`UserStore::scan_users_with_keys`] yields them.
pub type KeyedScan<'a> =
    Box<dyn Iterator<Item = Result<(UserId, Option<Vec<u8>>, Vec<u8>), StoreError>> + 'a>;

/// Archived security events, as [`ArchiveStore::scan_security_events`] yields them.
pub type SecurityEventScan<'a> =
    Box<dyn Iterator<Item = Result<(UserId, u64, Vec<u8>), StoreError>> + 'a>;

/// Tombstones, as [`ArchiveStore::scan_tombstones`] yields them.
pub type TombstoneScan<'a> = Box<dyn Iterator<Item = Result<(UserId, Timestamp), StoreError>> + 'a>;

/// One change within a [`Batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A new user: its record (as `revision`), its route (tier and wrapped data key) and
    /// its email's index entry. Refused with [`Applied::EmailTaken`] if the email is
    /// claimed.
    CreateUser {
        /// The user.
        id: UserId,
        /// The record's first revision (`next_revision(0)`).
        revision: Revision,
        /// Its email's blind index entry.
        email_index: EmailIndex,
        /// The tier whose registry owns it.
        tier: UserTier,
        /// Its data key, wrapped by the master key.
        wrapped_key: Vec<u8>,
        /// Its sealed record.
        record: Vec<u8>,
    },
    /// A user's record as `revision`, written only if the stored one is `expect` (else
    /// [`Applied::Stale`]); with `tier`, its route moves to that tier too (keeping its
    /// data key).
    PutUser {
        /// The user.
        id: UserId,
        /// Its sealed record.
        record: Vec<u8>,
        /// The revision the writer's copy was made from.
        expect: Revision,
        /// The revision this write makes ([`next_revision`] of `expect`).
        revision: Revision,
        /// A new tier, for a tier change.
        tier: Option<UserTier>,
    },
    /// Removes a user: record, route, email claim, archived events, import ledger and
    /// data key (crypto-shredding every copy of its sealed records), leaving a tombstone.
    DeleteUser {
        /// The user.
        id: UserId,
        /// Its email's blind index entries that may exist (under the current key, and
        /// the one derived before Unicode normalisation): each removed if it names this
        /// user.
        email_indexes: Vec<EmailIndex>,
        /// When: the tombstone's time.
        at: Timestamp,
    },
    /// Removes an erased user's tombstone (retention: no backup that still holds the
    /// user is restored with erasures from a newer one any more).
    DropTombstone {
        /// The erased user.
        id: UserId,
    },
    /// Moves a user's email claim from `from` to `to` (a key derived again). Refused with
    /// [`Applied::EmailTaken`], changing nothing, if `to` names another user.
    MoveEmailIndex {
        /// The user.
        id: UserId,
        /// Where the claim is now.
        from: EmailIndex,
        /// Where it goes.
        to: EmailIndex,
    },
    /// Archives a security event the user's record no longer holds.
    ArchiveEvent {
        /// The user.
        user: UserId,
        /// The event's number.
        seq: u64,
        /// The sealed event.
        blob: Vec<u8>,
    },
    /// A user's ledger of imported history (which events were imported, so that a
    /// replayed import counts nothing twice), sealed under its data key.
    PutImportLedger {
        /// The user.
        user: UserId,
        /// The sealed ledger.
        blob: Vec<u8>,
    },
    /// Removes an archived security event (retention).
    DropArchivedEvent {
        /// The user.
        user: UserId,
        /// The event's number.
        seq: u64,
    },
    /// The keyring's record (the master key in use, the wrapped index key).
    KeyringMeta {
        /// Its bytes.
        meta: Vec<u8>,
    },
    /// Audit record number `seq` (chained by the engine's audit log).
    Audit {
        /// Its number.
        seq: u64,
        /// Its stored bytes.
        record: Vec<u8>,
    },
    /// Version `version` of a trained model.
    PutModel {
        /// Which model.
        kind: ModelKind,
        /// Its version.
        version: u64,
        /// Its record (the model, its metrics and feature list).
        record: Vec<u8>,
    },
    /// Removes a version of a model (retention).
    DropModel {
        /// Which model.
        kind: ModelKind,
        /// Its version.
        version: u64,
    },
    /// A catalog track (new or replacing the one of its id).
    PutTrack {
        /// The track's id.
        id: String,
        /// Its record (the track as JSON).
        record: Vec<u8>,
    },
    /// Removes a catalog track.
    DropTrack {
        /// The track's id.
        id: String,
    },
    /// The deny-list of networks operators keep at run time (JSON), replacing the last.
    PutDenyList {
        /// Its record.
        record: Vec<u8>,
    },
    /// An operator's custom dashboard (JSON), new or replacing the one of its name.
    PutDashboard {
        /// Its name.
        name: String,
        /// Its record.
        record: Vec<u8>,
    },
    /// Removes a custom dashboard.
    DropDashboard {
        /// Its name.
        name: String,
    },
    /// A scheduled job's state (its next due time, the run in progress).
    PutJob {
        /// The job's name.
        name: &'static str,
        /// Its state (JSON).
        record: Vec<u8>,
    },
    /// One run in a job's history.
    PutJobRun {
        /// The job's name.
        name: &'static str,
        /// The run's number.
        run: u64,
        /// The run (JSON).
        record: Vec<u8>,
    },
    /// Removes a run from a job's history (retention).
    DropJobRun {
        /// The job's name.
        name: &'static str,
        /// The run's number.
        run: u64,
    },
    /// Records that an identity source knows `user` by the external id whose blind
    /// index is `index` (provisioning; replaces the user's earlier one, which stops
    /// naming it). A deletion of the user removes both directions.
    PutExternalId {
        /// The external id's blind index.
        index: ExternalIndex,
        /// The user.
        user: UserId,
    },
    /// A user's pending invitation to set a password (JSON: the secret's hash, expiry).
    PutInvitation {
        /// The user.
        user: UserId,
        /// The invitation.
        record: Vec<u8>,
    },
    /// Removes a user's invitation (used, expired, or the user deleted).
    DropInvitation {
        /// The user.
        user: UserId,
    },
    /// A chunk of a user's listening log, sealed under its data key: kept while its own
    /// model may be trained, for the training.
    PutListens {
        /// The user.
        user: UserId,
        /// The chunk's number (counting up in time).
        seq: u64,
        /// The sealed events.
        blob: Vec<u8>,
    },
    /// Removes a chunk of a user's listening log (compaction).
    DropListens {
        /// The user.
        user: UserId,
        /// The chunk's number.
        seq: u64,
    },
    /// A user's own models (their versions and which is pinned), sealed under its data
    /// key.
    PutCustomModels {
        /// The user.
        user: UserId,
        /// The sealed record.
        blob: Vec<u8>,
    },
    /// Removes a user's listening log and its own models (the feature turned off, or its
    /// consent to personalisation withdrawn). A deletion of the user removes them too.
    ClearListening {
        /// The user.
        user: UserId,
    },
}

/// The kinds of trained models the store keeps, each versioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// The churn model.
    Churn,
    /// The behaviour segments (k-means centroids).
    Segments,
    /// The recommender's collaborative model (item-to-item neighbours).
    Recommender,
    /// The federated sound model's published versions.
    Federated,
}

impl ModelKind {
    /// Its stable byte in keys.
    pub fn byte(self) -> u8 {
        match self {
            ModelKind::Churn => 1,
            ModelKind::Segments => 2,
            ModelKind::Recommender => 3,
            ModelKind::Federated => 4,
        }
    }
}

/// Changes applied together or not at all: after a crash either all of a batch is there
/// or none of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<Op>,
}

impl Batch {
    /// A batch of one change.
    pub fn of(op: Op) -> Self {
        Self { ops: vec![op] }
    }

    /// Adds a change.
    pub fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// The changes, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// How many changes it holds.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Keeps the first `len` changes (the writer takes back the audit records it chained
    /// into a batch when it must number them again).
    pub fn truncate(&mut self, len: usize) {
        self.ops.truncate(len);
    }
}

/// What became of a batch. Anything but [`Applied::Done`] wrote nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Every change was written.
    Done,
    /// A [`Op::CreateUser`]'s email belongs to another user.
    EmailTaken,
    /// A [`Op::PutUser`] was made from another revision than the stored one (or the
    /// user is gone: `stored` is `None`).
    Stale {
        /// The user.
        user: UserId,
        /// The revision in the store.
        stored: Option<Revision>,
    },
}

/// A whole store: every concern, and the one way to change it.
///
/// Writes are visible to reads at once but durable only after [`Store::flush`]; callers
/// that owe a client durability go through [`GroupCommit`].
pub trait Store:
    UserStore
    + KeyStore
    + AuditStore
    + ArchiveStore
    + ModelStore
    + CatalogStore
    + JobStore
    + ProvisionStore
    + PolicyStore
    + 'static
{
    /// Applies `batch` atomically, or refuses it as a whole (see [`Applied`]).
    fn apply(&self, batch: &Batch) -> Result<Applied, StoreError>;
    /// Applies `batches` in order, each atomically and refused alone as [`Store::apply`]
    /// would, and stops after the first one refused or failed; a store may stop
    /// earlier. Returns how each it reached went: at least one when `batches` is not
    /// empty, every one before the last [`Applied::Done`]. A store that can write
    /// several batches for the price of one (one sled transaction, one SQL transaction)
    /// does; this one applies them one by one ([`apply_each`]).
    fn apply_group(&self, batches: &[Batch]) -> Vec<Result<Applied, StoreError>> {
        apply_each(batches, |b| self.apply(b))
    }
    /// A point-in-time copy made while reads and writes go on: every row of a scan, then
    /// every write made while the scan ran, in order, each handed to `emit` (see
    /// [`backup`]). Replayed in that order over an empty store, they give the store as
    /// it was at the scan's end, the point in time, when `at_cut` is called (with the
    /// store's writes held).
    fn backup(
        &self,
        emit: &mut dyn FnMut(backup::Copied<'_>) -> Result<(), StoreError>,
        at_cut: &mut dyn FnMut(),
    ) -> Result<backup::Cut, StoreError>;
    /// Writes rows of a backup as they are (`None` removes the key): a restore into an
    /// empty store, nothing else.
    fn restore_rows(&self, rows: &[crate::store::backup::Row]) -> Result<(), StoreError>;
    /// Blocks until every write before the call is durable. Returns bytes flushed.
    fn flush(&self) -> Result<usize, StoreError>;
    /// Bytes the store occupies on disk, if it can tell.
    fn size_on_disk(&self) -> Option<u64>;
}

/// Applies `batches` one by one with `apply`, stopping after the first one refused or
/// failed (see [`Store::apply_group`]).
pub(crate) fn apply_each(
    batches: &[Batch],
    apply: impl Fn(&Batch) -> Result<Applied, StoreError>,
) -> Vec<Result<Applied, StoreError>> {
    let mut went = Vec::with_capacity(batches.len());
    for batch in batches {
        let one = apply(batch);
        let go_on = matches!(one, Ok(Applied::Done));
        went.push(one);
        if !go_on {
            break;
        }
    }
    went
}

/// The file `roster restore` keeps in a data directory until the restore checked out.
pub const RESTORE_MARKER: &str = "restore.incomplete";

/// Opens the store `store.backend` names (sled in `store.data_dir`); refuses a data
/// directory whose restore did not finish.
pub fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    if config.data_dir.join(RESTORE_MARKER).exists() {
        return Err(StoreError::Io(format!(
            "a restore into {} did not finish ({RESTORE_MARKER} is there): delete the \
             directory and restore again",
            config.data_dir.display()
        )));
    }
    match config.backend {
        Backend::Sled => Ok(Arc::new(SledStore::open_with(config)?)),
    }
}

/// Rewrites a closed store's files so that no superseded value remains in them: sled
/// keeps old values in its log until it reclaims their segments, so after records written
/// in clear were sealed, their clear bytes may still be on disk.
pub(crate) fn rewrite(config: &StoreConfig) -> Result<(), StoreError> {
    match config.backend {
        Backend::Sled => SledStore::open_with(config)?
            .rewrite(config.cache_bytes)
            .map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_counts_writes_and_is_never_guessed_from_the_last() {
        assert_eq!(next_revision(0) >> 32, 1);
        let r = next_revision(next_revision(0));
        assert_eq!(r >> 32, 2);
        // Two writes made from one revision (a stale writer's and the store's) differ.
        let tags: std::collections::HashSet<_> = (0..64).map(|_| next_revision(r)).collect();
        assert!(tags.len() > 60, "fresh tags: {}", tags.len());
        assert_eq!(
            next_revision(u64::MAX) >> 32,
            0,
            "the count wraps, it does not panic"
        );
    }
}
