//! The embedded default store: one sled tree with prefixed keys.
//!
//! Keys: `u<id>` → the user's revision and sealed snapshot record (see [`user_value`]),
//! `t<id>` → the route: tier byte (the owning
//! registry) followed by the user's wrapped data key, so the one read that routes an
//! activation also brings its key, `h<HMAC of email>` → id (the
//! blind email index), `x<id>` → tombstone (deletion time), `s<id><seq>` → archived
//! security event, `a<seq>` → audit record, `m` → the keyring record, `n` → the runtime deny-list of networks, `c<track id>` → a catalog track, `j<job>` → a scheduled job's state, `r<job>\0<run>` → a run in its history, `X<HMAC of external id>` → id and `Y<id>` → that HMAC (provisioning), `i<id>` → a pending invitation, `L<id><seq>` → a chunk of the listening log, `P<id>` → the user's own models. `e<email>` → id is
//! the email claim of format 3 and older, moved to `h` by the keyring's migration.
//! Keeping them in one tree lets a user's record, key and routes change in one atomic
//! batch.
//!
//! Writes go through [`super::Store::apply`] (in `apply.rs`); this file holds the layout,
//! opening, and the reads.
//!
//! Known limit (DESIGN.md): sled 0.34 flushes with `sync_file_range`, which survives a
//! process crash but is no power-loss barrier; with `store.fsync_data_file` every flush
//! is followed by an `fdatasync` of sled's data file.

mod apply;
mod backup;
mod jobs;
mod listening;

pub(crate) use backup::{email_index_entry, erased_user};
use listening::listens_key;
mod provision;

use std::path::{Path, PathBuf};

use sled::Tree;

use super::{
    ArchiveStore, AuditStore, CatalogStore, EmailIndex, KeyStore, KeyedScan, ModelKind, ModelStore,
    Revision, Route, StoreError, UserScan, UserStore,
};
use crate::config::StoreConfig;
use crate::domain::ids::UserId;
use crate::domain::tier::UserTier;

const USER: u8 = b'u';
const TIER: u8 = b't';
const EMAIL: u8 = b'e';
const TOMBSTONE: u8 = b'x';
const AUDIT: u8 = b'a';
const SECURITY_EVENT: u8 = b's';
const EMAIL_INDEX: u8 = b'h';
const KEYRING: &[u8] = b"m";
const DENY_LIST: &[u8] = b"n";
const MODEL: u8 = b'M';
const LEDGER: u8 = b'l';
const TRACK: u8 = b'c';
const DASHBOARD: u8 = b'D';
const LISTENS: u8 = b'L';
const CUSTOM: u8 = b'P';
fn dashboard_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(DASHBOARD);
    k.extend_from_slice(name.as_bytes());
    k
}
fn track_key(id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(TRACK);
    k.extend_from_slice(id.as_bytes());
    k
}

fn model_key(kind: ModelKind, version: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[0] = MODEL;
    k[1] = kind.byte();
    k[2..].copy_from_slice(&version.to_be_bytes());
    k
}

