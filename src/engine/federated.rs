//! The federated rounds in force: the published sound model, the privacy spent, and the
//! round open now with the updates it holds (in memory: a round open when the server
//! stops is abandoned, and its devices send again to the next). The rules are in
//! [`crate::personalization::federated`]; the facade that runs rounds is the manager's
//! `federated`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use rand::rngs::ThreadRng;

use super::EngineError;
use crate::config::FederatedConfig;
use crate::domain::ids::UserId;
use crate::domain::time::Timestamp;
use crate::personalization::federated::accountant;
use crate::personalization::federated::{Contribution, FederatedModel, SoundModel, aggregate};
use crate::store::{ModelKind, Store};

/// A round that takes updates.
#[derive(Debug)]
struct Round {
    id: u64,
    opened: Timestamp,
    deadline: Timestamp,
    updates: HashMap<UserId, Contribution>,
    /// Users who withdrew while it was open: their updates are not taken.
    barred: HashSet<UserId>,
}

/// Why no round opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// `enabled = false`.
    Off,
    /// One more round would pass the privacy budget.
    Budget,
    /// A stored version cannot be read, so the privacy spent is not known.
    Unreadable,
}

impl Stop {
    /// In words, for operators.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Off => "switched off in config ([personalization.federated] enabled)",
            Self::Budget => "the privacy budget is spent: one more round would pass it",
            Self::Unreadable => {
                "a stored version cannot be read, so the privacy spent is not known"
            }
        }
    }
}

/// Where the rounds are.
#[derive(Debug)]
enum Phase {
    Open(Round),
    /// A round's aggregate is being stored; the next opens after.
    Closing,
    /// No round opens.
    Stopped(Stop),
}

/// What published rounds spent: the most any stored version records, so that a version
/// lost or unreadable never gives privacy back.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Spent {
    pub rounds: u64,
    pub rho: f64,
}

impl Spent {
    fn include(&mut self, m: &FederatedModel) {
        self.rounds = self.rounds.max(m.rounds);
        self.rho = self.rho.max(m.spent());
    }
}

struct State {
    phase: Phase,
    last_round: u64,
    abandoned: u64,
    spent: Spent,
    unreadable: bool,
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
    Stopped(Stop),
}

/// A round taken out at its close.
#[derive(Debug)]
pub(crate) enum Closed {
    /// Too few updates by the deadline, or an aggregate that is not a number: nothing
    /// published, nothing spent; the next round is open.
    Abandoned { round: u64, updates: usize },
    /// Aggregated (its `version` not yet given): store it, then [`Federated::finish`].
    Aggregated(Box<FederatedModel>),
}

/// See the module documentation.
pub(crate) struct Federated {
    published: RwLock<Arc<FederatedModel>>,
    state: Mutex<State>,
}

/// Why an update was not taken.
pub(crate) const NO_ROUND: &str = "no federated round is open";

/// The stored versions: the newest whose parameters are numbers (or the default), what
/// they spent, and whether any could not be read.
fn load(store: &dyn Store) -> Result<(FederatedModel, Spent, bool), EngineError> {
    let (mut newest, mut spent, mut unreadable) = (None, Spent::default(), false);
    for (version, record) in store.models(ModelKind::Federated)? {
        match serde_json::from_slice::<FederatedModel>(&record) {
            Ok(m) => {
                spent.include(&m);
                if m.model.is_finite() {
                    newest = Some(m);
                }
            }
            Err(e) => {
                tracing::error!(version, error = %e, "unreadable federated model: rounds stop");
                unreadable = true;
            }
        }
    }
    Ok((newest.unwrap_or_default(), spent, unreadable))
}

