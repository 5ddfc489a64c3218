//! [`UserManager`]: the library's front door, mirroring the seed's API. The server, the
//! CLI, tests and benches all go through it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::audit::{self, AuditAction, AuditActor, AuditEntry, AuditLog};
use super::directory::{Directory, ShardRef};
use super::events::{Realtime, Resume};
use super::handle::UserHandle;
use super::keyring::{RotationProgress, RotationReport};
use super::runtime::ActorRuntime;
use super::shard::{PassivateAll, Shard, ShardCounters, SweepNow};
use super::shared_profile::SharedProfile;
use super::state::UserState;
use super::user_actor::{
    ActivityOutcome, AuthorizeRequest, AuthorizedRequest, BeginLogin, BeginPasskeyRegistration,
    BeginPasswordless, BeginSms, BeginTotp, ChallengeReason, CheckStepUp, CodeSend, CompleteLogin,
    ConfirmSms, ConfirmTotp, ConsentView, FactorProof, FinishLogin, FinishPasskeyRegistration,
    GetActivity, GetConsents, GetMfa, GetSecurityEvents, GetState, LoginDecision,
    PasswordlessStart, RecordActivity, RecordFailure, RecordParentalConsent, RegenerateRecovery,
    RemovePasskey, RemoveSms, RemoveTotp, RequestOrigin, SendLoginCode, SessionInfo, SetPassword,
    StartLoginAssertion, StartStepUpAssertion, StepUp, StepUpOutcome, Subscribe, SubscribeOutcome,
    TouchSession, UpdateConsents, UserActor, ValidateSession,
};
use super::{Engine, EngineError};
use crate::config::Config;
use crate::domain::activity::{ActivityCounters, ActivityEvent};
use crate::domain::consent::{Date, Purpose};
use crate::domain::email::Email;
use crate::domain::ids::{SessionId, UserId};
use crate::domain::mfa::{MfaStatus, SecondFactor};
use crate::domain::profile::{ProfilePatch, QuotaDecision, QuotaKind, UserProfile, new_profile};
use crate::domain::risk::Location;
use crate::domain::security_log::SecurityEvent;
use crate::domain::session::{LoginContext, SessionView};
use crate::domain::tier::UserTier;
use crate::domain::time::{Clock, SystemClock, Timestamp};
use crate::domain::validation::ValidationError;
use crate::metrics::{LoginLabels, LoginResult, Metrics, ShardLabels, TierLabels};
use crate::security::passkey::{
    CreationChallengeResponse, RegisterPublicKeyCredential, RequestChallengeResponse,
};
use crate::security::password::{PasswordHasher, hash_with};
use crate::security::token::SessionToken;
use crate::security::totp::TotpEnrollment;
use crate::store::{Applied, Batch, GroupCommit, Op, codec};

use actix::Actor;

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
    /// Listening activity reported by the user's clients.
    pub activity: ActivityCounters,
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
    /// Listening activity counted from the user's clients.
    pub activity: ActivityCounters,
    /// Consents per purpose with their history, birth date, parental consent.
    pub consents: ConsentView,
    /// Second factors enrolled (never their secrets).
    pub mfa: MfaStatus,
    /// What the risk engine learned from the user's logins.
    pub risk_profile: RiskProfileExport,
    /// Every security event kept about the user, newest first.
    pub security_events: Vec<SecurityEvent>,
    /// Audit records naming the user, as actor or subject.
    pub audit: Vec<AuditEntry>,
    /// What is held but not exported, and why.
    pub withheld: Vec<String>,
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

/// The front door: creates, authenticates and manages users.
#[derive(Clone)]
pub struct UserManager {
    engine: Arc<Engine>,
    runtime: Arc<Mutex<Option<ActorRuntime>>>,
}

impl UserManager {
    /// Opens the store in the configured data directory and starts the engine.
    pub fn open(config: Config) -> Result<Self, EngineError> {
        Self::open_with_clock(config, Arc::new(SystemClock))
    }