fn event_key(user: UserId, seq: u64) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[..17].copy_from_slice(&id_key(SECURITY_EVENT, user));
    k[17..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn audit_key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = AUDIT;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn audit_seq(key: &[u8]) -> Option<u64> {
    let b: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

/// How often, and how long apart, opening retries a data directory whose lock is still
/// held by a closing handle in this process. Another process holding it fails after that.
const LOCK_RETRIES: u32 = 40;
const LOCK_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Where [`SledStore::rewrite`] builds its copy, and where the replaced files wait for
/// removal.
const REWRITE_DIR: &str = "sled.rewrite";
const OLD_DIR: &str = "sled.old";

/// Puts the data directory back in order after a crash inside [`SledStore::rewrite`]:
/// a copy with the live files still present is incomplete or unused (discarded); a
/// copy without them was complete (installed); replaced files are removed.
fn finish_interrupted_rewrite(dir: &Path) -> Result<(), StoreError> {
    let (live, fresh, old) = (dir.join("sled"), dir.join(REWRITE_DIR), dir.join(OLD_DIR));
    let io = |e: std::io::Error| StoreError::Io(format!("finishing an interrupted rewrite: {e}"));
    if fresh.exists() {
        if live.exists() {
            std::fs::remove_dir_all(&fresh).map_err(io)?;
        } else if old.exists() {
            std::fs::rename(&fresh, &live).map_err(io)?;
        }
    }
    if old.exists() && live.exists() {
        std::fs::remove_dir_all(&old).map_err(io)?;
    }
    Ok(())
}

/// sled in a data directory.
pub struct SledStore {
    db: sled::Db,
    tree: Tree,
    dir: PathBuf,
    /// `fdatasync` sled's data file after each flush (`store.fsync_data_file`).
    sync_data_file: bool,
    /// Held by writes, closed by a backup for the moments it starts and ends.
    gate: backup::Gate,
}

/// First byte of a user value that carries its revision: no record format uses it (they
/// start with their format version, 1 to 4), so a value written before revisions is told
/// apart and counts as revision 0.
const REVISED: u8 = 0xF0;

/// A user value: `[REVISED][revision, u64 big-endian][sealed record]`.
fn user_value(revision: Revision, record: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(9 + record.len());
    v.push(REVISED);
    v.extend_from_slice(&revision.to_be_bytes());
    v.extend_from_slice(record);
    v
}

/// The revision and record of a stored user value.
fn split_user_value(v: &[u8]) -> (Revision, &[u8]) {
    match v.split_first() {
        Some((&REVISED, rest)) if rest.len() >= 8 => {
            let (rev, record) = rest.split_at(8);
            let rev: [u8; 8] = rev.try_into().unwrap_or_default();
            (u64::from_be_bytes(rev), record)
        }
        _ => (0, v),
    }
}

fn id_key(prefix: u8, id: UserId) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = prefix;
    k[1..].copy_from_slice(id.as_bytes());
    k
}

fn legacy_email_key(email: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(email.len() + 1);
    k.push(EMAIL);
    k.extend_from_slice(email.as_bytes());
    k
}

fn index_key(index: &EmailIndex) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[0] = EMAIL_INDEX;
    k[1..].copy_from_slice(index);
    k
}

fn id_value(v: &[u8], what: &str) -> Result<UserId, StoreError> {
    let bytes: [u8; 16] = v.try_into().map_err(|_| StoreError::CorruptIndex {
        user: format!("<{what}, {} bytes>", v.len()),
        reason: "entry is not a user id".into(),
    })?;
    Ok(UserId::from_bytes(bytes))
}

fn tier_byte(t: UserTier) -> u8 {
    t.index() as u8
}

/// The route value: tier byte, then the wrapped data key (absent before encryption).
fn route_value(tier: UserTier, wrapped_key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + wrapped_key.len());
    v.push(tier_byte(tier));
    v.extend_from_slice(wrapped_key);
    v
}

fn id_from(user_key: &[u8]) -> Option<UserId> {
    let bytes: [u8; 16] = user_key.get(1..17)?.try_into().ok()?;
    Some(UserId::from_bytes(bytes))
}

