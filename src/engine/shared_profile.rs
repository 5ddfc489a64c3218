//! The profile as a user's actor shares it: requests get a read-only snapshot without a
//! copy, changes copy on write, and the JSON rendering is kept beside the snapshot it was
//! made from.
//!
//! `GET /users/me` is the hottest read of the API. Rendering the ~1 KB profile to JSON was
//! about 7% of the server's CPU per request; the rendering only changes when the profile
//! does, so it is made once per change, by the first request that needs it, and shared.
//! The only way to a mutable profile is [`SharedProfile::make_mut`], which drops the
//! rendering, so a stale one cannot be served.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::profile::UserProfile;

/// A shared, copy-on-write profile with its JSON rendering cached.
#[derive(Clone)]
pub struct SharedProfile(Arc<Cell>);

struct Cell {
    profile: UserProfile,
    /// The profile rendered as JSON; empty until first asked for.
    json: OnceLock<Bytes>,
}

impl Clone for Cell {
    // A copy is made to be changed, so it starts without a rendering.
    fn clone(&self) -> Self {
        Self {
            profile: self.profile.clone(),
            json: OnceLock::new(),
        }
    }
}

impl SharedProfile {
    /// Shares `profile`.
    pub(crate) fn new(profile: UserProfile) -> Self {
        Self(Arc::new(Cell {
            profile,
            json: OnceLock::new(),
        }))
    }

    /// The profile to change: copied first if a request still holds this snapshot. The
    /// cached rendering is dropped.
    pub(crate) fn make_mut(&mut self) -> &mut UserProfile {
        let cell = Arc::make_mut(&mut self.0);
        cell.json = OnceLock::new();
        &mut cell.profile
    }

    /// The profile as JSON, rendered on the first call for this snapshot.
    pub(crate) fn json(&self) -> Result<Bytes, serde_json::Error> {
        if let Some(b) = self.0.json.get() {
            return Ok(b.clone());
        }
        let b = Bytes::from(serde_json::to_vec(&self.0.profile)?);
        // Two requests may render at once; both results are equal, the first is kept.
        Ok(self.0.json.get_or_init(|| b).clone())
    }

    /// The profile, copied out only if a request still holds this snapshot.
    pub(crate) fn into_inner(self) -> UserProfile {
        Arc::try_unwrap(self.0)
            .map(|c| c.profile)
            .unwrap_or_else(|shared| shared.profile.clone())
    }

    /// Whether both are the same snapshot (not merely equal).
    #[cfg(test)]
    fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl Deref for SharedProfile {
    type Target = UserProfile;
    fn deref(&self) -> &UserProfile {
        &self.0.profile
    }
}

impl AsRef<UserProfile> for SharedProfile {
    fn as_ref(&self) -> &UserProfile {
        &self.0.profile
    }
}

impl From<UserProfile> for SharedProfile {
    fn from(p: UserProfile) -> Self {
        Self::new(p)
    }
}

impl PartialEq for SharedProfile {
    fn eq(&self, other: &Self) -> bool {
        self.0.profile == other.0.profile
    }
}

impl fmt::Debug for SharedProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.profile.fmt(f)
    }
}

// Stored exactly as the bare profile (as `Arc<UserProfile>` was), so snapshot formats
// are unchanged.
impl Serialize for SharedProfile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.profile.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedProfile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        UserProfile::deserialize(d).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn profile() -> UserProfile {
        let t = crate::domain::time::Timestamp::from_millis(1_000_000_000);
        crate::engine::state::tests::state(t).profile.into_inner()
    }

    #[test]
    fn the_rendering_is_the_profile_as_json_and_is_made_once() {
        let p = SharedProfile::new(profile());
        let a = p.json().unwrap();
        assert_eq!(a, serde_json::to_vec(&*p).unwrap());
        let b = p.clone().json().unwrap();
        // The same buffer, not a second rendering.
        assert_eq!(a.as_ptr(), b.as_ptr());
    }

    #[test]
    fn a_change_drops_the_rendering_and_leaves_held_snapshots_alone() {
        let mut p = SharedProfile::new(profile());
        let before = p.json().unwrap();
        let held = p.clone();
        p.make_mut().display_name = "Changed Name".into();
        let after = p.json().unwrap();
        assert!(!SharedProfile::ptr_eq(&p, &held));
        assert!(String::from_utf8_lossy(&after).contains("Changed Name"));
        assert_eq!(held.json().unwrap(), before);
        assert!(!String::from_utf8_lossy(&before).contains("Changed Name"));

        // Changed in place (no other holder): still re-rendered.
        drop(held);
        p.make_mut().display_name = "Again".into();
        assert!(String::from_utf8_lossy(&p.json().unwrap()).contains("\"Again\""));
    }

    #[test]
    fn stored_bytes_are_those_of_the_bare_profile() {
        use crate::store::codec;
        let p = profile();
        let bare = codec::encode_as_version(3, &p).unwrap();
        let shared = codec::encode_as_version(3, &SharedProfile::new(p.clone())).unwrap();
        assert_eq!(bare, shared);
        let key = crate::security::keys::DataKey::generate();
        let sealed = codec::seal(&SharedProfile::new(p.clone()), &key, b"owner").unwrap();
        let back: UserProfile = codec::open_sealed(&sealed, &key, b"owner").unwrap();
        assert_eq!(back, p);
        let back: SharedProfile = codec::open_sealed(&sealed, &key, b"owner").unwrap();
        assert_eq!(*back, p);
    }
}
