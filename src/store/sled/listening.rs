//! The listening log's chunks (`L<id><seq>`) and the user's own models (`P<id>`).

use super::{CUSTOM, LISTENS, SledStore, id_from, id_key};
use crate::domain::ids::UserId;
use crate::store::StoreError;

pub(super) fn listens_key(user: UserId, seq: u64) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[..17].copy_from_slice(&id_key(LISTENS, user));
    k[17..].copy_from_slice(&seq.to_be_bytes());
    k
}

impl SledStore {
    /// A user's chunks, oldest first.
    pub(super) fn listening_log(&self, user: UserId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.tree
            .scan_prefix(id_key(LISTENS, user))
            .map(|kv| {
                let (k, v) = kv?;
                let seq: [u8; 8] = k
                    .get(17..25)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| StoreError::Io("bad listening log key".into()))?;
                Ok((u64::from_be_bytes(seq), v.to_vec()))
            })
            .collect()
    }

    /// A user's own models.
    pub(super) fn own_models(&self, user: UserId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(id_key(CUSTOM, user))?.map(|v| v.to_vec()))
    }

    /// Every user's own models, in id order.
    pub(super) fn every_own_models(&self) -> crate::store::CustomModelScan<'_> {
        Box::new(self.tree.scan_prefix([CUSTOM]).map(|kv| {
            let (k, v) = kv?;
            let user = id_from(&k).ok_or_else(|| StoreError::Io("bad own models key".into()))?;
            Ok((user, v.to_vec()))
        }))
    }
}
