//! The federated rounds in force: the published sound model, and the round open now
//! with the updates it holds (in memory: a round open when the server stops is
//! abandoned, and its devices send again to the next). The rules are in
//! [`crate::personalization::federated`]; the facade that runs rounds is the manager's
//! `federated`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use super::EngineError;
use crate::config::FederatedConfig;
use crate::domain::ids::UserId;
use crate::domain::time::Timestamp;
use crate::personalization::federated::accountant;
use crate::personalization::federated::{Contribution, FederatedModel, SoundModel};
use crate::store::{ModelKind, Store};

/// A round that takes updates.
#[derive(Debug)]
pub(crate) struct Round {
    pub id: u64,
    pub opened: Timestamp,
    pub deadline: Timestamp,
    pub updates: HashMap<UserId, Contribution>,
    /// Users who withdrew while it was open: their updates are not taken.
    barred: HashSet<UserId>,
}

/// Where the rounds are.
#[derive(Debug)]
enum Phase {
    Open(Round),
    /// A round is being published or abandoned; the next opens after.
    Closing,
    /// No round opens: switched off in config, or the privacy budget is spent.
    Stopped,
}

struct State {
    phase: Phase,
    last_round: u64,
    abandoned: u64,
}

/// What a device reads of the round open now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RoundInfo {
    pub id: u64,
    pub opened: Timestamp,
    pub deadline: Timestamp,
    pub participants: usize,
}

/// Where the rounds are, for the model's readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Open(RoundInfo),
    Closing,
    Stopped,
}

/// See the module documentation.
pub(crate) struct Federated {
    published: RwLock<Arc<FederatedModel>>,
    state: Mutex<State>,
}

/// Why an update was not taken.
pub(crate) const NO_ROUND: &str = "no federated round is open";

impl Federated {
    /// The newest stored version whose parameters are numbers (or the default), and a
    /// round opened at `now` if the config runs them and the budget allows one more.
    pub fn open(
        store: &dyn Store,
        config: &FederatedConfig,
        now: Timestamp,
    ) -> Result<Self, EngineError> {
        let published = super::models::stored::<FederatedModel>(store, ModelKind::Federated)?
            .into_iter()
            .rev()
            .find(|m| m.model.is_finite())
            .unwrap_or_default();
        let f = Self {
            state: Mutex::new(State {
                phase: Phase::Closing,
                last_round: published.round,
                abandoned: 0,
            }),
            published: RwLock::new(Arc::new(published)),
        };
        f.open_next(config, now);
        Ok(f)
    }

    /// The published version.
    pub fn published(&self) -> Arc<FederatedModel> {
        self.published
            .read()
            .map(|m| Arc::clone(&m))
            .unwrap_or_default()
    }

    /// The published parameters (the recommender's sound weights).
    pub fn sound(&self) -> SoundModel {
        self.published().model
    }

    /// Rounds abandoned since the server started.
    pub fn abandoned(&self) -> u64 {
        self.state.lock().map_or(0, |s| s.abandoned)
    }

    /// Where the rounds are.
    pub fn status(&self) -> Status {
        let Ok(s) = self.state.lock() else {
            return Status::Stopped;
        };
        match &s.phase {
            Phase::Open(r) => Status::Open(RoundInfo {
                id: r.id,
                opened: r.opened,
                deadline: r.deadline,
                participants: r.updates.len(),
            }),
            Phase::Closing => Status::Closing,
            Phase::Stopped => Status::Stopped,
        }
    }

    /// Takes `user`'s update for round `round`: refused when no round is open, the round
    /// is another, the user sent one already or withdrew during it. Replies whether the
    /// round is now full.
    pub fn submit(
        &self,
        user: UserId,
        round: u64,
        update: Contribution,
        config: &FederatedConfig,
    ) -> Result<bool, EngineError> {
        let mut s = self.lock()?;
        let Phase::Open(r) = &mut s.phase else {
            return Err(EngineError::Conflict(format!(
                "{NO_ROUND}; GET /api/v1/federated/model says when one is"
            )));
        };
        if r.id != round {
            return Err(EngineError::Conflict(format!(
                "round {round} is not the open one: round {} is (train from its model)",
                r.id
            )));
        }
        if r.barred.contains(&user) {
            return Err(EngineError::ConsentRequired(
                "federated learning was turned off during this round",
            ));
        }
        if r.updates.contains_key(&user) {
            return Err(EngineError::Conflict(format!(
                "this user already sent its update for round {round}"
            )));
        }
        r.updates.insert(user, update);
        Ok(r.updates.len() >= config.max_participants)
    }

    /// Drops `user`'s update from the open round and takes no other from it in this
    /// round (its consent or preference was withdrawn, or it was deleted).
    pub fn withdraw(&self, user: UserId) {
        if let Ok(mut s) = self.state.lock()
            && let Phase::Open(r) = &mut s.phase
        {
            r.updates.remove(&user);
            r.barred.insert(user);
        }
    }

    /// Takes the open round out when it is due (its deadline passed or it is full):
    /// the caller publishes or abandons it, then calls [`Self::finish`].
    pub fn take_due(&self, now: Timestamp, config: &FederatedConfig) -> Option<Round> {
        let mut s = self.state.lock().ok()?;
        let due = matches!(&s.phase, Phase::Open(r)
            if now >= r.deadline || r.updates.len() >= config.max_participants);
        if !due {
            return None;
        }
        match std::mem::replace(&mut s.phase, Phase::Closing) {
            Phase::Open(r) => Some(r),
            _ => None,
        }
    }

    /// Ends the round taken: `published` is put in force (or the round counted as
    /// abandoned), and the next round opens at `now` if the budget allows it.
    pub fn finish(
        &self,
        published: Option<FederatedModel>,
        config: &FederatedConfig,
        now: Timestamp,
    ) {
        match published {
            Some(m) => {
                if let Ok(mut p) = self.published.write() {
                    *p = Arc::new(m);
                }
            }
            None => {
                if let Ok(mut s) = self.state.lock() {
                    s.abandoned += 1;
                }
            }
        }
        self.open_next(config, now);
    }

    fn open_next(&self, config: &FederatedConfig, now: Timestamp) {
        let published = self.published();
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        let z = f64::from(config.rules.noise_multiplier);
        let allowed =
            accountant::epsilon(published.rounds + 1, z, config.delta) <= config.epsilon_budget;
        if !config.enabled || !allowed {
            s.phase = Phase::Stopped;
            return;
        }
        // Round ids count up across restarts: the published round's, then the clock's
        // milliseconds if those are ahead (rounds abandoned before a restart are not
        // remembered).
        let id = (s.last_round + 1).max(u64::try_from(now.as_millis()).unwrap_or(0));
        s.last_round = id;
        let ms = i64::try_from(config.round_duration.as_millis()).unwrap_or(i64::MAX);
        s.phase = Phase::Open(Round {
            id,
            opened: now,
            deadline: Timestamp::from_millis(now.as_millis().saturating_add(ms)),
            updates: HashMap::new(),
            barred: HashSet::new(),
        });
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, EngineError> {
        self.state
            .lock()
            .map_err(|_| EngineError::Internal("federated round lock poisoned".into()))
    }
}
