//! `GET /api/v1/admin/models`: every model the recommender and the analytics serve
//! from, in one view for operators — the global ones in force with the versions
//! stored, the users' own models (counted over all of them, listed a page at a time)
//! and the federated rounds with the privacy they spent.

use super::FederatedStatus;
use super::principal::Principal;
use crate::analytics::churn::ChurnModel;
use crate::domain::ids::UserId;
use crate::domain::time::Timestamp;
use crate::engine::custom::{self, CustomModels};
use crate::engine::{Engine, EngineError, background, models};
use crate::personalization::Blend;
use crate::store::ModelKind;

/// Users' rows a page lists when the call does not say, and the most it may ask.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1_000;

/// What `GET /api/v1/admin/models` asks for: the page of users' own models.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelsQuery {
    /// Users after this id (the previous page's `next_after`).
    pub after: Option<UserId>,
    /// Users listed (default 100, at most 1,000).
    pub limit: Option<usize>,
}

/// Every model, as operators see them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ModelsView {
    /// The models every user is served by unless its own serves.
    pub global: GlobalModels,
    /// The users' own models.
    pub own: OwnModels,
    /// The federated sound model and its rounds.
    pub federated: FederatedModels,
}

/// The global models.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct GlobalModels {
    /// The blend of the recommender's terms that lists are made with (and that users'
    /// own models are judged against).
    pub blend: Blend,
    /// The collaborative model in force, if one was trained.
    pub recommender: Option<RecommenderCard>,
    /// The collaborative model's versions stored, oldest first.
    pub recommender_versions: Vec<u64>,
    /// The churn model's versions stored, oldest first, with their held-out figures.
    pub churn: Vec<ChurnCard>,
    /// The behaviour segmentation in force, if one was trained.
    pub segments: Option<u64>,
    /// The segmentation's versions stored, oldest first.
    pub segments_versions: Vec<u64>,
}

/// The collaborative model in force.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RecommenderCard {
    /// Its version.
    pub version: u64,
    /// When it was trained.
    pub trained_at: Timestamp,
    /// Users whose tastes it learned from.
    pub users: u64,
    /// The (user, track) pairs it learned from.
    pub interactions: u64,
    /// Tracks it covers.
    pub tracks: usize,
    /// Tracks with at least one neighbour.
    pub tracks_with_neighbours: usize,
}

/// One stored churn model.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ChurnCard {
    /// Its version.
    pub version: u64,
    /// When it was trained.
    pub trained_at: Timestamp,
    /// Rows it was fitted on.
    pub training_rows: u64,
    /// Held-out area under the ROC curve.
    pub auc: f64,
    /// Whether it is good enough to be used.
    pub usable: bool,
    /// Whether it predicts now.
    pub in_force: bool,
}

/// The users' own models: figures over all of them, and a page of users.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct OwnModels {
    /// Users with at least one version stored.
    pub users: u64,
    /// Of them, users with a version that beat the global blend (it serves their lists
    /// while the preference is on).
    pub users_served_by_own: u64,
    /// Versions stored, over all users.
    pub versions: u64,
    /// Users whose models could not be opened (logged, left out).
    pub unreadable: u64,
    /// Mean hit rate @k of the versions in force on their own held-out plays.
    pub mean_hit_rate: Option<f64>,
    /// Mean hit rate of the global blend on those same plays.
    pub mean_global_hit_rate: Option<f64>,
    /// Trainings since the server started, by state.
    pub trainings: TrainingCounts,
    /// A page of users, in id order.
    pub page: Vec<OwnModelRow>,
    /// The id to ask for the next page after (`?after=`), if there are more.
    pub next_after: Option<UserId>,
}

/// Trainings remembered, by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct TrainingCounts {
    /// Waiting for one of their tier's slots.
    pub queued: u64,
    /// Fitting.
    pub running: u64,
    /// Ended with a version.
    pub done: u64,
    /// Ended without one.
    pub failed: u64,
}

