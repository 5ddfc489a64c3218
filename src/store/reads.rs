//! The store's reads, split by concern (see the parent module): each trait is what a
//! backend implements for one part of the layout.

use super::{
    EmailIndex, ExternalIndex, KeyedScan, ModelKind, Revision, Route, SecurityEventScan,
    StoreError, TombstoneScan, UserScan,
};
use crate::domain::ids::UserId;
use crate::domain::tier::UserTier;

/// Users: records, routes and the email index.
pub trait UserStore: Send + Sync {
    /// A user's snapshot record, if the user exists.
    fn load_user(&self, id: UserId) -> Result<Option<Vec<u8>>, StoreError>;
    /// A user's record with its revision.
    fn load_user_at(&self, id: UserId) -> Result<Option<(Revision, Vec<u8>)>, StoreError>;
    /// The tier whose registry owns the user, if the user exists.
    fn tier_of(&self, id: UserId) -> Result<Option<UserTier>, StoreError> {
        Ok(self.route_of(id)?.map(|(tier, _)| tier))
    }
    /// What an activation needs besides the record, in one read: the user's tier and
    /// wrapped data key (`None` for a record written before encryption).
    fn route_of(&self, id: UserId) -> Result<Option<Route>, StoreError>;
    /// The user whose email has this blind index entry.
    fn lookup_email(&self, email_index: &EmailIndex) -> Result<Option<UserId>, StoreError>;
    /// Every stored user id with its record.
    fn scan_users(&self) -> UserScan<'_>;
    /// The stored users with ids in `from..to` (an open end when `None`), each with its
    /// wrapped data key (`None` if it has none) and record, in id order: what a batch
    /// job over the population reads, a range at a time. A backend that keeps routes and
    /// records in id order reads them side by side instead of looking each key up.
    fn scan_users_with_keys(&self, from: Option<UserId>, to: Option<UserId>) -> KeyedScan<'_> {
        let within = move |id: &UserId| from.is_none_or(|f| *id >= f) && to.is_none_or(|t| *id < t);
        Box::new(
            self.scan_users()
                .filter(move |item| item.as_ref().map_or(true, |(id, _)| within(id)))
                .map(|item| {
                    let (id, record) = item?;
                    let key = self.route_of(id)?.and_then(|(_, key)| key);
                    Ok((id, key, record))
                }),
        )
    }
    /// The lowest and the highest stored user id (`None` for an empty store): where a
    /// batch job splits the population into ranges.
    fn user_id_bounds(&self) -> Result<Option<(UserId, UserId)>, StoreError> {
        let mut ids = self.scan_users().map(|item| item.map(|(id, _)| id));
        let Some(first) = ids.next().transpose()? else {
            return Ok(None);
        };
        let last = ids.last().transpose()?.unwrap_or(first);
        Ok(Some((first, last)))
    }
    /// Number of stored users.
    fn user_count(&self) -> usize;
}

/// The keys of encryption at rest, and the migration of a store written before them.
pub trait KeyStore: Send + Sync {
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
}

/// The audit log's records.
pub trait AuditStore: Send + Sync {
    /// Audit records numbered above `after`, in order, at most `limit`.
    fn audit_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// The highest-numbered audit record.
    fn last_audit(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError>;
}

/// What a user's record does not carry: security events older than what it keeps, the
/// ledger of its imported history, its listening log and its own models.
pub trait ArchiveStore: Send + Sync {
    /// A user's sealed ledger of imported history, if it has one.
    fn import_ledger(&self, user: UserId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every archived security event: user, number, record.
    fn scan_security_events(&self) -> SecurityEventScan<'_>;
    /// A user's archived security events numbered below `before`, newest first, at most
    /// `limit`: number and record.
    fn security_events_before(
        &self,
        user: UserId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// A user's listening log, oldest chunk first: number and sealed events.
    fn listens(&self, user: UserId) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// A user's own models, sealed.
    fn custom_models(&self, user: UserId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every user's own models, sealed, in id order.
    fn scan_custom_models(&self) -> CustomModelScan<'_>;
    /// Every erased user's tombstone: its id and when it was erased.
    fn scan_tombstones(&self) -> TombstoneScan<'_>;
}

/// Every user's own models, as [`ArchiveStore::scan_custom_models`] yields them.
pub type CustomModelScan<'a> = Box<dyn Iterator<Item = Result<(UserId, Vec<u8>), StoreError>> + 'a>;

/// Trained models: the model, its metrics and feature list, versioned. Not personal
/// data (coefficients and centroids), so stored in clear.
pub trait ModelStore: Send + Sync {
    /// Every stored version of a model, oldest first: version and record.
    fn models(&self, kind: ModelKind) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
}

/// Every track's id and record, in id order (see [`CatalogStore::tracks`]).
pub type TrackScan<'a> = Box<dyn Iterator<Item = Result<(String, Vec<u8>), StoreError>> + 'a>;

/// The track catalog: the platform's, not personal data, so stored in clear.
pub trait CatalogStore: Send + Sync {
    /// One track's record.
    fn track(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every track's id and record, in id order.
    fn tracks(&self) -> TrackScan<'_>;
}

/// The scheduler's jobs: each one's state and its history of runs. Job names and
/// counts, not personal data, so stored in clear.
pub trait JobStore: Send + Sync {
    /// A job's state.
    fn job(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// A job's runs, oldest first: number and record.
    fn job_runs(&self, name: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
}

/// Provisioning from identity sources: which user an external id names, and the
/// invitations to set a password of users created without one.
pub trait ProvisionStore: Send + Sync {
    /// The user an external id's blind index names (it may since have been deleted).
    fn external_user(&self, index: &ExternalIndex) -> Result<Option<UserId>, StoreError>;
    /// The blind index of the external id a user is known by.
    fn external_of(&self, user: UserId) -> Result<Option<ExternalIndex>, StoreError>;
    /// A user's pending invitation.
    fn invitation(&self, user: UserId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every pending invitation (cleanup).
    fn invitations(&self) -> Result<Vec<(UserId, Vec<u8>)>, StoreError>;
}

/// What operators keep at run time: the deny-list of networks and the custom
/// dashboards (JSON; networks, reasons and panel choices, not personal data, so stored
/// in clear).
pub trait PolicyStore: Send + Sync {
    /// The deny-list's record, once one was written.
    fn deny_list(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every dashboard's record, by name.
    fn dashboards(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// The record of the dashboard `name`.
    fn dashboard(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
}
