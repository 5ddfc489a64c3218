//! Backups: a point-in-time copy of a store as one file ([`format`]), written while the
//! store serves ([`write`]) and restored into an empty store ([`restore`]).
//!
//! The rows are the store's own, byte for byte: sealed records stay sealed under their
//! users' data keys, and those stay wrapped by the master key, which is never in a
//! backup. A backup taken before a user's erasure still holds that user's wrapped key;
//! [`restore`] is given the users erased since (the tombstones of a newer backup, see
//! [`erasures`]) and erases them again before it reports success.

pub mod format;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};

pub use format::{BackupError, BackupReader, BackupWriter, Entry, Header, Trailer};

use super::sled::{email_index_entry, erased_user};
use super::{Batch, EmailIndex, Op, Store, StoreError, audit};
use crate::domain::ids::UserId;

/// What [`Store::backup`] hands out.
#[derive(Clone, Copy, Debug)]
pub enum Copied<'a> {
    /// A row of the scan: key and value.
    Row(&'a [u8], &'a [u8]),
    /// A write made while the scan ran: the key's value after it, `None` if removed.
    Change(&'a [u8], Option<&'a [u8]>),
}

/// A key and its value (`None`: removed), as a restore writes it.
pub type Row = (Vec<u8>, Option<Vec<u8>>);

/// The backup's point in time, as the store saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cut {
    /// The audit log's length then.
    pub audit_records: u64,
}

/// Rows written per batch by a restore, and batches between two flushes.
const RESTORE_BATCH: usize = 4096;
const RESTORE_BATCH_BYTES: usize = 16 << 20;
const FLUSH_EVERY: u64 = 64;

impl From<StoreError> for BackupError {
    fn from(e: StoreError) -> Self {
        BackupError::Io(e.to_string())
    }
}

/// Writes a backup of `store` to `out`; `cut_at_ms`, called at the copy's point in
/// time, tells the time then. Returns the output, the trailer and the file's size.
pub fn write<W: Write>(
    store: &dyn Store,
    out: W,
    header: &Header,
    cut_at_ms: impl FnOnce() -> i64,
) -> Result<(W, Trailer, u64), BackupError> {
    let io = |e: std::io::Error| StoreError::Io(format!("writing the backup: {e}"));
    let mut w = BackupWriter::new(out, header).map_err(io)?;
    let mut clock = Some(cut_at_ms);
    let mut cut_at = 0;
    let cut = store.backup(
        &mut |c| {
            match c {
                Copied::Row(k, v) => w.row(k, v),
                Copied::Change(k, v) => w.change(k, v),
            }
            .map_err(io)
        },
        &mut || cut_at = clock.take().map_or(cut_at, |now| now()),
    )?;
    let (rows, changes) = w.counts();
    let trailer = Trailer {
        rows,
        changes,
        audit_records: cut.audit_records,
        cut_at_ms: cut_at,
    };
    let (out, size) = w
        .finish(trailer.audit_records, trailer.cut_at_ms)
        .map_err(io)?;
    Ok((out, trailer, size))
}

/// Reads a whole backup, checking it; returns its header and trailer.
pub fn check(input: impl BufRead) -> Result<(Header, Trailer), BackupError> {
    let mut r = BackupReader::open(input)?;
    while r.next()?.is_some() {}
    let trailer = r.trailer().cloned().unwrap_or_default();
    Ok((r.header().clone(), trailer))
}

/// The users a backup says were erased (its tombstones), checking the whole file; with
/// its trailer, whose point in time says until when its tombstones are complete.
pub fn erasures(input: impl BufRead) -> Result<(HashSet<UserId>, Trailer), BackupError> {
    let mut r = BackupReader::open(input)?;
    let mut erased = HashSet::new();
    while let Some(entry) = r.next()? {
        match entry {
            Entry::Row(k, _) | Entry::Change(k, Some(_)) => erased.extend(erased_user(&k)),
            // A removal (of a tombstone past retention, or of anything else) erases
            // nobody.
            Entry::Change(_, None) => {}
        }
    }
    Ok((erased, r.trailer().cloned().unwrap_or_default()))
}