impl Federated {
    /// The stored versions in force, and a round opened at `now` if the config runs
    /// them and the budget allows one more.
    pub fn open(
        store: &dyn Store,
        config: &FederatedConfig,
        now: Timestamp,
    ) -> Result<Self, EngineError> {
        let (published, spent, unreadable) = load(store)?;
        let f = Self {
            state: Mutex::new(State {
                phase: Phase::Closing,
                last_round: published.round,
                abandoned: 0,
                spent,
                unreadable,
            }),
            published: RwLock::new(Arc::new(published)),
        };
        if let Ok(mut s) = f.state.lock() {
            Self::open_next(&mut s, config, now);
        }
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

    /// What the published rounds spent.
    pub fn spent(&self) -> Spent {
        self.state.lock().map_or(Spent::default(), |s| s.spent)
    }

    /// Where the rounds are.
    pub fn status(&self) -> Status {
        let Ok(s) = self.state.lock() else {
            return Status::Stopped(Stop::Unreadable);
        };
        match &s.phase {
            Phase::Open(r) => Status::Open(RoundInfo {
                id: r.id,
                opened: r.opened,
                deadline: r.deadline,
                participants: r.updates.len(),
            }),
            Phase::Closing => Status::Closing,
            Phase::Stopped(why) => Status::Stopped(*why),
        }
    }

    /// Takes `user`'s update for round `round`: refused when no round is open (503
    /// while one is being published), the round is another or full, the user sent one
    /// already or withdrew during it. Replies whether the round is now full.
    pub fn submit(
        &self,
        user: UserId,
        round: u64,
        update: Contribution,
        config: &FederatedConfig,
    ) -> Result<bool, EngineError> {
        let mut s = self.lock()?;
        let r = match &mut s.phase {
            Phase::Open(r) => r,
            // Moments: the next round opens when the aggregate is stored.
            Phase::Closing => return Err(EngineError::Unavailable),
            Phase::Stopped(why) => {
                return Err(EngineError::Conflict(format!(
                    "{NO_ROUND}: {}",
                    why.reason()
                )));
            }
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
        if r.updates.len() >= config.max_participants {
            return Err(EngineError::Conflict(format!(
                "round {round} is full; the next opens when it is published"
            )));
        }
        r.updates.insert(user, update);
        Ok(r.updates.len() >= config.max_participants)
    }

    /// Drops `user`'s update from the open round and takes no other from it in this
    /// round (its consent or preference was withdrawn, or it was deleted). A round
    /// already aggregated is past: its aggregate is computed under the same lock, so a
    /// withdrawal either lands before it or after the round closed.
    pub fn withdraw(&self, user: UserId) {
        if let Ok(mut s) = self.state.lock()
            && let Phase::Open(r) = &mut s.phase
        {
            r.updates.remove(&user);
            r.barred.insert(user);
        }
    }

    /// Closes the open round when it is due (its deadline passed or it is full): below
    /// `min_participants` at the deadline it is abandoned and the next opens; otherwise
    /// it is aggregated over the fixed denominator `max_participants`, and stays
    /// closing until the caller stores it and calls [`Self::finish`].
    pub fn close_due(&self, now: Timestamp, config: &FederatedConfig) -> Option<Closed> {
        let mut s = self.state.lock().ok()?;
        let due = matches!(&s.phase, Phase::Open(r)
            if now >= r.deadline || r.updates.len() >= config.max_participants);
        if !due {
            return None;
        }
        let Phase::Open(round) = std::mem::replace(&mut s.phase, Phase::Closing) else {
            return None;
        };
        let updates = round.updates.len();
        let abandon = |s: &mut State| {
            s.abandoned += 1;
            Self::open_next(s, config, now);
            Some(Closed::Abandoned {
                round: round.id,
                updates,
            })
        };
        if updates < config.min_participants {
            return abandon(&mut s);
        }
        let base = self.published();
        let denominator = config.max_participants as f64;
        let Some(a) = aggregate(
            &base.model,
            round.updates.values(),
            &config.rules,
            denominator,
            &mut ThreadRng::default(),
        )
        .filter(|a| a.model.is_finite()) else {
            tracing::error!(round = round.id, "federated aggregate is not a number");
            return abandon(&mut s);
        };
        let z = f64::from(config.rules.noise_multiplier);
        let rho = s.spent.rho + accountant::round_cost(z);
        Some(Closed::Aggregated(Box::new(FederatedModel {
            version: 0,
            round: round.id,
            published_at: Some(now),
            model: a.model,
            participants: a.participants as u64,
            clipped: a.clipped as u64,
            denominator,
            noise_std: a.noise_std,
            rounds: s.spent.rounds + 1,
            rho,
            epsilon: accountant::epsilon_of(rho, config.delta),
            delta: config.delta,
            noise_multiplier: z,
            clip_norm: f64::from(config.rules.clip_norm),
        })))
    }

    /// Ends the closing round: `Some` is the version stored, put in force; `None` means
    /// storing it failed or was cut short, and what is in force and spent is read
    /// again from the store (a write whose outcome is unknown may have landed). The
    /// next round opens at `now` if the budget allows it.
    pub fn finish(
        &self,
        stored: Option<FederatedModel>,
        store: &dyn Store,
        config: &FederatedConfig,
        now: Timestamp,
    ) {
        let reloaded = match &stored {
            Some(_) => None,
            None => match load(store) {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::error!(error = %e, "federated models unreadable: rounds stop");
                    Some((FederatedModel::default(), Spent::default(), true))
                }
            },
        };
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        match (stored, reloaded) {
            (Some(m), _) => {
                s.spent.include(&m);
                if let Ok(mut p) = self.published.write() {
                    *p = Arc::new(m);
                }
            }
            (None, Some((published, spent, unreadable))) => {
                s.spent.rounds = s.spent.rounds.max(spent.rounds);
                s.spent.rho = s.spent.rho.max(spent.rho);
                s.unreadable |= unreadable;
                let landed = !unreadable && published.version > self.published().version;
                if landed {
                    if let Ok(mut p) = self.published.write() {
                        *p = Arc::new(published);
                    }
                } else {
                    s.abandoned += 1;
                }
            }
            (None, None) => {}
        }
        Self::open_next(&mut s, config, now);
    }

    fn open_next(s: &mut State, config: &FederatedConfig, now: Timestamp) {
        let z = f64::from(config.rules.noise_multiplier);
        let next = accountant::epsilon_of(s.spent.rho + accountant::round_cost(z), config.delta);
        let stop = if !config.enabled {
            Some(Stop::Off)
        } else if s.unreadable {
            Some(Stop::Unreadable)
        } else if next > config.epsilon_budget {
            Some(Stop::Budget)
        } else {
            None
        };
        if let Some(why) = stop {
            s.phase = Phase::Stopped(why);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sled::SledStore;
    use crate::store::{Batch, Op};

    fn config() -> FederatedConfig {
        let mut c = crate::config::Config::defaults()
            .unwrap()
            .personalization
            .federated;
        (c.min_participants, c.max_participants) = (2, 3);
        c
    }

    fn put(store: &SledStore, version: u64, record: Vec<u8>) {
        let kind = ModelKind::Federated;
        store
            .apply(&Batch::of(Op::PutModel {
                kind,
                version,
                record,
            }))
            .unwrap();
    }

    fn stored(version: u64, rounds: u64, rho: f64) -> Vec<u8> {
        let m = FederatedModel {
            version,
            round: version,
            rounds,
            rho,
            noise_multiplier: 3.0,
            ..FederatedModel::default()
        };
        serde_json::to_vec(&m).unwrap()
    }

    fn update(weight: f32) -> Contribution {
        let rules = config().rules;
        Contribution::of(&[0.1; 9], (weight * 100.0) as u64, &rules).unwrap()
    }

    fn open_round(f: &Federated) -> u64 {
        match f.status() {
            Status::Open(r) => r.id,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_spent_privacy_is_the_most_any_version_records_and_an_unreadable_one_stops_rounds() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 1 << 20).unwrap();
        // Version 3 says fewer rounds than version 2 (a record written back, say): the
        // spent privacy never goes back. Version 1, from before ρ was kept: its rounds.
        put(&store, 1, stored(1, 1, 0.0));
        put(&store, 2, stored(2, 5, 5.0 / 18.0));
        put(&store, 3, stored(3, 2, 2.0 / 18.0));
        let now = Timestamp::from_millis(1_000);
        let f = Federated::open(&store, &config(), now).unwrap();
        assert_eq!(f.published().version, 3);
        let spent = f.spent();
        assert_eq!(spent.rounds, 5);
        assert!((spent.rho - 5.0 / 18.0).abs() < 1e-12, "{spent:?}");
        assert!(matches!(f.status(), Status::Open(_)));
        put(&store, 4, b"not json".to_vec());
        let f = Federated::open(&store, &config(), now).unwrap();
        assert_eq!(f.status(), Status::Stopped(Stop::Unreadable));
        assert_eq!(f.published().version, 3);
    }

    #[test]
    fn a_round_closes_under_its_lock_refuses_while_closing_and_reloads_after_a_failed_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 1 << 20).unwrap();
        let c = config();
        let now = Timestamp::from_millis(1_000);
        let f = Federated::open(&store, &c, now).unwrap();
        let round = open_round(&f);
        let users: Vec<UserId> = (0..4).map(|_| UserId::generate()).collect();
        assert!(!f.submit(users[0], round, update(1.0), &c).unwrap());
        // Withdrawn while open: dropped, and barred for the round.
        f.withdraw(users[0]);
        assert!(matches!(
            f.submit(users[0], round, update(1.0), &c),
            Err(EngineError::ConsentRequired(_))
        ));
        assert!(!f.submit(users[1], round, update(1.0), &c).unwrap());
        assert!(!f.submit(users[2], round, update(0.5), &c).unwrap());
        assert!(f.submit(users[3], round, update(1.0), &c).unwrap());
        // Full: the next is refused by name.
        let extra = UserId::generate();
        let Err(EngineError::Conflict(m)) = f.submit(extra, round, update(1.0), &c) else {
            panic!("a full round took an update");
        };
        assert!(m.contains("full"), "{m}");
        let Some(Closed::Aggregated(model)) = f.close_due(now, &c) else {
            panic!("a full round did not aggregate");
        };
        // Three counted; the noise over the fixed denominator, max_participants.
        assert_eq!((model.participants, model.rounds), (3, 1));
        assert_eq!(model.denominator, 3.0);
        let sigma = f64::from(c.rules.noise_multiplier * c.rules.clip_norm);
        assert!((model.noise_std - sigma / 3.0).abs() < 1e-9);
        assert!((model.rho - accountant::round_cost(3.0)).abs() < 1e-12);
        // While it is stored: 503 to updates, and a withdrawal now is after the round.
        assert_eq!(f.status(), Status::Closing);
        assert!(matches!(
            f.submit(extra, round, update(1.0), &c),
            Err(EngineError::Unavailable)
        ));
        f.withdraw(users[1]);
        // The store write failed, but landed (its outcome was unknown): what is in
        // force and spent is read again, so the round is not spent twice.
        let mut landed = (*model).clone();
        landed.version = 1;
        put(&store, 1, serde_json::to_vec(&landed).unwrap());
        f.finish(None, &store, &c, now);
        assert_eq!(f.published().version, 1);
        assert_eq!(f.spent().rounds, 1);
        assert_ne!(open_round(&f), round);
        // A failure that did not land spends nothing and keeps the version in force.
        let round = open_round(&f);
        for u in &users[1..3] {
            f.submit(*u, round, update(1.0), &c).unwrap();
        }
        let late = Timestamp::from_millis(1_000 + 7_200_000);
        assert!(matches!(f.close_due(late, &c), Some(Closed::Aggregated(_))));
        f.finish(None, &store, &c, late);
        assert_eq!((f.published().version, f.spent().rounds), (1, 1));
        assert_eq!(f.abandoned(), 1);
    }

    #[test]
    fn a_round_below_min_participants_at_its_deadline_is_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), 1 << 20).unwrap();
        let c = config();
        let now = Timestamp::from_millis(1_000);
        let f = Federated::open(&store, &c, now).unwrap();
        let round = open_round(&f);
        f.submit(UserId::generate(), round, update(1.0), &c)
            .unwrap();
        assert!(
            f.close_due(now, &c).is_none(),
            "not due before its deadline"
        );
        let late = Timestamp::from_millis(1_000 + 7_200_000);
        let Some(Closed::Abandoned { updates: 1, .. }) = f.close_due(late, &c) else {
            panic!("abandoned expected");
        };
        assert_eq!(f.spent(), Spent::default());
        assert_ne!(open_round(&f), round);
    }
}
