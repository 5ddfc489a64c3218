//! Federated rounds of the sound model (issue 19): devices read the published model and
//! the open round, send one clipped update per user per round, and the server publishes
//! the noisy weighted average when the round closes (`docs/models.md`).

use std::sync::Arc;

use super::principal::{Principal, TOKEN_REQUIRED};
use crate::domain::time::Timestamp;
use crate::domain::validation::ValidationError;
use crate::engine::EngineError;
use crate::engine::durable::settled;
use crate::engine::federated::{Closed, Status};
use crate::engine::user::GetTaste;
use crate::engine::{Engine, models};
use crate::personalization::federated::{
    BadUpdate, Contribution, FEATURES, FederatedModel, LocalPlan, SoundModel, accountant,
};
use crate::store::{Batch, ModelKind};

/// What a device reads before a round.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct FederatedView {
    /// The published version (0: the default model, before any round).
    pub version: u64,
    /// When it was published.
    pub published_at: Option<Timestamp>,
    /// The parameters' names, in order: the eight features' weights, then `bias`.
    pub parameters: Vec<String>,
    /// The published parameters, in that order.
    pub values: Vec<f32>,
    /// The same, by name.
    pub model: SoundModel,
    /// `open` (send an update to `round.id`), `closing` (ask again in a moment) or
    /// `stopped` (no rounds: switched off, or the privacy budget is spent).
    pub state: &'static str,
    /// The round open now.
    pub round: Option<RoundView>,
    /// The clipping norm `S`: an update's norm beyond it is scaled down to it.
    pub clip_norm: f32,
    /// How a device trains its update.
    pub plan: LocalPlan,
}

/// A round, as devices see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RoundView {
    /// Its id (send it with the update).
    pub id: u64,
    /// When it opened.
    pub opened: Timestamp,
    /// When it closes at the latest.
    pub deadline: Timestamp,
    /// Updates it holds now (operators only: devices are not told who else took
    /// part).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participants: Option<usize>,
    /// Updates it needs by its deadline to be published.
    pub min_participants: usize,
}

/// One device's update.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FederatedUpdate {
    /// The round it is for.
    pub round: u64,
    /// The change to the published parameters, in their order (nine numbers).
    pub delta: Vec<f32>,
    /// The plays and skips it was trained on.
    pub examples: u64,
}

/// An update taken.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct UpdateTaken {
    /// The round it counts in.
    pub round: u64,
    /// Its norm as sent.
    pub norm: f32,
    /// Whether it was scaled down to the clipping norm.
    pub clipped: bool,
    /// Its weight in the average (0–1, by its examples).
    pub weight: f32,
}

/// The rounds, as operators see them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct FederatedStatus {
    /// The published version and its round's figures.
    pub published: FederatedModel,
    /// `open`, `closing` or `stopped`.
    pub state: &'static str,
    /// Why no round opens, when `stopped`.
    pub stopped_because: Option<&'static str>,
    /// The round open now, with the updates it holds.
    pub round: Option<RoundView>,
    /// Rounds abandoned (too few updates by the deadline, or not stored) since the
    /// server started.
    pub abandoned_since_start: u64,
    /// Rounds published, by the store's count (the most any version records).
    pub rounds_published: u64,
    /// The `ε` the published rounds spent, at `delta` (from their Rényi cost, each round
    /// at the noise it was published with).
    pub epsilon_spent: f64,
    /// The `ε` all rounds may spend.
    pub epsilon_budget: f64,
    /// The `δ` of the guarantee.
    pub delta: f64,
    /// Rounds that can still be published within the budget at the configured noise.
    pub rounds_left: u64,
}