/// What a restore did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The backup's header.
    pub header: Header,
    /// Its trailer.
    pub trailer: Trailer,
    /// Users in the restored store.
    pub users: u64,
    /// Audit records, the chain verified.
    pub audit_records: u64,
    /// Users the backup held that were erased since, erased again.
    pub erased_again: u64,
}

/// Restores a backup into `store`, which must be empty: every row and change, then the
/// erasure of every user of `erased` the backup still holds, then the checks — the
/// audit chain verifies and is as long as at the backup's point in time, and every user
/// has its record and its route. On an error the store holds a partial copy: the caller
/// throws it away.
pub fn restore(
    input: impl BufRead,
    store: &dyn Store,
    erased: &HashSet<UserId>,
) -> Result<Restored, BackupError> {
    if store.user_count() > 0 || store.keyring_meta()?.is_some() {
        return Err(BackupError::Io(
            "the store to restore into is not empty".into(),
        ));
    }
    let mut r = BackupReader::open(input)?;
    let mut rows = Vec::with_capacity(RESTORE_BATCH);
    // The email index entries of users to erase again (the index is keyed by a hash of
    // the email, which only the entries themselves tell).
    let mut indexes: HashMap<UserId, Vec<EmailIndex>> = HashMap::new();
    let (mut written, mut bytes) = (0u64, 0usize);
    while let Some(entry) = r.next()? {
        let (key, value) = match entry {
            Entry::Row(k, v) => (k, Some(v)),
            Entry::Change(k, v) => (k, v),
        };
        if let Some((index, user)) = value.as_deref().and_then(|v| email_index_entry(&key, v))
            && erased.contains(&user)
        {
            indexes.entry(user).or_default().push(index);
        }
        bytes += key.len() + value.as_ref().map_or(0, Vec::len);
        rows.push((key, value));
        if rows.len() == RESTORE_BATCH || bytes >= RESTORE_BATCH_BYTES {
            store.restore_rows(&rows)?;
            rows.clear();
            bytes = 0;
            written += 1;
            // sled holds what is not flushed in memory: flushing as it goes bounds it.
            if written.is_multiple_of(FLUSH_EVERY) {
                store.flush()?;
            }
        }
    }
    store.restore_rows(&rows)?;
    let header = r.header().clone();
    let trailer = r.trailer().cloned().unwrap_or_default();
    let mut erased_again = 0;
    for &id in erased {
        if store.route_of(id)?.is_none() && store.load_user(id)?.is_none() {
            continue;
        }
        let email_indexes = indexes.remove(&id).unwrap_or_default();
        // Erased again now: its tombstone's time starts again (kept the longer).
        let at = crate::domain::time::Clock::now(&crate::domain::time::SystemClock);
        store.apply(&Batch::of(Op::DeleteUser {
            id,
            email_indexes,
            at,
        }))?;
        erased_again += 1;
    }
    store.flush()?;
    let audit_records = audit::verify(store)
        .map_err(|e| BackupError::Damaged(format!("its audit chain does not verify: {e}")))?;
    if audit_records != trailer.audit_records {
        return Err(BackupError::Damaged(format!(
            "its audit chain holds {audit_records} records, the log had {} at the backup's \
             point in time",
            trailer.audit_records
        )));
    }
    // Every user record has its route, and there are as many routes: one each.
    let users = store.user_count() as u64;
    let mut records = 0u64;
    for item in store.scan_users() {
        let (id, _) = item?;
        if store.route_of(id)?.is_none() {
            return Err(BackupError::Damaged(format!(
                "user {id} has a record and no route"
            )));
        }
        records += 1;
    }
    if records != users {
        return Err(BackupError::Damaged(format!(
            "it holds {records} user records for {users} routes"
        )));
    }
    Ok(Restored {
        header,
        trailer,
        users,
        audit_records,
        erased_again,
    })
}

#[cfg(test)]
mod tests;
