//! The audit log: operator and security-relevant actions, append-only and hash-chained in
//! the store. Record *n* carries the hash of record *n − 1*, and its own hash covers its
//! content and that link, so changing, removing or reordering any record breaks the
//! chain from there on; [`verify`] finds the first break.
//!
//! A stored record is the 64 hex digits of SHA-256 over the body, then the body as JSON:
//! the hash covers the exact stored bytes (no re-encoding when checking), and the log
//! stays readable without this program.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::ids::UserId;
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;
use crate::store::{Applied, AuditStore, Batch, Op, Store, StoreError};

/// The `prev_hash` of the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditActor {
    /// Whoever holds the operator key.
    Operator,
    /// A user acting on its own account.
    User {
        /// The user.
        id: UserId,
    },
    /// The engine's own work or trusted code embedding it (a scheduled job, a command
    /// run on a stopped store, the library's seed-named calls).
    System {
        /// Which job.
        job: String,
    },
}

/// What was done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuditAction {
    /// A user was moved to another tier.
    TierChanged {
        /// The user.
        user: UserId,
        /// The tier now.
        to: UserTier,
    },
    /// A user was deleted.
    UserDeleted {
        /// The user.
        user: UserId,
    },
    /// An operator read a user's data.
    UserRead {
        /// The user.
        user: UserId,
        /// What was read (`profile`, `insights`, `sessions`).
        what: String,
    },
    /// Users were created by a bulk import (records of earlier builds; a user created
    /// by an import is now recorded on its own, as [`AuditAction::UserImported`]).
    UsersImported {
        /// How many.
        count: u64,
    },
    /// A user was created by a bulk import, from an existing password hash.
    UserImported {
        /// The user.
        user: UserId,
    },
    /// A user's data was exported.
    DataExported {
        /// The user.
        user: UserId,
    },
    /// An operator removed a user's authenticator (a support reset).
    MfaReset {
        /// The user.
        user: UserId,
    },
    /// A consent was granted or withdrawn.
    ConsentChanged {
        /// The user.
        user: UserId,
        /// The purpose.
        purpose: crate::domain::consent::Purpose,
        /// Granted (`true`) or withdrawn.
        granted: bool,
    },
    /// An operator recorded a verified parental consent.
    ParentalConsentRecorded {
        /// The user.
        user: UserId,
    },
    /// The master key was rotated: every data key rewrapped.
    MasterKeyRotated {
        /// The retired key's fingerprint.
        from: String,
        /// The new key's fingerprint.
        to: String,
        /// Data keys rewrapped.
        data_keys: u64,
    },
}

impl AuditAction {
    /// The user the action was about, if one.
    pub fn subject(&self) -> Option<UserId> {
        match self {
            AuditAction::TierChanged { user, .. }
            | AuditAction::UserDeleted { user }
            | AuditAction::UserRead { user, .. }
            | AuditAction::DataExported { user }
            | AuditAction::MfaReset { user }
            | AuditAction::ConsentChanged { user, .. }
            | AuditAction::ParentalConsentRecorded { user }
            | AuditAction::UserImported { user } => Some(*user),
            AuditAction::UsersImported { .. } | AuditAction::MasterKeyRotated { .. } => None,
        }
    }
}

/// Every record that names `user`, as the actor or the subject (a full scan: exports
/// are rare).
pub fn entries_about(store: &dyn AuditStore, user: UserId) -> Result<Vec<AuditEntry>, StoreError> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = entries(store, after, 1024)?;
        let Some(last) = page.last() else {
            return Ok(out);
        };
        after = last.body.seq;
        out.extend(page.into_iter().filter(|e| {
            e.body.action.subject() == Some(user) || e.body.actor == AuditActor::User { id: user }
        }));
    }
}

/// The hashed part of a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditBody {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: AuditActor,
    /// What.
    pub action: AuditAction,
    /// The previous record's hash (64 zeros for the first).
    pub prev_hash: String,
}

/// One record of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// The record.
    #[serde(flatten)]
    pub body: AuditBody,
    /// SHA-256 (hex) of the body's stored JSON.
    pub hash: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The stored bytes of a record with this body: hash, then body.
fn encode(body: &AuditBody) -> Result<(String, Vec<u8>), StoreError> {
    let json = serde_json::to_vec(body).map_err(|e| StoreError::Io(e.to_string()))?;
    let hash = sha256_hex(&json);
    let mut rec = Vec::with_capacity(64 + json.len());
    rec.extend_from_slice(hash.as_bytes());
    rec.extend_from_slice(&json);
    Ok((hash, rec))
}

