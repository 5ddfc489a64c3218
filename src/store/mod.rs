//! Persistence: the snapshot codec, the [`Store`] trait with its sled implementation, and
//! group commit.
//!
//! The store holds bytes; it does not know what a user's state looks like. The engine
//! encodes state with [`codec`] and decides when a write must be durable.

pub mod codec;
pub mod commit;
pub mod sled_store;

use crate::domain::ids::UserId;
use crate::domain::tier::UserTier;

pub use codec::CodecError;
pub use commit::GroupCommit;
pub use sled_store::SledStore;

/// A failure of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The embedded database failed (I/O, corruption it detected).
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

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// The result of an attempt to create a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The user and its email claim were written.
    Created,
    /// Another user already holds the email; nothing was written.
    EmailTaken,
}

/// A user's tier and wrapped data key, as [`Store::route_of`] reads them.
pub type Route = (UserTier, Option<Vec<u8>>);

/// A blind email index entry: HMAC-SHA256 of the normalised email.
pub type EmailIndex = [u8; 32];

/// Every stored user with its snapshot record, in id order.
pub type UserScan<'a> = Box<dyn Iterator<Item = Result<(UserId, Vec<u8>), StoreError>> + 'a>;

/// Durable storage of user snapshots and the indexes that route to them.
///
/// Writes are visible to reads at once but durable only after [`Store::flush`]; callers
/// that owe a client durability go through [`GroupCommit`]. Every multi-key change is
/// atomic: after a crash either all of it or none of it is there.
/// Archived security events, as [`Store::scan_security_events`] yields them.
pub type SecurityEventScan<'a> =
    Box<dyn Iterator<Item = Result<(UserId, u64, Vec<u8>), StoreError>> + 'a>;

pub trait Store: Send + Sync + 'static {
    /// A user's snapshot record, if the user exists.
    fn load_user(&self, id: UserId) -> Result<Option<Vec<u8>>, StoreError>;
    /// The tier whose registry owns the user, if the user exists.
    fn tier_of(&self, id: UserId) -> Result<Option<UserTier>, StoreError>;
    /// What an activation needs besides the record, in one read: the user's tier and
    /// wrapped data key (`None` for a record written before encryption).
    fn route_of(&self, id: UserId) -> Result<Option<Route>, StoreError>;
    /// The user whose email has this blind index entry.
    fn lookup_email(&self, email_index: &EmailIndex) -> Result<Option<UserId>, StoreError>;
    /// Writes a new user (record, wrapped data key, tier route) and claims its email's
    /// index entry, atomically; refuses a taken email.
    fn create_user(
        &self,
        id: UserId,
        email_index: &EmailIndex,
        tier: UserTier,
        wrapped_key: &[u8],
        record: &[u8],
    ) -> Result<CreateOutcome, StoreError>;
    /// A user's wrapped data key.
    fn load_key(&self, id: UserId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every wrapped data key, in id order.
    fn scan_keys(&self) -> UserScan<'_>;
    /// Replaces a user's wrapped data key if it is still `old` (a rewrap); `false` if it
    /// changed or is gone.
    fn replace_key(&self, id: UserId, old: &[u8], new: &[u8]) -> Result<bool, StoreError>;
    /// The keyring's record (master key fingerprint, wrapped index key).
    fn keyring_meta(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes the keyring's record.
    fn put_keyring_meta(&self, meta: &[u8]) -> Result<(), StoreError>;
    /// Email claims written before the blind index (format 3 and older): normalised
    /// email and user.
    fn legacy_emails(&self) -> Result<Vec<(String, UserId)>, StoreError>;
    /// Moves a legacy email claim to its blind index entry, atomically.
    fn migrate_email(&self, email: &str, index: &EmailIndex, id: UserId) -> Result<(), StoreError>;
    /// Writes a pre-encryption user's first data key and sealed record, atomically.
    fn seal_user(
        &self,
        id: UserId,
        tier: UserTier,
        wrapped_key: &[u8],
        record: &[u8],
    ) -> Result<(), StoreError>;
    /// Overwrites a user's snapshot.
    fn save_user(&self, id: UserId, record: &[u8]) -> Result<(), StoreError>;
    /// Overwrites a user's snapshot and its tier route, atomically.
    fn save_user_with_tier(
        &self,
        id: UserId,
        tier: UserTier,
        record: &[u8],
    ) -> Result<(), StoreError>;
    /// Removes a user, its routes, its email claim, its archived events and its data key
    /// (crypto-shredding every copy of its sealed records), and leaves a tombstone, all
    /// in one batch.
    fn delete_user(&self, id: UserId, email_index: &EmailIndex) -> Result<(), StoreError>;
    /// Every stored user id with its record.
    fn scan_users(&self) -> UserScan<'_>;
    /// Number of stored users.
    fn user_count(&self) -> usize;
    /// Bytes the store occupies on disk, if it can tell.
    fn size_on_disk(&self) -> Option<u64>;
    /// Blocks until every write before the call is durable. Returns bytes flushed.
    fn flush(&self) -> Result<usize, StoreError>;
    /// Writes audit record number `seq` (the audit log numbers and chains them).
    fn put_audit(&self, seq: u64, record: &[u8]) -> Result<(), StoreError>;
    /// Audit records numbered above `after`, in order, at most `limit`.
    fn audit_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// The highest-numbered audit record.
    fn last_audit(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError>;
    /// Archives a user's security event number `seq` (events the actor's state no
    /// longer holds). Deleting the user removes them.
    fn put_security_event(&self, user: UserId, seq: u64, record: &[u8]) -> Result<(), StoreError>;
    /// Every archived security event: user, number, record.
    fn scan_security_events(&self) -> SecurityEventScan<'_>;
    /// Removes one archived security event.
    fn delete_security_event(&self, user: UserId, seq: u64) -> Result<(), StoreError>;
    /// A user's archived security events numbered below `before`, newest first, at most
    /// `limit`: number and record.
    fn security_events_before(
        &self,
        user: UserId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
}
