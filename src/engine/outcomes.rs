//! What the front door answers: every outcome and report type of the facades of
//! [`UserManager`](crate::engine::UserManager), in one place (the user actor's replies among
//! them). Expected refusals are values here (a denied login, a wrong factor, a quota
//! hit), so `?` carries only real failures.

use serde::{Deserialize, Serialize};

use crate::analytics::churn::ChurnPrediction;
use crate::domain::consent::{ConsentChange, ConsentState, ParentalConsent, Purpose};
use crate::domain::engagement::Engagement;
use crate::domain::history::{ActivityCounters, ActivityHistory, FeatureUse};
use crate::domain::ids::{SessionId, UserId};
use crate::domain::login::ChallengeReason;
use crate::domain::mfa::{MfaStatus, SecondFactor};
use crate::domain::profile::UserProfile;
use crate::domain::rate::RateDecision;
use crate::domain::risk::Location;
use crate::domain::security_log::SecurityEvent;
use crate::domain::session::SessionView;
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;
use crate::engine::events::Subscription;
use crate::engine::shared_profile::SharedProfile;
use crate::security::passkey::{PublicKeyCredential, RequestChallengeResponse};
use crate::store::audit::AuditEntry;

mod analytics;
mod recommendations;
mod taste;
pub use analytics::*;
pub use recommendations::*;
pub use taste::*;

/// The result of a login attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum LoginOutcome {
    /// Credentials accepted; a session was created and is durable.
    Success(Box<LoginSuccess>),
    /// The password was right; a second factor must be sent to `complete_login`.
    Challenge(Box<LoginChallenge>),
    /// Refused. The reason is for logs and metrics; clients must get one answer for all.
    Denied(DenyReason),
}

/// A login waiting for its second factor (`202` on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LoginChallenge {
    /// Always `mfa_required`.
    pub status: &'static str,
    /// The challenge token: send it back with the second factor. Shown once.
    pub challenge: String,
    /// Factors accepted, in order of preference.
    pub methods: Vec<SecondFactor>,
    /// Why a second factor is needed.
    pub reason: ChallengeReason,
    /// When the challenge stops working.
    pub expires_at: Timestamp,
}

/// A passwordless login's first step (`{challenge, options}` on the wire).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PasswordlessChallenge {
    /// The challenge token: send it back with the signed assertion. Shown once.
    pub challenge: String,
    /// For `navigator.credentials.get()`.
    #[schema(value_type = Object)]
    pub options: RequestChallengeResponse,
}

/// The result of answering a login challenge.
#[derive(Debug, Clone, PartialEq)]
pub enum ChallengeOutcome {
    /// The login completed.
    Success(Box<LoginSuccess>),
    /// Wrong factor; this many more tries are allowed.
    Rejected {
        /// Tries left.
        attempts_left: u32,
    },
    /// The challenge is unknown, expired, used or worn out: log in again.
    Gone,
}

/// A completed login (`{ "token", "expires_at", "user" }` on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LoginSuccess {
    /// The bearer token; shown once, never stored.
    pub token: String,
    /// The session's id.
    #[serde(skip)]
    pub session_id: SessionId,
    /// When the session ends unless used.
    pub expires_at: Timestamp,
    /// The user's profile.
    pub user: UserProfile,
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// Unknown email or wrong password (deliberately one reason).
    InvalidCredentials,
    /// Too many failures; the lock clears by itself.
    Locked {
        /// When the lock ends.
        until: Timestamp,
    },
    /// The password was right but the risk engine refused the login.
    RiskDenied,
}

/// The result of a password change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordChange {
    /// Changed; every other session has ended.
    Changed,
    /// The current password was wrong (or the account is locked); nothing changed.
    WrongPassword,
}

/// Quota use against a tier limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QuotaUse {
    /// Used so far.
    pub used: u64,
    /// The tier's limit; `null` when unlimited.
    pub limit: Option<u64>,
}