impl SledStore {
    /// Opens (or creates) the store in `dir`. `cache_bytes` bounds sled's page cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Io(format!("create {}: {e}", dir.display())))?;
        finish_interrupted_rewrite(dir)?;
        let config = sled::Config::new()
            .path(dir.join("sled"))
            .cache_capacity(cache_bytes)
            // Durability comes from our group commit, not a timer.
            .flush_every_ms(None);
        // sled's background threads release the file lock a moment after the last handle
        // of a previous open is dropped; a reopen in the same process waits for that.
        let mut attempt = 0;
        let db = loop {
            match config.open() {
                // sled reports the lock as ErrorKind::Other with this message.
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && attempt < LOCK_RETRIES =>
                {
                    attempt += 1;
                    std::thread::sleep(LOCK_RETRY_PAUSE);
                }
                other => break other?,
            }
        };
        let tree = db.open_tree("roster")?;
        // Only now that the lock is ours: a spill of another process's backup is its own.
        backup::remove_stale_spills(dir);
        Ok(Self {
            db,
            tree,
            dir: dir.to_owned(),
            sync_data_file: false,
            gate: backup::Gate::default(),
        })
    }

    /// Opens the store `config` describes.
    pub(crate) fn open_with(config: &StoreConfig) -> Result<Self, StoreError> {
        let mut s = Self::open(&config.data_dir, config.cache_bytes)?;
        s.sync_data_file = config.fsync_data_file;
        Ok(s)
    }

    /// Copies every live entry into a new database and puts it in place of this one.
    ///
    /// sled's log keeps superseded values until it reclaims their segments, so after
    /// records written in clear have been sealed, their clear bytes may still be in the
    /// file; this is what removes them. Crash-safe: the copy is complete and flushed
    /// before the directories are swapped, and [`SledStore::open`] finishes or discards
    /// an interrupted swap.
    pub(crate) fn rewrite(self, cache_bytes: u64) -> Result<Self, StoreError> {
        let dir = self.dir.clone();
        let (live, fresh, old) = (dir.join("sled"), dir.join(REWRITE_DIR), dir.join(OLD_DIR));
        let io = |what: &str, e: std::io::Error| StoreError::Io(format!("rewrite: {what}: {e}"));
        if fresh.exists() {
            std::fs::remove_dir_all(&fresh).map_err(|e| io("remove a stale copy", e))?;
        }
        {
            let db = sled::Config::new()
                .path(&fresh)
                .cache_capacity(cache_bytes)
                .flush_every_ms(None)
                .open()?;
            let tree = db.open_tree("roster")?;
            for kv in self.tree.iter() {
                let (k, v) = kv?;
                tree.insert(k, v)?;
            }
            db.flush()?;
        }
        let sync_data_file = self.sync_data_file;
        drop(self);
        std::fs::rename(&live, &old).map_err(|e| io("retire the old files", e))?;
        std::fs::rename(&fresh, &live).map_err(|e| io("install the copy", e))?;
        std::fs::remove_dir_all(&old).map_err(|e| io("remove the old files", e))?;
        let mut s = Self::open(&dir, cache_bytes)?;
        s.sync_data_file = sync_data_file;
        Ok(s)
    }

    /// sled's data file, for an extra `fdatasync` after each flush.
    fn data_file(&self) -> PathBuf {
        self.dir.join("sled").join("db")
    }
}

