//! Accounts: sign-up and import, the profile, the tier, the password, quota use,
//! insights, the data export and deletion — with their access rules, tier gates,
//! step-ups and audit records.

use super::principal::Principal;
use super::{
    DayActivity, ImportedUser, Insights, ListeningProfile, PasswordChange, QuotaUse, UserExport,
    UserManager,
};
use super::{FeedbackExport, LoginFailures, RefusalDay, RiskProfileExport, TasteExport};
use crate::domain::audit::{AuditAction, AuditActor};
use crate::domain::ids::UserId;
use crate::domain::profile::{ProfilePatch, QuotaDecision, QuotaKind, UserProfile};
use crate::domain::session::SessionView;
use crate::domain::tier::UserTier;
use crate::domain::validation::ValidationError;
use crate::engine::EngineError;
use crate::engine::outcomes::ConsentView;
use crate::engine::user::{
    ActivityView, GetActivity, GetState, PasswordTicket, RecordFailure, SetPassword,
};

/// Most users one import may carry.
pub const MAX_IMPORT_BATCH: usize = 200;

/// The format version of [`UserExport`].
const EXPORT_FORMAT: u32 = 7;

/// See [`UserManager::accounts`].
#[derive(Clone, Copy)]
pub struct Accounts<'a> {
    pub(super) m: &'a UserManager,
}

