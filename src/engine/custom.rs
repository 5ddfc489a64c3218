//! A user's own models as the store keeps them (sealed under its data key, one record
//! per user): the versions trained, the one pinned, and which serves. Training is the
//! manager's `custom` facade; the fitting is [`crate::personalization::custom`].

use serde::{Deserialize, Serialize};

use crate::domain::ids::UserId;
use crate::domain::time::Timestamp;
use crate::personalization::Blend;
use crate::personalization::custom::Evaluation;
use crate::security::keys::DataKey;
use crate::store::codec::{self, CodecError};

/// One trained version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CustomVersion {
    /// Its number (counting up from 1).
    pub version: u64,
    /// When it was trained.
    pub trained_at: Timestamp,
    /// Its weights.
    pub blend: Blend,
    /// The blend in force it was judged against.
    pub global: Blend,
    /// How it did against that on the held-out plays.
    pub evaluation: Evaluation,
    /// Events of the history it was trained on.
    pub events: u32,
    /// First plays of new tracks it learnt from.
    pub trained_cases: u32,
}

/// A user's versions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomModels {
    /// Oldest first.
    pub versions: Vec<CustomVersion>,
    /// The version the user pinned, if any.
    pub pinned: Option<u64>,
    /// The last version number given.
    pub last: u64,
}

impl CustomModels {
    /// The version that serves: the pinned one, else the newest that beat the blend in
    /// force; none if no version did.
    pub fn in_force(&self) -> Option<&CustomVersion> {
        let pinned = self
            .pinned
            .and_then(|p| self.versions.iter().find(|v| v.version == p));
        pinned.or_else(|| (self.versions.iter()).rev().find(|v| v.evaluation.better))
    }

    /// Adds a version, keeping the newest `keep` (and the pinned one).
    pub fn add(&mut self, mut v: CustomVersion, keep: usize) -> u64 {
        self.last += 1;
        v.version = self.last;
        self.versions.push(v);
        while self.versions.len() > keep.max(1) {
            match (self.versions.iter()).position(|x| Some(x.version) != self.pinned) {
                Some(oldest) if self.versions.len() > keep.max(1) => {
                    self.versions.remove(oldest);
                }
                _ => break,
            }
        }
        self.last
    }
}