/// Reads stored bytes, checking the body against its hash.
fn decode(seq: u64, rec: &[u8]) -> Result<AuditEntry, ChainBroken> {
    let broken = |reason: String| ChainBroken { seq, reason };
    if rec.len() < 64 {
        return Err(broken("truncated".into()));
    }
    let (hash, json) = rec.split_at(64);
    let hash = std::str::from_utf8(hash).map_err(|_| broken("hash is not text".into()))?;
    if sha256_hex(json) != hash {
        return Err(broken("content does not match its hash".into()));
    }
    let body: AuditBody =
        serde_json::from_slice(json).map_err(|e| broken(format!("unreadable: {e}")))?;
    Ok(AuditEntry {
        body,
        hash: hash.to_owned(),
    })
}

/// The appender: numbers and chains records, one at a time.
pub struct AuditLog {
    store: Arc<dyn Store>,
    /// The last record's number and hash.
    last: Mutex<(u64, String)>,
}

impl AuditLog {
    /// Continues the log found in `store`.
    pub fn open(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let last = match store.last_audit()? {
            Some((seq, rec)) => {
                let e = decode(seq, &rec).map_err(|e| StoreError::Io(e.to_string()))?;
                (seq, e.hash)
            }
            None => (0, GENESIS.to_owned()),
        };
        Ok(Self {
            store,
            last: Mutex::new(last),
        })
    }

    /// Appends a record on its own. Durable with the caller's next group commit.
    pub fn append(
        &self,
        at: Timestamp,
        actor: AuditActor,
        action: AuditAction,
    ) -> Result<AuditEntry, StoreError> {
        match self.apply_with(Batch::default(), at, vec![(actor, action)])? {
            (Applied::Done, mut entries) if entries.len() == 1 => Ok(entries.remove(0)),
            (refused, _) => Err(StoreError::Io(format!(
                "an audit record alone was refused: {refused:?}"
            ))),
        }
    }

    /// Applies `batch` together with a record of each of `records`: they are chained to
    /// the last one and written in the same atomic batch, so an action and its records
    /// exist together or not at all, and the chain moves on only if the batch applied.
    /// Returns what the store made of the batch, and the records written.
    pub fn apply_with(
        &self,
        mut batch: Batch,
        at: Timestamp,
        records: Vec<(AuditActor, AuditAction)>,
    ) -> Result<(Applied, Vec<AuditEntry>), StoreError> {
        if records.is_empty() {
            return Ok((self.store.apply(&batch)?, Vec::new()));
        }
        // Held across the (synchronous) store write, never across an await: the chain
        // needs its records one at a time, in the order they are stored.
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let (mut seq, mut prev) = last.clone();
        let mut entries = Vec::with_capacity(records.len());
        for (actor, action) in records {
            seq += 1;
            let body = AuditBody {
                seq,
                at,
                actor,
                action,
                prev_hash: prev,
            };
            let (hash, record) = encode(&body)?;
            batch.push(Op::Audit { seq, record });
            prev = hash.clone();
            entries.push(AuditEntry { body, hash });
        }
        let applied = self.store.apply(&batch)?;
        if applied != Applied::Done {
            return Ok((applied, Vec::new()));
        }
        *last = (seq, prev);
        Ok((applied, entries))
    }
}