impl Accounts<'_> {
    fn self_service(self) -> bool {
        self.m.engine.config.server.self_service_tier_changes
    }

    /// Creates an account. Anyone may create a Free one; a higher tier needs the operator
    /// or the system (or `server.self_service_tier_changes`). Validates everything,
    /// hashes the password on the worker pool, then claims the email and writes the user
    /// atomically. Durable when it returns.
    pub async fn create(
        self,
        by: &Principal,
        email: &str,
        password: &str,
        tier: UserTier,
        profile_data: ProfilePatch,
    ) -> Result<UserProfile, EngineError> {
        if tier != UserTier::Free && !by.is_privileged() && !self.self_service() {
            return Err(EngineError::Forbidden(
                "only the operator may create accounts above the free tier",
            ));
        }
        let (email, profile) = self.m.prepare_new(email, tier, &profile_data)?;
        let phc = self.m.hash_new_password(password, email.clone()).await?;
        // An operator's account is on record; a sign-up is the user's own.
        let audit = matches!(by, Principal::Operator).then(|| {
            let user = profile.id;
            (
                AuditActor::Operator,
                AuditAction::UserCreated { user, tier },
            )
        });
        self.m
            .store_new(&email, profile, phc, audit, Vec::new(), None)
            .await
    }

    /// Bulk provisioning and migrations (operator or system): creates users from existing
    /// argon2 hashes, with no hashing cost (the password policy is the source system's
    /// business). Each user succeeds or fails on its own; each one created is written
    /// with its audit record. The results are in the order of `users`.
    pub async fn import(
        self,
        by: &Principal,
        users: Vec<ImportedUser>,
    ) -> Result<Vec<Result<UserProfile, EngineError>>, EngineError> {
        by.privileged()?;
        if users.is_empty() || users.len() > MAX_IMPORT_BATCH {
            return Err(ValidationError::new(
                "users",
                format!("must hold 1 to {MAX_IMPORT_BATCH} users"),
            )
            .into());
        }
        let actor = by.audit_actor();
        let jobs = users.into_iter().map(|u| {
            let actor = actor.clone();
            async move { self.import_one(u, actor).await }
        });
        Ok(futures_util::future::join_all(jobs).await)
    }

    async fn import_one(
        self,
        u: ImportedUser,
        actor: Option<crate::domain::audit::AuditActor>,
    ) -> Result<UserProfile, EngineError> {
        let configured = self.m.engine.config.passwords.params;
        crate::security::password::check_stored(&u.password_hash, configured)
            .map_err(|why| ValidationError::new("password_hash", why))?;
        let tier = u.tier.unwrap_or(UserTier::Free);
        let patch = u.profile_data.unwrap_or_default();
        let (email, mut profile) = self.m.prepare_new(&u.email, tier, &patch)?;
        if let Some(at) = u.created_at {
            if at > profile.created_at {
                return Err(ValidationError::new("created_at", "is in the future").into());
            }
            profile.created_at = at;
        }
        let audit = actor.map(|a| (a, AuditAction::UserImported { user: profile.id }));
        self.m
            .store_new(&email, profile, u.password_hash, audit, Vec::new(), None)
            .await
    }

    /// A profile (the user itself, the operator — whose read is audited — or the system).
    pub async fn get(self, by: &Principal, id: UserId) -> Result<UserProfile, EngineError> {
        by.on(id)?;
        let profile = self.m.user(id).profile().await?;
        self.m.audit_read(by, id, "profile").await?;
        Ok(profile)
    }

    /// The profile of the user an email names, found through the blind index (operators
    /// and the system; the read is audited like [`Self::get`]).
    pub async fn find_by_email(
        self,
        by: &Principal,
        email: &str,
    ) -> Result<UserProfile, EngineError> {
        by.privileged()?;
        let email = crate::domain::email::Email::parse_for_lookup(email)
            .map_err(|err| ValidationError::new("email", err.to_string()))?;
        let e = &self.m.engine;
        let id = e
            .store
            .lookup_email(&e.keys.email_index(&email.normalized()))?
            .ok_or(EngineError::NotFound)?;
        self.get(by, id).await
    }

    /// A partial update: profile fields, `ai_preferences`, `security_settings`.
    pub async fn update(
        self,
        by: &Principal,
        id: UserId,
        updates: ProfilePatch,
    ) -> Result<UserProfile, EngineError> {
        by.on(id)?;
        self.m.user(id).update(updates).await
    }

    /// Moves a user to another tier (the operator or the system; the user itself only
    /// with `server.self_service_tier_changes`), audited with the change.
    pub async fn change_tier(
        self,
        by: &Principal,
        id: UserId,
        tier: UserTier,
    ) -> Result<UserProfile, EngineError> {
        by.on(id)?;
        if !by.is_privileged() && !self.self_service() {
            return Err(EngineError::Forbidden(
                "tier changes need the operator credential",
            ));
        }
        let audit = by.audit_actor().map(|a| {
            // The actor fills in the tier it moves from.
            let action = AuditAction::TierChanged {
                user: id,
                to: tier,
                from: None,
            };
            (a, action)
        });
        self.m.user(id).change_tier(tier, audit).await
    }

    /// Deletes an account: the user itself after a recent authentication, or the operator
    /// or the system. The deletion and its audit record are one write; the grants of
    /// its linked accounts are then revoked at the providers.
    pub async fn delete(self, by: &Principal, id: UserId) -> Result<(), EngineError> {
        let access = by.on(id)?;
        let audit = by
            .audit_actor()
            .map(|a| (a, AuditAction::UserDeleted { user: id }));
        let links = self.m.user(id).delete(access.session(), audit).await?;
        if !links.is_empty() {
            self.m.integrations().revoke_all(id, links);
        }
        Ok(())
    }

    /// A password change by the user itself, after checking the current password (and,
    /// with an authenticator enrolled, a recent step-up of the session): every other
    /// session ends. Durable when it returns. Both hashes run on the worker pool.
    pub async fn change_password(
        self,
        by: &Principal,
        id: UserId,
        current: &str,
        new: &str,
    ) -> Result<PasswordChange, EngineError> {
        let session = by.own(id)?;
        let e = &self.m.engine;
        let ticket = e.call(id, PasswordTicket { session }).await?;
        let ok = e
            .hasher
            .verify(current.to_owned(), Some(ticket.password_hash))
            .await?;
        if !ok || ticket.locked {
            if !ok {
                e.call(id, RecordFailure).await?;
            }
            return Ok(PasswordChange::WrongPassword);
        }
        let email = self.m.user(id).profile().await?.email;
        let phc = self.m.hash_new_password(new, email).await?;
        let set = SetPassword {
            expected_version: ticket.credential_version,
            password_hash: phc,
            keep: Some(session),
        };
        let Some(ended) = e.call_durable(id, set).await? else {
            return Err(EngineError::Conflict(
                "the password changed meanwhile".into(),
            ));
        };
        e.metrics.sessions_revoked.inc_by(ended as u64);
        Ok(PasswordChange::Changed)
    }

    /// Counts `delta` of a quota resource (negative frees) against the tier's limit,
    /// atomically in the user's actor; an accepted change is durable when it returns.
    pub async fn record_usage(
        self,
        by: &Principal,
        id: UserId,
        kind: QuotaKind,
        delta: i64,
    ) -> Result<QuotaDecision, EngineError> {
        by.on(id)?;
        self.m.user(id).record_usage(kind, delta).await
    }

    /// Activity, sessions and quota use against the tier's limits (an operator's read is
    /// audited).
    pub async fn insights(self, by: &Principal, id: UserId) -> Result<Insights, EngineError> {
        by.on(id)?;
        let e = &self.m.engine;
        let handle = self.m.user(id);
        let p = handle.profile().await?;
        let sessions = handle.sessions().await?.len();
        let ActivityView {
            history,
            analysed,
            genres,
        } = e.call(id, GetActivity).await?;
        let policy = &e.config.tier(p.tier).policy;
        let now = e.clock.now();
        let insights = Insights {
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
            activity: history.counters(),
            engagement: analysed.then(|| crate::domain::engagement::score(&history, now)),
            segment: analysed
                .then(|| e.models.segments())
                .flatten()
                .map(|s| s.assign(&history, now)),
            churn: analysed.then(|| e.models.churn()).flatten().map(|model| {
                model.predict(
                    &crate::analytics::Member {
                        id,
                        tier: p.tier,
                        created_at: p.created_at,
                        consented: true,
                        history: &history,
                        taste: None,
                        feedback: None,
                        usage: &p.usage,
                        refusals: None,
                    },
                    now,
                )
            }),
            listening_profile: ListeningProfile::of(&history, &genres, &e.recommender.index()),
            feature_usage: history.features.to_vec(),
            recent_days: history.days.iter().map(|b| DayActivity::from(&b)).collect(),
        };
        self.m.audit_read(by, id, "insights").await?;
        Ok(insights)
    }

    /// Everything held about a user, as one document (data portability, GDPR art. 20;
    /// see [`UserExport`]): the user itself after a recent authentication, or the
    /// operator or the system. The export is audited before it is handed out.
    pub async fn export(self, by: &Principal, id: UserId) -> Result<UserExport, EngineError> {
        let access = by.on(id)?;
        let e = &self.m.engine;
        let recent = access.session();
        let state = e.call(id, GetState { recent }).await?;
        let (listens, own) = e.call(id, crate::engine::user::GetOwnData).await?;
        let now = self.m.now();
        let audit = crate::store::audit::entries_about(e.store.as_ref(), id)?;
        let security_events = self
            .m
            .privacy()
            .events_page(id, u64::MAX, usize::MAX)
            .await?;
        if let Some(actor) = by.audit_actor() {
            self.m
                .audit(actor, AuditAction::DataExported { user: id })
                .await?;
        }
        Ok(UserExport {
            export_format: EXPORT_FORMAT,
            exported_at: now,
            sessions: state.sessions.iter().map(SessionView::from).collect(),
            known_devices: state.known_devices.to_vec(),
            login_failures: LoginFailures {
                failures: state.failures.failures,
                window_start: state.failures.window_start,
                locked_until: state
                    .failures
                    .is_locked(now)
                    .then_some(state.failures.locked_until),
            },
            rate_refusals: state
                .refusals
                .recent(now)
                .map(|(day, refused)| RefusalDay {
                    day: crate::domain::history::format_day(day),
                    refused,
                })
                .collect(),
            activity: state.history.counters(),
            activity_history: state.history.clone(),
            taste: state
                .taste
                .as_deref()
                .map(|t| TasteExport::of(t, &e.recommender.index(), now)),
            recommendation_feedback: FeedbackExport::of(&state.feedback),
            listening_log: (listens.iter())
                .filter_map(crate::engine::listening::ListenExport::of)
                .collect(),
            own_models: super::OwnModelsExport {
                versions: own.versions,
                pinned: own.pinned,
            },
            consents: ConsentView::of(&state.consents, e.config.privacy.min_age, now),
            mfa: state.mfa.status(&state.profile.security_settings),
            linked_accounts: state
                .links
                .as_deref()
                .map(|l| l.accounts.iter().map(|a| a.view()).collect())
                .unwrap_or_default(),
            risk_profile: RiskProfileExport {
                networks: state.risk.networks.clone(),
                countries: state.risk.countries.clone(),
                last_location: state.risk.last_location.as_ref().map(|l| l.location.clone()),
                last_location_at: state.risk.last_location.as_ref().map(|l| l.at),
                login_hours: state.risk.hours.to_vec(),
            },
            security_events,
            audit,
            withheld: vec![
                "mfa.totp secret: the authenticator's shared secret (a credential)".into(),
                "mfa.recovery digests: SHA-256 of each recovery code (credentials)".into(),
                "password_hash: the argon2 hash of the password (a credential, useless outside this service)".into(),
                "sessions[].secret_hash: SHA-256 of each session token's secret (a credential)".into(),
                "linked_accounts[] tokens: the access and refresh tokens of each linked account (credentials at the provider)".into(),
                "links begun and not finished: their state secrets and PKCE verifiers (credentials, expiring within minutes)".into(),
                "rate: the request-rate counter of the tier's hourly allowance (internal)".into(),
            ],
            profile: state.profile.into_inner(),
        })
    }
}
