//! Trained models, as data: each version stored with its metrics and feature list (JSON,
//! readable by any tool), and the newest usable one held in memory for predictions.

use std::sync::{Arc, RwLock};

use super::EngineError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::analytics::churn::ChurnModel;
use crate::analytics::segments::SegmentModel;
use crate::store::{Batch, ModelKind, Op, Store};

/// The conflict a training meets while another runs (one training of any kind at a
/// time).
pub const TRAINING_RUNNING: &str = "a training is running; wait for it to end";

/// The models in force, and the lock that keeps two trainings from running at once.
#[derive(Default)]
pub(crate) struct Models {
    churn: RwLock<Option<Arc<ChurnModel>>>,
    segments: RwLock<Option<Arc<SegmentModel>>>,
    /// Held by a running training.
    pub training: tokio::sync::Mutex<()>,
}

/// Every stored model of a kind, oldest first; an unreadable version is logged and
/// skipped.
pub(crate) fn stored<M: DeserializeOwned>(
    store: &dyn Store,
    kind: ModelKind,
) -> Result<Vec<M>, EngineError> {
    Ok(store
        .models(kind)?
        .into_iter()
        .filter_map(|(version, record)| {
            serde_json::from_slice(&record)
                .inspect_err(|e| tracing::error!(version, ?kind, error = %e, "unreadable model"))
                .ok()
        })
        .collect())
}

impl Models {
    /// The models of a store: the newest usable churn model.
    pub fn load(store: &dyn Store) -> Result<Self, EngineError> {
        // A model of another build's features cannot score this build's: skipped.
        let churn = stored::<ChurnModel>(store, ModelKind::Churn)?
            .into_iter()
            .rev()
            .find(|m| m.usable && m.fits());
        let segments = stored::<SegmentModel>(store, ModelKind::Segments)?
            .into_iter()
            .rev()
            .find(SegmentModel::fits);
        Ok(Self {
            churn: RwLock::new(churn.map(Arc::new)),
            segments: RwLock::new(segments.map(Arc::new)),
            training: Default::default(),
        })
    }

    /// Claims the right to train (one training of any kind at a time): a conflict while
    /// another runs.
    pub fn start_training(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, EngineError> {
        self.training
            .try_lock()
            .map_err(|_| EngineError::Conflict(TRAINING_RUNNING.into()))
    }

    /// The churn model in force.
    pub fn churn(&self) -> Option<Arc<ChurnModel>> {
        self.churn.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// The segmentation in force.
    pub fn segments(&self) -> Option<Arc<SegmentModel>> {
        self.segments.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// Puts a churn model in force (a usable one just stored).
    pub fn install(&self, model: ChurnModel) {
        if let Ok(mut m) = self.churn.write() {
            *m = Some(Arc::new(model));
        }
    }

    /// Puts a segmentation in force.
    pub fn install_segments(&self, model: SegmentModel) {
        if let Ok(mut m) = self.segments.write() {
            *m = Some(Arc::new(model));
        }
    }
}

/// The next version of a kind of model, and the versions stored now.
pub(crate) fn versions(store: &dyn Store, kind: ModelKind) -> Result<(u64, Vec<u64>), EngineError> {
    let existing: Vec<u64> = store.models(kind)?.iter().map(|(v, _)| *v).collect();
    Ok((existing.last().map_or(1, |v| v + 1), existing))
}

/// Adds to `batch` the ops that store `model` as `version` of `kind` and drop the
/// versions beyond the newest `keep`, never the one in force (`in_force`).
pub(crate) fn store_into(
    batch: &mut Batch,
    kind: ModelKind,
    model: &impl Serialize,
    (version, existing): (u64, &[u64]),
    keep: usize,
    in_force: Option<u64>,
) -> Result<(), EngineError> {
    let record =
        serde_json::to_vec(model).map_err(|e| EngineError::Internal(format!("model: {e}")))?;
    store_record_into(batch, kind, record, (version, existing), keep, in_force);
    Ok(())
}

/// [`store_into`] for a model already encoded.
pub(crate) fn store_record_into(
    batch: &mut Batch,
    kind: ModelKind,
    record: Vec<u8>,
    (version, existing): (u64, &[u64]),
    keep: usize,
    in_force: Option<u64>,
) {
    batch.push(Op::PutModel {
        kind,
        version,
        record,
    });
    let old = (existing.len() + 1).saturating_sub(keep);
    for version in existing.iter().take(old).filter(|v| Some(**v) != in_force) {
        batch.push(Op::DropModel {
            kind,
            version: *version,
        });
    }
}