/// What `get_user_insights` reports today: activity, sessions and quota use.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Insights {
    /// The user.
    pub user_id: UserId,
    /// Current tier.
    pub tier: UserTier,
    /// Account creation.
    pub member_since: Timestamp,
    /// Whole days since creation.
    pub account_age_days: u64,
    /// Successful logins.
    pub logins: u64,
    /// Latest successful login.
    pub last_login_at: Option<Timestamp>,
    /// Live sessions.
    pub active_sessions: usize,
    /// Playlists against the tier limit.
    pub playlists: QuotaUse,
    /// Storage bytes against the tier limit.
    pub storage_bytes: QuotaUse,
    /// API requests per hour the tier allows; `null` when unlimited.
    pub requests_per_hour: Option<u64>,
    /// Features the tier unlocks.
    pub features: Vec<String>,
    /// Listening activity reported by the user's clients: lifetime counters.
    pub activity: ActivityCounters,
    /// The engagement score of the last 28 days with its parts (see `docs/analytics.md`);
    /// `null` without the user's consent to analytics (a score is profiling).
    pub engagement: Option<Engagement>,
    /// The churn model's prediction with its reasons; `null` before a usable model
    /// exists, or without the user's consent to analytics.
    pub churn: Option<ChurnPrediction>,
    /// The behaviour segment the user is nearest to now; `null` before a segmentation
    /// exists, or without the consent.
    pub segment: Option<crate::analytics::segments::SegmentRef>,
    /// When the user listens: plays by hour of day (UTC), and the first and last
    /// activity.
    pub listening_profile: ListeningProfile,
    /// Tier features used, by feature.
    pub feature_usage: Vec<FeatureUse>,
    /// The days with activity of the last five weeks, oldest first.
    pub recent_days: Vec<DayActivity>,
}

/// Everything Roster holds about one user, for data portability (GDPR art. 20). Field
/// by field in `docs/export.md`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserExport {
    /// Layout version of this document.
    pub export_format: u32,
    /// When it was produced.
    pub exported_at: Timestamp,
    /// Identity, tier, display name, language, time zone, AI preferences, security
    /// settings, usage counters, creation and update times.
    pub profile: UserProfile,
    /// Live sessions, with the client address, user agent and device of their login.
    pub sessions: Vec<SessionView>,
    /// Device ids seen at successful logins, oldest first (new-device checks).
    pub known_devices: Vec<String>,
    /// Failed logins in the current window and the lock they caused.
    pub login_failures: LoginFailures,
    /// The days the tier's request rate refused some of the user's requests, oldest
    /// first (the last 56 days).
    pub rate_refusals: Vec<RefusalDay>,
    /// Listening activity counted from the user's clients: lifetime counters.
    pub activity: ActivityCounters,
    /// The activity history: daily and weekly buckets, plays by hour, totals, features
    /// used.
    pub activity_history: ActivityHistory,
    /// What personalization learned of the user's taste (none without the consent to
    /// personalisation or before any play).
    pub taste: Option<TasteExport>,
    /// Recommendations shown and followed, per kind of list (level and mitigation).
    pub recommendation_feedback: Vec<FeedbackExport>,
    /// The listening log kept for the user's own model, oldest first (empty unless
    /// `ai_preferences.custom_model_training` is on). New in export format 7.
    pub listening_log: Vec<crate::engine::listening::ListenExport>,
    /// The user's own models: the versions kept with their weights and figures, and
    /// the one pinned. New in export format 7.
    pub own_models: OwnModelsExport,
    /// Consents per purpose with their history, birth date, parental consent.
    pub consents: ConsentView,
    /// Second factors enrolled (never their secrets).
    pub mfa: MfaStatus,
    /// Accounts linked at integration providers: provider, scopes, status, times
    /// (never their tokens). New in export format 6.
    pub linked_accounts: Vec<crate::domain::link::LinkView>,
    /// What the risk engine learned from the user's logins.
    pub risk_profile: RiskProfileExport,
    /// Every security event kept about the user, newest first.
    pub security_events: Vec<SecurityEvent>,
    /// Audit records naming the user, as actor or subject.
    pub audit: Vec<AuditEntry>,
    /// What is held but not exported, and why.
    pub withheld: Vec<String>,
}

/// A user's own models, in an export.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OwnModelsExport {
    /// The versions kept, oldest first.
    pub versions: Vec<crate::engine::custom::CustomVersion>,
    /// The version pinned, if any.
    pub pinned: Option<u64>,
}

