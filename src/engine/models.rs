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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::Member;
    use crate::analytics::churn::Trainer;
    use crate::analytics::sim::{SimConfig, simulate};
    use crate::domain::profile::UsageCounters;
    use crate::domain::time::Timestamp;
    use crate::store::sled::SledStore;

    fn trained(now: Timestamp) -> ChurnModel {
        let mut t = Trainer::new(now, 14);
        let people = simulate(SimConfig {
            users: 2_000,
            seed: 5,
            now,
            days: 200,
            horizon_days: 14,
            keep_events: false,
        });
        for u in people {
            t.add(&Member {
                id: u.id,
                tier: u.tier,
                created_at: u.created_at,
                consented: true,
                history: &u.history,
                taste: None,
                feedback: None,
                usage: &UsageCounters::ZERO,
                refusals: None,
            });
        }
        t.train(1, now, |_| {}).unwrap()
    }

    /// Stores `m` as the next version, as a training does with the model in force.
    fn store(s: &SledStore, mut m: ChurnModel, keep: usize) -> Vec<u64> {
        let (version, existing) = versions(s, ModelKind::Churn).unwrap();
        m.version = version;
        let in_force = Models::load(s).unwrap().churn().map(|m| m.version);
        let mut batch = Batch::default();
        store_into(
            &mut batch,
            ModelKind::Churn,
            &m,
            (version, &existing),
            keep,
            in_force,
        )
        .unwrap();
        s.apply(&batch).unwrap();
        versions(s, ModelKind::Churn).unwrap().1
    }

    #[test]
    fn the_newest_usable_model_serves_and_pruning_never_drops_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path(), 1 << 20).unwrap();
        let good = trained(Timestamp::from_millis(20_800 * 86_400_000));
        assert!(good.usable && good.fits());
        let in_force = |s: &SledStore| Models::load(s).unwrap().churn().map(|m| m.version);
        assert_eq!(in_force(&s), None);

        assert_eq!(store(&s, good.clone(), 2), [1]);
        let unusable = ChurnModel {
            usable: false,
            ..good.clone()
        };
        let mut foreign = good.clone();
        foreign.features.pop();
        assert_eq!(store(&s, unusable.clone(), 2), [1, 2]);
        assert_eq!(
            in_force(&s),
            Some(1),
            "an unusable model is never put in force"
        );
        // Beyond `keep`, the oldest go, but not the one in force.
        assert_eq!(store(&s, foreign, 2), [1, 2, 3]);
        assert_eq!(in_force(&s), Some(1), "nor one of another feature set");
        assert_eq!(store(&s, unusable, 2), [1, 3, 4]);
        assert_eq!(in_force(&s), Some(1));
        // A usable one takes over; the one it replaces goes with the next training.
        assert_eq!(store(&s, good.clone(), 2), [1, 4, 5]);
        assert_eq!(in_force(&s), Some(5));
        assert_eq!(store(&s, good, 2), [5, 6]);
        assert_eq!(in_force(&s), Some(6));
    }
}
