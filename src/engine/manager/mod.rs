//! [`UserManager`]: the library's one front door. The server, the CLI, the jobs to come,
//! the tests and the benches all go through it.
//!
//! Its work is grouped in facades, one file and one capability each, every call taking
//! the [`Principal`] it acts for (kanidm's `idm/server.rs` is the shape: one server type
//! handing out what a caller may do):
//!
//! | facade | capability |
//! |---|---|
//! | [`UserManager::accounts`] | sign-up, import, profile, tier, password, quotas, insights, export, deletion |
//! | [`UserManager::login`] | password and passkey logins, second factors, step-up, logout, request checks |
//! | [`UserManager::mfa`] | enrolling and removing factors, recovery codes |
//! | [`UserManager::sessions`] | listing and ending sessions, event sockets, activity |
//! | [`UserManager::privacy`] | consents, the age rule, security events |
//! | [`UserManager::ops`] | shards, metrics, the audit log, master key, retention |
//! | [`UserManager::analytics`], [`UserManager::personalization`], [`UserManager::jobs`], [`UserManager::integrations`] | room for what comes next |
//!
//! Access, step-up, tier gates and audit records are decided inside the facades; an
//! action's audit record is written in the same atomic batch as the action, so it is
//! either recorded or not done. The seed-named methods ([`UserManager::create_user`] and
//! the rest) stay on the manager itself and act as [`Principal::System`]`("library")`:
//! trusted code embedding the library.

mod accounts;
mod analytics;
mod backup;
mod companion;
mod console;
mod custom;
mod dashboard_report;
mod dashboards;
mod denylist;
mod federated;
mod forecast;
mod history_sync;
mod holds;
mod integrations;
mod jobs;
mod link_jobs;
mod login;
mod mfa;
mod model_admin;
mod music_links;
pub(crate) mod ops;
mod personalization;
mod principal;
mod privacy;
mod provisioning;
mod recommendations;
mod recommender;
mod revocation;
mod sessions;
mod siem;
mod signup;

#[cfg(test)]
mod tests;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use actix::Actor;

use super::directory::{Directory, ShardRef};
use super::events::Realtime;
use super::handle::UserHandle;
use super::runtime::ActorRuntime;
use super::shard::{PassivateAll, Shard, ShardCounters, SweepNow};
use super::user::SnapshotSoft;
use super::{Engine, EngineError};
use crate::config::Config;
use crate::domain::ids::UserId;
use crate::domain::profile::{ProfilePatch, UserProfile};
use crate::domain::session::LoginContext;
use crate::domain::tier::UserTier;
use crate::domain::time::{Clock, SystemClock, Timestamp};
use crate::metrics::{LoginLabels, LoginResult, Metrics};
use crate::security::password::PasswordHasher;
use crate::store::{Batch, GroupCommit, Store};
use futures_util::StreamExt as _;

pub use super::outcomes::*;
pub use accounts::Accounts;
pub use analytics::Analytics;
pub use backup::{BackupFile, BackupReport, RestoreError};
pub use companion::CompanionKey;
pub use console::ConsoleAudit;
pub use custom::CustomModelsView;
pub use dashboard_report::SHARED_REPORT_MAX_AGE;
pub use federated::{FederatedStatus, FederatedUpdate, FederatedView, RoundView, UpdateTaken};
pub use holds::{BulkHold, HoldProgress};
pub use integrations::{Callback, Integrations, LinkAnswer, LinkStart, LinkWith, Synced, Unlinked};
pub use jobs::{JobStatus, Jobs, JobsView, MAX_RUNS_PAGE};
pub use link_jobs::LinksRun;
pub use login::{FactorAnswer, Login};
pub use mfa::Mfa;
pub use model_admin::{
    ChurnCard, FederatedModels, GlobalModels, ModelsQuery, ModelsView, OwnModelRow, OwnModels,
    RecommenderCard, TrainingCounts,
};
pub use ops::Ops;
pub use personalization::{Personalization, TracksPut};
pub use principal::{Principal, UserSession};
pub use privacy::Privacy;
pub use provisioning::{
    DirectoryPage, MAX_DIRECTORY_PAGE, MAX_PROVISION_BATCH, ProvisionAction, ProvisionRow,
    Provisioned, Provisioning,
};
pub use recommendations::RecommendationQuery;
pub use recommender::ReportQuery;
pub use revocation::{BulkRevocation, RevocationProgress};
pub use sessions::Sessions;
pub use siem::{SiemExport, SiemWindow};

