//! What an identity provider says of a user beyond its profile (SCIM provisioning,
//! issue 20): the provider's id for it, its given and family names, and whether the
//! provider deactivated it. Plain data; the SCIM filter over it is in [`filter`].

pub mod filter;

use serde::{Deserialize, Serialize};

use super::ids::UserId;
use super::tier::UserTier;
use super::time::Timestamp;

/// Kept in the user's state (and its snapshot) once an identity provider wrote it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    /// The provider's id of the user (SCIM `externalId`), as it sent it.
    pub external_id: Option<String>,
    /// SCIM `name.givenName`.
    pub given_name: Option<String>,
    /// SCIM `name.familyName`.
    pub family_name: Option<String>,
    /// When the provider deactivated the account (SCIM `active: false`): no login
    /// succeeds and its sessions were ended. `None` while active.
    pub deactivated_at: Option<Timestamp>,
}

impl DirectoryEntry {
    /// Whether the account may log in.
    pub fn is_active(&self) -> bool {
        self.deactivated_at.is_none()
    }

    /// `given family`, or whichever is set.
    pub fn formatted_name(&self) -> Option<String> {
        match (&self.given_name, &self.family_name) {
            (Some(g), Some(f)) => Some(format!("{g} {f}")),
            (Some(n), None) | (None, Some(n)) => Some(n.clone()),
            (None, None) => None,
        }
    }
}

/// A user as an identity provider asks it to be (a SCIM create or replace).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DirectoryUser {
    /// The login email (SCIM `userName`).
    pub email: String,
    /// The provider's id of the user.
    pub external_id: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Display name (kept when absent).
    pub display_name: Option<String>,
    /// Language, BCP 47 (kept when absent).
    pub language: Option<String>,
    /// IANA time zone (kept when absent).
    pub timezone: Option<String>,
    /// Tier (Free for a new user, kept when absent).
    pub tier: Option<UserTier>,
    /// Whether the account may log in (a new user is active, an existing one keeps
    /// what it was when `None`).
    pub active: Option<bool>,
    /// A password in clear, write-only (checked by the policy and hashed). A new user
    /// without one is invited to set it.
    pub password: Option<String>,
}

/// A user as an identity provider reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct DirectoryRecord {
    /// The user.
    pub id: UserId,
    /// Its login email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Language.
    pub language: String,
    /// Time zone.
    pub timezone: String,
    /// Tier.
    pub tier: UserTier,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its profile or entry last changed.
    pub updated_at: Timestamp,
    /// What the provider said of it.
    pub entry: DirectoryEntry,
}
