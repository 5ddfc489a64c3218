//! The keyring's one-off migrations of a store written by an older build: sealing what
//! was written before encryption, and re-keying email claims made before emails were
//! normalised. Each runs at open, before the engine writes, and is idempotent: an
//! interrupted run is finished by the next start.

use super::{EMAIL_KEYS, Keyring, Meta, PROGRESS_EVERY, read_meta, write_meta};
use crate::domain::ids::UserId;
use crate::engine::EngineError;
use crate::security::keys::DataKey;
use crate::store::{Batch, Op, Store, codec};

impl Keyring {
    /// Moves the email claims of users who signed up before emails were normalised
    /// (lowercased only) to their normalised key: once per store, at its first start
    /// with this build. Only addresses that normalisation changes move (fullwidth or
    /// decomposed characters, ligatures). A claim whose normalised key another account
    /// holds already — two look-alike accounts from before — stays where it is: that
    /// account keeps working by id and session, its email now finds the other one, and
    /// the log names both for an operator to settle.
    pub(super) fn normalize_emails(&self, store: &dyn Store) -> Result<(), EngineError> {
        let Some(mut meta) = read_meta(store)? else {
            return Ok(());
        };
        if meta.email_keys >= EMAIL_KEYS {
            return Ok(());
        }
        let (mut moved, mut kept) = (0u64, 0u64);
        for item in store.scan_users() {
            let (id, record) = item?;
            let key = match self.data_key(store, id) {
                Ok(Some(key)) => key,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(user = %id, error = %e, "unusable data key: its email claim is left as it is");
                    continue;
                }
            };
            let email = match crate::engine::state::decode(&record, &key, id) {
                Ok(state) => state.profile.email.clone(),
                Err(e) => {
                    tracing::error!(user = %id, error = %e, "unreadable record: its email claim is left as it is");
                    continue;
                }
            };
            let from = self.email_index(&email.legacy_normalized());
            let to = self.email_index(&email.normalized());
            if from == to {
                continue;
            }
            match store.apply(&Batch::of(Op::MoveEmailIndex { id, from, to }))? {
                crate::store::Applied::Done => moved += 1,
                _ => {
                    kept += 1;
                    let holder = store.lookup_email(&to)?;
                    tracing::warn!(
                        user = %id,
                        holder = ?holder,
                        "two accounts have look-alike emails: this one keeps its old claim, \
                         and its email now finds the holder's account"
                    );
                }
            }
        }
        meta.email_keys = EMAIL_KEYS;
        write_meta(store, &meta)?;
        if moved + kept > 0 {
            tracing::info!(moved, kept, "email claims normalised");
        }
        Ok(())
    }

    /// Forgets that the email claims were normalised, as a store from before would be.
    #[cfg(test)]
    pub(crate) fn forget_email_normalization(store: &dyn Store) {
        let mut meta = read_meta(store).unwrap().unwrap();
        meta.email_keys = 0;
        write_meta(store, &meta).unwrap();
    }

    /// Seals every record written before encryption: moves email claims to the blind
    /// index, gives each user a data key and seals its record and archived events.
    /// Idempotent, so an interrupted run is finished by the next start.
    pub(super) fn migrate(&self, store: &dyn Store, mut meta: Meta) -> Result<(), EngineError> {
        let emails = store.legacy_emails()?;
        for (email, id) in &emails {
            let key = crate::domain::email::Email::parse(email)
                .map(|e| e.normalized())
                .unwrap_or_else(|_| email.clone());
            store.migrate_email(email, &self.email_index(&key), *id)?;
        }
        let mut sealed = 0u64;
        // Ids first (16 bytes each), records one at a time: a large store's records do
        // not fit in memory together.
        let mut plain = Vec::new();
        for item in store.scan_users() {
            let (id, record) = item?;
            if codec::version_of(&record).is_some() && !codec::is_sealed_record(&record) {
                plain.push(id);
            }
        }
        for id in plain {
            let Some(record) = store.load_user(id)? else {
                continue;
            };
            // A legacy record never had a key: the key passed here is not used for it.
            let state = match crate::engine::state::decode(&record, &DataKey::generate(), id) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(user = %id, error = %e, "unreadable record left as it is");
                    continue;
                }
            };
            self.with_new_key(id, |key, wrapped| -> Result<(), EngineError> {
                let rec = crate::engine::state::encode(&state, key, id)?;
                store.seal_user(id, state.profile.tier, wrapped, &rec)?;
                Ok(())
            })?;
            sealed += 1;
            if sealed.is_multiple_of(PROGRESS_EVERY) {
                tracing::info!(sealed, "sealing records written before encryption");
            }
        }
        let mut events = 0u64;
        let mut pending = Vec::new();
        for item in store.scan_security_events() {
            let (user, seq, raw) = item?;
            if !codec::is_sealed_blob(&raw) {
                pending.push((user, seq));
            }
        }
        let mut current: Option<(UserId, Option<DataKey>)> = None;
        for (user, seq) in pending {
            if current.as_ref().is_none_or(|(u, _)| *u != user) {
                current = Some((user, self.data_key(store, user)?));
            }
            let Some((_, Some(key))) = &current else {
                // No user to seal it for: an event left by an erased user.
                store.apply(&Batch::of(Op::DropArchivedEvent { user, seq }))?;
                continue;
            };
            let Some(raw) = store.security_events_before(user, seq + 1, 1)?.pop() else {
                continue;
            };
            let blob = codec::seal_blob(key, &crate::engine::state::event_aad(user, seq), &raw.1);
            store.apply(&Batch::of(Op::ArchiveEvent { user, seq, blob }))?;
            events += 1;
        }
        meta.migrated = true;
        meta.rewrite_pending |= sealed + events > 0 || !emails.is_empty();
        write_meta(store, &meta)?;
        if sealed + events > 0 || !emails.is_empty() {
            tracing::info!(
                users = sealed,
                emails = emails.len(),
                events,
                "sealed the records written before encryption"
            );
        }
        Ok(())
    }
}