/// One user's own models.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct OwnModelRow {
    /// The user.
    pub user_id: UserId,
    /// Its versions, oldest first.
    pub versions: Vec<u64>,
    /// The version that serves while the preference is on, if one does.
    pub in_force: Option<u64>,
    /// The version it pinned, if any.
    pub pinned: Option<u64>,
    /// The newest version's training time.
    pub trained_at: Option<Timestamp>,
    /// The version in force's (else the newest's) hit rate @k on the held-out plays.
    pub hit_rate: Option<f64>,
    /// The global blend's on the same plays.
    pub global_hit_rate: Option<f64>,
    /// The sign test's p-value for it.
    pub p_value: Option<f64>,
}

/// The federated model: its rounds and privacy, and the versions stored.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct FederatedModels {
    /// The rounds, as `GET /api/v1/admin/federated` shows them.
    #[serde(flatten)]
    pub status: FederatedStatus,
    /// The versions stored, oldest first.
    pub versions: Vec<u64>,
}

impl OwnModels {
    fn add(&mut self, user: UserId, m: &CustomModels, listed: bool) -> Option<OwnModelRow> {
        self.users += 1;
        self.versions += m.versions.len() as u64;
        let in_force = m.in_force();
        let judged = in_force.or(m.versions.last());
        if let Some(v) = in_force {
            self.users_served_by_own += 1;
            *self.mean_hit_rate.get_or_insert(0.0) += v.evaluation.hit_rate;
            *self.mean_global_hit_rate.get_or_insert(0.0) += v.evaluation.global_hit_rate;
        }
        listed.then(|| OwnModelRow {
            user_id: user,
            versions: m.versions.iter().map(|v| v.version).collect(),
            in_force: in_force.map(|v| v.version),
            pinned: m.pinned,
            trained_at: m.versions.last().map(|v| v.trained_at),
            hit_rate: judged.map(|v| v.evaluation.hit_rate),
            global_hit_rate: judged.map(|v| v.evaluation.global_hit_rate),
            p_value: judged.map(|v| v.evaluation.p_value),
        })
    }

    /// Every stored user's own models read once (blocking: a batch thread).
    fn read(e: &Engine, after: Option<UserId>, limit: usize) -> Result<Self, EngineError> {
        let store = e.store.as_ref();
        let mut own = Self::default();
        for item in store.scan_custom_models() {
            let (user, blob) = item?;
            let opened = e.keys.data_key(store, user).and_then(|key| {
                let key = key.ok_or(EngineError::NotFound)?;
                custom::open(&key, user, &blob).map_err(|err| EngineError::Corrupt {
                    user,
                    reason: format!("its own models: {err}"),
                })
            });
            let models = match opened {
                Ok(m) => m,
                Err(err) => {
                    tracing::error!(%user, error = %err, "own models unreadable");
                    own.unreadable += 1;
                    continue;
                }
            };
            own.take(user, &models, after, limit);
        }
        own.finish();
        Ok(own)
    }

    /// Counts a user's models (in id order), and lists it if it falls in the page
    /// (after `after`, while fewer than `limit` are listed).
    fn take(&mut self, user: UserId, m: &CustomModels, after: Option<UserId>, limit: usize) {
        if m.versions.is_empty() {
            return;
        }
        let wanted = after.is_none_or(|a| user > a);
        if wanted && self.page.len() == limit && self.next_after.is_none() {
            self.next_after = self.page.last().map(|r| r.user_id);
        }
        if let Some(row) = self.add(user, m, wanted && self.page.len() < limit) {
            self.page.push(row);
        }
    }

    /// The sums made means.
    fn finish(&mut self) {
        let served = self.users_served_by_own as f64;
        for mean in [&mut self.mean_hit_rate, &mut self.mean_global_hit_rate] {
            *mean = mean.map(|sum| sum / served);
        }
    }
}