/// The risk engine's knowledge of a user, in an export.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RiskProfileExport {
    /// Address prefixes of earlier logins, oldest first.
    pub networks: Vec<String>,
    /// Countries of earlier logins, oldest first.
    pub countries: Vec<String>,
    /// The latest login with a known location.
    pub last_location: Option<Location>,
    /// When that login was.
    pub last_location_at: Option<Timestamp>,
    /// Successful logins per UTC hour of day (index 0 = 00:00-00:59).
    pub login_hours: Vec<u32>,
}

/// A day on which the tier's request rate refused requests, in an export.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RefusalDay {
    /// The day (UTC), `YYYY-MM-DD`.
    pub day: String,
    /// Requests refused that day.
    pub refused: u32,
}

/// Failed-login state in an export.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LoginFailures {
    /// Failures in the current window.
    pub failures: u32,
    /// When that window began.
    pub window_start: Timestamp,
    /// Until when logins are refused, if locked now.
    pub locked_until: Option<Timestamp>,
}

/// One shard's figures.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ShardStats {
    /// The shard's tier.
    pub tier: UserTier,
    /// Its index within the tier.
    pub index: usize,
    /// Live actors.
    pub resident: u64,
    /// Activations from snapshots.
    pub activations: u64,
    /// Actors that left.
    pub passivations: u64,
    /// Crashed actors restarted.
    pub restarts: u64,
    /// Messages to its user actors not yet answered (their mailboxes' depth together).
    pub in_flight: u64,
    /// Messages its user actors have answered.
    pub messages: u64,
    /// Messages answered per second over the last sweep window
    /// (`engine.sweep_interval_secs`).
    pub message_rate_per_sec: f64,
    /// Median round trip of those messages (mailbox wait plus handling), µs.
    pub latency_p50_us: u64,
    /// Their 99th percentile, µs.
    pub latency_p99_us: u64,
    /// The slowest, µs.
    pub latency_max_us: u64,
}

/// What a start-up check of the store found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreReport {
    /// Records that decoded.
    pub ok: usize,
    /// Users whose records did not, with the reason.
    pub corrupt: Vec<(UserId, String)>,
}

/// What a retention purge removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PurgeReport {
    /// Events older than this went.
    pub cutoff: Timestamp,
    /// User records read.
    pub users: usize,
    /// User records rewritten.
    pub rewritten: usize,
    /// Events removed from users' records.
    pub in_state: usize,
    /// Archived events removed.
    pub archived: usize,
    /// Ended sessions removed from users' records.
    #[serde(default)]
    pub sessions: usize,
    /// Expired link challenges (links begun and never finished) removed from users'
    /// records.
    #[serde(default)]
    pub challenges: usize,
}

/// What a check of the audit log's hash chain found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum AuditVerdict {
    /// Every record links to the one before it.
    Intact {
        /// Records in the log.
        records: u64,
    },
    /// The chain breaks at `seq`.
    Broken {
        /// The first bad record (or where a missing one should be).
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// A user for [`Accounts::import`](super::Accounts::import): an existing argon2 hash
/// instead of a password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportedUser {
    /// The email.
    pub email: String,
    /// The system migrated from's hash of the password: an argon2 PHC string
    /// (`$argon2id$v=19$m=...`) or bcrypt (`$2b$12$...`, cost at most 14). Either is
    /// replaced by argon2id at the configured cost at the user's first login.
    pub password_hash: String,
    /// The tier (default Free).
    #[serde(default)]
    pub tier: Option<UserTier>,
    /// Profile fields.
    #[serde(default)]
    pub profile_data: Option<crate::domain::profile::ProfilePatch>,
    /// When the user signed up in the system migrated from (default: now), so that a
    /// migrated population keeps its sign-up dates (cohorts, tenure). Not in the future.
    #[serde(default)]
    pub created_at: Option<Timestamp>,
}

/// Who a valid session belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session's user.
    pub user_id: UserId,
    /// The session.
    pub session_id: SessionId,
    /// The user's tier now.
    pub tier: UserTier,
    /// When the session ends unless used again.
    pub expires_at: Timestamp,
}

impl SessionInfo {
    pub(crate) fn of(user_id: UserId, tier: UserTier, s: &crate::domain::session::Session) -> Self {
        Self {
            user_id,
            session_id: s.id,
            tier,
            expires_at: s.ends_at(),
        }
    }
}

