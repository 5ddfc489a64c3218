//! Master-key rotation while the store serves: every data key and the index key are
//! rewrapped under a new master key, the keyring record switches (with its audit record,
//! through the writer), and the key files swap.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;

impl Keyring {
    /// Rotates to a new, generated master key: see the module documentation. With
    /// `audit`, the keyring record's switch to the new key is written together with the
    /// record of the rotation, in one batch.
    pub fn rotate(
        &self,
        store: &dyn Store,
        progress: &mut dyn FnMut(RotationProgress),
        audit: Option<RotationAudit<'_>>,
    ) -> Result<RotationReport, EngineError> {
        let Source::File(path) = &self.source else {
            return Err(EngineError::Conflict(format!(
                "the master key comes from {}: rotation writes a key file, so set \
                 encryption.master_key_file and unset the variable first",
                self.source
            )));
        };
        let _only = self.rotating.try_lock().map_err(|_| {
            EngineError::Conflict("a master key rotation is already running".into())
        })?;
        let new = Arc::new(MasterKey::generate());
        write_key_file(&next_file(path), &new)?;
        let mut meta = read_meta(store)?.ok_or_else(|| key_error("keyring record missing"))?;
        meta.rotating_to = Some(new.fingerprint().to_string());
        write_meta(store, &meta)?;
        self.finish_rotation(store, new, progress, audit)
    }

    /// Makes `new` current, rewraps every data key and the index key with it, switches
    /// the keyring record and swaps the key files.
    pub(super) fn finish_rotation(
        &self,
        store: &dyn Store,
        new: Arc<MasterKey>,
        progress: &mut dyn FnMut(RotationProgress),
        audit: Option<RotationAudit<'_>>,
    ) -> Result<RotationReport, EngineError> {
        let old = {
            let mut ring = self.ring.write().unwrap_or_else(|p| p.into_inner());
            let old = Arc::clone(&ring.current);
            if old.fingerprint() != new.fingerprint() {
                ring.others.retain(|k| k.fingerprint() != new.fingerprint());
                ring.others.push(Arc::clone(&old));
                ring.current = Arc::clone(&new);
            }
            old
        };
        if let Some(a) = &audit {
            // A sign-up that took its data key from the old master key, just before the
            // switch, may still be queued at the writer: let the writer apply everything
            // submitted so far, so that the scan below finds that key too. Sign-ups from
            // now on get keys wrapped by the new master key.
            a.commit.commit_blocking()?;
        }
        let total = store.scan_keys().count() as u64;
        let mut p = RotationProgress { done: 0, total };
        progress(p);
        let (mut rewrapped, mut unreadable) = (0u64, 0u64);
        for item in store.scan_keys() {
            let (id, mut wrapped) = item?;
            loop {
                if wrapped_by(&wrapped) == Some(new.fingerprint()) {
                    break;
                }
                let key = match self.unwrap(id, &wrapped) {
                    Ok(k) => k,
                    Err(e) => {
                        // Already unusable; stopping here would leave every later key
                        // behind, and a resumed rotation would stop here again.
                        tracing::error!(user = %id, error = %e, "data key left as it is: it does not unwrap");
                        unreadable += 1;
                        break;
                    }
                };
                let again = new.wrap(key.bytes(), id.as_bytes());
                if store.replace_key(id, &wrapped, &again)? {
                    rewrapped += 1;
                    break;
                }
                // Changed meanwhile (deleted, or re-created): look again.
                match store.load_key(id)? {
                    Some(w) => wrapped = w,
                    None => break,
                }
            }
            p.done += 1;
            if p.done.is_multiple_of(PROGRESS_EVERY) {
                progress(p);
            }
        }
        store.flush()?;
        let index = self.ring().index.clone();
        let at = audit.as_ref().map_or_else(|| SystemClock.now(), |a| a.at);
        let before = read_meta(store)?;
        // A resumed rotation may find the ring already switched: the key it replaced is
        // then the one the record still names.
        let from = if old.fingerprint() != new.fingerprint() {
            Some(old.fingerprint().to_string())
        } else {
            before
                .as_ref()
                .map(|m| m.master.clone())
                .filter(|m| *m != new.fingerprint().to_string())
        };
        let meta = Meta {
            migrated: true,
            rewrite_pending: before.as_ref().is_some_and(|m| m.rewrite_pending),
            rotated_from: from,
            ..Meta::new(&new, &index, at)
        };
        let switch = Batch::of(Op::KeyringMeta {
            meta: serde_json::to_vec(&meta).map_err(|e| EngineError::Internal(e.to_string()))?,
        });
        match audit {
            None => {
                store.apply(&switch)?;
                store.flush()?;
            }
            Some(a) => {
                let action = AuditAction::MasterKeyRotated {
                    from: old.fingerprint().to_string(),
                    to: new.fingerprint().to_string(),
                    data_keys: rewrapped,
                };
                let ticket = a.commit.submit(switch, vec![(a.actor, action, a.at)], None);
                // This is a thread of the blocking pool: it may wait.
                a.commit.commit_blocking()?;
                match ticket.outcome() {
                    Some(Outcome::Durable) => {}
                    other => {
                        return Err(EngineError::Internal(format!(
                            "the keyring record's switch was not written: {other:?}"
                        )));
                    }
                }
            }
        }
        progress(RotationProgress {
            done: p.done.max(total),
            total,
        });
        let retired = match &self.source {
            Source::File(path) => self.swap_files(path, Some(old.fingerprint()))?,
            Source::Env(_) => PathBuf::new(),
        };
        self.ring
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .others
            .retain(|k| k.fingerprint() != old.fingerprint());
        Ok(RotationReport {
            from: old.fingerprint().to_string(),
            to: new.fingerprint().to_string(),
            rewrapped,
            unreadable,
            retired_key_file: retired.display().to_string(),
        })
    }

    /// Moves the key file to its retired name and `<file>.next` into its place.
    pub(super) fn swap_files(
        &self,
        path: &Path,
        old: Option<Fingerprint>,
    ) -> Result<PathBuf, EngineError> {
        let next = next_file(path);
        let current = self.ring().current.fingerprint();
        let fail = |e: std::io::Error| {
            key_error(format!(
                "rotation finished in the store, but the key files could not be swapped \
                 ({e}): install {} as {}",
                next.display(),
                path.display()
            ))
        };
        let old = match old {
            Some(fp) => Some(fp),
            None => read_key_file(path)?.map(|k| k.fingerprint()),
        };
        let mut retired = PathBuf::new();
        if let Some(fp) = old.filter(|fp| *fp != current)
            && path.exists()
        {
            retired = retired_file(path, fp);
            std::fs::rename(path, &retired).map_err(fail)?;
        }
        if next.exists() {
            std::fs::rename(&next, path).map_err(fail)?;
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        sync_dir(dir).map_err(fail)?;
        Ok(retired)
    }
}
