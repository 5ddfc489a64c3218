//! Recommendation lists: the user's actor hands out its taste, and the list is scored
//! on the caller's task against the recommender's index, honouring every preference
//! (`docs/personalization.md`).

use super::principal::Principal;
use super::{
    ListCard, ListContext, ListDebug, MoodExport, Recommendations, RecommendedItem, SignalsUsed,
};
use crate::domain::activity::Platform;
use crate::domain::feedback::ListTag;
use crate::domain::ids::UserId;
use crate::domain::settings::PersonalizationLevel;
use crate::domain::taste::Daypart;
use crate::domain::tier::TierPolicy;
use crate::domain::validation::ValidationError;
use crate::engine::EngineError;
use crate::engine::user::GetTaste;
use crate::personalization::quality::ListFigures;
use crate::personalization::{Activity, Ask, Context, Index, Mitigation, Signals, recommend};

/// The tier features that unlock recommendation levels.
const ADVANCED_FEATURE: &str = "advanced_recommendations";
const BASIC_FEATURE: &str = "basic_recommendations";

/// Items a list holds when the call does not say.
const DEFAULT_ITEMS: usize = 20;

/// What a recommendations call asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecommendationQuery {
    /// Items wanted (default 20; at most the tier's maximum).
    pub limit: Option<usize>,
    /// What the listener is doing (used at the `advanced` level).
    pub context: Option<Activity>,
    /// Whether tracks the user played or liked may come back.
    pub include_played: bool,
    /// The UTC hour the list is for (default: now).
    pub hour: Option<u8>,
    /// The platform the list is for.
    pub platform: Option<Platform>,
    /// Add the list's exposure figures with and without mitigation (operators only).
    pub debug: bool,
}

/// The most a tier allows: its level and its items per list (config
/// `personalization.max_items`, `basic_max_items`).
pub(super) fn tier_allows(
    policy: &TierPolicy,
    c: &crate::config::PersonalizationConfig,
) -> (PersonalizationLevel, usize) {
    if policy.has_feature(ADVANCED_FEATURE) {
        (PersonalizationLevel::Advanced, c.max_items)
    } else if policy.has_feature(BASIC_FEATURE) {
        (PersonalizationLevel::Basic, c.basic_max_items)
    } else {
        (PersonalizationLevel::Off, c.basic_max_items)
    }
}

/// The bias mitigation the config sets (`personalization.mitigation_*`).
pub(super) fn configured_mitigation(c: &crate::config::PersonalizationConfig) -> Mitigation {
    Mitigation {
        popularity: c.mitigation_popularity,
        diversity: c.mitigation_diversity,
        calibration: c.mitigation_calibration,
    }
}

/// The figures of the list `ask` makes.
fn figures(index: &Index, ask: &Ask<'_>) -> ListFigures {
    let list: Vec<u32> = recommend(index, ask).into_iter().map(|s| s.item).collect();
    ListFigures::of(index, &list)
}

