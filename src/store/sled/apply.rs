//! The one way sled is written: a [`Batch`] applied atomically.
//!
//! A batch that only overwrites goes through sled's `apply_batch`. One that must read
//! what it changes — a new user claiming its email, a tier change keeping the route's
//! data key while a master key rotation may be rewrapping it, a deletion or a move of an
//! email claim, which touch only the claims that name their user — runs as a serializable
//! transaction, so of two racing writers exactly one wins and the other's refusal is a
//! value ([`Applied`]).
//!
//! Revisions are checked against the stored record before anything is written. Within
//! this process the engine's writers never race on one user's record (one live actor
//! per user), so a plain read suffices outside transactions; the check is what catches a
//! writer that should not be writing at all.

use std::convert::Infallible;

use ::sled::IVec;
use ::sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
    TransactionalTree, UnabortableTransactionError,
};

use super::{
    CUSTOM, KEYRING, LEDGER, LISTENS, SECURITY_EVENT, SledStore, TIER, TOMBSTONE, USER, audit_key,
    event_key, id_key, index_key, jobs::job_key, jobs::job_run_key, listens_key, model_key,
    provision::external_key, provision::external_of_key, provision::invitation_key, route_value,
    split_user_value, track_key, user_value,
};
use crate::domain::ids::UserId;
use crate::store::backup::{Copied, Cut};
use crate::store::{Applied, Batch, Op, Revision, Store, StoreError, apply_each};

/// Refuses a [`Op::PutUser`] unless the stored record is the revision it was made from.
fn check_revision(id: UserId, expect: Revision, stored: Option<&[u8]>) -> Result<(), Applied> {
    let stored = stored.map(|v| split_user_value(v).0);
    if stored == Some(expect) {
        Ok(())
    } else {
        Err(Applied::Stale { user: id, stored })
    }
}

impl SledStore {
    /// Keys of a user's archived events, which a deletion removes (read before the
    /// batch: a transaction cannot scan).
    fn archived_keys(&self, id: UserId) -> Result<Vec<::sled::IVec>, StoreError> {
        let mut keys = self.listens_keys(id)?;
        for k in self.tree.scan_prefix(id_key(SECURITY_EVENT, id)).keys() {
            keys.push(k?);
        }
        Ok(keys)
    }

    /// Keys of a user's listening log.
    fn listens_keys(&self, id: UserId) -> Result<Vec<::sled::IVec>, StoreError> {
        self.tree
            .scan_prefix(id_key(LISTENS, id))
            .keys()
            .map(|k| k.map_err(StoreError::from))
            .collect()
    }

