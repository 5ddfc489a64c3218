//! Users' own models (issue 19): a training job per request, run off the actor threads
//! in one of its tier's slots, on the user's listening log; the version it makes is
//! kept through the user's actor, and serves its lists only when it beat the blend in
//! force (`docs/models.md`).

use std::sync::Arc;

use super::principal::Principal;
use super::recommendations::{configured_mitigation, tier_allows};
use crate::domain::ids::UserId;
use crate::domain::settings::{CUSTOM_MODEL_TRAINING_FEATURE, PersonalizationLevel};
use crate::engine::custom::{CustomModels, CustomVersion, Job, TrainingJob};
use crate::engine::events::Event;
use crate::engine::user::{
    AnnounceTraining, ChangeCustomModels, CustomChange, GetCustomModels, GetTaste, TasteView,
};
use crate::engine::{Engine, EngineError, listening};
use crate::personalization::Blend;
use crate::personalization::custom::{Setting, Trained, train};
use crate::personalization::{Signals, federated::SoundModel};
use crate::store::Op;

/// A user's own models, as it reads them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct CustomModelsView {
    /// `custom` (a version of its own serves its lists) or `global`.
    pub serving: &'static str,
    /// The version that serves, if one does.
    pub version: Option<u64>,
    /// Why.
    pub why: String,
    /// The version pinned, if any.
    pub pinned: Option<u64>,
    /// The versions kept, oldest first.
    pub versions: Vec<CustomVersion>,
    /// Its trainings since the server started, oldest first.
    pub jobs: Vec<TrainingJob>,
}

/// Why a training stops when the user's lists are not personalised at all.
const PERSONALIZATION_OFF: &str =
    "personalization is off for this user: there is nothing for a model to weigh";

/// The level the user's lists are made at (its preference, capped by its tier).
fn level(e: &Engine, view: &TasteView) -> PersonalizationLevel {
    let (tier_level, _) = tier_allows(&e.config.tier(view.tier).policy, &e.config.personalization);
    view.prefs.personalization_level.min(tier_level)
}

/// Why a user may not train a model of its own, if it may not.
fn refusal(e: &Engine, view: &TasteView) -> Option<EngineError> {
    let policy = &e.config.tier(view.tier).policy;
    if !policy.has_feature(CUSTOM_MODEL_TRAINING_FEATURE)
        || e.config.personalization.custom.concurrency_of(view.tier) == 0
    {
        return Some(EngineError::Forbidden(
            "a model of one's own is not part of this tier (the custom_model_training \
             feature)",
        ));
    }
    // Without the consent the preference is off too (withdrawing it turns it off): the
    // consent is what the user has to give first.
    if !view.consented {
        return Some(EngineError::ConsentRequired(
            "a model of one's own is trained on the listening history: it needs the \
             consent to personalisation",
        ));
    }
    if !view.prefs.custom_model_training {
        return Some(EngineError::Conflict(
            "turn ai_preferences.custom_model_training on first: the listening history a \
             model is trained on is kept only while it is on"
                .into(),
        ));
    }
    if level(e, view) == PersonalizationLevel::Off {
        return Some(EngineError::Conflict(PERSONALIZATION_OFF.into()));
    }
    None
}

impl CustomModelsView {
    fn of(models: CustomModels, jobs: Vec<TrainingJob>, on: bool) -> Self {
        let serving = models.in_force().filter(|_| on).cloned();
        let why = match (&serving, models.versions.last()) {
            (Some(v), _) if models.pinned == Some(v.version) => {
                format!("version {} (pinned) {}", v.version, v.evaluation.verdict())
            }
            (Some(v), _) => format!("version {} {}", v.version, v.evaluation.verdict()),
            (None, _) if !on => "a model of one's own is turned off".into(),
            (None, Some(v)) => format!(
                "no version beat the global model; the newest {}",
                v.evaluation.verdict()
            ),
            (None, None) => "no model of its own has been trained".into(),
        };
        Self {
            serving: if serving.is_some() {
                "custom"
            } else {
                "global"
            },
            version: serving.map(|v| v.version),
            why,
            pinned: models.pinned,
            versions: models.versions,
            jobs,
        }
    }
}

