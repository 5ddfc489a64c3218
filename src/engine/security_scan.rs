//! Every recorded security event of the stored population, read off the actor threads:
//! the events still in each user's record, then those archived from it (the two never
//! overlap: an event is archived when it leaves the record). Blocking: callers run it
//! on a batch thread ([`super::background`]). A record or archived event that cannot be
//! opened is logged and left out, as the population scan does.

use super::{Engine, EngineError};
use crate::domain::ids::UserId;
use crate::domain::security_log::SecurityEvent;
use crate::store::codec;

/// Hands every recorded security event to `visit` with its user, until `visit` answers
/// `false`; returns how many could not be read.
pub(crate) fn scan(
    e: &Engine,
    mut visit: impl FnMut(UserId, &SecurityEvent) -> bool,
) -> Result<u64, EngineError> {
    let store = e.store.as_ref();
    let mut unreadable = 0u64;
    for item in store.scan_users() {
        let (id, record) = item?;
        let opened = e
            .keys
            .data_key(store, id)?
            .ok_or_else(|| "no data key".to_owned())
            .and_then(|key| super::state::decode(&record, &key, id).map_err(|err| err.to_string()));
        match opened {
            Ok(s) => {
                if !s.security.recent.iter().all(|ev| visit(id, ev)) {
                    return Ok(unreadable);
                }
            }
            Err(reason) => {
                tracing::error!(user = %id, %reason, "unreadable record left out of a security report");
                unreadable += 1;
            }
        }
    }
    let mut user_key = None;
    for item in store.scan_security_events() {
        let (user, seq, blob) = item?;
        if user_key.as_ref().is_none_or(|(u, _)| *u != user) {
            user_key = Some((user, e.keys.data_key(store, user)?));
        }
        let event = user_key
            .as_ref()
            .and_then(|(_, k)| k.as_ref())
            .and_then(|k| codec::open_blob(k, &super::state::event_aad(user, seq), &blob).ok())
            .and_then(|raw| serde_json::from_slice::<SecurityEvent>(&raw).ok());
        match event {
            Some(ev) => {
                if !visit(user, &ev) {
                    return Ok(unreadable);
                }
            }
            // An erased user's archive, or damage: nothing to count by.
            None => unreadable += 1,
        }
    }
    Ok(unreadable)
}
