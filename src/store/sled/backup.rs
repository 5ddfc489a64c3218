//! A point-in-time copy of the sled store while it serves, and the restore of one.
//!
//! sled has no snapshots, so the copy is a scan that runs while writes go on (each key
//! read once, at whatever moment the scan reaches it) followed by every write made
//! during the scan, in order. Replaying those writes over the scan's rows gives each key
//! the value it had at the scan's end: a key written during the scan ends with its last
//! write, a key not written has the value the scan read, which it still had. The writes
//! come from a sled subscriber on the whole tree, which sees every write to a key in the
//! order it was applied; it is registered while the store's writes are held (the gate),
//! and at the end, with the writes held again, a sentinel key is written whose event
//! follows every other: read up to it, the changes are whole, and that moment is the
//! backup's point in time. The subscriber must be read as fast as the store writes
//! (sled blocks writers once 1,024 events wait), so a thread spills them to a file in
//! the data directory until the sentinel.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use sled::Event;

use super::{EMAIL_INDEX, SledStore, TOMBSTONE, id_from, id_value};
use crate::domain::ids::UserId;
use crate::domain::time::Timestamp;
use crate::store::backup::{Copied, Cut};
use crate::store::{AuditStore, EmailIndex, StoreError, TombstoneScan};

/// The spill files' names: `backup-<random>.changes` in the data directory.
const SPILL_PREFIX: &str = "backup-";
const SPILL_SUFFIX: &str = ".changes";

/// Holds the store's writes for the moments a backup starts and ends.
#[derive(Default)]
pub(super) struct Gate(RwLock<()>);

impl Gate {
    /// Held by every write while it runs.
    pub(super) fn write(&self) -> RwLockReadGuard<'_, ()> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with no write running or starting.
    fn closed<T>(&self, f: impl FnOnce() -> T) -> T {
        let _held = self.0.write().unwrap_or_else(|p| p.into_inner());
        f()
    }
}

/// Removes spill files a crash left behind (they hold nothing anyone needs).
pub(super) fn remove_stale_spills(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(SPILL_PREFIX) && name.ends_with(SPILL_SUFFIX) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A spill frame: key length, key, then 0 (removed) or 1 with value length and value.
fn spill(out: &mut impl Write, event: &Event) -> std::io::Result<()> {
    let put = |out: &mut dyn Write, b: &[u8]| -> std::io::Result<()> {
        out.write_all(&(b.len() as u32).to_le_bytes())?;
        out.write_all(b)
    };
    match event {
        Event::Insert { key, value } => {
            put(out, key)?;
            out.write_all(&[1])?;
            put(out, value)
        }
        Event::Remove { key } => {
            put(out, key)?;
            out.write_all(&[0])
        }
    }
}

fn unspill(input: &mut impl Read) -> std::io::Result<Option<crate::store::backup::Row>> {
    fn take(input: &mut impl Read) -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        input.read_exact(&mut len)?;
        let mut b = vec![0u8; u32::from_le_bytes(len) as usize];
        input.read_exact(&mut b)?;
        Ok(b)
    }
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut key = vec![0u8; u32::from_le_bytes(len) as usize];
    input.read_exact(&mut key)?;
    let mut present = [0u8; 1];
    input.read_exact(&mut present)?;
    let value = if present[0] == 1 {
        Some(take(input)?)
    } else {
        None
    };
    Ok(Some((key, value)))
}

/// The subscriber's reader: spills every event until the one of `sentinel`, which the
/// backup writes with the store's writes held, so every event before it is the whole of
/// the changes. sled's blocking iterator passes over reservations that wrote nothing (a
/// write of the value already there, a removal of an absent key); its `next_timeout`
/// does not, and would stall on the first one. A failure to spill is kept, and the
/// events are still read to the sentinel: a subscriber left unread blocks the store's
/// writers once 1,024 events wait.
fn drain(events: sled::Subscriber, path: PathBuf, sentinel: Vec<u8>) -> std::io::Result<u64> {
    let mut out = File::create(&path).map(BufWriter::new);
    let mut n = 0u64;
    let mut failed = None;
    for event in events {
        if event.key().as_ref() == sentinel.as_slice() {
            break;
        }
        if failed.is_some() {
            continue;
        }
        if let Ok(w) = &mut out {
            match spill(w, &event) {
                Ok(()) => n += 1,
                Err(e) => failed = Some(e),
            }
        }
    }
    let mut out = out?;
    if let Some(e) = failed {
        return Err(e);
    }
    out.flush()?;
    Ok(n)
}

