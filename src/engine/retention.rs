//! Retention: security events older than the configured period are purged, from the
//! users' records and from the archive. Run offline (`roster purge`, the server
//! stopped) so that no actor holds a copy of a record being rewritten.

use super::EngineError;
use super::state;
use crate::domain::time::Timestamp;
use crate::store::{Store, codec};

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

/// Removes every security event older than `cutoff`, then flushes.
pub fn purge_security_events(
    store: &dyn Store,
    cutoff: Timestamp,
) -> Result<PurgeReport, EngineError> {
    let mut report = PurgeReport::default();
    let mut rewrite = Vec::new();
    for item in store.scan_users() {
        let (id, record) = item?;
        report.users += 1;
        let mut s = state::decode(&record).map_err(|e| EngineError::Corrupt {
            user: id,
            reason: e.to_string(),
        })?;
        let before = s.security.recent.len();
        s.security.recent.retain(|e| e.at >= cutoff);
        let removed = before - s.security.recent.len();
        if removed > 0 {
            report.in_state += removed;
            rewrite.push((id, s));
        }
    }
    for (id, s) in rewrite {
        let record = codec::encode(&s).map_err(|e| EngineError::Internal(e.to_string()))?;
        store.save_user(id, &record)?;
        report.rewritten += 1;
    }
    let mut old = Vec::new();
    for item in store.scan_security_events() {
        let (user, seq, raw) = item?;
        let at = serde_json::from_slice::<serde_json::Value>(&raw)
            .ok()
            .and_then(|v| serde_json::from_value::<Timestamp>(v["at"].clone()).ok());
        // An archived event that cannot be read has no date to keep it by.
        if at.is_none_or(|at| at < cutoff) {
            old.push((user, seq));
        }
    }
    for (user, seq) in old {
        store.delete_security_event(user, seq)?;
        report.archived += 1;
    }
    store.flush()?;
    Ok(report)
}