impl super::Personalization<'_> {
    /// A list of recommendations for `id` (the user itself or an operator): ranked
    /// catalog tracks it has not heard, each with a recommendation id and — with
    /// `explanations_enabled` — its reasons.
    pub async fn recommendations(
        self,
        by: &Principal,
        id: UserId,
        q: RecommendationQuery,
    ) -> Result<Recommendations, EngineError> {
        by.on(id)?;
        if q.debug {
            by.privileged()?;
        }
        if let Some(h) = q.hour.filter(|h| *h > 23) {
            return Err(ValidationError::new("hour", format!("must be 0 to 23, got {h}")).into());
        }
        let e = &self.m.engine;
        let view = e.call(id, GetTaste).await?;
        let c = &e.config.personalization;
        let (tier_level, max_items) = tier_allows(&e.config.tier(view.tier).policy, c);
        let limit = q.limit.unwrap_or(DEFAULT_ITEMS.min(max_items));
        if !(1..=max_items).contains(&limit) {
            return Err(ValidationError::new(
                "limit",
                format!(
                    "must be 1 to {max_items} on the {} tier, got {limit}",
                    view.tier.as_str()
                ),
            )
            .into());
        }
        let prefs = &view.prefs;
        let level = if view.consented {
            prefs.personalization_level.min(tier_level)
        } else {
            PersonalizationLevel::Off
        };
        let signals = Signals::of(level, prefs.mood_detection_enabled);
        let configured = configured_mitigation(c);
        let mitigation = prefs.bias_mitigation_enabled.then_some(configured);
        let now = e.clock.now();
        // A taste that heard nothing yet (an app opened, no play) says nothing personal.
        let taste = (level != PersonalizationLevel::Off)
            .then_some(view.taste.as_deref())
            .flatten()
            .filter(|t| !t.heard.is_empty());
        let index = e.recommender.index();
        let hour = q.hour.unwrap_or(now.utc_hour());
        let context = ListContext {
            activity: q.context,
            hour,
            daypart: Daypart::of_hour(hour),
            platform: q.platform,
        };
        let sound = e.federated.published();
        // The user's own model, when one beat the global blend (and the list is personal).
        let custom = view.custom.as_ref().filter(|_| taste.is_some());
        let ask = Ask {
            taste,
            tier: view.tier,
            signals,
            limit,
            include_played: q.include_played,
            context: Context {
                activity: q.context,
                daypart: Some(context.daypart),
                platform: q.platform,
            },
            mitigation,
            learning_rate: prefs.learning_rate,
            sound: sound.model,
            blend: custom.map_or(crate::personalization::Blend::GLOBAL, |v| v.blend),
            deep: custom.is_some(),
            now,
        };
        let list = recommend(&index, &ask);
        let tag = ListTag::new(level, mitigation.is_some());
        let debug = q.debug.then(|| {
            let served = ListFigures::of(&index, &list.iter().map(|s| s.item).collect::<Vec<_>>());
            let other = |m: Option<Mitigation>| {
                figures(
                    &index,
                    &Ask {
                        mitigation: m,
                        ..ask
                    },
                )
            };
            ListDebug {
                served,
                without_mitigation: mitigation.map(|_| other(None)),
                with_mitigation: mitigation.is_none().then(|| other(Some(configured))),
            }
        });
        let items = list
            .into_iter()
            .map(|s| RecommendedItem {
                track_id: index.id(s.item).to_string(),
                score: s.score,
                recommendation_id: tag.recommendation_id(rand::random()),
                reasons: if prefs.explanations_enabled {
                    s.reasons
                } else {
                    Vec::new()
                },
            })
            .collect();
        let mood = taste
            .filter(|_| signals.mood)
            .and_then(|t| t.mood_at(now))
            .map(|(mood, energy, valence)| MoodExport {
                mood,
                energy,
                valence,
            });
        Ok(Recommendations {
            items,
            model: ListCard {
                level,
                preferred_level: prefs.personalization_level,
                tier_level,
                signals: SignalsUsed {
                    popularity: true,
                    genres: taste.is_some() && signals.genres,
                    history: taste.is_some() && signals.collaborative,
                    taste_and_context: taste.is_some() && signals.taste,
                    mood: taste.is_some() && signals.mood,
                },
                bias_mitigation: mitigation.is_some(),
                model_version: index.model_version,
                sound_version: (taste.is_some() && signals.taste).then_some(sound.version),
                catalog_tracks: index.len(),
                mood,
                context,
                served_by: if custom.is_some() { "custom" } else { "global" },
                custom_version: custom.map(|v| v.version),
                served_because: match custom {
                    Some(v) => format!(
                        "the user's own model, version {}, {}",
                        v.version,
                        v.evaluation.verdict()
                    ),
                    None if view.prefs.custom_model_training => {
                        "the global model: no version of the user's own beat it".into()
                    }
                    None => "the global model".into(),
                },
            },
            debug,
        })
    }
}
