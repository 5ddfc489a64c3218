//! The embedded default store: one sled tree with prefixed keys.
//!
//! Keys: `u<id>` → the user's revision and sealed snapshot record (see [`user_value`]),
//! `t<id>` → the route: tier byte (the owning
//! registry) followed by the user's wrapped data key, so the one read that routes an
//! activation also brings its key, `h<HMAC of email>` → id (the
//! blind email index), `x<id>` → tombstone (deletion time), `s<id><seq>` → archived
//! security event, `a<seq>` → audit record, `m` → the keyring record. `e<email>` → id is
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

use std::path::{Path, PathBuf};

use sled::Tree;

use super::{
    ArchiveStore, AuditStore, EmailIndex, KeyStore, Revision, Route, StoreError, UserScan,
    UserStore,
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
        Ok(Self {
            db,
            tree,
            dir: dir.to_owned(),
            sync_data_file: false,
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

impl ArchiveStore for SledStore {
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
mod tests {
    use super::*;
    use crate::store::{Applied, Batch, Op, Store};

    fn create(
        s: &SledStore,
        id: UserId,
        index: [u8; 32],
        tier: UserTier,
        key: &[u8],
        rec: &[u8],
    ) -> Applied {
        s.apply(&Batch::of(Op::CreateUser {
            id,
            revision: 1,
            email_index: index,
            tier,
            wrapped_key: key.to_vec(),
            record: rec.to_vec(),
        }))
        .unwrap()
    }

    /// Writes `rec` as `revision`, made from `expect`.
    fn put(
        s: &SledStore,
        id: UserId,
        (expect, revision): (Revision, Revision),
        tier: Option<UserTier>,
        rec: &[u8],
    ) -> Applied {
        s.apply(&Batch::of(Op::PutUser {
            id,
            record: rec.to_vec(),
            expect,
            revision,
            tier,
        }))
        .unwrap()
    }

    #[test]
    fn create_claims_the_email_once_and_delete_frees_it_and_shreds_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path(), 1 << 20).unwrap();
        let a = UserId::generate();
        let b = UserId::generate();
        let x = [7u8; 32];
        assert_eq!(
            create(&s, a, x, UserTier::Free, b"ka", b"ra"),
            Applied::Done
        );
        assert_eq!(
            create(&s, b, x, UserTier::Vip, b"kb", b"rb"),
            Applied::EmailTaken
        );
        assert_eq!(s.load_user(b).unwrap(), None, "loser wrote nothing");
        assert_eq!(s.load_key(b).unwrap(), None, "loser wrote no key");
        assert_eq!(s.lookup_email(&x).unwrap(), Some(a));
        assert_eq!(s.load_key(a).unwrap().as_deref(), Some(&b"ka"[..]));
        assert_eq!(s.tier_of(a).unwrap(), Some(UserTier::Free));
        assert_eq!(
            put(&s, a, (1, 2), Some(UserTier::Premium), b"ra2"),
            Applied::Done
        );
        assert_eq!(s.tier_of(a).unwrap(), Some(UserTier::Premium));
        assert_eq!(s.load_user(a).unwrap().as_deref(), Some(&b"ra2"[..]));
        assert_eq!(s.user_count(), 1);
        assert_eq!(s.scan_users().count(), 1, "the key entry is not a user");
        assert_eq!(s.scan_keys().count(), 1);
        assert_eq!(
            s.route_of(a).unwrap(),
            Some((UserTier::Premium, Some(b"ka".to_vec()))),
            "a tier change keeps the data key"
        );
        assert_eq!(s.route_of(b).unwrap(), None);
        assert!(
            !s.replace_key(a, b"stale", b"k2").unwrap(),
            "CAS on a stale value"
        );
        assert!(s.replace_key(a, b"ka", b"ka2").unwrap());
        assert_eq!(s.load_key(a).unwrap().as_deref(), Some(&b"ka2"[..]));
        s.apply(&Batch::of(Op::ArchiveEvent {
            user: a,
            seq: 1,
            blob: b"e1".to_vec(),
        }))
        .unwrap();
        s.apply(&Batch::of(Op::DeleteUser {
            id: a,
            email_indexes: vec![x],
        }))
        .unwrap();
        assert_eq!(s.lookup_email(&x).unwrap(), None);
        assert_eq!(s.load_user(a).unwrap(), None);
        assert_eq!(s.load_key(a).unwrap(), None, "the data key is destroyed");
        assert_eq!(s.tier_of(a).unwrap(), None);
        assert_eq!(s.scan_users().count(), 0);
        assert_eq!(s.scan_keys().count(), 0);
        assert_eq!(
            s.scan_security_events().count(),
            0,
            "its archive went with it"
        );
        s.flush().unwrap();
    }

    #[test]
    fn email_claims_move_only_to_a_free_key_and_go_only_with_their_user() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path(), 1 << 20).unwrap();
        let (a, b) = (UserId::generate(), UserId::generate());
        let (old_a, new_a, b_key) = ([1; 32], [2; 32], [3; 32]);
        create(&s, a, old_a, UserTier::Free, b"ka", b"ra");
        create(&s, b, b_key, UserTier::Free, b"kb", b"rb");
        let mv = |from, to| {
            s.apply(&Batch::of(Op::MoveEmailIndex { id: a, from, to }))
                .unwrap()
        };
        // Onto a look-alike's claim: refused, nothing moves.
        assert_eq!(mv(old_a, b_key), Applied::EmailTaken);
        assert_eq!(s.lookup_email(&old_a).unwrap(), Some(a));
        assert_eq!(s.lookup_email(&b_key).unwrap(), Some(b));
        // Onto a free key: moved.
        assert_eq!(mv(old_a, new_a), Applied::Done);
        assert_eq!(s.lookup_email(&old_a).unwrap(), None);
        assert_eq!(s.lookup_email(&new_a).unwrap(), Some(a));
        // A deletion naming a claim of someone else's leaves it alone.
        s.apply(&Batch::of(Op::DeleteUser {
            id: a,
            email_indexes: vec![new_a, b_key],
        }))
        .unwrap();
        assert_eq!(s.lookup_email(&new_a).unwrap(), None);
        assert_eq!(
            s.lookup_email(&b_key).unwrap(),
            Some(b),
            "b keeps its email"
        );
    }

    #[test]
    fn a_write_from_an_old_revision_is_refused_as_a_value_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path(), 1 << 20).unwrap();
        let a = UserId::generate();
        create(&s, a, [1; 32], UserTier::Free, b"k", b"r1");
        assert_eq!(s.load_user_at(a).unwrap(), Some((1, b"r1".to_vec())));
        assert_eq!(put(&s, a, (1, 20), None, b"r2"), Applied::Done);
        // Another writer, made from revision 1 too, loses.
        assert_eq!(
            put(&s, a, (1, 21), None, b"other"),
            Applied::Stale {
                user: a,
                stored: Some(20)
            }
        );
        // And its next write, made from the revision it was refused, loses too: the
        // store never held that revision.
        assert_eq!(
            put(&s, a, (21, 31), None, b"other again"),
            Applied::Stale {
                user: a,
                stored: Some(20)
            }
        );
        assert_eq!(
            put(&s, a, (20, 30), Some(UserTier::Vip), b"other"),
            Applied::Done,
            "the next revision, from the stored one, is taken"
        );
        assert_eq!(
            put(&s, a, (20, 32), Some(UserTier::Vip), b"late"),
            Applied::Stale {
                user: a,
                stored: Some(30)
            },
            "a tier change checks the revision too"
        );
        assert_eq!(s.load_user_at(a).unwrap(), Some((30, b"other".to_vec())));
        assert_eq!(s.tier_of(a).unwrap(), Some(UserTier::Vip));
        // A refused op takes its whole batch with it.
        let mut batch = Batch::of(Op::Audit {
            seq: 1,
            record: b"audit".to_vec(),
        });
        batch.push(Op::PutUser {
            id: a,
            record: b"x".to_vec(),
            expect: 9,
            revision: 10,
            tier: None,
        });
        assert!(matches!(s.apply(&batch).unwrap(), Applied::Stale { .. }));
        assert!(
            s.audit_after(0, 10).unwrap().is_empty(),
            "the audit record went nowhere"
        );
        // A user that is gone cannot be written back.
        let b = UserId::generate();
        assert_eq!(
            put(&s, b, (0, 1), None, b"r"),
            Applied::Stale {
                user: b,
                stored: None
            }
        );
        // A value written before revisions counts as revision 0.
        s.tree
            .insert(id_key(USER, b), b"\x04legacy".as_slice())
            .unwrap();
        assert_eq!(
            s.load_user_at(b).unwrap(),
            Some((0, b"\x04legacy".to_vec()))
        );
        assert_eq!(put(&s, b, (0, 1), None, b"new"), Applied::Done);
    }

    #[test]
    fn a_rewrite_keeps_every_entry_and_an_interrupted_one_is_put_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let a = UserId::generate();
        let s = SledStore::open(dir.path(), 1 << 20).unwrap();
        create(&s, a, [3; 32], UserTier::Vip, b"ka", b"ra");
        s.apply(&Batch::of(Op::Audit {
            seq: 1,
            record: b"audit".to_vec(),
        }))
        .unwrap();
        put(&s, a, (1, 2), None, b"ra2");
        let s = s.rewrite(1 << 20).unwrap();
        let check = |s: &SledStore| {
            assert_eq!(s.load_user(a).unwrap().as_deref(), Some(&b"ra2"[..]));
            assert_eq!(s.load_key(a).unwrap().as_deref(), Some(&b"ka"[..]));
            assert_eq!(s.lookup_email(&[3; 32]).unwrap(), Some(a));
            assert_eq!(s.tier_of(a).unwrap(), Some(UserTier::Vip));
            assert_eq!(s.audit_after(0, 10).unwrap(), vec![(1, b"audit".to_vec())]);
        };
        check(&s);
        drop(s);
        let (live, fresh, old) = (
            dir.path().join("sled"),
            dir.path().join(REWRITE_DIR),
            dir.path().join(OLD_DIR),
        );
        // A crash while copying: the copy is discarded.
        std::fs::create_dir_all(&fresh).unwrap();
        std::fs::write(fresh.join("junk"), b"partial").unwrap();
        let s = SledStore::open(dir.path(), 1 << 20).unwrap();
        check(&s);
        assert!(!fresh.exists());
        drop(s);
        // A crash between the two renames: the complete copy is installed.
        std::thread::sleep(LOCK_RETRY_PAUSE);
        std::fs::rename(&live, &fresh).unwrap();
        std::fs::create_dir_all(&old).unwrap();
        let s = SledStore::open(dir.path(), 1 << 20).unwrap();
        check(&s);
        assert!(!fresh.exists() && !old.exists());
    }

    #[test]
    fn legacy_email_claims_move_to_the_blind_index() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path(), 1 << 20).unwrap();
        let a = UserId::generate();
        s.tree
            .insert(legacy_email_key("ann@x.io"), a.as_bytes().as_slice())
            .unwrap();
        assert_eq!(s.legacy_emails().unwrap(), vec![("ann@x.io".to_owned(), a)]);
        s.migrate_email("ann@x.io", &[1; 32], a).unwrap();
        assert!(s.legacy_emails().unwrap().is_empty());
        assert_eq!(s.lookup_email(&[1; 32]).unwrap(), Some(a));
    }

    #[test]
    fn a_directory_held_by_an_open_store_is_refused_after_the_retries() {
        let dir = tempfile::tempdir().unwrap();
        let _held = SledStore::open(dir.path(), 1 << 20).unwrap();
        let started = std::time::Instant::now();
        let second = SledStore::open(dir.path(), 1 << 20);
        assert!(
            second.is_err(),
            "sled refuses a second open of a locked directory"
        );
        assert!(
            started.elapsed() >= LOCK_RETRY_PAUSE * LOCK_RETRIES,
            "it retried first"
        );
    }
}
