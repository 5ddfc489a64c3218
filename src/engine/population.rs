//! The stored population, read off the actor threads: every record opened with its data
//! key and handed to a batch job as a [`Member`], one at a time, so a report over a
//! million users holds its accumulators, not a million states. Blocking: callers run it
//! on the blocking pool.

use super::{Engine, EngineError};
use crate::analytics::Member;
use crate::domain::consent::Purpose;
use crate::domain::history::ActivityHistory;
use crate::domain::time::Timestamp;

/// What a scan read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScanCounts {
    /// Records read.
    pub users: u64,
    /// Records that could not be opened (logged with the user id, left out).
    pub unreadable: u64,
}

/// Hands every stored user to `visit` as of `now`. A member's history is empty unless
/// it consents to analytics at `now` (and, under the minimum age, has a parent's
/// consent): withdrawing the consent takes a user out of the next report at once.
pub(crate) fn scan(
    e: &Engine,
    now: Timestamp,
    mut visit: impl FnMut(&Member<'_>),
) -> Result<ScanCounts, EngineError> {
    let store = e.store.as_ref();
    let min_age = e.config.privacy.min_age;
    let none = ActivityHistory::default();
    let mut counts = ScanCounts::default();
    for item in store.scan_users() {
        let (id, record) = item?;
        counts.users += 1;
        let state = e
            .keys
            .data_key(store, id)
            .map_err(|err| err.to_string())
            .and_then(|k| k.ok_or_else(|| "no data key".to_owned()))
            .and_then(|k| super::state::decode(&record, &k, id).map_err(|err| err.to_string()));
        let state = match state {
            Ok(s) => s,
            Err(reason) => {
                tracing::error!(user = %id, %reason, "unreadable record left out of a batch job");
                counts.unreadable += 1;
                continue;
            }
        };
        let consented = state
            .consents
            .allows(Purpose::Analytics, min_age, now)
            .is_ok();
        visit(&Member {
            id,
            tier: state.profile.tier,
            created_at: state.profile.created_at,
            consented,
            history: if consented { &state.history } else { &none },
        });
    }
    Ok(counts)
}
