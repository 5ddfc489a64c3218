//! Retention: security events older than the configured period are purged, from the
//! users' records and from the archive. Run offline (`roster purge`, the server
//! stopped) so that no actor holds a copy of a record being rewritten.

use super::EngineError;
use super::keyring::Keyring;
use super::state;
use crate::domain::ids::UserId;
use crate::domain::time::Timestamp;
use crate::security::keys::DataKey;
use crate::store::{Batch, Op, Store, codec};

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// User records read.
    pub users: usize,
    /// User records rewritten.
    pub rewritten: usize,
    /// Events removed from users' records.
    pub in_state: usize,
    /// Archived events removed.
    pub archived: usize,
}

/// Removes every security event older than `cutoff`, then flushes. `keys` opens the
/// sealed records and archived events.
pub fn purge_security_events(
    store: &dyn Store,
    keys: &Keyring,
    cutoff: Timestamp,
) -> Result<PurgeReport, EngineError> {
    let mut report = PurgeReport::default();
    let mut rewrite = Vec::new();
    for item in store.scan_users() {
        let (id, record) = item?;
        report.users += 1;
        let corrupt = |reason: String| EngineError::Corrupt { user: id, reason };
        let key = keys
            .data_key(store, id)?
            .ok_or_else(|| corrupt("no data key".into()))?;
        let mut s = state::decode(&record, &key, id).map_err(|e| corrupt(e.to_string()))?;
        let before = s.security.recent.len();
        s.security.recent.retain(|e| e.at >= cutoff);
        let removed = before - s.security.recent.len();
        if removed > 0 {
            report.in_state += removed;
            rewrite.push((id, s, key));
        }
    }
    for (id, s, key) in rewrite {
        let revision = store.load_user_at(id)?.map_or(0, |(r, _)| r) + 1;
        let record = state::encode(&s, &key, id)?;
        let op = Op::PutUser {
            id,
            record,
            revision,
            tier: None,
        };
        store.apply(&Batch::of(op))?;
        report.rewritten += 1;
    }
    let mut old = Vec::new();
    let mut user_key: Option<(UserId, Option<DataKey>)> = None;
    for item in store.scan_security_events() {
        let (user, seq, blob) = item?;
        if user_key.as_ref().is_none_or(|(u, _)| *u != user) {
            user_key = Some((user, keys.data_key(store, user)?));
        }
        let key = user_key.as_ref().and_then(|(_, k)| k.as_ref());
        let at = key
            .and_then(|k| codec::open_blob(k, &state::event_aad(user, seq), &blob).ok())
            .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok())
            .and_then(|v| serde_json::from_value::<Timestamp>(v["at"].clone()).ok());
        // An archived event that cannot be read (its user erased, or damaged) has no
        // date to keep it by.
        if at.is_none_or(|at| at < cutoff) {
            old.push((user, seq));
        }
    }
    for (user, seq) in old {
        store.apply(&Batch::of(Op::DropArchivedEvent { user, seq }))?;
        report.archived += 1;
    }
    store.flush()?;
    Ok(report)
}
