//! A new user's making, shared by sign-up and the bulk import: its profile from the
//! tier's template, its password checked and hashed on the worker pool, and its first
//! record written with its data key, durable before it returns.

use super::UserManager;
use crate::domain::email::Email;
use crate::domain::ids::UserId;
use crate::domain::profile::{ProfilePatch, UserProfile, new_profile};
use crate::domain::tier::UserTier;
use crate::domain::validation::ValidationError;
use crate::engine::EngineError;
use crate::engine::state::UserState;
use crate::engine::user::Audited;
use crate::store::{Batch, Op};

impl UserManager {
    pub(super) fn prepare_new(
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

    /// Writes a new user (and its audit record, if any, and `extra` ops) in one batch;
    /// durable when it returns.
    pub(super) async fn store_new(
        &self,
        email: &Email,
        profile: UserProfile,
        phc: String,
        audit: Option<Audited>,
        extra: Vec<Op>,
        directory: Option<crate::domain::directory::DirectoryEntry>,
    ) -> Result<UserProfile, EngineError> {
        let mut state = UserState::new(profile, phc);
        state.directory = directory.map(Box::new);
        let (id, tier, created_at) = (
            state.profile.id,
            state.profile.tier,
            state.profile.created_at,
        );
        let index = self.engine.keys.email_index(&email.normalized());
        let now = self.now();
        // Handed to the writer while the keyring is held, so that a rotation starting
        // later finds the new key among those it rewraps.
        let ticket = self.engine.keys.with_new_key(id, |key, wrapped| {
            let record = crate::engine::state::encode(&state, key, id)?;
            self.engine
                .metrics
                .snapshot_bytes
                .inc_by(record.len() as u64);
            let op = Op::CreateUser {
                id,
                revision: crate::store::next_revision(0),
                email_index: index,
                tier,
                wrapped_key: wrapped.to_vec(),
                record,
            };
            let audit = audit.into_iter().map(|(a, b)| (a, b, now)).collect();
            let mut batch = Batch::of(op);
            for op in extra {
                batch.push(op);
            }
            Ok::<_, EngineError>(self.engine.commit.submit(batch, audit, None))
        })?;
        crate::engine::durable::settled(self.engine.commit.wait(&ticket).await)?;
        self.engine.metrics.users_created.inc();
        // An imported user keeps its sign-up date: it is not today's sign-up.
        if crate::domain::history::day_of(created_at) == crate::domain::history::day_of(now) {
            self.engine.live.signup(now);
        }
        Ok(state.profile.into_inner())
    }

    /// Checks a new password against the policy and hashes it, both on the worker pool
    /// (zxcvbn's check costs CPU too).
    pub(super) async fn hash_new_password(
        &self,
        password: &str,
        email: Email,
    ) -> Result<String, EngineError> {
        let policy = self.engine.config.passwords.policy;
        let pw = password.to_owned();
        self.engine
            .hasher
            .run(move |worker| -> Result<String, EngineError> {
                policy.check(&pw, &email)?;
                Ok(worker.hash(&pw)?)
            })
            .await?
    }
}
