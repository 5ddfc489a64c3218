//! The user state as format 12 stored it: its linked accounts lacked the account's
//! name at the provider (format 13). A struct's fields follow each other in the
//! encoding with nothing between, so format 12 reads as format 11 followed by its links.

use serde::{Deserialize, Serialize};

use super::{UserState, UserStateV11};
use crate::domain::link::{LinkStatus, LinkTokens, LinkedAccount, Links, PendingLink};
use crate::domain::time::Timestamp;

/// See the module.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UserStateV12 {
    head: UserStateV11,
    links: Option<Box<LinksV12>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct LinksV12 {
    pending: Vec<PendingLink>,
    accounts: Vec<LinkedAccountV12>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct LinkedAccountV12 {
    provider: String,
    scopes: Vec<String>,
    status: LinkStatus,
    linked_at: Timestamp,
    refreshed_at: Option<Timestamp>,
    synced_at: Option<Timestamp>,
    instance_url: Option<String>,
    tokens: LinkTokens,
}

impl UserStateV12 {
    /// `s` as format 12 held it (tests of older stores; the accounts' names are lost).
    #[cfg(test)]
    pub(crate) fn of(s: &UserState) -> Self {
        let links = s.links.as_deref().map(|l| {
            Box::new(LinksV12 {
                pending: l.pending.clone(),
                accounts: l
                    .accounts
                    .iter()
                    .map(|a| LinkedAccountV12 {
                        provider: a.provider.clone(),
                        scopes: a.scopes.clone(),
                        status: a.status,
                        linked_at: a.linked_at,
                        refreshed_at: a.refreshed_at,
                        synced_at: a.synced_at,
                        instance_url: a.instance_url.clone(),
                        tokens: a.tokens.clone(),
                    })
                    .collect(),
            })
        });
        Self {
            head: UserStateV11::of(s),
            links,
        }
    }
}

impl From<UserStateV12> for UserState {
    fn from(v: UserStateV12) -> Self {
        let mut state = UserState::from(v.head);
        state.links = v.links.map(|l| {
            Box::new(Links {
                pending: l.pending,
                accounts: l
                    .accounts
                    .into_iter()
                    .map(|a| LinkedAccount {
                        provider: a.provider,
                        scopes: a.scopes,
                        status: a.status,
                        linked_at: a.linked_at,
                        refreshed_at: a.refreshed_at,
                        synced_at: a.synced_at,
                        instance_url: a.instance_url,
                        account: None,
                        creative: None,
                        tokens: a.tokens,
                    })
                    .collect(),
            })
        });
        state
    }
}