impl super::Personalization<'_> {
    /// The published sound model and the round open now (any signed-in user, or the
    /// operator).
    pub fn federated_model(self, by: &Principal) -> Result<FederatedView, EngineError> {
        if by.user().is_none() && !by.is_privileged() {
            return Err(EngineError::Unauthenticated(TOKEN_REQUIRED));
        }
        let e = &self.m.engine;
        let c = &e.config.personalization.federated;
        let published = e.federated.published();
        let (state, round, _) = self.round_view(false);
        let mut parameters: Vec<String> = FEATURES.iter().map(|f| (*f).to_owned()).collect();
        parameters.push("bias".into());
        Ok(FederatedView {
            version: published.version,
            published_at: published.published_at,
            parameters,
            values: published.model.params().to_vec(),
            model: published.model,
            state,
            round,
            clip_norm: c.rules.clip_norm,
            plan: c.plan,
        })
    }

    fn round_view(self, operator: bool) -> (&'static str, Option<RoundView>, Option<&'static str>) {
        let min_participants = self
            .m
            .engine
            .config
            .personalization
            .federated
            .min_participants;
        match self.m.engine.federated.status() {
            Status::Open(r) => (
                "open",
                Some(RoundView {
                    id: r.id,
                    opened: r.opened,
                    deadline: r.deadline,
                    participants: operator.then_some(r.participants),
                    min_participants,
                }),
                None,
            ),
            Status::Closing => ("closing", None, None),
            Status::Stopped(why) => ("stopped", None, Some(why.reason())),
        }
    }

    /// Takes the signed-in user's update for the open round: only with
    /// `federated_learning_enabled` and the consent, one per user per round, checked
    /// and clipped. A round it fills is published before the answer (the update counts
    /// even if publishing fails: that is logged, and the round abandoned).
    pub async fn federated_update(
        self,
        by: &Principal,
        update: FederatedUpdate,
    ) -> Result<UpdateTaken, EngineError> {
        let user = by.session()?.user;
        let contribution = Contribution::of(
            &update.delta,
            update.examples,
            &self.m.engine.config.personalization.federated.rules,
        )
        .map_err(|bad| {
            let field = match bad {
                BadUpdate::NoExamples => "examples",
                BadUpdate::Dimension(_) | BadUpdate::NotFinite(_) => "delta",
            };
            ValidationError::new(field, bad.to_string())
        })?;
        let e = &self.m.engine;
        let view = e.call(user, GetTaste).await?;
        if !view.federated {
            return Err(EngineError::ConsentRequired(
                "federated learning is off for this user: set \
                 ai_preferences.federated_learning_enabled (it needs the \
                 federated_learning consent)",
            ));
        }
        let c = &e.config.personalization.federated;
        let full = e.federated.submit(user, update.round, contribution, c)?;
        if full {
            // On a task of its own: a client gone mid-publish must not leave the round
            // closing for ever.
            let m = self.m.clone();
            let closed =
                tokio::spawn(async move { m.personalization().close_due_round().await }).await;
            match closed {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => tracing::error!(error = %err, "federated round not published"),
                Err(err) => tracing::error!(error = %err, "federated close failed"),
            }
        }
        Ok(UpdateTaken {
            round: update.round,
            norm: contribution.norm,
            clipped: contribution.clipped,
            weight: contribution.weight,
        })
    }

    /// Publishes or abandons the open round if it is due (deadline passed, or full):
    /// the version published, if one was.
    pub async fn close_due_round(self) -> Result<Option<u64>, EngineError> {
        let e = &self.m.engine;
        let c = e.config.personalization.federated;
        let model = match e.federated.close_due(e.clock.now(), &c) {
            None => return Ok(None),
            Some(Closed::Abandoned { round, updates }) => {
                tracing::info!(
                    round,
                    updates,
                    needed = c.min_participants,
                    "federated round abandoned: too few updates by its deadline"
                );
                return Ok(None);
            }
            Some(Closed::Aggregated(model)) => *model,
        };
        // Whatever ends this (an error, a panic, the task dropped), the round is
        // finished and the next opens.
        let mut closing = Closing {
            engine: Arc::clone(e),
            done: false,
        };
        let round = model.round;
        let stored = self.store_version(model).await;
        closing.done = true;
        match stored {
            Ok(model) => {
                let version = model.version;
                tracing::info!(
                    round,
                    version,
                    epsilon = model.epsilon,
                    "federated round published"
                );
                e.federated
                    .finish(Some(model), e.store.as_ref(), &c, e.clock.now());
                Ok(Some(version))
            }
            Err(err) => {
                e.federated
                    .finish(None, e.store.as_ref(), &c, e.clock.now());
                Err(err)
            }
        }
    }

    /// Stores an aggregated round as the next version.
    async fn store_version(self, mut model: FederatedModel) -> Result<FederatedModel, EngineError> {
        let e = &self.m.engine;
        let engine = Arc::clone(e);
        let keep = e.config.analytics.keep_models;
        let (model, batch) = tokio::task::spawn_blocking(move || {
            let store = engine.store.as_ref();
            let (version, versions) = models::versions(store, ModelKind::Federated)?;
            model.version = version;
            let mut batch = Batch::default();
            let in_force = Some(engine.federated.published().version);
            models::store_into(
                &mut batch,
                ModelKind::Federated,
                &model,
                (version, &versions),
                keep,
                in_force,
            )?;
            Ok::<_, EngineError>((model, batch))
        })
        .await
        .map_err(|err| EngineError::Internal(format!("federated publish: {err}")))??;
        let ticket = e.commit.submit(batch, Vec::new(), None);
        settled(e.commit.wait(&ticket).await)?;
        Ok(model)
    }

    /// The rounds as operators see them.
    pub fn federated_status(self, by: &Principal) -> Result<FederatedStatus, EngineError> {
        by.privileged()?;
        let e = &self.m.engine;
        let c = &e.config.personalization.federated;
        let published = (*e.federated.published()).clone();
        let z = f64::from(c.rules.noise_multiplier);
        let spent = e.federated.spent();
        let (state, round, stopped_because) = self.round_view(true);
        Ok(FederatedStatus {
            rounds_published: spent.rounds,
            epsilon_spent: accountant::epsilon_of(spent.rho, c.delta),
            rounds_left: accountant::rounds_left(spent.rho, c.epsilon_budget, z, c.delta),
            published,
            state,
            stopped_because,
            round,
            abandoned_since_start: e.federated.abandoned(),
            epsilon_budget: c.epsilon_budget,
            delta: c.delta,
        })
    }

    /// Closes rounds as they fall due, until `stop` resolves (one look a second; each
    /// close on a task of its own, so a panic in one does not end the rounds).
    pub async fn run_federated_rounds(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
            let m = self.m.clone();
            match tokio::spawn(async move { m.personalization().close_due_round().await }).await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "federated round not published"),
                Err(err) => tracing::error!(error = %err, "federated close failed"),
            }
        }
    }
}

/// A round being stored: finished (as not published) if dropped before it is done.
struct Closing {
    engine: Arc<Engine>,
    done: bool,
}

impl Drop for Closing {
    fn drop(&mut self) {
        if !self.done {
            let e = &self.engine;
            let c = &e.config.personalization.federated;
            tracing::error!("federated round cut short while being stored");
            e.federated.finish(None, e.store.as_ref(), c, e.clock.now());
        }
    }
}
