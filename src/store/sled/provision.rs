//! Provisioning in the sled tree: `X<HMAC of external id>` → the user an identity
//! source knows by that id, `Y<user id>` → that HMAC (so a new id replaces the old and
//! a deletion removes both), `i<user id>` → the user's pending invitation (see the
//! layout in the parent module).

use super::{SledStore, id_key};
use crate::domain::ids::UserId;
use crate::store::{ExternalIndex, ProvisionStore, StoreError};

const EXTERNAL: u8 = b'X';
const EXTERNAL_OF: u8 = b'Y';
pub(super) const INVITATION: u8 = b'i';

pub(super) fn external_key(index: &ExternalIndex) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[0] = EXTERNAL;
    k[1..].copy_from_slice(index);
    k
}

pub(super) fn external_of_key(user: UserId) -> [u8; 17] {
    id_key(EXTERNAL_OF, user)
}

pub(super) fn invitation_key(user: UserId) -> [u8; 17] {
    id_key(INVITATION, user)
}

impl ProvisionStore for SledStore {
    fn external_user(&self, index: &ExternalIndex) -> Result<Option<UserId>, StoreError> {
        let Some(v) = self.tree.get(external_key(index))? else {
            return Ok(None);
        };
        let bytes = <[u8; 16]>::try_from(v.as_ref())
            .map_err(|_| StoreError::Io("bad external id entry".into()))?;
        Ok(Some(UserId::from_bytes(bytes)))
    }

    fn external_of(&self, user: UserId) -> Result<Option<ExternalIndex>, StoreError> {
        let Some(v) = self.tree.get(external_of_key(user))? else {
            return Ok(None);
        };
        <[u8; 32]>::try_from(v.as_ref())
            .map(Some)
            .map_err(|_| StoreError::Io("bad external id entry".into()))
    }

    fn invitation(&self, user: UserId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(invitation_key(user))?.map(|v| v.to_vec()))
    }

    fn invitations(&self) -> Result<Vec<(UserId, Vec<u8>)>, StoreError> {
        self.tree
            .scan_prefix([INVITATION])
            .map(|kv| {
                let (k, v) = kv?;
                let id = k
                    .get(1..)
                    .and_then(|b| <[u8; 16]>::try_from(b).ok())
                    .map(UserId::from_bytes)
                    .ok_or_else(|| StoreError::Io("bad invitation key".into()))?;
                Ok((id, v.to_vec()))
            })
            .collect()
    }
}