    /// As [`UserManager::open`], reading time from `clock` (tests use a manual clock).
    pub fn open_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Self, EngineError> {
        // Before anything else touches the store: a missing or wrong master key stops
        // here, with nothing written.
        let (store, keys) = super::keyring::open_store(&config)?;
        let commit = GroupCommit::start(Arc::clone(&store))?;
        let p = &config.passwords;
        let hasher = PasswordHasher::start(p.params, p.workers, p.queue)?;
        let counts = UserTier::ALL.map(|t| config.tier(t).arbiters);
        let runtime = ActorRuntime::start(counts)?;
        let metrics = Arc::new(Metrics::new());
        let realtime = Arc::new(Realtime::new(config.websocket.limits, Arc::clone(&metrics)));
        let audit = AuditLog::open(Arc::clone(&store))?;
        let notifier = crate::notify::Notifier::start(&config.notify, Arc::clone(&metrics))
            .map_err(|e| EngineError::Internal(format!("notification thread: {e}")))?;
        let w = &config.webauthn;
        let webauthn = crate::security::passkey::relying_party(&w.rp_id, &w.rp_name, &w.origins)
            .map_err(|e| EngineError::Internal(format!("webauthn: {e}")))?;
        let mut decoy_key = [0u8; 32];
        rand::fill(&mut decoy_key);
        let engine = Arc::new(Engine {
            keys,
            decoy_key,
            notifier,
            webauthn,
            config: Arc::new(config),
            audit,
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

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.engine.config
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

    /// A handle on one user.
    pub fn user(&self, id: UserId) -> UserHandle {
        UserHandle::new(id, Arc::clone(&self.engine))
    }

    fn prepare_new(
        &self,
        email: &str,
        tier: UserTier,
        profile_data: &ProfilePatch,
    ) -> Result<(Email, UserProfile), EngineError> {
        let email =
            Email::parse(email).map_err(|e| ValidationError::new("email", e.to_string()))?;
        let tc = self.engine.config.tier(tier);
        let now = self.engine.clock.now();
        let profile = new_profile(
            UserId::generate(),
            email.clone(),
            &tc.policy,
            &tc.template,
            profile_data,
            now,
        )?;
        Ok((email, profile))
    }

    async fn store_new(
        &self,
        email: &Email,
        profile: UserProfile,
        phc: String,
    ) -> Result<UserProfile, EngineError> {
        let state = UserState::new(profile, phc);
        let (id, tier) = (state.profile.id, state.profile.tier);
        let index = self.engine.keys.email_index(&email.normalized());
        let outcome = self.engine.keys.with_new_key(id, |key, wrapped| {
            let record = super::state::encode(&state, key, id)?;
            self.engine
                .metrics
                .snapshot_bytes
                .inc_by(record.len() as u64);
            let op = Op::CreateUser {
                id,
                email_index: index,
                tier,
                wrapped_key: wrapped.to_vec(),
                record,
            };
            self.engine
                .store
                .apply(&Batch::of(op))
                .map_err(EngineError::from)
        })?;
        let p = state.profile;
        match outcome {
            Applied::Done => {
                self.engine.commit.commit().await?;
                self.engine.metrics.users_created.inc();
                Ok(p.into_inner())
            }
            Applied::EmailTaken => Err(EngineError::EmailTaken),
            Applied::Stale { .. } => Err(EngineError::Internal(
                "a new user's write was refused as stale".into(),
            )),
        }
    }

    /// Creates a user: validates everything, hashes the password on the worker pool,
    /// then claims the email and writes the user atomically. Durable when it returns.
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        tier: UserTier,
        profile_data: ProfilePatch,
    ) -> Result<UserProfile, EngineError> {
        let (email, profile) = self.prepare_new(email, tier, &profile_data)?;
        let phc = self.hash_new_password(password, email.clone()).await?;
        self.store_new(&email, profile, phc).await
    }

    /// Checks a new password against the policy and hashes it, both on the worker pool
    /// (zxcvbn's check costs CPU too).
    async fn hash_new_password(&self, password: &str, email: Email) -> Result<String, EngineError> {
        let policy = self.engine.config.passwords.policy;
        let pw = password.to_owned();
        self.engine
            .hasher
            .run(move |argon| -> Result<String, EngineError> {
                policy.check(&pw, &email)?;
                Ok(hash_with(argon, &pw)?)
            })
            .await?
    }

    /// Creates a user from an existing argon2 PHC hash (bulk provisioning, migrations):
    /// no hashing cost, and the password policy is the source system's business.
    pub async fn import_user(
        &self,
        email: &str,
        password_hash: &str,
        tier: UserTier,
        profile_data: ProfilePatch,
    ) -> Result<UserProfile, EngineError> {
        let parsed = argon2::password_hash::phc::PasswordHash::new(password_hash)
            .map_err(|e| ValidationError::new("password_hash", format!("not a PHC string: {e}")))?;
        if !parsed.algorithm.as_str().starts_with("argon2") {
            return Err(ValidationError::new("password_hash", "must be an argon2 hash").into());
        }
        let (email, profile) = self.prepare_new(email, tier, &profile_data)?;
        self.store_new(&email, profile, password_hash.to_owned())
            .await
    }

    /// Checks credentials and, if they hold, opens a session. Unknown emails, wrong
    /// passwords and locked accounts all cost one argon2 verification, so timing does not
    /// tell them apart.
    pub async fn authenticate_user(
        &self,
        email: &str,
        password: &str,
        context: LoginContext,
    ) -> Result<LoginOutcome, EngineError> {
        self.authenticate_user_at(email, password, context, None)
            .await
    }

    /// [`Self::authenticate_user`] with the client's location (from a trusted proxy),
    /// which the risk engine's country and travel signals use.
    pub async fn authenticate_user_at(
        &self,
        email: &str,
        password: &str,
        context: LoginContext,
        location: Option<Location>,
    ) -> Result<LoginOutcome, EngineError> {
        let context = context.sanitized()?;
        let user = match Email::parse(email) {
            Ok(e) => self
                .engine
                .store
                .lookup_email(&self.engine.keys.email_index(&e.normalized()))?,
            Err(_) => None,
        };
        let ticket = match user {
            Some(id) => match self.engine.call(id, BeginLogin).await {
                Ok(t) => Some((id, t)),
                Err(EngineError::NotFound) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let Some((id, ticket)) = ticket else {
            self.engine.hasher.verify(password.to_owned(), None).await?;
            self.count_login(LoginResult::WrongCredentials);
            return Ok(LoginOutcome::Denied(DenyReason::InvalidCredentials));
        };
        let ok = self
            .engine
            .hasher
            .verify(password.to_owned(), Some(ticket.password_hash))
            .await?;
        let finish = FinishLogin {
            password_ok: ok,
            credential_version: ticket.credential_version,
            context,
            location,
        };
        match self.engine.call(id, finish).await? {
            LoginDecision::Granted {
                token,
                expires_at,
                profile,
            } => Ok(LoginOutcome::Success(Box::new(
                self.granted(token, expires_at, profile).await?,
            ))),
            LoginDecision::Challenge(c) => {
                self.count_login(LoginResult::MfaChallenged);
                Ok(LoginOutcome::Challenge(Box::new(LoginChallenge {
                    status: "mfa_required",
                    challenge: c.token.expose(),
                    methods: c.factors,
                    reason: c.reason,
                    expires_at: c.expires_at,
                })))
            }
            LoginDecision::Rejected
            | LoginDecision::FactorRejected { .. }
            | LoginDecision::ChallengeGone => {
                self.count_login(LoginResult::WrongCredentials);
                Ok(LoginOutcome::Denied(DenyReason::InvalidCredentials))
            }
            LoginDecision::Locked { until } => {
                self.count_login(LoginResult::Locked);
                Ok(LoginOutcome::Denied(DenyReason::Locked { until }))
            }
            LoginDecision::RiskDenied => {
                self.count_login(LoginResult::RiskDenied);
                Ok(LoginOutcome::Denied(DenyReason::RiskDenied))
            }
        }
    }

    /// Makes a granted login durable and counts it.
    async fn granted(
        &self,
        token: SessionToken,
        expires_at: Timestamp,
        profile: SharedProfile,
    ) -> Result<LoginSuccess, EngineError> {
        self.engine.commit.commit().await?;
        self.count_login(LoginResult::Success);
        self.engine.metrics.sessions_created.inc();
        Ok(LoginSuccess {
            token: token.expose(),
            session_id: token.session_id(),
            expires_at,
            user: profile.into_inner(),
        })
    }

    /// Answers a login challenge with a second factor. A malformed or unknown challenge
    /// token is [`ChallengeOutcome::Gone`].
    pub async fn complete_login(
        &self,
        challenge: &str,
        factor: SecondFactor,
        proof: FactorProof,
    ) -> Result<ChallengeOutcome, EngineError> {
        let Ok(token) = SessionToken::parse(challenge) else {
            return Ok(ChallengeOutcome::Gone);
        };
        let msg = CompleteLogin {
            challenge: token.clone(),
            factor,
            proof: proof.trimmed(),
        };
        let decision = match self.engine.call(token.user_id(), msg).await {
            Err(EngineError::NotFound) => return Ok(ChallengeOutcome::Gone),
            other => other?,
        };
        match decision {
            LoginDecision::Granted {
                token,
                expires_at,
                profile,
            } => Ok(ChallengeOutcome::Success(Box::new(
                self.granted(token, expires_at, profile).await?,
            ))),
            LoginDecision::FactorRejected { attempts_left } => {
                self.count_login(LoginResult::MfaFailed);
                Ok(ChallengeOutcome::Rejected { attempts_left })
            }
            _ => {
                self.count_login(LoginResult::MfaFailed);
                Ok(ChallengeOutcome::Gone)
            }
        }
    }

    /// Sends a sign-in code for a login challenge through `channel` (`Email` or
    /// `Sms`).
    pub async fn send_login_code(
        &self,
        challenge: &str,
        channel: SecondFactor,
    ) -> Result<CodeSend, EngineError> {
        let Ok(token) = SessionToken::parse(challenge) else {
            return Ok(CodeSend::Gone);
        };
        let msg = SendLoginCode {
            challenge: token.clone(),
            channel,
        };
        match self.engine.call(token.user_id(), msg).await {
            Err(EngineError::NotFound) => Ok(CodeSend::Gone),
            other => other,
        }
    }

    /// The user's consents, birth date and parental consent.
    pub async fn consents(&self, id: UserId) -> Result<ConsentView, EngineError> {
        self.engine.call(id, GetConsents).await
    }

    /// Grants or withdraws consents (a withdrawal turns off what it covered in the AI
    /// preferences) and sets the birth date; each change is written to the audit log
    /// as done by `actor`. Durable when it returns.
    pub async fn update_consents(
        &self,
        id: UserId,
        actor: AuditActor,
        changes: Vec<(Purpose, bool)>,
        birth_date: Option<Date>,
    ) -> Result<ConsentView, EngineError> {
        let msg = UpdateConsents {
            changes,
            birth_date,
            by_operator: matches!(actor, AuditActor::Operator),
        };
        let (view, made) = self.engine.call(id, msg).await?;
        self.engine.commit.commit().await?;
        for c in made {
            let action = AuditAction::ConsentChanged {
                user: id,
                purpose: c.purpose,
                granted: c.granted,
            };
            self.audit(actor.clone(), action).await?;
        }
        Ok(view)
    }

    /// Records a verified parental consent for a minor (operator), audited.
    pub async fn record_parental_consent(
        &self,
        id: UserId,
        reference: &str,
    ) -> Result<ConsentView, EngineError> {
        let msg = RecordParentalConsent {
            reference: reference.to_owned(),
        };
        let view = self.engine.call(id, msg).await?;
        self.engine.commit.commit().await?;
        self.audit(
            AuditActor::Operator,
            AuditAction::ParentalConsentRecorded { user: id },
        )
        .await?;
        Ok(view)
    }

    /// Texts a code to `phone` to verify it for sign-in codes by SMS (`session` must
    /// have authenticated recently).
    pub async fn begin_sms(
        &self,
        id: UserId,
        session: Option<SessionId>,
        phone: &str,
    ) -> Result<CodeSend, EngineError> {
        let msg = BeginSms {
            session,
            phone: phone.to_owned(),
        };
        self.engine.call(id, msg).await
    }

    /// Confirms the phone number with the texted code; returns recovery codes when the
    /// user had none.
    pub async fn confirm_sms(&self, id: UserId, code: &str) -> Result<Vec<String>, EngineError> {
        let msg = ConfirmSms {
            code: code.trim().to_owned(),
        };
        let codes = self.engine.call(id, msg).await?;
        self.engine.commit.commit().await?;
        Ok(codes)
    }

    /// Removes the phone number.
    pub async fn remove_sms(
        &self,
        id: UserId,
        session: Option<SessionId>,
    ) -> Result<(), EngineError> {
        self.engine.call(id, RemoveSms { session }).await?;
        Ok(self.engine.commit.commit().await?)
    }

    /// Starts authenticator enrollment for `id`; `session` must have authenticated
    /// recently (`None`: the operator).
    pub async fn begin_totp(
        &self,
        id: UserId,
        session: Option<SessionId>,
    ) -> Result<TotpEnrollment, EngineError> {
        let r = self.engine.call(id, BeginTotp { session }).await?;
        self.engine.commit.commit().await?;
        Ok(r)
    }

    /// Confirms the pending authenticator with its first code; returns the recovery
    /// codes (shown once).
    pub async fn confirm_totp(&self, id: UserId, code: &str) -> Result<Vec<String>, EngineError> {
        let codes = self
            .engine
            .call(
                id,
                ConfirmTotp {
                    code: code.trim().to_owned(),
                },
            )
            .await?;
        self.engine.commit.commit().await?;
        Ok(codes)
    }

    /// Removes the authenticator and recovery codes, or cancels a pending enrollment.
    pub async fn remove_totp(
        &self,
        id: UserId,
        session: Option<SessionId>,
    ) -> Result<(), EngineError> {
        self.engine.call(id, RemoveTotp { session }).await?;
        Ok(self.engine.commit.commit().await?)
    }

    /// New recovery codes in place of the old ones.
    pub async fn regenerate_recovery_codes(
        &self,
        id: UserId,
        session: Option<SessionId>,
    ) -> Result<Vec<String>, EngineError> {
        let codes = self.engine.call(id, RegenerateRecovery { session }).await?;
        self.engine.commit.commit().await?;
        Ok(codes)
    }

    /// The user's second factors.
    pub async fn mfa_status(&self, id: UserId) -> Result<MfaStatus, EngineError> {
        self.engine.call(id, GetMfa).await
    }

    /// Step-up: the session proves the password again (and a factor, if the user has
    /// an authenticator), so that sensitive operations are allowed for a while.
    pub async fn step_up(
        &self,
        id: UserId,
        session: SessionId,
        password: &str,
        factor: Option<(SecondFactor, FactorProof)>,
    ) -> Result<StepUpOutcome, EngineError> {
        let ticket = self.engine.call(id, BeginLogin).await?;
        let ok = self
            .engine
            .hasher
            .verify(password.to_owned(), Some(ticket.password_hash))
            .await?;
        let msg = StepUp {
            session,
            password_ok: ok,
            credential_version: ticket.credential_version,
            factor: factor.map(|(f, p)| (f, p.trimmed())),
        };
        let out = self.engine.call(id, msg).await?;
        self.engine.commit.commit().await?;
        Ok(out)
    }

    /// The WebAuthn options for answering a login challenge with a passkey; `None` if
    /// the challenge is gone or does not offer passkeys.
    pub async fn login_assertion_options(
        &self,
        challenge: &str,
    ) -> Result<Option<RequestChallengeResponse>, EngineError> {
        let Ok(token) = SessionToken::parse(challenge) else {
            return Ok(None);
        };
        match self
            .engine
            .call(token.user_id(), StartLoginAssertion(token.clone()))
            .await
        {
            Err(EngineError::NotFound) => Ok(None),
            other => other,
        }
    }

    /// Starts a passwordless login with a passkey: a challenge and the options to
    /// sign, answered with [`Self::complete_login`]. An unknown email, a user without
    /// passkeys, a locked account or a refusal by the risk engine get options of the
    /// same shape, with a credential id derived from the email (stable across calls)
    /// and a challenge that never completes: the answer tells nothing about the
    /// account.
    pub async fn begin_passwordless(
        &self,
        email: &str,
        context: LoginContext,
        location: Option<Location>,
    ) -> Result<PasswordlessChallenge, EngineError> {
        let context = context.sanitized()?;
        let normalized = Email::parse(email).map(|e| e.normalized()).ok();
        let user = match &normalized {
            Some(e) => self
                .engine
                .store
                .lookup_email(&self.engine.keys.email_index(e))?,
            None => None,
        };
        if let Some(id) = user {
            let msg = BeginPasswordless { context, location };
            match self.engine.call(id, msg).await {
                Ok(PasswordlessStart::Options(token, options)) => {
                    self.count_login(LoginResult::MfaChallenged);
                    return Ok(PasswordlessChallenge {
                        challenge: token.expose(),
                        options: *options,
                    });
                }
                Ok(PasswordlessStart::Refused) | Err(EngineError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        self.count_login(LoginResult::WrongCredentials);
        Ok(self.decoy_options(normalized.as_deref().unwrap_or(email)))
    }

    fn decoy_options(&self, email: &str) -> PasswordlessChallenge {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(self.engine.decoy_key);
        h.update(email.as_bytes());
        let id: [u8; 32] = h.finalize().into();
        let mut challenge = vec![0u8; 32];
        rand::fill(&mut challenge[..]);
        let cfg = &self.engine.config;
        let options = RequestChallengeResponse {
            public_key: webauthn_rs_proto::PublicKeyCredentialRequestOptions {
                challenge,
                timeout: Some(
                    u32::try_from(webauthn_rs::DEFAULT_AUTHENTICATOR_TIMEOUT.as_millis())
                        .unwrap_or(u32::MAX),
                ),
                rp_id: cfg.webauthn.rp_id.clone(),
                allow_credentials: vec![webauthn_rs_proto::AllowCredentials {
                    type_: "public-key".into(),
                    id: id[..16].to_vec(),
                    transports: None,
                }],
                user_verification: webauthn_rs_proto::UserVerificationPolicy::Required,
                hints: None,
                extensions: None,
            },
            mediation: None,
        };
        PasswordlessChallenge {
            challenge: SessionToken::issue(UserId::generate()).expose(),
            options,
        }
    }

    /// Starts registering a passkey for `id` (`session` must have authenticated
    /// recently); the options go to `navigator.credentials.create()`.
    pub async fn begin_passkey_registration(
        &self,
        id: UserId,
        session: Option<SessionId>,
    ) -> Result<CreationChallengeResponse, EngineError> {
        self.engine
            .call(id, BeginPasskeyRegistration { session })
            .await
    }

    /// Completes a passkey registration; returns recovery codes when the user had none.
    pub async fn finish_passkey_registration(
        &self,
        id: UserId,
        name: String,
        credential: RegisterPublicKeyCredential,
    ) -> Result<Vec<String>, EngineError> {
        let msg = FinishPasskeyRegistration {
            name,
            credential: Box::new(credential),
        };
        let codes = self.engine.call(id, msg).await?;
        self.engine.commit.commit().await?;
        Ok(codes)
    }

    /// Removes the passkey with credential id `credential` (base64url).
    pub async fn remove_passkey(
        &self,
        id: UserId,
        session: Option<SessionId>,
        credential: &str,
    ) -> Result<(), EngineError> {
        let msg = RemovePasskey {
            session,
            id: credential.to_owned(),
        };
        self.engine.call(id, msg).await?;
        Ok(self.engine.commit.commit().await?)
    }

    /// WebAuthn options for a step-up of `session` with a passkey.
    pub async fn step_up_assertion_options(
        &self,
        id: UserId,
        session: SessionId,
    ) -> Result<RequestChallengeResponse, EngineError> {
        self.engine.call(id, StartStepUpAssertion { session }).await
    }

    /// Fails with [`EngineError::StepUpRequired`] unless `session` authenticated
    /// recently (`None`, the operator, always passes).
    pub async fn require_recent_auth(
        &self,
        id: UserId,
        session: Option<SessionId>,
    ) -> Result<(), EngineError> {
        self.engine.call(id, CheckStepUp(session)).await
    }

    /// A page of the user's security events, newest first: those numbered below
    /// `before`, at most `limit`, from the actor's state and then the archive.
    pub async fn security_events(
        &self,
        id: UserId,
        before: u64,
        limit: usize,
    ) -> Result<Vec<SecurityEvent>, EngineError> {
        let (mut page, oldest) = self
            .engine
            .call(id, GetSecurityEvents { before, limit })
            .await?;
        if page.len() < limit {
            let from = page
                .last()
                .map(|e| e.seq)
                .unwrap_or(before)
                .min(oldest.unwrap_or(before));
            let store = self.engine.store.as_ref();
            let archived = store.security_events_before(id, from, limit - page.len())?;
            let key = match archived.is_empty() {
                true => None,
                false => Some(
                    self.engine
                        .keys
                        .data_key(store, id)?
                        .ok_or(EngineError::NotFound)?,
                ),
            };
            for (seq, blob) in archived {
                let corrupt = |reason: String| EngineError::Corrupt {
                    user: id,
                    reason: format!("archived security event {seq}: {reason}"),
                };
                let Some(key) = &key else { break };
                let raw = codec::open_blob(key, &super::state::event_aad(id, seq), &blob)
                    .map_err(|e| corrupt(e.to_string()))?;
                let e: SecurityEvent =
                    serde_json::from_slice(&raw).map_err(|e| corrupt(e.to_string()))?;
                page.push(e);
            }
        }
        Ok(page)
    }

    fn count_login(&self, outcome: LoginResult) {
        self.engine
            .metrics
            .logins
            .get_or_create(&LoginLabels { outcome })
            .inc();
    }

    /// The profile of `id`.
    pub async fn get_user(&self, id: UserId) -> Result<UserProfile, EngineError> {
        self.user(id).profile().await
    }

    /// Applies a partial update (profile fields, `ai_preferences`, `security_settings`).
    pub async fn update_user_profile(
        &self,
        id: UserId,
        updates: ProfilePatch,
    ) -> Result<UserProfile, EngineError> {
        self.user(id).update(updates).await
    }

    /// Moves a user to another tier; its actor moves to that tier's registry.
    pub async fn upgrade_user_tier(
        &self,
        id: UserId,
        new_tier: UserTier,
    ) -> Result<UserProfile, EngineError> {
        self.user(id).change_tier(new_tier).await
    }

    /// Deletes a user.
    pub async fn delete_user(&self, id: UserId) -> Result<(), EngineError> {
        self.user(id).delete().await
    }

    /// Who a bearer token belongs to, if it is a live session. Malformed tokens and
    /// unknown users are simply not valid.
    pub async fn validate_session(&self, token: &str) -> Result<Option<SessionInfo>, EngineError> {
        self.call_for_token(token, ValidateSession).await
    }

    /// Sends the message `make` builds from a parsed token to the token's user. A token
    /// that does not parse, or names no user, is simply not valid: `Ok(None)`.
    async fn call_for_token<M, R>(
        &self,
        token: &str,
        make: impl FnOnce(SessionToken) -> M,
    ) -> Result<Option<R>, EngineError>
    where
        M: actix::Message<Result = Result<Option<R>, EngineError>> + Clone + Send + 'static,
        R: Send + 'static,
        UserActor: actix::Handler<M>,
        <UserActor as Actor>::Context: actix::dev::ToEnvelope<UserActor, M>,
    {
        let Ok(token) = SessionToken::parse(token) else {
            return Ok(None);
        };
        match self.engine.call(token.user_id(), make(token)).await {
            Err(EngineError::NotFound) => Ok(None),
            other => other,
        }
    }

    /// Counts quota usage (playlists, storage bytes) against the user's tier limit.
    pub async fn record_usage(
        &self,
        id: UserId,
        kind: QuotaKind,
        delta: i64,
    ) -> Result<QuotaDecision, EngineError> {
        self.user(id).record_usage(kind, delta).await
    }

    /// Checks a bearer token and counts the request against the user's hourly rate.
    /// `None` for anything that is not a live session.
    pub async fn authorize_request(
        &self,
        token: &str,
        origin: RequestOrigin,
    ) -> Result<Option<AuthorizedRequest>, EngineError> {
        self.call_for_token(token, |t| AuthorizeRequest(t, origin))
            .await
    }

    /// Changes a password after checking the current one; every session except `keep`
    /// ends. Durable when it returns. Both hashes run on the worker pool.
    pub async fn change_password(
        &self,
        id: UserId,
        current: &str,
        new: &str,
        keep: Option<SessionId>,
    ) -> Result<PasswordChange, EngineError> {
        let ticket = self.engine.call(id, BeginLogin).await?;
        let ok = self
            .engine
            .hasher
            .verify(current.to_owned(), Some(ticket.password_hash))
            .await?;
        if !ok || ticket.locked {
            if !ok {
                self.engine.call(id, RecordFailure).await?;
            }
            return Ok(PasswordChange::WrongPassword);
        }
        let email = self.get_user(id).await?.email;
        let phc = self.hash_new_password(new, email).await?;
        let set = SetPassword {
            expected_version: ticket.credential_version,
            password_hash: phc,
            keep,
        };
        let Some(ended) = self.engine.call(id, set).await? else {
            return Err(EngineError::Conflict(
                "the password changed meanwhile".into(),
            ));
        };
        self.engine.commit.commit().await?;
        self.engine.metrics.sessions_revoked.inc_by(ended as u64);
        Ok(PasswordChange::Changed)
    }

    /// The user's live sessions.
    pub async fn list_sessions(&self, id: UserId) -> Result<Vec<SessionView>, EngineError> {
        self.user(id).sessions().await
    }

    /// Revokes one session; `false` if it did not exist.
    pub async fn revoke_session(
        &self,
        id: UserId,
        session: SessionId,
    ) -> Result<bool, EngineError> {
        self.user(id).revoke_session(session).await
    }

    /// Activity, sessions and quota use of a user.
    pub async fn get_user_insights(&self, id: UserId) -> Result<Insights, EngineError> {
        let handle = self.user(id);
        let p = handle.profile().await?;
        let sessions = handle.sessions().await?.len();
        let activity = self.engine.call(id, GetActivity).await?;
        let policy = &self.engine.config.tier(p.tier).policy;
        let now = self.engine.clock.now();
        Ok(Insights {
            user_id: p.id,
            tier: p.tier,
            member_since: p.created_at,
            account_age_days: now.since(p.created_at).as_secs() / 86_400,
            logins: p.usage.logins,
            last_login_at: p.usage.last_login_at,
            active_sessions: sessions,
            playlists: QuotaUse {
                used: p.usage.playlists,
                limit: policy.max_playlists.value(),
            },
            storage_bytes: QuotaUse {
                used: p.usage.storage_bytes,
                limit: policy.max_storage_bytes.value(),
            },
            requests_per_hour: policy.requests_per_hour.value(),
            features: policy.features.clone(),
            activity,
        })
    }

    /// Subscribes a socket of `session` to the user's events, resuming after `resume`
    /// if given. Goes through the user's actor, so a revocation cannot slip between the
    /// session check and the subscription.
    pub async fn subscribe(
        &self,
        user: UserId,
        session: SessionId,
        resume: Option<Resume>,
    ) -> Result<SubscribeOutcome, EngineError> {
        match self.engine.call(user, Subscribe { session, resume }).await {
            Err(EngineError::NotFound) => Ok(SubscribeOutcome::SessionInvalid),
            other => other,
        }
    }

    /// The session if it is still live; with `slide`, marks it used (a socket's
    /// heartbeat). `None` if it ended.
    pub async fn touch_session(
        &self,
        user: UserId,
        session: SessionId,
        slide: bool,
    ) -> Result<Option<SessionInfo>, EngineError> {
        match self
            .engine
            .call(user, TouchSession { session, slide })
            .await
        {
            Err(EngineError::NotFound) => Ok(None),
            other => other,
        }
    }

    /// Counts activity events reported over a socket of `session`: all or none, one
    /// request against the tier's hourly rate.
    pub async fn record_activity(
        &self,
        user: UserId,
        session: SessionId,
        events: Vec<ActivityEvent>,
    ) -> Result<ActivityOutcome, EngineError> {
        match self
            .engine
            .call(user, RecordActivity { session, events })
            .await
        {
            Err(EngineError::NotFound) => Ok(ActivityOutcome::SessionInvalid),
            other => other,
        }
    }

    /// Appends to the audit log, durably (operator and security-relevant actions).
    pub async fn audit(
        &self,
        actor: AuditActor,
        action: AuditAction,
    ) -> Result<AuditEntry, EngineError> {
        let entry = self.engine.audit.append(self.now(), actor, action)?;
        self.engine.commit.commit().await?;
        Ok(entry)
    }

    /// Rotates the master key while the engine serves: a new key is generated, every
    /// data key is rewrapped with it (reporting progress), the old key file is retired,
    /// and the rotation is audited. See [`super::keyring`].
    pub async fn rotate_master_key(
        &self,
        progress: impl FnMut(RotationProgress) + Send + 'static,
    ) -> Result<RotationReport, EngineError> {
        let engine = Arc::clone(&self.engine);
        let report = tokio::task::spawn_blocking(move || {
            let mut progress = progress;
            engine.keys.rotate(engine.store.as_ref(), &mut progress)
        })
        .await
        .map_err(|e| EngineError::Internal(format!("rotation task: {e}")))??;
        tracing::warn!(
            from = %report.from,
            to = %report.to,
            rewrapped = report.rewrapped,
            retired = %report.retired_key_file,
            "master key rotated. Back up the new key file; keep the retired one only as \
             long as backups taken before now must stay readable"
        );
        self.audit(
            AuditActor::Operator,
            AuditAction::MasterKeyRotated {
                from: report.from.clone(),
                to: report.to.clone(),
                data_keys: report.rewrapped,
            },
        )
        .await?;
        Ok(report)
    }

    /// The fingerprint of the master key in use.
    pub fn master_key_fingerprint(&self) -> String {
        self.engine.keys.fingerprint().to_string()
    }

    /// Audit records numbered above `after`, oldest first, at most `limit`.
    pub fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, EngineError> {
        Ok(audit::entries(self.engine.store.as_ref(), after, limit)?)
    }

    /// Everything held about a user, as a document (see [`UserExport`]).
    pub async fn export_user(&self, id: UserId) -> Result<UserExport, EngineError> {
        let state = self.engine.call(id, GetState).await?;
        let now = self.now();
        let audit = audit::entries_about(self.engine.store.as_ref(), id)?;
        Ok(UserExport {
            export_format: 2,
            exported_at: now,
            sessions: state.sessions.iter().map(SessionView::from).collect(),
            known_devices: state.known_devices.clone(),
            login_failures: LoginFailures {
                failures: state.failures.failures,
                window_start: state.failures.window_start,
                locked_until: state
                    .failures
                    .is_locked(now)
                    .then_some(state.failures.locked_until),
            },
            activity: state.activity.clone(),
            consents: ConsentView::of(
                &state.consents,
                self.engine.config.privacy.min_age,
                now,
            ),
            mfa: state.mfa.status(&state.profile.security_settings),
            risk_profile: RiskProfileExport {
                networks: state.risk.networks.clone(),
                countries: state.risk.countries.clone(),
                last_location: state.risk.last_location.as_ref().map(|l| l.location.clone()),
                last_location_at: state.risk.last_location.as_ref().map(|l| l.at),
                login_hours: state.risk.hours.to_vec(),
            },
            security_events: self.security_events(id, u64::MAX, usize::MAX).await?,
            audit,
            withheld: vec![
                "mfa.totp secret: the authenticator's shared secret (a credential)".into(),
                "mfa.recovery digests: SHA-256 of each recovery code (credentials)".into(),
                "password_hash: the argon2 hash of the password (a credential, useless outside this service)".into(),
                "sessions[].secret_hash: SHA-256 of each session token's secret (a credential)".into(),
                "rate: the request-rate counter of the tier's hourly allowance (internal)".into(),
            ],
            profile: state.profile.into_inner(),
        })
    }

    /// Checks the whole audit chain; the number of records, or where it breaks.
    pub fn verify_audit(&self) -> Result<u64, audit::ChainBroken> {
        audit::verify(self.engine.store.as_ref())
    }

    /// The realtime layer: streams and the operators' security feed.
    pub fn realtime(&self) -> &Arc<Realtime> {
        &self.engine.realtime
    }

    /// The tier of the user a bearer token names, if that user's actor is live: a
    /// directory lookup, no message. For admission control before authentication.
    pub fn tier_hint(&self, token: &str) -> Option<UserTier> {
        let t = SessionToken::parse(token).ok()?;
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

    /// Per-shard figures.
    pub fn shard_stats(&self) -> Vec<ShardStats> {
        let mut out = Vec::new();
        for (t, list) in self.engine.directory.shards().iter().enumerate() {
            for (i, s) in list.iter().enumerate() {
                let c = &s.counters;
                let w = c.last_window();
                out.push(ShardStats {
                    tier: UserTier::ALL[t],
                    index: i,
                    resident: c.resident.load(Ordering::Relaxed),
                    activations: c.activations.load(Ordering::Relaxed),
                    passivations: c.passivations.load(Ordering::Relaxed),
                    restarts: c.restarts.load(Ordering::Relaxed),
                    in_flight: c.in_flight.load(Ordering::Relaxed),
                    messages: c.messages.load(Ordering::Relaxed),
                    message_rate_per_sec: w.message_rate_per_sec,
                    latency_p50_us: w.latency_p50_us,
                    latency_p99_us: w.latency_p99_us,
                    latency_max_us: w.latency_max_us,
                });
            }
        }
        out
    }

    /// Every metric in the Prometheus text format, with the gauges read now.
    pub fn render_metrics(&self) -> String {
        let m = &self.engine.metrics;
        let mut live = [0i64; 4];
        for s in self.shard_stats() {
            let labels = ShardLabels {
                tier: s.tier.into(),
                shard: u32::try_from(s.index).unwrap_or(u32::MAX),
            };
            m.shard_resident
                .get_or_create(&labels)
                .set(i64::try_from(s.resident).unwrap_or(i64::MAX));
            m.shard_activations
                .get_or_create(&labels)
                .set(s.activations);
            m.shard_passivations
                .get_or_create(&labels)
                .set(s.passivations);
            m.shard_restarts.get_or_create(&labels).set(s.restarts);
            m.shard_in_flight.get_or_create(&labels).set(s.in_flight);
            live[s.tier.index()] += i64::try_from(s.resident).unwrap_or(i64::MAX);
        }
        for t in UserTier::ALL {
            m.live_users
                .get_or_create(&TierLabels { tier: t.into() })
                .set(live[t.index()]);
        }
        m.hash_queue_depth
            .set(i64::try_from(self.engine.hasher.queue_depth()).unwrap_or(i64::MAX));
        let (flushes, commits) = self.commit_stats();
        m.store_flushes.set(flushes);
        m.store_commits.set(commits);
        let micros = self
            .engine
            .commit
            .stats()
            .flush_micros
            .load(Ordering::Relaxed);
        m.store_flush_seconds.set(micros as f64 / 1e6);
        if let Some(bytes) = self.engine.store.size_on_disk() {
            m.store_disk_bytes.set(bytes);
        }
        let (jobs, waited) = self.engine.hasher.wait_stats();
        m.hash_jobs.set(jobs);
        m.hash_wait_seconds.set(waited.as_secs_f64());
        let (workers, busy) = self.engine.hasher.busy_stats();
        m.hash_workers
            .set(i64::try_from(workers).unwrap_or(i64::MAX));
        m.hash_busy_seconds.set(busy.as_secs_f64());
        m.render()
    }

    /// The metrics registry, for layers that count (HTTP requests, rate limits).
    pub fn metrics(&self) -> &Metrics {
        &self.engine.metrics
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

    /// The engine's current time (its clock may be a manual one in tests).
    pub fn now(&self) -> Timestamp {
        self.engine.clock.now()
    }
}