/// A request made with a valid session, and what the rate limiter decided about it.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthorizedRequest {
    /// The session.
    pub session: SessionInfo,
    /// Allowed (with the figures for `RateLimit-*` headers) or limited.
    pub rate: RateDecision,
    /// The user's profile as of this check: a shared snapshot, so that a request about
    /// the caller's own profile needs no second message to the actor.
    pub profile: SharedProfile,
}

/// The answer to [`Subscribe`].
#[derive(Debug)]
pub enum SubscribeOutcome {
    /// Subscribed; the socket reads its events from here.
    Subscribed(Box<Subscription>),
    /// The session is not live.
    SessionInvalid,
    /// The user holds the most sockets allowed.
    TooManySockets,
}

/// The answer to [`RecordActivity`].
#[derive(Debug, Clone, PartialEq)]
pub enum ActivityOutcome {
    /// Counted.
    Recorded {
        /// Events counted.
        accepted: usize,
    },
    /// The session is not live; nothing counted.
    SessionInvalid,
    /// Over the tier's rate; nothing counted.
    RateLimited {
        /// Seconds until a request is allowed.
        retry_after_secs: u64,
    },
    /// The user has not consented to analytics (or is a minor without a recorded
    /// parental consent); nothing counted.
    ConsentRequired {
        /// Why, for the client.
        reason: &'static str,
    },
}

/// What became of a code request.
#[derive(Debug)]
pub enum CodeSend {
    /// A code was made and queued for sending; it expires then.
    Sent {
        /// When the code stops working.
        expires_at: Timestamp,
    },
    /// A code was sent moments ago; ask again after this many seconds.
    TooSoon {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// This challenge does not offer email.
    NotOffered,
    /// No such challenge (expired, used, or never issued).
    Gone,
}

/// The answer to a second-factor question.
#[derive(Clone, Debug)]
pub enum FactorProof {
    /// A code: authenticator, email or recovery.
    Code(String),
    /// A WebAuthn assertion, for the options the server handed out.
    Assertion(Box<PublicKeyCredential>),
}

impl FactorProof {
    /// The proof with surrounding spaces taken off a code.
    pub fn trimmed(self) -> Self {
        match self {
            Self::Code(c) => Self::Code(c.trim().to_owned()),
            a => a,
        }
    }
}

/// What a step-up achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepUpOutcome {
    /// The session counts as freshly authenticated until `valid_until`.
    Done {
        /// When sensitive operations need another step-up.
        valid_until: Timestamp,
    },
    /// Wrong password or factor (counted as a failure).
    Rejected,
    /// The user has an authenticator: a code from it (or a recovery code) must come too.
    FactorRequired,
}

/// One purpose's consent now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PurposeConsent {
    /// The purpose.
    pub purpose: Purpose,
    /// Granted now.
    pub granted: bool,
    /// Since when (the last change), if ever set.
    pub since: Option<Timestamp>,
}

/// A user's consents as the API shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConsentView {
    /// Each purpose, granted or not.
    pub purposes: Vec<PurposeConsent>,
    /// Every recorded change, oldest first.
    pub history: Vec<ConsentChange>,
    /// The birth date, if given (`YYYY-MM-DD`).
    pub birth_date: Option<String>,
    /// Under the configured minimum age.
    pub minor: bool,
    /// The recorded parental consent, if any.
    pub parental_consent: Option<ParentalConsent>,
}

impl ConsentView {
    /// The view of `c` at `now`.
    pub fn of(c: &ConsentState, min_age: u8, now: Timestamp) -> Self {
        Self {
            purposes: Purpose::ALL
                .iter()
                .map(|&p| PurposeConsent {
                    purpose: p,
                    granted: c.granted(p),
                    since: c.current(p).map(|x| x.at),
                })
                .collect(),
            history: c.history.clone(),
            birth_date: c.birth_date.map(|d| d.to_string()),
            minor: c.is_minor(min_age, now),
            parental_consent: c.parental.as_deref().cloned(),
        }
    }
}

/// What a request counted against the tier's rate found (`Sessions::take_request`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestTaken {
    /// Counted.
    Taken,
    /// The tier's allowance is spent: try again in this many seconds.
    Limited {
        /// Seconds until a request is allowed again.
        retry_after_secs: u64,
    },
    /// The session is not live.
    SessionInvalid,
}