impl UserStore for SledStore {
    fn load_user(&self, id: UserId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.load_user_at(id)?.map(|(_, record)| record))
    }

    fn load_user_at(&self, id: UserId) -> Result<Option<(Revision, Vec<u8>)>, StoreError> {
        Ok(self.tree.get(id_key(USER, id))?.map(|v| {
            let (rev, record) = split_user_value(&v);
            (rev, record.to_vec())
        }))
    }

    fn route_of(&self, id: UserId) -> Result<Option<Route>, StoreError> {
        let Some(v) = self.tree.get(id_key(TIER, id))? else {
            return Ok(None);
        };
        let Some((&b, key)) = v.split_first() else {
            return Err(StoreError::CorruptIndex {
                user: id.to_string(),
                reason: "empty route entry".into(),
            });
        };
        let tier =
            UserTier::ALL
                .get(usize::from(b))
                .copied()
                .ok_or_else(|| StoreError::CorruptIndex {
                    user: id.to_string(),
                    reason: format!("unknown tier byte {b}"),
                })?;
        Ok(Some((tier, (!key.is_empty()).then(|| key.to_vec()))))
    }

    fn lookup_email(&self, index: &EmailIndex) -> Result<Option<UserId>, StoreError> {
        match self.tree.get(index_key(index))? {
            Some(v) => Ok(Some(id_value(&v, "email index")?)),
            None => Ok(None),
        }
    }

    fn scan_users(&self) -> UserScan<'_> {
        Box::new(self.tree.scan_prefix([USER]).filter_map(|kv| match kv {
            Ok((k, v)) => id_from(&k).map(|id| Ok((id, split_user_value(&v).1.to_vec()))),
            Err(e) => Some(Err(e.into())),
        }))
    }

    fn scan_users_with_keys(&self, from: Option<UserId>, to: Option<UserId>) -> KeyedScan<'_> {
        let range = |prefix: u8| {
            let lo = from.map_or_else(|| vec![prefix], |id| id_key(prefix, id).to_vec());
            let hi = to.map_or_else(|| vec![prefix + 1], |id| id_key(prefix, id).to_vec());
            self.tree.range(lo..hi)
        };
        let mut routes = range(TIER).peekable();
        Box::new(range(USER).filter_map(move |kv| {
            let (k, v) = match kv {
                Ok(kv) => kv,
                Err(e) => return Some(Err(e.into())),
            };
            let id = id_from(&k)?;
            // Routes and records are both in id order: step the routes up to this user.
            let key = loop {
                let step = match routes.peek() {
                    Some(Ok((rk, rv))) => match rk[1..].cmp(&k[1..]) {
                        std::cmp::Ordering::Less => None,
                        std::cmp::Ordering::Equal => Some((rv.len() > 1).then(|| rv[1..].to_vec())),
                        std::cmp::Ordering::Greater => Some(None),
                    },
                    Some(Err(_)) => {
                        return routes.next().and_then(Result::err).map(|e| Err(e.into()));
                    }
                    None => Some(None),
                };
                match step {
                    Some(key) => break key,
                    None => {
                        routes.next();
                    }
                }
            };
            Some(Ok((id, key, split_user_value(&v).1.to_vec())))
        }))
    }

    fn user_id_bounds(&self) -> Result<Option<(UserId, UserId)>, StoreError> {
        let mut users = self.tree.scan_prefix([USER]).keys();
        let first = users.next().transpose()?;
        let last = users.next_back().transpose()?;
        Ok(first.and_then(|f| {
            let first = id_from(&f)?;
            Some((first, last.as_deref().and_then(id_from).unwrap_or(first)))
        }))
    }

    fn user_count(&self) -> usize {
        self.tree.scan_prefix([TIER]).count()
    }
}

impl KeyStore for SledStore {
    fn load_key(&self, id: UserId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.route_of(id)?.and_then(|(_, key)| key))
    }

    fn scan_keys(&self) -> UserScan<'_> {
        Box::new(self.tree.scan_prefix([TIER]).filter_map(|kv| match kv {
            Ok((k, v)) if v.len() > 1 => id_from(&k).map(|id| Ok((id, v[1..].to_vec()))),
            Ok(_) => None,
            Err(e) => Some(Err(e.into())),
        }))
    }

    fn replace_key(&self, id: UserId, old: &[u8], new: &[u8]) -> Result<bool, StoreError> {
        let _w = self.gate.write();
        let key = id_key(TIER, id);
        let Some(current) = self.tree.get(key)? else {
            return Ok(false);
        };
        if current.get(1..) != Some(old) || current.is_empty() {
            return Ok(false);
        }
        let mut next = Vec::with_capacity(1 + new.len());
        next.push(current[0]);
        next.extend_from_slice(new);
        // A tier change in between fails the swap; the caller reads again.
        Ok(self
            .tree
            .compare_and_swap(key, Some(current), Some(next))?
            .is_ok())
    }

    fn keyring_meta(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(KEYRING)?.map(|v| v.to_vec()))
    }

    fn put_keyring_meta(&self, meta: &[u8]) -> Result<(), StoreError> {
        let _w = self.gate.write();
        self.tree.insert(KEYRING, meta)?;
        Ok(())
    }

    fn legacy_emails(&self) -> Result<Vec<(String, UserId)>, StoreError> {
        self.tree
            .scan_prefix([EMAIL])
            .map(|kv| {
                let (k, v) = kv?;
                let email = String::from_utf8_lossy(&k[1..]).into_owned();
                Ok((email, id_value(&v, "legacy email claim")?))
            })
            .collect()
    }

    fn migrate_email(&self, email: &str, index: &EmailIndex, id: UserId) -> Result<(), StoreError> {
        let _w = self.gate.write();
        let mut b = sled::Batch::default();
        b.remove(legacy_email_key(email));
        b.insert(&index_key(index)[..], id.as_bytes());
        self.tree.apply_batch(b)?;
        Ok(())
    }

    fn seal_user(
        &self,
        id: UserId,
        tier: UserTier,
        wrapped_key: &[u8],
        record: &[u8],
    ) -> Result<(), StoreError> {
        let _w = self.gate.write();
        let rev = match self.tree.get(id_key(USER, id))? {
            Some(v) => split_user_value(&v).0,
            None => 0,
        };
        let mut b = sled::Batch::default();
        b.insert(&id_key(TIER, id), route_value(tier, wrapped_key));
        b.insert(
            &id_key(USER, id),
            user_value(crate::store::next_revision(rev), record),
        );
        self.tree.apply_batch(b)?;
        Ok(())
    }
}

