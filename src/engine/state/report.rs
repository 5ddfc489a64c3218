//! What a report over the stored population reads of a user, decoded from the front of
//! its record: since format 6 the consents, the history (since format 7 the taste, since
//! format 8 the recommendation feedback, since format 10 the days of rate refusals) and
//! the profile's head (id, names, tier, sign-up time, AI preferences, quota counters)
//! lead the payload, so a report skips the credentials, sessions, second factors, risk
//! profile and security events it never looks at.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::UserState;
use crate::domain::consent::ConsentState;
use crate::domain::feedback::ListFeedback;
use crate::domain::history::ActivityHistory;
use crate::domain::ids::UserId;
use crate::domain::profile::UsageCounters;
use crate::domain::rate::RateRefusals;
use crate::domain::settings::{AIPreferences, PersonalizationLevel, SecuritySettings};
use crate::domain::taste::Taste;
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;
use crate::security::keys::DataKey;
use crate::store::codec::{self, CodecError};

/// A user as a report sees it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ReportView {
    /// Its consents (a report counts only what they allow).
    pub consents: ConsentState,
    /// Its activity.
    pub history: ActivityHistory,
    /// Its taste (what the recommender trains on, under the personalisation consent).
    pub taste: Option<Box<Taste>>,
    /// What became of the recommendations it was shown.
    pub feedback: ListFeedback,
    /// Its tier.
    pub tier: UserTier,
    /// When it signed up.
    pub created_at: Timestamp,
    /// Its `personalization_level` (at `off` its taste is not trained on).
    pub personalization_level: PersonalizationLevel,
    /// Its quota counters.
    pub usage: UsageCounters,
    /// The days its requests were refused for its tier's rate.
    pub refusals: RateRefusals,
}

impl From<UserState> for ReportView {
    fn from(s: UserState) -> Self {
        Self {
            tier: s.profile.tier,
            created_at: s.profile.created_at,
            personalization_level: s.profile.ai_preferences.personalization_level,
            usage: s.profile.usage.clone(),
            refusals: (*s.refusals).clone(),
            consents: s.consents,
            history: s.history,
            taste: s.taste,
            feedback: s.feedback,
        }
    }
}

/// The leading fields of a format-10 payload ([`UserState`]'s first six).
#[derive(Deserialize)]
struct Head {
    consents: ConsentState,
    history: ActivityHistory,
    taste: Option<Box<Taste>>,
    feedback: ListFeedback,
    refusals: RateRefusals,
    profile: ProfileHead,
}

/// The leading fields of a format-8 or -9 payload: format 10's without the refusals.
#[derive(Deserialize)]
struct HeadV8 {
    consents: ConsentState,
    history: ActivityHistory,
    taste: Option<Box<Taste>>,
    feedback: ListFeedback,
    profile: ProfileHead,
}

impl From<HeadV8> for Head {
    fn from(h: HeadV8) -> Self {
        Self {
            consents: h.consents,
            history: h.history,
            taste: h.taste,
            feedback: h.feedback,
            refusals: RateRefusals::default(),
            profile: h.profile,
        }
    }
}

/// The leading fields of a stored [`crate::domain::profile::UserProfile`], up to its
/// usage counters; the strings before them are stepped over without a copy. Kept in step
/// with the profile by the test below, which reads a real record through it.
#[derive(Deserialize)]
struct ProfileHead {
    #[serde(rename = "id")]
    _id: UserId,
    #[serde(rename = "email")]
    _email: Unread,
    #[serde(rename = "display_name")]
    _display_name: Unread,
    #[serde(rename = "language")]
    _language: Unread,
    #[serde(rename = "timezone")]
    _timezone: Unread,
    tier: UserTier,
    created_at: Timestamp,
    #[serde(rename = "updated_at")]
    _updated_at: Timestamp,
    #[serde(rename = "security_settings")]
    _security_settings: SecuritySettings,
    ai_preferences: AIPreferences,
    usage: UsageCounters,
}

/// A string field read past (borrowed from the payload, never allocated).
struct Unread;

impl<'de> Deserialize<'de> for Unread {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Unread;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Unread, E> {
                Ok(Unread)
            }
        }
        d.deserialize_str(V)
    }
}

