//! The actor engine: one actor per live user, tier-sharded registries that own them, the
//! directory that routes to them, and [`UserManager`], the library's front door.
//!
//! ```text
//! UserManager ──▶ directory (dashmap: id → live actor) ──▶ UserActor mailbox
//!                     │ miss
//!                     ▼
//!               shard[tier][hash(id) % n] ── activates from the store ──▶ UserActor
//! ```

pub(crate) mod background;
pub(crate) mod catalog;
pub(crate) mod custom;
pub(crate) mod decoys;
pub(crate) mod denylist;
pub(crate) mod directory;
pub(crate) mod durable;
pub(crate) mod events;
pub(crate) mod federated;
pub(crate) mod handle;
pub(crate) mod jobs;
#[doc(hidden)]
pub mod keyring;
pub(crate) mod listening;
pub(crate) mod live;
pub mod manager;
pub(crate) mod models;
pub mod outcomes;
pub(crate) mod population;
pub(crate) mod recommender;
pub(crate) mod runtime;
pub(crate) mod security_scan;
pub(crate) mod shard;
pub(crate) mod shared_profile;
#[doc(hidden)]
pub mod state;
pub(crate) mod user;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::config::Config;
use crate::domain::ids::UserId;
use crate::domain::tier::UserTier;
use crate::domain::time::Clock;
use crate::domain::validation::ValidationError;
use crate::security::password::{PasswordHasher, PoolError};
use crate::store::{GroupCommit, Store, StoreError};

// The front door and everything its callers see: the manager, its facades and their
// outcome types. Layers above the engine (the API, the CLI, the consoles) use these
// names only, never the engine's modules.
pub use crate::analytics::churn::features::Group as FeatureGroup;
pub use crate::analytics::churn::{
    Band, ChurnModel, ChurnPrediction, FeatureCard, Reason, TrainProgress,
};
pub use crate::analytics::cohorts::{Cohort, CohortQuery, CohortTable, Unit as CohortUnit};
pub use crate::analytics::compliance::{ComplianceReport, ConsentCounts, MfaAdoption};
pub use crate::analytics::evaluate::{Evaluation, ReliabilityBin};
pub use crate::analytics::forecast::{Backtest, ForecastReport, Predicted, SeriesForecast};
pub use crate::analytics::opportunities::{
    Candidate, FeatureBaseline, Kind as OpportunityKind, KindCount, Signal, TierAnalysis,
};
pub use crate::analytics::overview::{Overview, WindowEvents};
pub use crate::analytics::segments::{Segment, SegmentModel, SegmentRef};
pub use crate::analytics::tiers::{Migration, TierReport, TierWeek};
pub use crate::analytics::usage::{
    EngagementBin, EngagementDistribution, FeatureUsage, UsageDay, UsageReport,
};
pub use crate::domain::activity::Platform;
pub use crate::domain::audit::{AuditAction, AuditActor};
pub use crate::domain::binding::RequestOrigin;
pub use crate::domain::companion::{CompanionOutcome, CreativeEvent, PushCounted};
pub use crate::domain::job::{
    JobKind, JobReport, JobRun, Outcome as JobOutcome, Trigger as JobTrigger,
};
pub use crate::domain::link::{LinkStatus, LinkView};
pub use crate::domain::login::ChallengeReason;
pub use crate::domain::taste::Daypart;
pub use crate::integrations::apple::DeveloperToken;
pub use crate::integrations::{Availability as ProviderAvailability, ProviderInfo};
pub use crate::personalization::quality::ListFigures;
pub use crate::personalization::{
    Activity, ClickThrough, ExposureComparison, ItemReason, RecommenderReport,
};
pub use crate::security::passkey::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};
pub use crate::security::totp::TotpEnrollment;
pub use crate::store::audit::{AuditBody, AuditEntry};
pub use crate::store::backup::{
    BackupError, Header as BackupHeader, Restored, Trailer as BackupTrailer,
};
pub use catalog::CatalogSummary;
pub use custom::{CustomVersion, TrainingJob};
pub use events::{CloseCode, Hello, Realtime, Resume, StreamId, Subscription};
pub use keyring::{KeyHistory, RotationProgress, RotationReport};
pub use live::{HashPoolFigures, LiveFigures, RiskRates};
pub use manager::*;
pub use models::TRAINING_RUNNING;
pub use shared_profile::SharedProfile;

/// The report a dashboard's read-only links were last shown, if any.
pub(crate) type SharedReportSlot =
    tokio::sync::Mutex<Option<Arc<crate::domain::dashboard::DashboardReport>>>;