impl super::Personalization<'_> {
    /// Every model in one view (operators): the global models in force and stored, the
    /// users' own models (each opened with its user's key: a batch read of all of them)
    /// and the federated rounds.
    pub async fn models(self, by: &Principal, q: ModelsQuery) -> Result<ModelsView, EngineError> {
        by.privileged()?;
        let limit = q.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(crate::domain::validation::ValidationError::new(
                "limit",
                format!("must be 1 to {MAX_PAGE}, got {limit}"),
            )
            .into());
        }
        let federated = self.federated_status(by)?;
        let e = &self.m.engine;
        let trainings = e.custom.counts();
        let engine = e.clone();
        background::run("roster-models", move || {
            let e = engine.as_ref();
            let store = e.store.as_ref();
            let in_force = e.models.churn().map(|m| m.version);
            let churn = models::stored::<ChurnModel>(store, ModelKind::Churn)?
                .into_iter()
                .map(|m| ChurnCard {
                    version: m.version,
                    trained_at: m.trained_at,
                    training_rows: m.training_rows,
                    auc: m.evaluation.auc,
                    usable: m.usable,
                    in_force: in_force == Some(m.version),
                })
                .collect();
            let recommender = e.recommender.model().map(|m| RecommenderCard {
                version: m.version,
                trained_at: m.trained_at,
                users: m.users,
                interactions: m.interactions,
                tracks: m.tracks.len(),
                tracks_with_neighbours: m.neighbours.iter().filter(|n| !n.is_empty()).count(),
            });
            let global = GlobalModels {
                blend: Blend::GLOBAL,
                recommender,
                recommender_versions: models::versions(store, ModelKind::Recommender)?.1,
                churn,
                segments: e.models.segments().map(|s| s.version),
                segments_versions: models::versions(store, ModelKind::Segments)?.1,
            };
            let mut own = OwnModels::read(e, q.after, limit)?;
            own.trainings = trainings;
            Ok(ModelsView {
                global,
                own,
                federated: FederatedModels {
                    status: federated,
                    versions: models::versions(store, ModelKind::Federated)?.1,
                },
            })
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::custom::CustomVersion;
    use crate::personalization::custom::Evaluation;

    fn models(better: bool, hit_rate: f64) -> CustomModels {
        let mut m = CustomModels::default();
        let evaluation = Evaluation {
            cases: 20,
            k: 10,
            hits: (hit_rate * 20.0) as u32,
            global_hits: 2,
            hit_rate,
            global_hit_rate: 0.1,
            ranked_higher: 15,
            ranked_lower: 5,
            p_value: if better { 0.02 } else { 0.4 },
            better,
        };
        let v = CustomVersion {
            version: 0,
            trained_at: Timestamp::from_millis(1_800_000_000_000),
            blend: Blend::GLOBAL,
            global: Blend::GLOBAL,
            evaluation,
            events: 500,
            trained_cases: 80,
        };
        m.add(v, 5);
        m
    }

    #[test]
    fn the_figures_cover_everyone_and_the_page_goes_on_after_its_last_user() {
        let mut ids: Vec<UserId> = (0..5).map(|_| UserId::generate()).collect();
        ids.sort();
        let all = |after: Option<UserId>, limit: usize| {
            let mut own = OwnModels::default();
            for (n, id) in ids.iter().enumerate() {
                // The third user has none stored (all deleted): not counted.
                let m = match n {
                    2 => CustomModels::default(),
                    _ => models(n % 2 == 0, 0.2 + n as f64 / 10.0),
                };
                own.take(*id, &m, after, limit);
            }
            own.finish();
            own
        };
        let first = all(None, 2);
        assert_eq!(
            (first.users, first.users_served_by_own, first.versions),
            (4, 2, 4)
        );
        // Served: users 0 and 4, hit rates 0.2 and 0.6.
        assert!((first.mean_hit_rate.unwrap() - 0.4).abs() < 1e-9);
        assert!((first.mean_global_hit_rate.unwrap() - 0.1).abs() < 1e-9);
        let listed: Vec<UserId> = first.page.iter().map(|r| r.user_id).collect();
        assert_eq!(listed, [ids[0], ids[1]]);
        assert_eq!(first.page[0].in_force, Some(1));
        assert_eq!(
            first.page[1].in_force, None,
            "it did not beat the global blend"
        );
        assert_eq!(first.page[1].p_value, Some(0.4), "the newest is judged");
        assert_eq!(first.next_after, Some(ids[1]));
        let second = all(first.next_after, 2);
        let listed: Vec<UserId> = second.page.iter().map(|r| r.user_id).collect();
        assert_eq!(listed, [ids[3], ids[4]], "the user with none is skipped");
        assert_eq!(second.next_after, None, "nobody is left");
        assert_eq!(second.users, 4);
    }
}
