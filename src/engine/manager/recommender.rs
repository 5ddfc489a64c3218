//! Training the recommender's collaborative model over the stored population, storing
//! it (versioned, beside the churn model) and putting it in force; and the operators'
//! report on what the lists expose and how they are followed.

use std::sync::Mutex;

use super::principal::Principal;
use super::{RecommenderProgress, RecommenderTrained};
use crate::domain::settings::PersonalizationLevel;
use crate::domain::validation::ValidationError;
use crate::engine::durable::settled;
use crate::engine::{EngineError, background, models};
use crate::personalization::{RecommenderReport, ReportBuilder, Trainer};
use crate::store::{Batch, ModelKind, codec};

/// Users a report measures when the call does not say, and the most it may ask.
const DEFAULT_SAMPLE: usize = 2_000;
const MAX_SAMPLE: usize = 100_000;

/// Items per list a report measures when the call does not say.
const DEFAULT_K: usize = 10;

/// What a report on the recommender asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportQuery {
    /// Users measured (default 2,000, at most 100,000).
    pub sample: Option<usize>,
    /// Items per list (default 10, at most `personalization.max_items`).
    pub k: Option<usize>,
    /// The level the lists are made at (default `standard`; capped by each tier).
    pub level: Option<PersonalizationLevel>,
}

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

    /// The report on the recommender (operators): a uniform sample of the users who
    /// consent to personalisation, each list made without and with the configured bias
    /// mitigation, measured for exposure (coverage, Gini, head share, diversity) and
    /// leave-newest-out accuracy; and the click-through of the lists served, by level
    /// and mitigation, from every analytics-consenting user's feedback.
    pub async fn report(
        self,
        by: &Principal,
        q: ReportQuery,
    ) -> Result<RecommenderReport, EngineError> {
        by.privileged()?;
        let e = &self.m.engine;
        let c = &e.config.personalization;
        let sample = q.sample.unwrap_or(DEFAULT_SAMPLE);
        if !(1..=MAX_SAMPLE).contains(&sample) {
            return Err(ValidationError::new(
                "sample",
                format!("must be 1 to {MAX_SAMPLE}, got {sample}"),
            )
            .into());
        }
        let k = q.k.unwrap_or(DEFAULT_K.min(c.max_items));
        if !(1..=c.max_items).contains(&k) {
            return Err(ValidationError::new(
                "k",
                format!("must be 1 to {}, got {k}", c.max_items),
            )
            .into());
        }
        let level = q.level.unwrap_or(PersonalizationLevel::Standard);
        let mitigation = super::recommendations::configured_mitigation(c);
        let now = self.m.now();
        let seed = now.as_millis() as u64;
        let builder = self
            .m
            .analytics()
            .batch(
                ReportBuilder::new(sample, seed).with_sound(self.m.engine.federated.sound()),
                now,
                |b, m| b.add(m.taste, m.tier, m.feedback),
            )
            .await?;
        let engine = self.m.engine.clone();
        background::run("roster-report", move || {
            let c = &engine.config;
            let cap = |tier| {
                super::recommendations::tier_allows(&c.tier(tier).policy, &c.personalization).0
            };
            builder.finish(&engine.recommender.index(), level, cap, k, mitigation, now)
        })
        .await
    }
}
