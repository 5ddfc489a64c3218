//! A user's listening log: the plays, skips, likes and app opens it reported, kept in
//! sealed chunks while its own model may be trained (the tier feature, the preference
//! on, the consent to personalisation not withdrawn), for the training to replay. The
//! actor gathers the events and writes them as one chunk with its next write (soft
//! state: a crash loses what the last write did not take); turning the preference off
//! (or withdrawing the consent, or a tier without the feature) clears the log and the
//! models in the same write, and deleting the user removes them with it.

use serde::{Deserialize, Serialize};

use crate::domain::activity::{ActivityEvent, Platform};
use crate::domain::ids::UserId;
use crate::domain::time::Timestamp;
use crate::security::keys::DataKey;
use crate::store::codec::{self, CodecError};

/// Events a chunk gathers at most before the actor lets the oldest go (a backlog far
/// beyond what one write interval brings).
pub(crate) const MAX_PENDING: usize = 20_000;

/// One write in this many of a user who listens checks its log against
/// `log_events` (a read of the log), so the log stays within a quarter beyond that.
pub(crate) const COMPACT_EVERY: u64 = 16;

/// The fewest bytes an event takes in a sealed chunk (a tag, a one-byte track id and a
/// time): a log of fewer bytes than `n` times this cannot hold `n` events.
pub(crate) const MIN_BYTES: usize = 4;

/// One event as a chunk keeps it: what the taste learns from, nothing more.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Listen {
    Played(String, i64),
    Skipped(String, i64),
    Liked(String, i64),
    Opened(Platform, i64),
}

impl Listen {
    fn of(e: &ActivityEvent) -> Option<Self> {
        Some(match e {
            ActivityEvent::TrackPlayed { track_id, at, .. } => {
                Self::Played(track_id.clone(), at.as_millis())
            }
            ActivityEvent::TrackSkipped { track_id, at, .. } => {
                Self::Skipped(track_id.clone(), at.as_millis())
            }
            ActivityEvent::TrackLiked { track_id, at } => {
                Self::Liked(track_id.clone(), at.as_millis())
            }
            ActivityEvent::AppOpened { at, platform } => Self::Opened(*platform, at.as_millis()),
            _ => return None,
        })
    }

    fn event(self) -> ActivityEvent {
        let at = Timestamp::from_millis;
        match self {
            Self::Played(track_id, t) => ActivityEvent::TrackPlayed {
                track_id,
                at: at(t),
                duration_ms: 0,
            },
            Self::Skipped(track_id, t) => ActivityEvent::TrackSkipped {
                track_id,
                at: at(t),
                position_ms: 0,
            },
            Self::Liked(track_id, t) => ActivityEvent::TrackLiked {
                track_id,
                at: at(t),
            },
            Self::Opened(platform, t) => ActivityEvent::AppOpened {
                at: at(t),
                platform,
            },
        }
    }
}

/// Whether the log keeps an event (plays, skips, likes, app opens).
pub(crate) fn kept(e: &ActivityEvent) -> bool {
    Listen::of(e).is_some()
}

/// The associated data of a user's chunk `seq`.
fn aad(user: UserId, seq: u64) -> [u8; 25] {
    let mut a = [0u8; 25];
    a[0] = b'L';
    a[1..17].copy_from_slice(user.as_bytes());
    a[17..].copy_from_slice(&seq.to_be_bytes());
    a
}

/// A chunk of `events` (those the log keeps), sealed.
pub(crate) fn seal(
    key: &DataKey,
    user: UserId,
    seq: u64,
    events: &[ActivityEvent],
) -> Result<Vec<u8>, CodecError> {
    let listens: Vec<Listen> = events.iter().filter_map(Listen::of).collect();
    let plain = codec::encode_plain(&listens)?;
    Ok(codec::seal_blob(key, &aad(user, seq), &plain))
}

/// The events of a sealed chunk.
pub(crate) fn open(
    key: &DataKey,
    user: UserId,
    seq: u64,
    blob: &[u8],
) -> Result<Vec<ActivityEvent>, CodecError> {
    let plain = codec::open_blob(key, &aad(user, seq), blob)?;
    let listens: Vec<Listen> = codec::decode_plain(&plain)?;
    Ok(listens.into_iter().map(Listen::event).collect())
}

/// One event of the listening log, as the user's data export shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ListenExport {
    /// `track_played`, `track_skipped`, `track_liked` or `app_opened`.
    pub kind: &'static str,
    /// When.
    pub at: Timestamp,
    /// The track, for a play, skip or like.
    pub track_id: Option<String>,
    /// The client, for an app opened.
    pub platform: Option<Platform>,
}

impl ListenExport {
    /// The event as exported, if the log keeps it.
    pub(crate) fn of(e: &ActivityEvent) -> Option<Self> {
        let (kind, track_id, platform) = match Listen::of(e)? {
            Listen::Played(t, _) => ("track_played", Some(t), None),
            Listen::Skipped(t, _) => ("track_skipped", Some(t), None),
            Listen::Liked(t, _) => ("track_liked", Some(t), None),
            Listen::Opened(p, _) => ("app_opened", None, Some(p)),
        };
        Some(Self {
            kind,
            at: e.at(),
            track_id,
            platform,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_keeps_what_the_taste_learns_from_and_opens_only_as_itself() {
        let key = DataKey::generate();
        let user = UserId::generate();
        let at = Timestamp::from_millis(1_780_000_000_000);
        let events = vec![
            ActivityEvent::TrackPlayed {
                track_id: "a".into(),
                at,
                duration_ms: 1_000,
            },
            ActivityEvent::Searched { at },
            ActivityEvent::TrackSkipped {
                track_id: "b".into(),
                at,
                position_ms: 10,
            },
            ActivityEvent::TrackLiked {
                track_id: "a".into(),
                at,
            },
            ActivityEvent::AppOpened {
                at,
                platform: Platform::Ios,
            },
        ];
        let blob = seal(&key, user, 7, &events).unwrap();
        let back = open(&key, user, 7, &blob).unwrap();
        assert_eq!(back.len(), 4, "the search is not kept");
        assert_eq!(back[0].track_id(), Some("a"));
        assert_eq!(back[3].at(), at);
        // Another chunk number, user or key does not open it.
        assert!(open(&key, user, 8, &blob).is_err());
        assert!(open(&key, UserId::generate(), 7, &blob).is_err());
        assert!(open(&DataKey::generate(), user, 7, &blob).is_err());
    }
}