impl SledStore {
    /// See [`crate::store::Store::backup`].
    pub(super) fn backup_to(
        &self,
        emit: &mut dyn FnMut(Copied<'_>) -> Result<(), StoreError>,
        at_cut: &mut dyn FnMut(),
    ) -> Result<Cut, StoreError> {
        let tag = rand::random::<u64>();
        let path = self
            .dir
            .join(format!("{SPILL_PREFIX}{tag:016x}{SPILL_SUFFIX}"));
        // No stored key starts with `~`.
        let sentinel = format!("~backup-{tag:016x}").into_bytes();
        let events = self.gate.closed(|| self.tree.watch_prefix(vec![]));
        let drainer = {
            let (path, sentinel) = (path.clone(), sentinel.clone());
            std::thread::Builder::new()
                .name("backup-changes".into())
                .spawn(move || drain(events, path, sentinel))
                .map_err(|e| StoreError::Io(format!("starting the backup's reader: {e}")))?
        };
        let scanned = self.scan_into(emit);
        let cut = self.gate.closed(|| {
            // The sentinel's event comes after every write made so far, and no other
            // can start: the reader stops at it with all of them.
            self.tree.insert(&sentinel, &[][..])?;
            at_cut();
            let drained = drainer
                .join()
                .map_err(|_| StoreError::Io("the backup's change reader panicked".into()))
                .and_then(|r| {
                    r.map_err(|e| StoreError::Io(format!("spilling the backup's changes: {e}")))
                });
            // The reader is gone with its subscriber: this removal is seen by nobody.
            self.tree.remove(&sentinel)?;
            let audit_records = self.last_audit()?.map_or(0, |(seq, _)| seq);
            Ok::<_, StoreError>((drained?, audit_records))
        });
        let result = scanned.and_then(|()| {
            let (changes, audit_records) = cut?;
            let mut input = BufReader::new(
                File::open(&path).map_err(|e| StoreError::Io(format!("the spill: {e}")))?,
            );
            for _ in 0..changes {
                let (key, value) = unspill(&mut input)
                    .map_err(|e| StoreError::Io(format!("reading the spill: {e}")))?
                    .ok_or_else(|| StoreError::Io("the spill ended early".into()))?;
                emit(Copied::Change(&key, value.as_deref()))?;
            }
            Ok(Cut { audit_records })
        });
        let _ = std::fs::remove_file(&path);
        result
    }

    fn scan_into(
        &self,
        emit: &mut dyn FnMut(Copied<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for kv in self.tree.iter() {
            let (k, v) = kv?;
            emit(Copied::Row(&k, &v))?;
        }
        Ok(())
    }

    /// See [`crate::store::Store::restore_rows`].
    ///
    /// Row by row, not as one sled batch: nothing needs the rows of a restore to be
    /// atomic (the restore marker guards the whole), and sled 0.34's batches grow its
    /// memory past its cache on a large bulk load (spacejam/sled#1303).
    pub(super) fn put_rows(&self, rows: &[crate::store::backup::Row]) -> Result<(), StoreError> {
        let _w = self.gate.write();
        for (k, v) in rows {
            match v {
                Some(v) => self.tree.insert(k.as_slice(), v.as_slice())?,
                None => self.tree.remove(k.as_slice())?,
            };
        }
        Ok(())
    }
}

impl SledStore {
    /// Every tombstone: the erased user and when (a value that is not a time reads as
    /// the epoch, so retention drops it).
    pub(super) fn every_tombstone(&self) -> TombstoneScan<'_> {
        Box::new(self.tree.scan_prefix([TOMBSTONE]).filter_map(|kv| {
            let (k, v) = match kv {
                Ok(kv) => kv,
                Err(e) => return Some(Err(e.into())),
            };
            let id = erased_user(&k)?;
            let ms = <[u8; 8]>::try_from(v.as_ref()).map_or(0, u64::from_le_bytes);
            let at = Timestamp::from_millis(i64::try_from(ms).unwrap_or(i64::MAX));
            Some(Ok((id, at)))
        }))
    }
}

/// The user a row's key says was erased (a tombstone), if it is one.
pub(crate) fn erased_user(key: &[u8]) -> Option<UserId> {
    (key.first() == Some(&TOMBSTONE) && key.len() == 17)
        .then(|| id_from(key))
        .flatten()
}

/// The email index entry a row is, if it is one: the index and the user it names.
pub(crate) fn email_index_entry(key: &[u8], value: &[u8]) -> Option<(EmailIndex, UserId)> {
    if key.first() != Some(&EMAIL_INDEX) {
        return None;
    }
    let index: EmailIndex = key.get(1..)?.try_into().ok()?;
    Some((index, id_value(value, "email index").ok()?))
}