impl super::Personalization<'_> {
    /// Starts a training of `id`'s own model (the user itself or an operator): 403
    /// without the tier feature, 409 with the preference off or a training of its
    /// already queued or running.
    pub async fn train_custom(
        self,
        by: &Principal,
        id: UserId,
    ) -> Result<TrainingJob, EngineError> {
        by.on(id)?;
        let e = &self.m.engine;
        let view = e.call(id, GetTaste).await?;
        if let Some(no) = refusal(e, &view) {
            return Err(no);
        }
        let job = e.custom.start(id, e.clock.now()).map_err(|running| {
            EngineError::Conflict(format!(
                "training {running} of this user's model is still queued or running"
            ))
        })?;
        let first = job
            .view
            .lock()
            .map(|v| v.clone())
            .map_err(|_| EngineError::Internal("training job lock poisoned".into()))?;
        let engine = Arc::clone(e);
        tokio::spawn(run(engine, job, view));
        Ok(first)
    }

    /// One of `id`'s trainings.
    pub fn custom_job(
        self,
        by: &Principal,
        id: UserId,
        job: u64,
    ) -> Result<TrainingJob, EngineError> {
        by.on(id)?;
        match self.m.engine.custom.get(job) {
            Some((user, view)) if user == id => Ok(view),
            _ => Err(EngineError::NoSuch("training")),
        }
    }

    /// `id`'s own models: which serves and why, the versions and its trainings.
    pub async fn custom_models(
        self,
        by: &Principal,
        id: UserId,
    ) -> Result<CustomModelsView, EngineError> {
        by.on(id)?;
        let e = &self.m.engine;
        let view = e.call(id, GetTaste).await?;
        let models = e.call(id, GetCustomModels).await?;
        Ok(CustomModelsView::of(
            models,
            e.custom.of(id),
            view.prefs.custom_model_training,
        ))
    }

    /// Pins a version of `id`'s own model (one that beat the global model), or unpins.
    pub async fn pin_custom(
        self,
        by: &Principal,
        id: UserId,
        version: Option<u64>,
    ) -> Result<CustomModelsView, EngineError> {
        self.change_custom(by, id, CustomChange::Pin(version)).await
    }

    /// Deletes a version of `id`'s own model.
    pub async fn delete_custom(
        self,
        by: &Principal,
        id: UserId,
        version: u64,
    ) -> Result<CustomModelsView, EngineError> {
        self.change_custom(by, id, CustomChange::Delete(version))
            .await
    }

    async fn change_custom(
        self,
        by: &Principal,
        id: UserId,
        change: CustomChange,
    ) -> Result<CustomModelsView, EngineError> {
        by.on(id)?;
        let e = &self.m.engine;
        let models = e.call_durable(id, ChangeCustomModels(change)).await?;
        let view = e.call(id, GetTaste).await?;
        Ok(CustomModelsView::of(
            models,
            e.custom.of(id),
            view.prefs.custom_model_training,
        ))
    }
}

/// Tells the user's sockets where its training is.
fn announce(e: &Engine, job: &Job) {
    let Ok(v) = job.view.lock().map(|v| v.clone()) else {
        return;
    };
    let event = Event::ModelTraining {
        job: v.job,
        state: v.state,
        progress: v.progress,
        version: v.version,
        serving: v.serving,
    };
    e.directory.tell_if_live(job.user, AnnounceTraining(event));
}

fn set(job: &Job, change: impl FnOnce(&mut TrainingJob)) {
    if let Ok(mut v) = job.view.lock() {
        change(&mut v);
    }
}