/// Reads the report's view of a stored record: the leading fields of the current format,
/// or an older record decoded whole.
pub(crate) fn report_view(
    record: &[u8],
    key: &DataKey,
    id: UserId,
) -> Result<ReportView, CodecError> {
    // Format 9 appended to format 8's payload: both begin with the same head, which
    // format 10 extended. An older record is refused by the first read before it is
    // opened, so no record is decrypted twice.
    let aad = id.as_bytes();
    let head = match codec::decode_head::<Head>(record, key, aad, 10)? {
        Some(h) => Some(h),
        None => codec::decode_head::<HeadV8>(record, key, aad, 8)?.map(Head::from),
    };
    match head {
        Some(h) => Ok(ReportView {
            consents: h.consents,
            history: h.history,
            taste: h.taste,
            feedback: h.feedback,
            tier: h.profile.tier,
            created_at: h.profile.created_at,
            personalization_level: h.profile.ai_preferences.personalization_level,
            usage: h.profile.usage,
            refusals: h.refusals,
        }),
        None => super::decode(record, key, id).map(ReportView::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::activity::ActivityEvent;
    use crate::domain::consent::Purpose;
    use crate::engine::state::{
        UserStateV5, UserStateV6, UserStateV7, UserStateV8, UserStateV9, encode, tests::state,
    };

    #[test]
    fn the_view_of_a_record_is_what_the_whole_state_holds() {
        let t = Timestamp::from_millis(1_700_000_000_000);
        let mut s = state(t);
        s.profile.make_mut().tier = UserTier::Enterprise;
        s.profile.make_mut().usage.playlists = 7;
        s.profile.make_mut().display_name = "Ünïcode név, long enough to matter".into();
        s.history.record(&[ActivityEvent::Searched { at: t }]);
        s.consents.set(Purpose::Analytics, true, t);
        let key = DataKey::generate();
        let id = s.profile.id;
        let whole = ReportView::from(s.clone());
        assert_eq!(whole.tier, UserTier::Enterprise);
        assert_eq!(whole.usage.playlists, 7);
        let current = encode(&s, &key, id).unwrap();
        assert_eq!(report_view(&current, &key, id).unwrap(), whole);
        // Records of formats 5 and 6 are read whole, to the same view (with no taste).
        let v5 = codec::seal_as_version(5, &UserStateV5::of(&s), &key, id.as_bytes()).unwrap();
        assert_eq!(report_view(&v5, &key, id).unwrap(), whole);
        let v6 = codec::seal_as_version(6, &UserStateV6::of(&s), &key, id.as_bytes()).unwrap();
        assert_eq!(report_view(&v6, &key, id).unwrap(), whole);
        let v7 = codec::seal_as_version(7, &UserStateV7::of(&s), &key, id.as_bytes()).unwrap();
        assert_eq!(report_view(&v7, &key, id).unwrap(), whole);
        // Format 8's head is read as format 9's.
        let v8 = codec::seal_as_version(8, &UserStateV8::of(&s), &key, id.as_bytes()).unwrap();
        assert_eq!(report_view(&v8, &key, id).unwrap(), whole);
        let v9 = codec::seal_as_version(9, &UserStateV9::of(&s), &key, id.as_bytes()).unwrap();
        assert_eq!(report_view(&v9, &key, id).unwrap(), whole);
        // Format 10's head carries the refusals.
        let mut refused = s.clone();
        refused.refusals.record(t);
        let record = encode(&refused, &key, id).unwrap();
        let view = report_view(&record, &key, id).unwrap();
        assert_eq!(view.refusals.within(0, u32::MAX), (1, 1));
        assert_eq!(view, ReportView::from(refused));
        // The taste and the feedback are read from the head of the current format.
        let mut tasted = s.clone();
        let play = ActivityEvent::TrackPlayed {
            track_id: "x".into(),
            at: t,
            duration_ms: 1_000,
        };
        let mut taste = crate::domain::taste::Taste::default();
        taste.learn(&play, None, 0.1);
        tasted.taste = Some(Box::new(taste));
        let tag = crate::domain::feedback::ListTag::new(
            crate::domain::settings::PersonalizationLevel::Basic,
            true,
        );
        tasted
            .feedback
            .record(&[ActivityEvent::RecommendationShown {
                at: t,
                recommendation_id: tag.recommendation_id(7),
                track_id: None,
            }]);
        assert_eq!(tasted.feedback.counts().len(), 1);
        let record = encode(&tasted, &key, id).unwrap();
        assert_eq!(
            report_view(&record, &key, id).unwrap(),
            ReportView::from(tasted)
        );
        // Damage is still caught.
        let mut bad = current.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(report_view(&bad, &key, id).is_err());
        assert_eq!(
            report_view(&current, &DataKey::generate(), id),
            Err(CodecError::Unauthentic)
        );
    }
}
