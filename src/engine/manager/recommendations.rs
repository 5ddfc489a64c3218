//! Recommendation lists: the user's actor hands out its taste, and the list is scored
//! on the caller's task against the recommender's index, honouring every preference
//! (`docs/personalization.md`).

use super::principal::Principal;
use super::{ListCard, MoodExport, Recommendations, RecommendedItem, SignalsUsed};
use crate::domain::ids::UserId;
use crate::domain::settings::PersonalizationLevel;
use crate::domain::tier::TierPolicy;
use crate::domain::validation::ValidationError;
use crate::engine::EngineError;
use crate::engine::user::GetTaste;
use crate::personalization::{Activity, Ask, Context, Mitigation, Signals, recommend};

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
}

/// The most a tier allows: its level and its items per list (config
/// `personalization.max_items`, `basic_max_items`).
fn tier_allows(
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

fn level_letter(l: PersonalizationLevel) -> char {
    match l {
        PersonalizationLevel::Off => 'o',
        PersonalizationLevel::Basic => 'b',
        PersonalizationLevel::Standard => 's',
        PersonalizationLevel::Advanced => 'a',
    }
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
        let mitigation = prefs.bias_mitigation_enabled.then_some(Mitigation {
            popularity: c.mitigation_popularity,
            diversity: c.mitigation_diversity,
            calibration: c.mitigation_calibration,
        });
        let now = e.clock.now();
        let taste = (level != PersonalizationLevel::Off)
            .then_some(view.taste.as_deref())
            .flatten();
        let index = e.recommender.index();
        let ask = Ask {
            taste,
            tier: view.tier,
            signals,
            limit,
            include_played: q.include_played,
            context: Context {
                activity: q.context,
            },
            mitigation,
            learning_rate: prefs.learning_rate,
            now,
        };
        let list = recommend(&index, &ask);
        let tag = format!(
            "r1.{}{}",
            level_letter(level),
            u8::from(mitigation.is_some())
        );
        let items = list
            .into_iter()
            .map(|s| RecommendedItem {
                track_id: index.id(s.item).to_string(),
                score: s.score,
                recommendation_id: format!("{tag}.{:016x}", rand::random::<u64>()),
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
                catalog_tracks: index.len(),
                mood,
            },
        })
    }
}
