//! The operators' runtime deny-list of networks, as the engine holds it: read by every
//! login's risk assessment and every session's use (a clone of an `Arc` under a read
//! lock), replaced whole by a change that is durable first.

use std::sync::{Arc, RwLock};

use super::EngineError;
use crate::domain::denylist::DenyList;
use crate::store::Store;

/// The list in force, and the lock that makes changes one at a time.
#[derive(Default)]
pub(crate) struct Deny {
    list: RwLock<Arc<DenyList>>,
    /// Held by a change from its read to its swap, so two changes cannot lose one.
    pub(crate) changing: tokio::sync::Mutex<()>,
}

impl Deny {
    /// The stored list (empty if none was written).
    pub(crate) fn load(store: &dyn Store) -> Result<Self, EngineError> {
        let list = match store.deny_list()? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| EngineError::Internal(format!("the stored deny-list: {e}")))?,
            None => DenyList::default(),
        };
        Ok(Self {
            list: RwLock::new(Arc::new(list)),
            changing: Default::default(),
        })
    }

    /// The list in force.
    pub(crate) fn current(&self) -> Arc<DenyList> {
        Arc::clone(&self.list.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts `list` in force (once it is stored).
    pub(crate) fn replace(&self, list: DenyList) {
        *self.list.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(list);
    }
}
