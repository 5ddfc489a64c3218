//! The audit log as stored: operator and security-relevant actions, append-only and
//! hash-chained. Record *n* carries the hash of record *n − 1*, and its own hash covers
//! its content and that link, so changing, removing or reordering any record breaks the
//! chain from there on; [`verify`] finds the first break.
//!
//! A stored record is the 64 hex digits of SHA-256 over the body, then the body as JSON:
//! the hash covers the exact stored bytes (no re-encoding when checking), and the log
//! stays readable without this program.
//!
//! Records are numbered and chained by the one writer ([`super::GroupCommit`]) as it
//! applies the batch of the action they record ([`Chain`]), so the chain's order is the
//! order the store saw the actions in, and a refused batch uses up no number.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AuditStore, Op, StoreError};
use crate::domain::audit::{AuditAction, AuditActor};
use crate::domain::ids::UserId;
use crate::domain::time::Timestamp;

/// The `prev_hash` of the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Every record that names `user`, as the actor or the subject (a full scan: exports
/// are rare).
pub(crate) fn entries_about(
    store: &dyn AuditStore,
    user: UserId,
) -> Result<Vec<AuditEntry>, StoreError> {
    let mut out = Vec::new();
    scan(store, |e| {
        if e.body.action.subject() == Some(user) || e.body.actor == (AuditActor::User { id: user })
        {
            out.push(e);
        }
    })?;
    Ok(out)
}

/// Hands every record to `visit`, in order. Pages by the records' keys, not by the
/// numbers inside them, so a damaged log (a record stored under another number) is
/// still read once through.
pub(crate) fn scan(
    store: &dyn AuditStore,
    mut visit: impl FnMut(AuditEntry),
) -> Result<(), StoreError> {
    let mut after = 0;
    loop {
        let page = store.audit_after(after, 1024)?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = *last;
        for (seq, rec) in page {
            visit(decode(seq, &rec).map_err(|e| StoreError::Io(e.to_string()))?);
        }
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
    crate::domain::hex::encode(&Sha256::digest(bytes))
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

/// The end of the chain: the last record's number and hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    seq: u64,
    hash: String,
}

/// A record to be written with a batch: who, what, when. The writer numbers and chains
/// it.
pub type Draft = (AuditActor, AuditAction, Timestamp);

impl Chain {
    /// The end of the chain found in `store`.
    pub fn open(store: &dyn AuditStore) -> Result<Self, StoreError> {
        Ok(match store.last_audit()? {
            Some((seq, rec)) => {
                let e = decode(seq, &rec).map_err(|e| StoreError::Io(e.to_string()))?;
                Self { seq, hash: e.hash }
            }
            None => Self {
                seq: 0,
                hash: GENESIS.to_owned(),
            },
        })
    }

    /// The records of `drafts`, numbered and chained after this end, as ops to add to
    /// their batch, and the end they lead to (to adopt once the batch applied).
    pub fn extend(&self, drafts: &[Draft]) -> Result<(Vec<Op>, Chain), StoreError> {
        let mut next = self.clone();
        let mut ops = Vec::with_capacity(drafts.len());
        for (actor, action, at) in drafts.iter().cloned() {
            next.seq += 1;
            let body = AuditBody {
                seq: next.seq,
                at,
                actor,
                action,
                prev_hash: next.hash,
            };
            let (hash, record) = encode(&body)?;
            ops.push(Op::Audit {
                seq: body.seq,
                record,
            });
            next.hash = hash;
        }
        Ok((ops, next))
    }

    /// The number of the last record.
    #[cfg(test)]
    pub fn seq(&self) -> u64 {
        self.seq
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
    use crate::domain::tier::UserTier;
    use crate::store::{Applied, Batch, SledStore, Store};

    /// Writes a record behind the chain's back, as an attacker with the files could.
    fn put_audit(store: &dyn Store, seq: u64, record: Vec<u8>) {
        store.apply(&Batch::of(Op::Audit { seq, record })).unwrap();
    }

    /// Appends one record after `chain`, as the writer does.
    fn append(store: &dyn Store, chain: &mut Chain, actor: AuditActor, action: AuditAction) {
        let (ops, next) = chain
            .extend(&[(actor, action, Timestamp::from_millis(1_800_000_000_000))])
            .unwrap();
        let mut batch = Batch::default();
        ops.into_iter().for_each(|op| batch.push(op));
        assert_eq!(store.apply(&batch).unwrap(), Applied::Done);
        *chain = next;
    }

    #[test]
    fn the_chain_verifies_and_an_edit_breaks_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 1 << 20).unwrap();
        let mut chain = Chain::open(&store).unwrap();
        let user = UserId::generate();
        let read = AuditAction::UserRead {
            user,
            what: "profile".into(),
        };
        append(&store, &mut chain, AuditActor::Operator, read);
        let vip = AuditAction::TierChanged {
            user,
            to: UserTier::Vip,
            from: None,
        };
        append(&store, &mut chain, AuditActor::Operator, vip);
        let gone = AuditAction::UserDeleted { user };
        append(&store, &mut chain, AuditActor::User { id: user }, gone);
        assert_eq!(verify(&store), Ok(3));
        // A chain reopened from the store continues it.
        let mut chain = Chain::open(&store).unwrap();
        assert_eq!(chain.seq(), 3);
        let imported = AuditAction::UserImported { user };
        append(
            &store,
            &mut chain,
            AuditActor::System { job: "t".into() },
            imported,
        );
        assert_eq!(verify(&store), Ok(4));
        let all = entries(&store, 0, 10).unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[1].body.prev_hash, all[0].hash);
        assert_eq!(entries(&store, 2, 1).unwrap()[0].body.seq, 3);
        assert_eq!(entries_about(&store, user).unwrap().len(), 4);

        // Rewriting record 2 (even re-hashing it) breaks the link of record 3.
        let mut forged = all[1].body.clone();
        forged.action = AuditAction::TierChanged {
            user,
            to: UserTier::Free,
            from: None,
        };
        let (_, rec) = encode(&forged).unwrap();
        put_audit(&store, 2, rec);
        assert_eq!(verify(&store).unwrap_err().seq, 3);
        // Editing the body without re-hashing is caught at the record itself.
        let mut edited = all[1].hash.as_bytes().to_vec();
        edited.extend_from_slice(&serde_json::to_vec(&forged).unwrap());
        put_audit(&store, 2, edited);
        let e = verify(&store).unwrap_err();
        assert_eq!(
            (e.seq, e.reason.as_str()),
            (2, "content does not match its hash")
        );
    }

    #[test]
    fn a_gap_in_the_numbering_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 1 << 20).unwrap();
        let mut chain = Chain::open(&store).unwrap();
        for n in 0..3 {
            let action = AuditAction::UsersImported { count: n };
            append(&store, &mut chain, AuditActor::Operator, action);
        }
        // A record written past the end, as if number 4 had been removed.
        let rec3 = store.audit_after(2, 1).unwrap().remove(0).1;
        put_audit(&store, 5, rec3);
        let e = verify(&store).unwrap_err();
        assert_eq!(e.seq, 4, "{e}");
        assert!(e.reason.contains("missing"), "{e}");
        // A scan still reads every stored record once and ends (it pages by key, and
        // the record under key 5 says it is number 3).
        let mut seen = Vec::new();
        scan(&store, |e| seen.push(e.body.seq)).unwrap();
        assert_eq!(seen, [1, 2, 3, 3]);
    }
}