impl AuditStore for SledStore {
    fn audit_after(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let Some(from) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        self.tree
            .range(audit_key(from)..=audit_key(u64::MAX))
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                let seq = audit_seq(&k).ok_or_else(|| StoreError::Io("bad audit key".into()))?;
                Ok((seq, v.to_vec()))
            })
            .collect()
    }

    fn last_audit(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        match self.tree.scan_prefix([AUDIT]).next_back() {
            None => Ok(None),
            Some(kv) => {
                let (k, v) = kv?;
                let seq = audit_seq(&k).ok_or_else(|| StoreError::Io("bad audit key".into()))?;
                Ok(Some((seq, v.to_vec())))
            }
        }
    }
}

impl ModelStore for SledStore {
    fn models(&self, kind: ModelKind) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.tree
            .scan_prefix([MODEL, kind.byte()])
            .map(|kv| {
                let (k, v) = kv?;
                let version = k
                    .get(2..10)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| StoreError::Io("bad model key".into()))?;
                Ok((version, v.to_vec()))
            })
            .collect()
    }
}

impl ArchiveStore for SledStore {
    fn import_ledger(&self, user: UserId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(id_key(LEDGER, user))?.map(|v| v.to_vec()))
    }

    fn scan_security_events(&self) -> super::SecurityEventScan<'_> {
        Box::new(self.tree.scan_prefix([SECURITY_EVENT]).map(|kv| {
            let (k, v) = kv?;
            let bad = || StoreError::Io("bad security event key".into());
            let user = id_from(&k).ok_or_else(bad)?;
            let seq: [u8; 8] = k
                .get(17..25)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(bad)?;
            Ok((user, u64::from_be_bytes(seq), v.to_vec()))
        }))
    }

    fn listens(&self, user: UserId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.listening_log(user)
    }

    fn custom_models(&self, user: UserId) -> Result<Option<Vec<u8>>, StoreError> {
        self.own_models(user)
    }

    fn scan_custom_models(&self) -> super::CustomModelScan<'_> {
        self.every_own_models()
    }

    fn scan_tombstones(&self) -> super::TombstoneScan<'_> {
        self.every_tombstone()
    }

    fn security_events_before(
        &self,
        user: UserId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.tree
            .range(event_key(user, 0)..event_key(user, before))
            .rev()
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                let seq: [u8; 8] = k
                    .get(17..25)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| StoreError::Io("bad security event key".into()))?;
                Ok((u64::from_be_bytes(seq), v.to_vec()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;

impl CatalogStore for SledStore {
    fn track(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(track_key(id))?.map(|v| v.to_vec()))
    }

    fn tracks(&self) -> super::TrackScan<'_> {
        Box::new(self.tree.scan_prefix([TRACK]).map(|kv| {
            let (k, v) = kv?;
            let id = std::str::from_utf8(&k[1..])
                .map_err(|_| StoreError::Io("a catalog key that is not UTF-8".into()))?;
            Ok((id.to_owned(), v.to_vec()))
        }))
    }
}