/// What can go wrong in an engine call. Expected outcomes (a denied login) are values of
/// the `Ok` side instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The input breaks a rule; nothing was changed.
    #[error("invalid {0}")]
    Validation(#[from] ValidationError),
    /// The email belongs to another account.
    #[error("email is already registered")]
    EmailTaken,
    /// No such user.
    #[error("user not found")]
    NotFound,
    /// The change conflicts with the state of what it changes: it raced with another
    /// change of the same thing (retry), or a limit is reached (the words say which).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The password pool is saturated; retry shortly.
    #[error("server is at capacity, retry shortly")]
    Overloaded,
    /// The engine is stopping or a component is gone.
    #[error("engine unavailable")]
    Unavailable,
    /// A user's stored record cannot be read.
    #[error("stored record of user {user} is unreadable: {reason}")]
    Corrupt {
        /// The user.
        user: UserId,
        /// What is wrong with the record.
        reason: String,
    },
    /// The store failed.
    #[error("store failure: {0}")]
    Store(String),
    /// An activation reached the shard of another tier (internal re-routing signal).
    #[error("user lives in the {0} tier")]
    WrongShard(UserTier),
    /// The operation is sensitive and the session has not proved its credentials
    /// recently: step up first.
    #[error("a recent authentication is required (step up)")]
    StepUpRequired,
    /// The session was refused and ended (zero-trust binding, or risk).
    #[error("session refused: {0}")]
    SessionRefused(&'static str),
    /// The master key is missing, malformed, or not this store's; or a key file could
    /// not be written.
    #[error("master key: {0}")]
    MasterKey(String),
    /// No credential where one is needed (the principal is anonymous).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The principal may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The user exists, but not the thing named (a passkey, a phone number).
    #[error("{0} not found")]
    NoSuch(&'static str),
    /// The user's tier does not allow this (which tier, which limit, in the words).
    #[error("{0}")]
    TierLimit(String),
    /// An integration provider failed or could not be reached.
    #[error("{0}")]
    Provider(String),
    /// An integration provider is rate limiting or failing: retry after the wait.
    #[error("{message}")]
    ProviderBusy {
        /// Which provider, what it said.
        message: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The user has not given the consent this needs (why, in the words).
    #[error("{0}")]
    ConsentRequired(&'static str),
    /// A linked account cannot be used until the user links it again (its grant was
    /// refused, or it expired with no way to refresh it).
    #[error("{0}")]
    ReauthRequired(String),
    /// A bug or an unexpected failure; details are in the log.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        EngineError::Store(e.to_string())
    }
}

impl From<PoolError> for EngineError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Overloaded => EngineError::Overloaded,
            PoolError::Stopped => EngineError::Unavailable,
            PoolError::Hash(m) => EngineError::Internal(m),
        }
    }
}

/// What every actor and the manager share.
pub(crate) struct Engine {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub commit: GroupCommit,
    pub clock: Arc<dyn Clock>,
    pub hasher: PasswordHasher,
    pub directory: directory::Directory,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub realtime: Arc<events::Realtime>,
    /// The master key, the blind-index key and data-key wrapping.
    pub keys: keyring::Keyring,
    pub notifier: crate::notify::Notifier,
    pub webauthn: webauthn_rs::prelude::Webauthn,
    /// Seals the challenge tokens handed to callers who are not signed in.
    pub challenges: crate::security::token::ChallengeSeal,
    /// The decoy passwordless challenges handed out for emails without passkeys.
    pub(crate) decoys: decoys::Decoys,
    /// Trained models in force.
    pub(crate) models: models::Models,
    /// The track catalog.
    pub(crate) catalog: catalog::Catalog,
    /// The recommender's index and model in force.
    pub(crate) recommender: recommender::Recommender,
    /// The federated rounds and the sound model they published.
    pub(crate) federated: federated::Federated,
    /// Trainings of users' own models.
    pub(crate) custom: custom::Jobs,
    /// Where the next population scan cuts its ranges (learned by the last one).
    pub(crate) scan_cuts: population::Cuts,
    /// The operators' live figures.
    pub(crate) live: live::Live,
    /// The scheduler's board: its jobs' state and the operators' requests.
    pub(crate) jobs: jobs::Board,
    /// The operators' runtime deny-list of networks.
    pub(crate) deny: denylist::Deny,
    /// The integration hub's providers with their credentials.
    pub(crate) integrations: crate::integrations::Registry,
    /// The bulk session revocation running, if one: its cancel flag.
    pub(crate) bulk_revocation: std::sync::Mutex<Option<Arc<std::sync::atomic::AtomicBool>>>,
    /// Held by a dashboard's save or deletion from its check to its commit, so two
    /// first saves at once cannot both pass the cap.
    pub(crate) dashboard_writes: tokio::sync::Mutex<()>,
    /// The report read-only links to each dashboard were last shown (served for a
    /// minute), by dashboard; a dashboard's slot is held while its report is computed,
    /// so a burst of views of one link waits for one computation and other dashboards'
    /// links do not wait at all.
    pub(crate) shared_reports: dashmap::DashMap<String, Arc<SharedReportSlot>>,
}