/// Snapshot requests a report has in flight at once.
const SNAPSHOTS_IN_FLIGHT: usize = 256;

/// The principal of the seed-named methods: trusted code embedding the library.
const LIBRARY: Principal = Principal::System("library");

/// What [`UserManager::open`] opens: a configuration, and for tests and tools the clock
/// and the store to use instead of the system clock and the configured store.
pub struct Setup {
    config: Config,
    clock: Arc<dyn Clock>,
    store: Option<Arc<dyn Store>>,
}

impl Setup {
    /// The configured store, on the system clock.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            clock: Arc::new(SystemClock),
            store: None,
        }
    }

    /// Reads time from `clock` (tests use a manual one).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `store` instead of opening the configured one (tests wrap a store to make it
    /// fail on purpose).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }
}

impl From<Config> for Setup {
    fn from(config: Config) -> Self {
        Self::new(config)
    }
}

/// The front door: creates, authenticates and manages users.
#[derive(Clone)]
pub struct UserManager {
    engine: Arc<Engine>,
    runtime: Arc<Mutex<Option<ActorRuntime>>>,
}

impl UserManager {
    /// Opens the store and starts the engine: `UserManager::open(config)`, or a
    /// [`Setup`] with a clock or store of its own.
    pub fn open(setup: impl Into<Setup>) -> Result<Self, EngineError> {
        let Setup {
            config,
            clock,
            store,
        } = setup.into();
        // Before anything else touches the store: a missing or wrong master key stops
        // here, with nothing written.
        let (store, keys) = match store {
            Some(store) => {
                let keys = super::keyring::Keyring::open(&config, store.as_ref())?;
                (store, keys)
            }
            None => super::keyring::open_store(&config)?,
        };
        let commit = GroupCommit::start(Arc::clone(&store))?;
        let p = &config.passwords;
        let hasher = PasswordHasher::start(p.params, p.workers, p.queue)?;
        let counts = UserTier::ALL.map(|t| config.tier(t).arbiters);
        let runtime = ActorRuntime::start(counts)?;
        let metrics = Arc::new(Metrics::new());
        let realtime = Arc::new(Realtime::new(config.websocket.limits, Arc::clone(&metrics)));
        let notifier = crate::notify::Notifier::start(&config.notify, Arc::clone(&metrics))
            .map_err(|e| EngineError::Internal(format!("notification thread: {e}")))?;
        let w = &config.webauthn;
        let webauthn = crate::security::passkey::relying_party(&w.rp_id, &w.rp_name, &w.origins)
            .map_err(|e| EngineError::Internal(format!("webauthn: {e}")))?;
        let models = super::models::Models::load(store.as_ref())?;
        let catalog = super::catalog::Catalog::load(store.as_ref())?;
        let recommender = super::recommender::Recommender::open(store.as_ref(), &catalog)?;
        let deny = super::denylist::Deny::load(store.as_ref())?;
        let federated = super::federated::Federated::open(
            store.as_ref(),
            &config.personalization.federated,
            clock.now(),
        )?;
        let engine = Arc::new(Engine {
            models,
            catalog,
            recommender,
            federated,
            custom: super::custom::Jobs::new(config.personalization.custom.concurrency),
            scan_cuts: Default::default(),
            live: Default::default(),
            jobs: Default::default(),
            bulk_revocation: Default::default(),
            dashboard_writes: Default::default(),
            shared_reports: Default::default(),
            deny,
            integrations: crate::integrations::Registry::new(&config.integrations, |name| {
                std::env::var(name).ok()
            }),
            keys,
            challenges: crate::security::token::ChallengeSeal::generate(),
            decoys: Default::default(),
            notifier,
            webauthn,
            config: Arc::new(config),
            store,
            commit,
            clock,
            hasher,
            directory: Directory::default(),
            metrics,
            realtime,
        });
        let shards = UserTier::ALL.map(|tier| {
            let arbiters = &runtime.arbiters[tier.index()];
            (0..engine.config.tier(tier).shards)
                .map(|i| {
                    let counters = Arc::new(ShardCounters::default());
                    let (e, c) = (Arc::clone(&engine), Arc::clone(&counters));
                    let arbiter = &arbiters[i % arbiters.len()];
                    let addr = Shard::start_in_arbiter(arbiter, move |_| Shard::new(tier, i, e, c));
                    ShardRef { addr, counters }
                })
                .collect::<Vec<_>>()
        });
        engine.directory.set_shards(shards)?;
        let manager = Self {
            engine,
            runtime: Arc::new(Mutex::new(Some(runtime))),
        };
        if manager.engine.config.store.verify_on_start {
            let report = manager.verify_store();
            for (user, reason) in &report.corrupt {
                tracing::error!(%user, %reason, "unreadable user record; the user cannot log in until it is repaired");
            }
            tracing::info!(
                users = report.ok,
                corrupt = report.corrupt.len(),
                "store verified"
            );
        }
        Ok(manager)
    }