    /// A batch that reads nothing it writes but the revisions.
    fn apply_plain(&self, batch: &Batch) -> Result<Applied, StoreError> {
        let mut b = ::sled::Batch::default();
        for op in batch.ops() {
            match op {
                Op::PutUser {
                    id,
                    record,
                    expect,
                    revision,
                    tier: None,
                } => {
                    let stored = self.tree.get(id_key(USER, *id))?;
                    if let Err(refused) = check_revision(*id, *expect, stored.as_deref()) {
                        return Ok(refused);
                    }
                    b.insert(&id_key(USER, *id), user_value(*revision, record));
                }
                Op::ArchiveEvent { user, seq, blob } => {
                    b.insert(&event_key(*user, *seq), blob.as_slice());
                }
                Op::DropArchivedEvent { user, seq } => b.remove(&event_key(*user, *seq)),
                Op::DropTombstone { id } => b.remove(&id_key(TOMBSTONE, *id)),
                Op::PutImportLedger { user, blob } => {
                    b.insert(&id_key(LEDGER, *user), blob.as_slice());
                }
                Op::Audit { seq, record } => b.insert(&audit_key(*seq), record.as_slice()),
                Op::KeyringMeta { meta } => b.insert(KEYRING, meta.as_slice()),
                Op::PutModel {
                    kind,
                    version,
                    record,
                } => b.insert(&model_key(*kind, *version), record.as_slice()),
                Op::DropModel { kind, version } => b.remove(&model_key(*kind, *version)),
                Op::PutTrack { id, record } => b.insert(track_key(id), record.as_slice()),
                Op::DropTrack { id } => b.remove(track_key(id)),
                Op::PutDenyList { record } => b.insert(super::DENY_LIST, record.as_slice()),
                Op::PutDashboard { name, record } => {
                    b.insert(super::dashboard_key(name), record.as_slice());
                }
                Op::DropDashboard { name } => b.remove(super::dashboard_key(name)),
                Op::PutJob { name, record } => b.insert(job_key(name), record.as_slice()),
                Op::PutJobRun { name, run, record } => {
                    b.insert(job_run_key(name, *run), record.as_slice());
                }
                Op::DropJobRun { name, run } => b.remove(job_run_key(name, *run)),
                Op::PutExternalId { index, user } => {
                    if let Some(old) = self.tree.get(external_of_key(*user))?
                        && old.as_ref() != index.as_slice()
                        && let Ok(old) = <[u8; 32]>::try_from(old.as_ref())
                    {
                        b.remove(external_key(&old).as_slice());
                    }
                    b.insert(external_key(index).as_slice(), user.as_bytes().as_slice());
                    b.insert(external_of_key(*user).as_slice(), index.as_slice());
                }
                Op::PutInvitation { user, record } => {
                    b.insert(&invitation_key(*user), record.as_slice());
                }
                Op::DropInvitation { user } => b.remove(&invitation_key(*user)),
                Op::PutListens { user, seq, blob } => {
                    b.insert(&listens_key(*user, *seq), blob.as_slice());
                }
                Op::DropListens { user, seq } => b.remove(&listens_key(*user, *seq)),
                Op::PutCustomModels { user, blob } => {
                    b.insert(&id_key(CUSTOM, *user), blob.as_slice());
                }
                Op::CreateUser { .. }
                | Op::PutUser { tier: Some(_), .. }
                | Op::DeleteUser { .. }
                | Op::ClearListening { .. }
                | Op::MoveEmailIndex { .. } => {
                    return Err(StoreError::Io("a transactional op in a plain batch".into()));
                }
            }
        }
        self.tree.apply_batch(b)?;
        Ok(Applied::Done)
    }