/// Runs a training: waits for a slot of its tier, fits on a blocking thread, keeps the
/// version through the actor.
async fn run(e: Arc<Engine>, job: Arc<Job>, view: TasteView) {
    announce(&e, &job);
    let outcome = async {
        let _slot = e
            .custom
            .slots(view.tier)
            .acquire_owned()
            .await
            .map_err(|_| EngineError::Unavailable)?;
        set(&job, |v| v.state = "running");
        announce(&e, &job);
        let (engine, j) = (Arc::clone(&e), Arc::clone(&job));
        let (trained, compaction, read) =
            tokio::task::spawn_blocking(move || fit(&engine, &j, &view))
                .await
                .map_err(|err| EngineError::Internal(format!("training: {err}")))??;
        let keep = e.config.personalization.custom.keep_versions;
        let version = CustomVersion {
            version: 0,
            trained_at: e.clock.now(),
            blend: trained.blend,
            global: Blend::GLOBAL,
            evaluation: trained.evaluation,
            events: trained.events,
            trained_cases: trained.trained_cases,
        };
        let change = CustomChange::Add {
            version: Box::new(version),
            keep,
            compaction,
            read,
        };
        let models = e.call_durable(job.user, ChangeCustomModels(change)).await?;
        Ok::<_, EngineError>((models, trained))
    }
    .await;
    let now = e.clock.now();
    match outcome {
        Ok((models, trained)) => {
            let made = models.last;
            let serving = models.in_force().map(|v| v.version) == Some(made);
            set(&job, |v| {
                v.state = "done";
                v.progress = 1.0;
                v.finished_at = Some(now);
                v.version = Some(made);
                v.serving = Some(serving);
                v.evaluation = Some(trained.evaluation);
                v.verdict = Some(format!("version {made} {}", trained.evaluation.verdict()));
            });
        }
        Err(err) => {
            tracing::info!(user = %job.user, error = %err, "own model not trained");
            set(&job, |v| {
                v.state = "failed";
                v.finished_at = Some(now);
                v.error = Some(err.to_string());
            });
        }
    }
    announce(&e, &job);
}

/// Reads the user's listening log, fits and judges its model (on a blocking thread);
/// with the ops that compact the log to its newest `log_events`, and the chunks read.
fn fit(
    e: &Engine,
    job: &Job,
    view: &TasteView,
) -> Result<(Trained, Vec<Op>, Vec<u64>), EngineError> {
    let user = job.user;
    let store = e.store.as_ref();
    let key = e.keys.data_key(store, user)?.ok_or(EngineError::NotFound)?;
    let chunks = store.listens(user)?;
    let mut events = Vec::new();
    for (seq, blob) in &chunks {
        let mut chunk =
            listening::open(&key, user, *seq, blob).map_err(|err| EngineError::Corrupt {
                user,
                reason: format!("listening log chunk {seq}: {err}"),
            })?;
        events.append(&mut chunk);
    }
    events.sort_by_key(|x| x.at());
    let c = &e.config.personalization;
    let cap = c.custom.log_events;
    events.drain(..events.len().saturating_sub(cap));
    // One chunk under the newest number, the others dropped.
    let mut compaction = Vec::new();
    let read: Vec<u64> = chunks.iter().map(|(seq, _)| *seq).collect();
    if let Some(&(newest, _)) = chunks.last()
        && (chunks.len() > 1 || events.len() >= cap)
    {
        let blob = listening::seal(&key, user, newest, &events)
            .map_err(|err| EngineError::Internal(format!("listening log: {err}")))?;
        compaction.push(Op::PutListens {
            user,
            seq: newest,
            blob,
        });
        for (seq, _) in &chunks[..chunks.len() - 1] {
            compaction.push(Op::DropListens { user, seq: *seq });
        }
    }
    let prefs = &view.prefs;
    let level = level(e, view);
    if level == PersonalizationLevel::Off {
        return Err(EngineError::Conflict(PERSONALIZATION_OFF.into()));
    }
    let index = e.recommender.index();
    let setting = Setting {
        index: &index,
        signals: Signals::of(level, prefs.mood_detection_enabled),
        learning_rate: prefs.learning_rate,
        sound: if level == PersonalizationLevel::Advanced {
            e.federated.sound()
        } else {
            SoundModel::default()
        },
        tier: view.tier,
        mitigation: prefs
            .bias_mitigation_enabled
            .then(|| configured_mitigation(c)),
        global: Blend::GLOBAL,
    };
    let mut last = 0.0f32;
    let trained = train(&setting, &events, &c.custom.plan, &mut |p| {
        set(job, |v| v.progress = p);
        // Sockets hear of every tenth.
        if p - last >= 0.1 {
            last = p;
            announce(e, job);
        }
    })
    .map_err(|too_little| EngineError::Conflict(too_little.to_string()))?;
    Ok((trained, compaction, read))
}