/// Records numbered above `after`, at most `limit`.
pub fn entries(
    store: &dyn AuditStore,
    after: u64,
    limit: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    store
        .audit_after(after, limit)?
        .into_iter()
        .map(|(seq, rec)| decode(seq, &rec).map_err(|e| StoreError::Io(e.to_string())))
        .collect()
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit record {seq}: {reason}")]
pub struct ChainBroken {
    /// The first bad record (or the position a missing one should have).
    pub seq: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// Walks the whole log; returns how many records it holds, or the first break.
pub fn verify(store: &dyn AuditStore) -> Result<u64, ChainBroken> {
    let mut expected_seq = 1u64;
    let mut prev = GENESIS.to_owned();
    loop {
        let page = store
            .audit_after(expected_seq - 1, 1024)
            .map_err(|e| ChainBroken {
                seq: expected_seq,
                reason: e.to_string(),
            })?;
        if page.is_empty() {
            return Ok(expected_seq - 1);
        }
        for (key_seq, rec) in page {
            if key_seq != expected_seq {
                return Err(ChainBroken {
                    seq: expected_seq,
                    reason: format!("missing (the next record is {key_seq})"),
                });
            }
            let e = decode(key_seq, &rec)?;
            let broken = |reason: String| ChainBroken {
                seq: key_seq,
                reason,
            };
            if e.body.seq != key_seq {
                return Err(broken(format!(
                    "stored under {key_seq} but numbered {}",
                    e.body.seq
                )));
            }
            if e.body.prev_hash != prev {
                return Err(broken("does not link to the record before it".into()));
            }
            prev = e.hash;
            expected_seq += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    /// Writes a record behind the log's back, as an attacker with the files could.
    fn put_audit(store: &dyn Store, seq: u64, record: Vec<u8>) {
        store.apply(&Batch::of(Op::Audit { seq, record })).unwrap();
    }

    #[test]
    fn a_refused_batch_writes_no_record_and_the_chain_stays_where_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path(), 1 << 20).unwrap());
        let log = AuditLog::open(Arc::clone(&store)).unwrap();
        let user = UserId::generate();
        let t = Timestamp::from_millis(1);
        // A write of a user that does not exist is refused, and its record with it.
        let stale = Batch::of(Op::PutUser {
            id: user,
            record: b"r".to_vec(),
            revision: 2,
            tier: None,
        });
        let deleted = AuditAction::UserDeleted { user };
        let (applied, entries) = log
            .apply_with(stale, t, vec![(AuditActor::Operator, deleted.clone())])
            .unwrap();
        assert!(matches!(applied, Applied::Stale { .. }) && entries.is_empty());
        assert_eq!(verify(store.as_ref()), Ok(0));
        let next = log.append(t, AuditActor::Operator, deleted).unwrap();
        assert_eq!(next.body.seq, 1, "no number was used up");
        assert_eq!(verify(store.as_ref()), Ok(1));
    }

    #[test]
    fn the_chain_verifies_and_an_edit_breaks_it() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path(), 1 << 20).unwrap());
        let log = AuditLog::open(Arc::clone(&store)).unwrap();
        let user = UserId::generate();
        let t = Timestamp::from_millis(1_800_000_000_000);
        log.append(
            t,
            AuditActor::Operator,
            AuditAction::UserRead {
                user,
                what: "profile".into(),
            },
        )
        .unwrap();
        log.append(
            t,
            AuditActor::Operator,
            AuditAction::TierChanged {
                user,
                to: UserTier::Vip,
            },
        )
        .unwrap();
        log.append(
            t,
            AuditActor::User { id: user },
            AuditAction::UserDeleted { user },
        )
        .unwrap();
        assert_eq!(verify(store.as_ref()), Ok(3));
        // A reopened log continues the chain.
        let log = AuditLog::open(Arc::clone(&store)).unwrap();
        let fourth = log
            .append(
                t,
                AuditActor::Operator,
                AuditAction::UsersImported { count: 2 },
            )
            .unwrap();
        assert_eq!(fourth.body.seq, 4);
        assert_eq!(verify(store.as_ref()), Ok(4));
        let all = entries(store.as_ref(), 0, 10).unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[1].body.prev_hash, all[0].hash);
        assert_eq!(entries(store.as_ref(), 2, 1).unwrap()[0].body.seq, 3);

        // Rewriting record 2 (even re-hashing it) breaks the link of record 3.
        let mut forged = all[1].body.clone();
        forged.action = AuditAction::TierChanged {
            user,
            to: UserTier::Free,
        };
        let (_, rec) = encode(&forged).unwrap();
        put_audit(store.as_ref(), 2, rec);
        assert_eq!(verify(store.as_ref()).unwrap_err().seq, 3);
        // Editing the body without re-hashing is caught at the record itself.
        let mut edited = all[1].hash.as_bytes().to_vec();
        edited.extend_from_slice(&serde_json::to_vec(&forged).unwrap());
        put_audit(store.as_ref(), 2, edited);
        let e = verify(store.as_ref()).unwrap_err();
        assert_eq!(
            (e.seq, e.reason.as_str()),
            (2, "content does not match its hash")
        );
    }

    #[test]
    fn a_gap_in_the_numbering_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path(), 1 << 20).unwrap());
        let log = AuditLog::open(Arc::clone(&store)).unwrap();
        let t = Timestamp::from_millis(1);
        for n in 0..3 {
            log.append(
                t,
                AuditActor::Operator,
                AuditAction::UsersImported { count: n },
            )
            .unwrap();
        }
        // A record written past the end, as if number 4 had been removed.
        let rec3 = store.audit_after(2, 1).unwrap().remove(0).1;
        put_audit(store.as_ref(), 5, rec3);
        let e = verify(store.as_ref()).unwrap_err();
        assert_eq!(e.seq, 4, "{e}");
        assert!(e.reason.contains("missing"), "{e}");
    }
}