    /// A batch that must read what it changes, as one transaction.
    fn apply_transaction(&self, batch: &Batch) -> Result<Applied, StoreError> {
        // Scans first: a transaction cannot iterate.
        let archived = self.archived_of(batch)?;
        let result = self.tree.transaction(|tx| {
            write_batch(&mut Writes::new(tx), batch, &archived)?;
            Ok(Applied::Done)
        });
        match result {
            Ok(done) => Ok(done),
            Err(TransactionError::Abort(refused)) => Ok(refused),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// Several batches as one transaction, each refused alone: a refused batch's writes
    /// are taken back within the transaction and the group ends with it. Only the first
    /// batch may delete a user (see [`Store::apply_group`]).
    fn apply_together(&self, batches: &[Batch]) -> Result<Vec<Applied>, StoreError> {
        let archived = match batches.first() {
            Some(first) => self.archived_of(first)?,
            None => return Ok(Vec::new()),
        };
        let result = self.tree.transaction(|tx| {
            let mut applied = Vec::with_capacity(batches.len());
            for (i, batch) in batches.iter().enumerate() {
                let scans = if i == 0 { archived.as_slice() } else { &[] };
                let mut w = Writes::new(tx);
                match write_batch(&mut w, batch, scans) {
                    Ok(()) => applied.push(Applied::Done),
                    Err(ConflictableTransactionError::Abort(refused)) => {
                        w.take_back()?;
                        applied.push(refused);
                        break;
                    }
                    Err(ConflictableTransactionError::Conflict) => {
                        return Err(ConflictableTransactionError::Conflict);
                    }
                    Err(ConflictableTransactionError::Storage(e)) => {
                        return Err(ConflictableTransactionError::Storage(e));
                    }
                }
            }
            Ok::<_, ConflictableTransactionError<Infallible>>(applied)
        });
        match result {
            Ok(applied) => Ok(applied),
            Err(TransactionError::Abort(never)) => match never {},
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// For each deletion in `batch`, the keys of its user's archived events and
    /// listening log; for each clearing, of its listening log (read before the
    /// transaction: a transaction cannot scan).
    fn archived_of(&self, batch: &Batch) -> Result<Vec<Vec<IVec>>, StoreError> {
        let mut archived = Vec::new();
        for op in batch.ops() {
            match op {
                Op::DeleteUser { id, .. } => archived.push(self.archived_keys(*id)?),
                Op::ClearListening { user } => archived.push(self.listens_keys(*user)?),
                _ => {}
            }
        }
        Ok(archived)
    }
}

/// A batch's writes in a transaction, with what each replaced, so that a batch refused
/// halfway through a group can be taken back.
struct Writes<'a> {
    tx: &'a TransactionalTree,
    replaced: Vec<(IVec, Option<IVec>)>,
}

impl<'a> Writes<'a> {
    fn new(tx: &'a TransactionalTree) -> Self {
        Self {
            tx,
            replaced: Vec::new(),
        }
    }

    fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<IVec>, UnabortableTransactionError> {
        self.tx.get(key)
    }

    fn insert(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl Into<IVec>,
    ) -> Result<(), UnabortableTransactionError> {
        let key = IVec::from(key.as_ref());
        let old = self.tx.insert(key.clone(), value.into())?;
        self.replaced.push((key, old));
        Ok(())
    }

    fn remove(
        &mut self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<IVec>, UnabortableTransactionError> {
        let key = IVec::from(key.as_ref());
        let old = self.tx.remove(key.clone())?;
        self.replaced.push((key, old.clone()));
        Ok(old)
    }

    /// Puts back what every write replaced, the last write first.
    fn take_back(self) -> Result<(), UnabortableTransactionError> {
        for (key, old) in self.replaced.into_iter().rev() {
            match old {
                Some(value) => self.tx.insert(key, value)?,
                None => self.tx.remove(key)?,
            };
        }
        Ok(())
    }
}

/// Writes `batch` through `w`; a refusal aborts with its [`Applied`], leaving what the
/// batch already wrote to be taken back or dropped with the transaction. `archived` holds
/// the archived keys of each of the batch's deletions, in order.
fn write_batch(
    w: &mut Writes<'_>,
    batch: &Batch,
    archived: &[Vec<IVec>],
) -> ConflictableTransactionResult<(), Applied> {
    let refuse = ConflictableTransactionError::Abort;
    let mut deletions = archived.iter();
    for op in batch.ops() {
        match op {
            Op::CreateUser {
                id,
                revision,
                email_index,
                tier,
                wrapped_key,
                record,
            } => {
                let ekey = index_key(email_index);
                if w.get(ekey)?.is_some() {
                    return Err(refuse(Applied::EmailTaken));
                }
                w.insert(ekey.as_slice(), id.as_bytes().as_slice())?;
                w.insert(id_key(USER, *id).as_slice(), user_value(*revision, record))?;
                w.insert(
                    id_key(TIER, *id).as_slice(),
                    route_value(*tier, wrapped_key),
                )?;
            }
            Op::PutUser {
                id,
                record,
                expect,
                revision,
                tier,
            } => {
                let ukey = id_key(USER, *id);
                let stored = w.get(ukey)?;
                check_revision(*id, *expect, stored.as_deref()).map_err(refuse)?;
                w.insert(ukey.as_slice(), user_value(*revision, record))?;
                if let Some(tier) = tier {
                    // The route keeps its data key.
                    let tkey = id_key(TIER, *id);
                    let key = w
                        .get(tkey)?
                        .map(|v| v.get(1..).unwrap_or_default().to_vec());
                    w.insert(
                        tkey.as_slice(),
                        route_value(*tier, key.as_deref().unwrap_or_default()),
                    )?;
                }
            }
            Op::DeleteUser {
                id,
                email_indexes,
                at,
            } => {
                w.remove(id_key(USER, *id).as_slice())?;
                w.remove(id_key(TIER, *id).as_slice())?;
                w.remove(id_key(LEDGER, *id).as_slice())?;
                w.remove(id_key(CUSTOM, *id).as_slice())?;
                w.remove(invitation_key(*id).as_slice())?;
                if let Some(x) = w.remove(external_of_key(*id).as_slice())?
                    && let Ok(x) = <[u8; 32]>::try_from(x.as_ref())
                    && w.get(external_key(&x))?.as_deref() == Some(id.as_bytes().as_slice())
                {
                    w.remove(external_key(&x).as_slice())?;
                }
                for index in email_indexes {
                    let key = index_key(index);
                    // Only its own claim: a key derived from this user's email
                    // may name a look-alike account.
                    if w.get(key)?.as_deref() == Some(id.as_bytes().as_slice()) {
                        w.remove(key.as_slice())?;
                    }
                }
                for k in deletions.next().into_iter().flatten() {
                    w.remove(k.clone())?;
                }
                let when = u64::try_from(at.as_millis()).unwrap_or(0).to_le_bytes();
                w.insert(id_key(TOMBSTONE, *id).as_slice(), when.as_slice())?;
            }
            Op::MoveEmailIndex { id, from, to } => {
                let (from, to) = (index_key(from), index_key(to));
                match w.get(to)? {
                    Some(owner) if owner.as_ref() != id.as_bytes().as_slice() => {
                        return Err(refuse(Applied::EmailTaken));
                    }
                    _ => {}
                }
                if w.get(from)?.as_deref() == Some(id.as_bytes().as_slice()) {
                    w.remove(from.as_slice())?;
                }
                w.insert(to.as_slice(), id.as_bytes().as_slice())?;
            }
            Op::ArchiveEvent { user, seq, blob } => {
                w.insert(event_key(*user, *seq).as_slice(), blob.as_slice())?;
            }
            Op::DropArchivedEvent { user, seq } => {
                w.remove(event_key(*user, *seq).as_slice())?;
            }
            Op::DropTombstone { id } => {
                w.remove(id_key(TOMBSTONE, *id).as_slice())?;
            }
            Op::PutImportLedger { user, blob } => {
                w.insert(id_key(LEDGER, *user).as_slice(), blob.as_slice())?;
            }
            Op::Audit { seq, record } => {
                w.insert(audit_key(*seq).as_slice(), record.as_slice())?;
            }
            Op::KeyringMeta { meta } => {
                w.insert(KEYRING, meta.as_slice())?;
            }
            Op::PutModel {
                kind,
                version,
                record,
            } => {
                w.insert(model_key(*kind, *version).as_slice(), record.as_slice())?;
            }
            Op::DropModel { kind, version } => {
                w.remove(model_key(*kind, *version).as_slice())?;
            }
            Op::PutTrack { id, record } => {
                w.insert(track_key(id), record.as_slice())?;
            }
            Op::DropTrack { id } => {
                w.remove(track_key(id))?;
            }
            Op::PutDenyList { record } => {
                w.insert(super::DENY_LIST, record.as_slice())?;
            }
            Op::PutDashboard { name, record } => {
                w.insert(super::dashboard_key(name), record.as_slice())?;
            }
            Op::DropDashboard { name } => {
                w.remove(super::dashboard_key(name))?;
            }
            Op::PutJob { name, record } => {
                w.insert(job_key(name), record.as_slice())?;
            }
            Op::PutJobRun { name, run, record } => {
                w.insert(job_run_key(name, *run), record.as_slice())?;
            }
            Op::DropJobRun { name, run } => {
                w.remove(job_run_key(name, *run))?;
            }
            Op::PutExternalId { index, user } => {
                if let Some(old) = w.get(external_of_key(*user))?
                    && old.as_ref() != index.as_slice()
                    && let Ok(old) = <[u8; 32]>::try_from(old.as_ref())
                {
                    w.remove(external_key(&old).as_slice())?;
                }
                w.insert(external_key(index).as_slice(), user.as_bytes().as_slice())?;
                w.insert(external_of_key(*user).as_slice(), index.as_slice())?;
            }
            Op::PutInvitation { user, record } => {
                w.insert(invitation_key(*user).as_slice(), record.as_slice())?;
            }
            Op::DropInvitation { user } => {
                w.remove(invitation_key(*user).as_slice())?;
            }
            Op::PutListens { user, seq, blob } => {
                w.insert(listens_key(*user, *seq).as_slice(), blob.as_slice())?;
            }
            Op::DropListens { user, seq } => {
                w.remove(listens_key(*user, *seq).as_slice())?;
            }
            Op::PutCustomModels { user, blob } => {
                w.insert(id_key(CUSTOM, *user).as_slice(), blob.as_slice())?;
            }
            Op::ClearListening { user } => {
                w.remove(id_key(CUSTOM, *user).as_slice())?;
                for k in deletions.next().into_iter().flatten() {
                    w.remove(k.clone())?;
                }
            }
        }
    }
    Ok(())
}

impl SledStore {
    /// [`Store::apply`] inside the gate.
    fn apply_one(&self, batch: &Batch) -> Result<Applied, StoreError> {
        // The common write, a user's record alone, skips the batch machinery.
        if let [
            Op::PutUser {
                id,
                record,
                expect,
                revision,
                tier: None,
            },
        ] = batch.ops()
        {
            let key = id_key(USER, *id);
            let stored = self.tree.get(key)?;
            if let Err(refused) = check_revision(*id, *expect, stored.as_deref()) {
                return Ok(refused);
            }
            self.tree.insert(key, user_value(*revision, record))?;
            return Ok(Applied::Done);
        }
        let reads = batch.ops().iter().any(|op| {
            matches!(
                op,
                Op::CreateUser { .. }
                    | Op::PutUser { tier: Some(_), .. }
                    | Op::DeleteUser { .. }
                    | Op::ClearListening { .. }
                    | Op::MoveEmailIndex { .. }
            )
        });
        if reads {
            self.apply_transaction(batch)
        } else {
            self.apply_plain(batch)
        }
    }
}

impl Store for SledStore {
    fn apply(&self, batch: &Batch) -> Result<Applied, StoreError> {
        let _w = self.gate.write();
        self.apply_one(batch)
    }

    /// One transaction for the group: its cost (sled's log reservation and the wake-up
    /// of its I/O) is paid once instead of once a batch. A deletion's archived events
    /// are read before the transaction, so an earlier batch of the group must not archive
    /// more of them: a group ends before a batch that deletes a user.
    fn apply_group(&self, batches: &[Batch]) -> Vec<Result<Applied, StoreError>> {
        let _w = self.gate.write();
        let deletes = |b: &Batch| {
            (b.ops().iter())
                .any(|op| matches!(op, Op::DeleteUser { .. } | Op::ClearListening { .. }))
        };
        let end = batches
            .iter()
            .skip(1)
            .position(deletes)
            .map_or(batches.len(), |p| p + 1);
        match &batches[..end] {
            [] => Vec::new(),
            [one] => vec![self.apply_one(one)],
            group => match self.apply_together(group) {
                Ok(applied) => applied.into_iter().map(Ok).collect(),
                // Nothing of the group was written: each on its own, so that only the
                // batch that fails is failed.
                Err(e) => {
                    tracing::warn!(error = %e, batches = group.len(), "a group write failed; applying its batches one by one");
                    apply_each(group, |b| self.apply_one(b))
                }
            },
        }
    }

    fn backup(
        &self,
        emit: &mut dyn FnMut(Copied<'_>) -> Result<(), StoreError>,
        at_cut: &mut dyn FnMut(),
    ) -> Result<Cut, StoreError> {
        self.backup_to(emit, at_cut)
    }

    fn restore_rows(&self, rows: &[crate::store::backup::Row]) -> Result<(), StoreError> {
        self.put_rows(rows)
    }

    fn flush(&self) -> Result<usize, StoreError> {
        let n = self.db.flush()?;
        if self.sync_data_file {
            let path = self.data_file();
            std::fs::File::open(&path)
                .and_then(|f| f.sync_data())
                .map_err(|e| StoreError::Io(format!("fdatasync {}: {e}", path.display())))?;
        }
        Ok(n)
    }

    fn size_on_disk(&self) -> Option<u64> {
        self.db.size_on_disk().ok()
    }
}
