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

use ::sled::transaction::{ConflictableTransactionError, TransactionError};

use super::{
    KEYRING, LEDGER, SECURITY_EVENT, SledStore, TIER, TOMBSTONE, USER, audit_key, event_key,
    id_key, index_key, jobs::job_key, jobs::job_run_key, model_key, provision::external_key,
    provision::external_of_key, provision::invitation_key, route_value, split_user_value,
    track_key, user_value,
};
use crate::domain::ids::UserId;
use crate::store::{Applied, Batch, Op, Revision, Store, StoreError};

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
        self.tree
            .scan_prefix(id_key(SECURITY_EVENT, id))
            .keys()
            .map(|k| k.map_err(StoreError::from))
            .collect()
    }

    fn tombstone() -> [u8; 8] {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        now.to_le_bytes()
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
                Op::CreateUser { .. }
                | Op::PutUser { tier: Some(_), .. }
                | Op::DeleteUser { .. }
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
        let mut archived = Vec::new();
        for op in batch.ops() {
            if let Op::DeleteUser { id, .. } = op {
                archived.push(self.archived_keys(*id)?);
            }
        }
        let tombstone = Self::tombstone();
        let result = self.tree.transaction(|tx| {
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
                        if tx.get(ekey)?.is_some() {
                            return Err(refuse(Applied::EmailTaken));
                        }
                        tx.insert(ekey.as_slice(), id.as_bytes().as_slice())?;
                        tx.insert(id_key(USER, *id).as_slice(), user_value(*revision, record))?;
                        tx.insert(
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
                        let stored = tx.get(ukey)?;
                        check_revision(*id, *expect, stored.as_deref()).map_err(refuse)?;
                        tx.insert(ukey.as_slice(), user_value(*revision, record))?;
                        if let Some(tier) = tier {
                            // The route keeps its data key.
                            let tkey = id_key(TIER, *id);
                            let key = tx
                                .get(tkey)?
                                .map(|v| v.get(1..).unwrap_or_default().to_vec());
                            tx.insert(
                                tkey.as_slice(),
                                route_value(*tier, key.as_deref().unwrap_or_default()),
                            )?;
                        }
                    }
                    Op::DeleteUser { id, email_indexes } => {
                        tx.remove(id_key(USER, *id).as_slice())?;
                        tx.remove(id_key(TIER, *id).as_slice())?;
                        tx.remove(id_key(LEDGER, *id).as_slice())?;
                        tx.remove(invitation_key(*id).as_slice())?;
                        if let Some(x) = tx.remove(external_of_key(*id).as_slice())?
                            && let Ok(x) = <[u8; 32]>::try_from(x.as_ref())
                            && tx.get(external_key(&x))?.as_deref()
                                == Some(id.as_bytes().as_slice())
                        {
                            tx.remove(external_key(&x).as_slice())?;
                        }
                        for index in email_indexes {
                            let key = index_key(index);
                            // Only its own claim: a key derived from this user's email
                            // may name a look-alike account.
                            if tx.get(key)?.as_deref() == Some(id.as_bytes().as_slice()) {
                                tx.remove(key.as_slice())?;
                            }
                        }
                        for k in deletions.next().into_iter().flatten() {
                            tx.remove(k.clone())?;
                        }
                        tx.insert(id_key(TOMBSTONE, *id).as_slice(), tombstone.as_slice())?;
                    }
                    Op::MoveEmailIndex { id, from, to } => {
                        let (from, to) = (index_key(from), index_key(to));
                        match tx.get(to)? {
                            Some(owner) if owner.as_ref() != id.as_bytes().as_slice() => {
                                return Err(refuse(Applied::EmailTaken));
                            }
                            _ => {}
                        }
                        if tx.get(from)?.as_deref() == Some(id.as_bytes().as_slice()) {
                            tx.remove(from.as_slice())?;
                        }
                        tx.insert(to.as_slice(), id.as_bytes().as_slice())?;
                    }
                    Op::ArchiveEvent { user, seq, blob } => {
                        tx.insert(event_key(*user, *seq).as_slice(), blob.as_slice())?;
                    }
                    Op::DropArchivedEvent { user, seq } => {
                        tx.remove(event_key(*user, *seq).as_slice())?;
                    }
                    Op::PutImportLedger { user, blob } => {
                        tx.insert(id_key(LEDGER, *user).as_slice(), blob.as_slice())?;
                    }
                    Op::Audit { seq, record } => {
                        tx.insert(audit_key(*seq).as_slice(), record.as_slice())?;
                    }
                    Op::KeyringMeta { meta } => {
                        tx.insert(KEYRING, meta.as_slice())?;
                    }
                    Op::PutModel {
                        kind,
                        version,
                        record,
                    } => {
                        tx.insert(model_key(*kind, *version).as_slice(), record.as_slice())?;
                    }
                    Op::DropModel { kind, version } => {
                        tx.remove(model_key(*kind, *version).as_slice())?;
                    }
                    Op::PutTrack { id, record } => {
                        tx.insert(track_key(id), record.as_slice())?;
                    }
                    Op::DropTrack { id } => {
                        tx.remove(track_key(id))?;
                    }
                    Op::PutJob { name, record } => {
                        tx.insert(job_key(name), record.as_slice())?;
                    }
                    Op::PutJobRun { name, run, record } => {
                        tx.insert(job_run_key(name, *run), record.as_slice())?;
                    }
                    Op::DropJobRun { name, run } => {
                        tx.remove(job_run_key(name, *run))?;
                    }
                    Op::PutExternalId { index, user } => {
                        if let Some(old) = tx.get(external_of_key(*user))?
                            && old.as_ref() != index.as_slice()
                            && let Ok(old) = <[u8; 32]>::try_from(old.as_ref())
                        {
                            tx.remove(external_key(&old).as_slice())?;
                        }
                        tx.insert(external_key(index).as_slice(), user.as_bytes().as_slice())?;
                        tx.insert(external_of_key(*user).as_slice(), index.as_slice())?;
                    }
                    Op::PutInvitation { user, record } => {
                        tx.insert(invitation_key(*user).as_slice(), record.as_slice())?;
                    }
                    Op::DropInvitation { user } => {
                        tx.remove(invitation_key(*user).as_slice())?;
                    }
                }
            }
            Ok(Applied::Done)
        });
        match result {
            Ok(done) => Ok(done),
            Err(TransactionError::Abort(refused)) => Ok(refused),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }
}

impl Store for SledStore {
    fn apply(&self, batch: &Batch) -> Result<Applied, StoreError> {
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
                    | Op::MoveEmailIndex { .. }
            )
        });
        if reads {
            self.apply_transaction(batch)
        } else {
            self.apply_plain(batch)
        }
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
