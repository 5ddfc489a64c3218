//! Trained models, as data: each version stored with its metrics and feature list (JSON,
//! readable by any tool), and the newest usable one held in memory for predictions.

use std::sync::{Arc, RwLock};

use super::EngineError;
use crate::analytics::churn::ChurnModel;
use crate::store::{Batch, ModelKind, Op, Store};

/// The models in force, and the lock that keeps two trainings from running at once.
#[derive(Default)]
pub(crate) struct Models {
    churn: RwLock<Option<Arc<ChurnModel>>>,
    /// Held by a running training.
    pub training: tokio::sync::Mutex<()>,
}

/// Every stored churn model, oldest first; an unreadable version is logged and skipped.
pub(crate) fn stored_churn(store: &dyn Store) -> Result<Vec<ChurnModel>, EngineError> {
    Ok(store
        .models(ModelKind::Churn)?
        .into_iter()
        .filter_map(|(version, record)| {
            serde_json::from_slice(&record)
                .inspect_err(|e| tracing::error!(version, error = %e, "unreadable churn model"))
                .ok()
        })
        .collect())
}

impl Models {
    /// The models of a store: the newest usable churn model.
    pub fn load(store: &dyn Store) -> Result<Self, EngineError> {
        let newest = stored_churn(store)?.into_iter().rev().find(|m| m.usable);
        Ok(Self {
            churn: RwLock::new(newest.map(Arc::new)),
            training: Default::default(),
        })
    }

    /// The churn model in force.
    pub fn churn(&self) -> Option<Arc<ChurnModel>> {
        self.churn.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// Puts a model in force (a usable one just stored).
    pub fn install(&self, model: ChurnModel) {
        if let Ok(mut m) = self.churn.write() {
            *m = Some(Arc::new(model));
        }
    }
}

/// The batch that stores `model` and drops the versions beyond the newest `keep`.
pub(crate) fn store_batch(
    model: &ChurnModel,
    existing: &[u64],
    keep: usize,
) -> Result<Batch, EngineError> {
    let record =
        serde_json::to_vec(model).map_err(|e| EngineError::Internal(format!("model: {e}")))?;
    let mut batch = Batch::of(Op::PutModel {
        kind: ModelKind::Churn,
        version: model.version,
        record,
    });
    let old = (existing.len() + 1).saturating_sub(keep);
    for version in existing.iter().take(old) {
        batch.push(Op::DropModel {
            kind: ModelKind::Churn,
            version: *version,
        });
    }
    Ok(batch)
}