    /// Accounts: sign-up, import, profile, tier, password, quotas, insights, export,
    /// deletion.
    pub fn accounts(&self) -> Accounts<'_> {
        Accounts { m: self }
    }

    /// Logins, second factors, step-up, logout and the per-request session check.
    pub fn login(&self) -> Login<'_> {
        Login { m: self }
    }

    /// Enrolling and removing second factors.
    pub fn mfa(&self) -> Mfa<'_> {
        Mfa { m: self }
    }

    /// Sessions, event sockets and the activity they report.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions { m: self }
    }

    /// Consents, the age rule and security events.
    pub fn privacy(&self) -> Privacy<'_> {
        Privacy { m: self }
    }

    /// Operating the engine: shards, metrics, the audit log, the master key, retention.
    pub fn ops(&self) -> Ops<'_> {
        Ops { m: self }
    }

    /// The analytics engine: activity in, engagement, churn, segments, cohorts.
    pub fn analytics(&self) -> Analytics<'_> {
        Analytics { m: self }
    }

    /// AI personalization (its own issue).
    pub fn personalization(&self) -> Personalization<'_> {
        Personalization { m: self }
    }

    /// Scheduled jobs: their state, history and the operators' requests for a run.
    pub fn jobs(&self) -> Jobs<'_> {
        Jobs { m: self }
    }

    /// Provisioning users from files and identity providers, and invitations.
    pub fn provisioning(&self) -> Provisioning<'_> {
        Provisioning { m: self }
    }

    /// The integration hub (its own issue).
    pub fn integrations(&self) -> Integrations<'_> {
        Integrations { m: self }
    }

    // ---- the seed's methods: trusted code embedding the library ---------------------

    /// Creates a user: validates everything, hashes the password on the worker pool,
    /// then claims the email and writes the user atomically. Durable when it returns.
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        tier: UserTier,
        profile_data: ProfilePatch,
    ) -> Result<UserProfile, EngineError> {
        self.accounts()
            .create(&LIBRARY, email, password, tier, profile_data)
            .await
    }

    /// Checks credentials and, if they hold, opens a session. Unknown emails, wrong
    /// passwords and locked accounts all cost one argon2 verification, so timing does not
    /// tell them apart. The context is taken as given (the caller is trusted).
    pub async fn authenticate_user(
        &self,
        email: &str,
        password: &str,
        context: LoginContext,
    ) -> Result<LoginOutcome, EngineError> {
        self.login()
            .password(&LIBRARY, email, password, context, Default::default())
            .await
    }

    /// The profile of `id`.
    pub async fn get_user(&self, id: UserId) -> Result<UserProfile, EngineError> {
        self.accounts().get(&LIBRARY, id).await
    }

    /// Applies a partial update (profile fields, `ai_preferences`, `security_settings`).
    pub async fn update_user_profile(
        &self,
        id: UserId,
        updates: ProfilePatch,
    ) -> Result<UserProfile, EngineError> {
        self.accounts().update(&LIBRARY, id, updates).await
    }

    /// Moves a user to another tier; its actor moves to that tier's registry.
    pub async fn upgrade_user_tier(
        &self,
        id: UserId,
        new_tier: UserTier,
    ) -> Result<UserProfile, EngineError> {
        self.accounts().change_tier(&LIBRARY, id, new_tier).await
    }

    /// Activity, sessions and quota use of a user.
    pub async fn get_user_insights(&self, id: UserId) -> Result<Insights, EngineError> {
        self.accounts().insights(&LIBRARY, id).await
    }

    /// Deletes a user (audited as the library's doing).
    pub async fn delete_user(&self, id: UserId) -> Result<(), EngineError> {
        self.accounts().delete(&LIBRARY, id).await
    }

    // ---- the engine itself -------------------------------------------------------------

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.engine.config
    }

    /// The engine's current time (its clock may be a manual one in tests).
    pub fn now(&self) -> Timestamp {
        self.engine.clock.now()
    }

    /// Decodes every stored record and lists the ones that fail, by user id.
    pub fn verify_store(&self) -> StoreReport {
        let mut report = StoreReport::default();
        let (store, keys) = (self.engine.store.as_ref(), &self.engine.keys);
        for item in store.scan_users() {
            match item {
                Ok((id, rec)) => match keys.data_key(store, id) {
                    Ok(Some(key)) => match super::state::decode(&rec, &key, id) {
                        Ok(_) => report.ok += 1,
                        Err(e) => report.corrupt.push((id, e.to_string())),
                    },
                    Ok(None) => report.corrupt.push((id, "no data key".into())),
                    Err(e) => report.corrupt.push((id, e.to_string())),
                },
                Err(e) => tracing::error!(error = %e, "store scan failed"),
            }
        }
        report
    }

    /// The realtime layer: per-user event streams and the operators' security feed, for
    /// the socket front end.
    pub fn realtime(&self) -> &Arc<Realtime> {
        &self.engine.realtime
    }

    /// The metrics registry, for layers that count (HTTP requests, rate limits).
    pub fn metrics(&self) -> &Metrics {
        &self.engine.metrics
    }

    /// The tier of the user a bearer token names, if that user's actor is live: a
    /// directory lookup, no message. For admission control before authentication.
    pub fn tier_hint(&self, token: &str) -> Option<UserTier> {
        let t = crate::security::token::SessionToken::parse(token).ok()?;
        self.engine.directory.get(t.user_id()).map(|e| e.tier)
    }

    /// Where the user's actor lives now (tier and shard index), if it is live.
    pub fn placement(&self, id: UserId) -> Option<(UserTier, usize)> {
        self.engine.directory.get(id).map(|e| (e.tier, e.shard))
    }

    /// Live user actors.
    pub fn live_users(&self) -> usize {
        self.engine.directory.live_count()
    }

    /// Stored users.
    pub fn user_count(&self) -> usize {
        self.engine.store.user_count()
    }

    /// Whether the engine's shards are up (readiness).
    pub fn ready(&self) -> bool {
        !self.engine.directory.shards().is_empty()
    }

    /// Flushes issued and commits answered by the group committer.
    pub fn commit_stats(&self) -> (u64, u64) {
        let s = self.engine.commit.stats();
        (
            s.flushes.load(Ordering::Relaxed),
            s.commits.load(Ordering::Relaxed),
        )
    }

    /// Runs every shard's sweep now: idle actors passivate, due snapshots are written.
    /// Returns once every shard has sent its ticks (the actors handle them right after).
    pub async fn sweep_now(&self) -> Result<(), EngineError> {
        for list in self.engine.directory.shards() {
            for s in list {
                s.addr
                    .send(SweepNow)
                    .await
                    .map_err(|_| EngineError::Unavailable)?;
            }
        }
        Ok(())
    }

    /// Has every live actor with unsaved soft state (activity, risk history) write it,
    /// and returns once it is durable: a batch job started afterwards reads it from the
    /// store. Actors with nothing unsaved are not asked, so the cost follows recent
    /// activity, not the number of live users.
    pub(crate) async fn snapshot_live(&self) -> Result<(), EngineError> {
        let asked = self.engine.directory.unsaved();
        // An actor that stopped meanwhile wrote its snapshot as it left.
        futures_util::stream::iter(asked)
            .for_each_concurrent(SNAPSHOTS_IN_FLIGHT, |a| async move {
                let _ = a.send(SnapshotSoft).await;
            })
            .await;
        self.engine.commit.commit().await?;
        Ok(())
    }

    /// Snapshots every live actor, makes it durable and stops the engine. Waits at most
    /// the configured shutdown timeout for the actors.
    pub async fn shutdown(&self) -> Result<(), EngineError> {
        let shards: Vec<_> = self
            .engine
            .directory
            .shards()
            .iter()
            .flatten()
            .cloned()
            .collect();
        let all = futures_util::future::join_all(shards.iter().map(|s| s.addr.send(PassivateAll)));
        let timeout = self.engine.config.engine.shutdown_timeout;
        if tokio::time::timeout(timeout, all).await.is_err() {
            tracing::warn!(
                ?timeout,
                "shutdown snapshot timed out; soft state of some users may be older"
            );
        }
        self.engine.commit.commit().await?;
        if !self.engine.notifier.drained(timeout).await {
            tracing::warn!(?timeout, "stopping with emails still queued");
        }
        let runtime = self.runtime.lock().map(|mut r| r.take()).unwrap_or(None);
        if let Some(mut rt) = runtime {
            // Joining the actor thread blocks; do it off the async worker.
            tokio::task::spawn_blocking(move || rt.stop())
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))?;
        }
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    // ---- shared by the facades --------------------------------------------------------

    /// A handle on one user's actor (no access check: the facades make them).
    pub(crate) fn user(&self, id: UserId) -> UserHandle {
        UserHandle::new(id, Arc::clone(&self.engine))
    }

    fn count_login(&self, outcome: LoginResult) {
        self.engine
            .metrics
            .logins
            .get_or_create(&LoginLabels { outcome })
            .inc();
        // A challenge is neither: the login ends with its answer.
        if outcome != LoginResult::MfaChallenged {
            self.engine.live.login(outcome == LoginResult::Success);
        }
    }

    /// Writes the audit record of `by` reading `what` of `user`, if such reads are
    /// audited (an operator's); durable before the data is handed out, so a read whose
    /// record cannot be written is refused.
    async fn audit_read(
        &self,
        by: &Principal,
        user: UserId,
        what: &str,
    ) -> Result<(), EngineError> {
        if !by.audits_reads() {
            return Ok(());
        }
        let Some(actor) = by.audit_actor() else {
            return Ok(());
        };
        let action = crate::domain::audit::AuditAction::UserRead {
            user,
            what: what.to_owned(),
        };
        self.audit(actor, action).await
    }

    /// Appends an audit record on its own, durably.
    async fn audit(
        &self,
        actor: crate::domain::audit::AuditActor,
        action: crate::domain::audit::AuditAction,
    ) -> Result<(), EngineError> {
        let draft = vec![(actor, action, self.now())];
        let ticket = self.engine.commit.submit(Batch::default(), draft, None);
        super::durable::settled(self.engine.commit.wait(&ticket).await)
    }
}
