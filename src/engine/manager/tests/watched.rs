//! A store for tests: sled, watched, and failing when told.

use super::*;
use crate::store::Op;

/// sled, watched: which threads write to it, and (when told) refusing every batch that
/// holds an audit record, or taking its time over new users.
pub(super) struct Watched {
    pub(super) sled: SledStore,
    pub(super) refuse_audit: bool,
    pub(super) writers: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// How long a batch creating a user takes to apply.
    pub(super) slow_creates: Duration,
    /// A batch creating a user is being applied now.
    pub(super) creating: std::sync::atomic::AtomicBool,
    /// Flushes fail (what was applied stays visible, durable or not).
    pub(super) failing_flush: std::sync::atomic::AtomicBool,
}

impl Watched {
    pub(super) fn new(dir: &std::path::Path, refuse_audit: bool) -> Self {
        Self {
            sled: SledStore::open(dir, 1 << 20).unwrap(),
            refuse_audit,
            writers: Default::default(),
            slow_creates: Duration::ZERO,
            creating: Default::default(),
            failing_flush: Default::default(),
        }
    }
}

impl UserStore for Watched {
    fn load_user(&self, id: UserId) -> Result<Option<Vec<u8>>, StoreError> {
        self.sled.load_user(id)
    }
    fn load_user_at(&self, id: UserId) -> Result<Option<(Revision, Vec<u8>)>, StoreError> {
        self.sled.load_user_at(id)
    }
    fn route_of(&self, id: UserId) -> Result<Option<Route>, StoreError> {
        self.sled.route_of(id)
    }
    fn lookup_email(&self, index: &EmailIndex) -> Result<Option<UserId>, StoreError> {
        self.sled.lookup_email(index)
    }
    fn scan_users(&self) -> UserScan<'_> {
        self.sled.scan_users()
    }
    fn user_count(&self) -> usize {
        self.sled.user_count()
    }
}

impl KeyStore for Watched {
    fn load_key(&self, id: UserId) -> Result<Option<Vec<u8>>, StoreError> {
        self.sled.load_key(id)
    }
    fn scan_keys(&self) -> UserScan<'_> {
        self.sled.scan_keys()
    }
    fn replace_key(&self, id: UserId, old: &[u8], new: &[u8]) -> Result<bool, StoreError> {
        self.sled.replace_key(id, old, new)
    }
    fn keyring_meta(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.sled.keyring_meta()
    }
    fn put_keyring_meta(&self, meta: &[u8]) -> Result<(), StoreError> {
        self.sled.put_keyring_meta(meta)
    }
    fn legacy_emails(&self) -> Result<Vec<(String, UserId)>, StoreError> {
        self.sled.legacy_emails()
    }
    fn migrate_email(&self, email: &str, index: &EmailIndex, id: UserId) -> Result<(), StoreError> {
        self.sled.migrate_email(email, index, id)
    }
    fn seal_user(
        &self,
        id: UserId,
        tier: UserTier,
        wrapped_key: &[u8],
        record: &[u8],
    ) -> Result<(), StoreError> {
        self.sled.seal_user(id, tier, wrapped_key, record)
    }
}

impl AuditStore for Watched {
    fn audit_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.sled.audit_after(after, limit)
    }
    fn last_audit(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.sled.last_audit()
    }
}

impl ArchiveStore for Watched {
    fn import_ledger(&self, user: UserId) -> Result<Option<Vec<u8>>, StoreError> {
        self.sled.import_ledger(user)
    }
    fn scan_security_events(&self) -> SecurityEventScan<'_> {
        self.sled.scan_security_events()
    }
    fn scan_tombstones(&self) -> crate::store::TombstoneScan<'_> {
        self.sled.scan_tombstones()
    }
    fn security_events_before(
        &self,
        user: UserId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.sled.security_events_before(user, before, limit)
    }

    fn listens(&self, user: UserId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.sled.listens(user)
    }

    fn custom_models(&self, user: UserId) -> Result<Option<Vec<u8>>, StoreError> {
        self.sled.custom_models(user)
    }
    fn scan_custom_models(&self) -> crate::store::CustomModelScan<'_> {
        self.sled.scan_custom_models()
    }
}

impl ModelStore for Watched {
    fn models(&self, kind: ModelKind) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.sled.models(kind)
    }
}

impl crate::store::CatalogStore for Watched {
    fn track(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.sled.track(id)
    }

    fn tracks(&self) -> crate::store::TrackScan<'_> {
        self.sled.tracks()
    }
}

impl crate::store::JobStore for Watched {
    fn job(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.sled.job(name)
    }

    fn job_runs(&self, name: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.sled.job_runs(name)
    }
}

impl crate::store::PolicyStore for Watched {
    fn deny_list(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.sled.deny_list()
    }

    fn dashboards(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.sled.dashboards()
    }

    fn dashboard(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.sled.dashboard(name)
    }
}

impl crate::store::ProvisionStore for Watched {
    fn external_user(
        &self,
        index: &crate::store::ExternalIndex,
    ) -> Result<Option<crate::domain::ids::UserId>, StoreError> {
        self.sled.external_user(index)
    }

    fn external_of(
        &self,
        user: crate::domain::ids::UserId,
    ) -> Result<Option<crate::store::ExternalIndex>, StoreError> {
        self.sled.external_of(user)
    }

    fn invitation(&self, user: crate::domain::ids::UserId) -> Result<Option<Vec<u8>>, StoreError> {
        self.sled.invitation(user)
    }

    fn invitations(&self) -> Result<Vec<(crate::domain::ids::UserId, Vec<u8>)>, StoreError> {
        self.sled.invitations()
    }
}

impl Store for Watched {
    fn apply(&self, batch: &Batch) -> Result<Applied, StoreError> {
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        self.writers.lock().unwrap().insert(thread);
        if self.refuse_audit && batch.ops().iter().any(|op| matches!(op, Op::Audit { .. })) {
            return Err(StoreError::Io("the audit log's disk is full".into()));
        }
        let creates = batch
            .ops()
            .iter()
            .any(|op| matches!(op, Op::CreateUser { .. }));
        if creates && !self.slow_creates.is_zero() {
            use std::sync::atomic::Ordering::SeqCst;
            self.creating.store(true, SeqCst);
            std::thread::sleep(self.slow_creates);
            let applied = self.sled.apply(batch);
            self.creating.store(false, SeqCst);
            return applied;
        }
        self.sled.apply(batch)
    }
    fn backup(
        &self,
        emit: &mut dyn FnMut(crate::store::backup::Copied<'_>) -> Result<(), StoreError>,
        at_cut: &mut dyn FnMut(),
    ) -> Result<crate::store::backup::Cut, StoreError> {
        self.sled.backup(emit, at_cut)
    }
    fn restore_rows(&self, rows: &[crate::store::backup::Row]) -> Result<(), StoreError> {
        self.sled.restore_rows(rows)
    }
    fn flush(&self) -> Result<usize, StoreError> {
        if self.failing_flush.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Io("the disk went away".into()));
        }
        self.sled.flush()
    }
    fn size_on_disk(&self) -> Option<u64> {
        self.sled.size_on_disk()
    }
}