/// A training, as its user reads it (`GET /api/v1/users/{id}/models/{job}`).
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TrainingJob {
    /// Its id.
    pub job: u64,
    /// `queued` (waiting for one of its tier's slots), `running`, `done` or `failed`.
    pub state: &'static str,
    /// 0–1.
    pub progress: f32,
    /// When it was asked for.
    pub created_at: Timestamp,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// The version it made, when done.
    pub version: Option<u64>,
    /// Whether that version serves the user's lists (it beat the blend in force).
    pub serving: Option<bool>,
    /// How it did on the held-out plays, when done.
    pub evaluation: Option<Evaluation>,
    /// Which model serves and why, when done.
    pub verdict: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// One training in memory.
pub(crate) struct Job {
    pub user: UserId,
    pub view: std::sync::Mutex<TrainingJob>,
}

/// Finished trainings remembered (the newest; a restart forgets them, the versions they
/// made are stored).
const FINISHED_KEPT: usize = 1_000;

/// The trainings asked for, and each tier's slots.
pub(crate) struct Jobs {
    jobs: std::sync::Mutex<std::collections::BTreeMap<u64, std::sync::Arc<Job>>>,
    next: std::sync::atomic::AtomicU64,
    slots: [std::sync::Arc<tokio::sync::Semaphore>; 4],
}

impl Jobs {
    /// Slots per tier ([`crate::domain::tier::UserTier::ALL`] order).
    pub fn new(concurrency: [usize; 4]) -> Self {
        Self {
            jobs: Default::default(),
            next: std::sync::atomic::AtomicU64::new(1),
            slots: concurrency.map(|n| std::sync::Arc::new(tokio::sync::Semaphore::new(n))),
        }
    }

    /// The slots of a tier.
    pub fn slots(
        &self,
        tier: crate::domain::tier::UserTier,
    ) -> std::sync::Arc<tokio::sync::Semaphore> {
        std::sync::Arc::clone(&self.slots[tier.index()])
    }

    /// Registers a training of `user`, unless one of its is queued or running (then
    /// that one's id is the error).
    pub fn start(&self, user: UserId, now: Timestamp) -> Result<std::sync::Arc<Job>, u64> {
        let Ok(mut jobs) = self.jobs.lock() else {
            return Err(0);
        };
        let active = jobs.values().find(|j| {
            j.user == user
                && j.view
                    .lock()
                    .is_ok_and(|v| matches!(v.state, "queued" | "running"))
        });
        if let Some(j) = active {
            return Err(j.view.lock().map_or(0, |v| v.job));
        }
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let job = std::sync::Arc::new(Job {
            user,
            view: std::sync::Mutex::new(TrainingJob {
                job: id,
                state: "queued",
                progress: 0.0,
                created_at: now,
                finished_at: None,
                version: None,
                serving: None,
                evaluation: None,
                verdict: None,
                error: None,
            }),
        });
        jobs.insert(id, std::sync::Arc::clone(&job));
        // Forget the oldest finished beyond what is kept.
        let finished: Vec<u64> = (jobs.iter())
            .filter(|(_, j)| j.view.lock().is_ok_and(|v| v.finished_at.is_some()))
            .map(|(id, _)| *id)
            .collect();
        for id in finished
            .iter()
            .take(finished.len().saturating_sub(FINISHED_KEPT))
        {
            jobs.remove(id);
        }
        Ok(job)
    }

    /// A training, as its user reads it.
    pub fn get(&self, id: u64) -> Option<(UserId, TrainingJob)> {
        let jobs = self.jobs.lock().ok()?;
        let j = jobs.get(&id)?;
        Some((j.user, j.view.lock().ok()?.clone()))
    }

    /// The trainings remembered, by state.
    pub fn counts(&self) -> crate::engine::TrainingCounts {
        let mut c = crate::engine::TrainingCounts::default();
        let Ok(jobs) = self.jobs.lock() else {
            return c;
        };
        for j in jobs.values() {
            match j.view.lock().map(|v| v.state) {
                Ok("queued") => c.queued += 1,
                Ok("running") => c.running += 1,
                Ok("done") => c.done += 1,
                Ok(_) => c.failed += 1,
                Err(_) => {}
            }
        }
        c
    }

    /// A user's trainings remembered, oldest first.
    pub fn of(&self, user: UserId) -> Vec<TrainingJob> {
        let Ok(jobs) = self.jobs.lock() else {
            return Vec::new();
        };
        (jobs.values())
            .filter(|j| j.user == user)
            .filter_map(|j| j.view.lock().ok().map(|v| v.clone()))
            .collect()
    }
}

fn aad(user: UserId) -> [u8; 17] {
    let mut a = [0u8; 17];
    a[0] = b'P';
    a[1..].copy_from_slice(user.as_bytes());
    a
}

/// The record, sealed.
pub(crate) fn seal(key: &DataKey, user: UserId, m: &CustomModels) -> Result<Vec<u8>, CodecError> {
    Ok(codec::seal_blob(key, &aad(user), &codec::encode_plain(m)?))
}

/// A sealed record.
pub(crate) fn open(key: &DataKey, user: UserId, blob: &[u8]) -> Result<CustomModels, CodecError> {
    codec::decode_plain(&codec::open_blob(key, &aad(user), blob)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(better: bool) -> CustomVersion {
        let evaluation = Evaluation {
            cases: 20,
            k: 10,
            hits: 5,
            global_hits: 3,
            hit_rate: 0.25,
            global_hit_rate: 0.15,
            ranked_higher: 12,
            ranked_lower: 2,
            p_value: 0.01,
            better,
        };
        CustomVersion {
            version: 0,
            trained_at: Timestamp::from_millis(1),
            blend: Blend::GLOBAL,
            global: Blend::GLOBAL,
            evaluation,
            events: 100,
            trained_cases: 40,
        }
    }

    #[test]
    fn the_newest_better_version_serves_unless_one_is_pinned_and_old_ones_go() {
        let mut m = CustomModels::default();
        assert!(m.in_force().is_none());
        assert_eq!(m.add(version(true), 3), 1);
        assert_eq!(m.add(version(false), 3), 2);
        // The newest did not beat the global blend: the one before serves.
        assert_eq!(m.in_force().map(|v| v.version), Some(1));
        m.pinned = Some(1);
        m.add(version(true), 3);
        m.add(version(true), 3);
        // Four made, three kept: the oldest unpinned (2) went; the pinned serves.
        let kept: Vec<u64> = m.versions.iter().map(|v| v.version).collect();
        assert_eq!(kept, vec![1, 3, 4]);
        assert_eq!(m.in_force().map(|v| v.version), Some(1));
        m.pinned = None;
        assert_eq!(m.in_force().map(|v| v.version), Some(4));
        let key = DataKey::generate();
        let user = UserId::generate();
        let blob = seal(&key, user, &m).unwrap();
        assert_eq!(open(&key, user, &blob).unwrap(), m);
        assert!(open(&key, UserId::generate(), &blob).is_err());
    }
}
