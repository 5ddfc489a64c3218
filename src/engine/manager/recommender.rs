//! Training the recommender's collaborative model over the stored population, storing
//! it (versioned, beside the churn model) and putting it in force.

use std::sync::Mutex;

use super::principal::Principal;
use super::{RecommenderProgress, RecommenderTrained};
use crate::engine::durable::settled;
use crate::engine::{EngineError, background, models};
use crate::personalization::Trainer;
use crate::store::{Batch, ModelKind, codec};

/// Users read between progress reports.
const PROGRESS_EVERY: u64 = 50_000;

impl super::Personalization<'_> {
    /// Trains the collaborative model on the tastes of the users who consent to
    /// personalisation now (operators; one training of any kind at a time), stores it
    /// as the next version (beyond `analytics.keep_models` the oldest are dropped) and
    /// puts it in force. A user erased, or whose consent was withdrawn, is not read, so
    /// it leaves this model. `progress` hears the phases.
    pub async fn train(
        self,
        by: &Principal,
        progress: impl FnMut(RecommenderProgress) + Send + 'static,
    ) -> Result<RecommenderTrained, EngineError> {
        by.privileged()?;
        let e = &self.m.engine;
        let _running = e.models.start_training()?;
        let now = self.m.now();
        let index = e.recommender.index();
        let start = (Trainer::new(index), 0u64, progress);
        let (trainer, _, progress) = self
            .m
            .analytics()
            .batch(start, now, |(t, users, p), m| {
                *users += 1;
                if let Some(taste) = m.taste {
                    t.add(taste, m.tier);
                }
                if users.is_multiple_of(PROGRESS_EVERY) {
                    p(RecommenderProgress::Reading {
                        users: *users,
                        learning_from: t.users() as u64,
                    });
                }
            })
            .await?;
        let engine = self.m.engine.clone();
        let (model, batch) = background::run("roster-training", move || {
            let store = engine.store.as_ref();
            let (version, versions) = models::versions(store, ModelKind::Recommender)?;
            let progress = Mutex::new(progress);
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
            let model = trainer.train(version, now, threads, &|share| {
                if let Ok(mut p) = progress.lock() {
                    p(RecommenderProgress::Training { share });
                }
            });
            let record = codec::encode_plain(&model)
                .map_err(|err| EngineError::Internal(format!("recommender model: {err}")))?;
            let mut batch = Batch::default();
            let in_force = engine.recommender.model().map(|m| m.version);
            let keep = engine.config.analytics.keep_models;
            let kind = ModelKind::Recommender;
            models::store_record_into(
                &mut batch,
                kind,
                record,
                (version, &versions),
                keep,
                in_force,
            );
            Ok::<_, EngineError>((model, batch))
        })
        .await??;
        let ticket = e.commit.submit(batch, Vec::new(), None);
        settled(e.commit.wait(&ticket).await)?;
        let trained = RecommenderTrained {
            version: model.version,
            trained_at: model.trained_at,
            users: model.users,
            interactions: model.interactions,
            tracks: model.tracks.len(),
            tracks_with_neighbours: model.neighbours.iter().filter(|n| !n.is_empty()).count(),
        };
        let engine = self.m.engine.clone();
        tokio::task::spawn_blocking(move || engine.recommender.install(model, &engine.catalog))
            .await
            .map_err(|err| EngineError::Internal(format!("recommender install: {err}")))?;
        tracing::info!(
            version = trained.version,
            users = trained.users,
            interactions = trained.interactions,
            "recommender model trained"
        );
        Ok(trained)
    }
}
