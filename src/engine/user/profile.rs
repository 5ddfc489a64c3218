//! The profile as the user's actor keeps it: reads, partial updates, quota use, tier
//! moves, the whole state for an export, and deletion.

use actix::prelude::*;

use super::*;
use crate::domain::link::LinkedAccount;

/// Counts quota usage against the tier's limit (durable when accepted).
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<QuotaDecision>, EngineError>")]
pub(crate) struct RecordUsage {
    pub kind: QuotaKind,
    pub delta: i64,
}

/// Returns the profile.
#[derive(Message, Clone)]
#[rtype(result = "Result<SharedProfile, EngineError>")]
pub(crate) struct GetProfile;

/// Applies a validated partial update (durable).
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<SharedProfile>, EngineError>")]
pub(crate) struct UpdateProfile(pub ProfilePatch);

/// Moves the user to another tier (durable, with its audit record); the actor then stops
/// so that the new tier's registry activates it.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<SharedProfile>, EngineError>")]
pub(crate) struct ChangeTier {
    pub tier: UserTier,
    pub audit: Option<Audited>,
}

/// Deletes the user (durable, with its audit record), if `recent` (the acting session;
/// `None` for the operator) authenticated recently; the actor stops. The answer holds
/// the linked accounts that went with it, so their grants can be revoked at the
/// providers.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<Vec<LinkedAccount>>, EngineError>")]
pub(crate) struct DeleteUser {
    pub recent: Option<SessionId>,
    pub audit: Option<Audited>,
}

/// Returns the whole state, for a data export, if `recent` (the acting session; `None`
/// for the operator) authenticated recently.
#[derive(Message, Clone)]
#[rtype(result = "Result<UserState, EngineError>")]
pub(crate) struct GetState {
    pub recent: Option<SessionId>,
}

impl Handler<GetProfile> for UserActor {
    type Result = Result<SharedProfile, EngineError>;
    fn handle(&mut self, _: GetProfile, _: &mut Context<Self>) -> Self::Result {
        self.touch();
        Ok(self.state.profile.clone())
    }
}

impl Handler<UpdateProfile> for UserActor {
    type Result = Result<Durable<SharedProfile>, EngineError>;
    fn handle(&mut self, msg: UpdateProfile, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_update_profile(msg, ctx))
    }
}

impl Handler<RecordUsage> for UserActor {
    type Result = Result<Durable<QuotaDecision>, EngineError>;
    fn handle(&mut self, msg: RecordUsage, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_record_usage(msg, ctx))
    }
}

impl Handler<ChangeTier> for UserActor {
    type Result = Result<Durable<SharedProfile>, EngineError>;
    fn handle(&mut self, msg: ChangeTier, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_change_tier(msg, ctx))
    }
}

impl Handler<DeleteUser> for UserActor {
    type Result = Result<Durable<Vec<LinkedAccount>>, EngineError>;
    fn handle(&mut self, msg: DeleteUser, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_delete_user(msg, ctx))
    }
}

impl Handler<GetState> for UserActor {
    type Result = Result<UserState, EngineError>;
    fn handle(&mut self, msg: GetState, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        self.require_recent(msg.recent, now)?;
        if self.state.prune_sessions(now) {
            self.soften();
        }
        Ok(self.state.clone())
    }
}

impl UserActor {
    fn on_update_profile(
        &mut self,
        UpdateProfile(patch): UpdateProfile,
        _: &mut Context<Self>,
    ) -> Result<SharedProfile, EngineError> {
        let now = self.touch();
        let mut next = self.state.clone();
        next.profile = SharedProfile::new(patch.apply(&self.state.profile, self.policy(), now)?);
        privacy::check_preferences(
            &self.state.profile.ai_preferences,
            &next.profile.ai_preferences,
            &self.state.consents,
        )?;
        let before = self.state.profile.clone();
        self.persist(next, now)?;
        let after = self.state.profile.clone();
        if (&after.display_name, &after.language, &after.timezone)
            != (&before.display_name, &before.language, &before.timezone)
        {
            self.publish(Event::ProfileUpdated {
                profile: after.clone(),
            });
        }
        if after.ai_preferences != before.ai_preferences {
            self.publish(Event::PreferencesUpdated {
                ai_preferences: after.ai_preferences.clone(),
            });
        }
        if after.security_settings != before.security_settings {
            self.publish(Event::SecuritySettingsUpdated {
                security_settings: after.security_settings.clone(),
            });
        }
        Ok(after)
    }

    fn on_record_usage(
        &mut self,
        msg: RecordUsage,
        _: &mut Context<Self>,
    ) -> Result<QuotaDecision, EngineError> {
        let now = self.touch();
        let mut next = self.state.clone();
        let policy = &self.engine.config.tier(next.profile.tier).policy;
        let decision = next
            .profile
            .make_mut()
            .usage
            .apply(msg.kind, msg.delta, policy);
        if let QuotaDecision::Accepted { used, limit } = decision {
            let before = match msg.kind {
                QuotaKind::Playlists => self.state.profile.usage.playlists,
                QuotaKind::StorageBytes => self.state.profile.usage.storage_bytes,
            };
            self.persist(next, now)?;
            if let Some(limit) = limit
                && let Some(percent) =
                    crate::domain::profile::crossed_threshold(before, used, limit)
            {
                self.publish(Event::QuotaWarning {
                    quota: msg.kind,
                    used,
                    limit,
                    percent,
                });
            }
        }
        Ok(decision)
    }

    fn on_change_tier(
        &mut self,
        msg: ChangeTier,
        ctx: &mut Context<Self>,
    ) -> Result<SharedProfile, EngineError> {
        let now = self.touch();
        let tier = msg.tier;
        if tier == self.state.profile.tier {
            return Ok(self.state.profile.clone());
        }
        let mut next = self.state.clone();
        let engine = Arc::clone(&self.engine);
        let policy = &engine.config.tier(tier).policy;
        let profile = next.profile.make_mut();
        profile.tier = tier;
        profile.updated_at = now;
        // A downgrade turns off what the new tier does not include.
        if check_tier_features(profile, policy).is_err() {
            profile.ai_preferences.custom_model_training = false;
        }
        // Live sessions meet the new tier's policy at once, as if opened there: a move
        // into zero trust is no way around its second factor.
        let mut ended = Vec::new();
        for s in &mut next.sessions {
            if let Err(why) = s.hold_to(policy) {
                ended.push((s.id, why));
            }
        }
        for (id, why) in &ended {
            next.revoke(*id);
            let mut e = SecurityEvent::new(SecurityEventKind::SessionRevoked, now);
            e.session_id = Some(*id);
            e.detail = Some((*why).to_owned());
            self.record_event(&mut next, e);
        }
        // Links over the new tier's limit are suspended (kept, not deleted); an upgrade
        // brings suspended ones back.
        let rule = engine.config.integrations.tier(tier);
        let relinked = next
            .links
            .as_mut()
            .map(|l| l.fit_tier(rule.max_links, |p| rule.allows(p)))
            .unwrap_or_default();
        let from = self.state.profile.tier;
        let audit = msg.audit.map(|(actor, mut action)| {
            if let AuditAction::TierChanged { from: was, .. } = &mut action {
                *was = Some(from);
            }
            (actor, action)
        });
        self.write(next, now, audit.into_iter().collect())?;
        let ended: Vec<_> = ended.into_iter().map(|(id, _)| id).collect();
        self.sessions_ended(&ended, RevokeReason::TierChanged);
        let change = crate::metrics::TierChangeLabels {
            from: from.into(),
            to: tier.into(),
        };
        self.engine
            .metrics
            .tier_changes
            .get_or_create(&change)
            .inc();
        self.publish(Event::TierChanged { from, to: tier });
        for (provider, status) in relinked {
            self.publish(Event::LinkChanged {
                provider,
                status,
                reason: LinkReason::TierChanged,
            });
        }
        self.leave(ctx);
        Ok(self.state.profile.clone())
    }

    fn on_delete_user(
        &mut self,
        msg: DeleteUser,
        ctx: &mut Context<Self>,
    ) -> Result<Vec<LinkedAccount>, EngineError> {
        let now = self.touch();
        self.require_recent(msg.recent, now)?;
        let email = &self.state.profile.email;
        let keys = &self.engine.keys;
        let mut email_indexes = vec![keys.email_index(&email.normalized())];
        let legacy = keys.email_index(&email.legacy_normalized());
        if legacy != email_indexes[0] {
            // A claim that could not move to its normalised key (a look-alike holds it).
            email_indexes.push(legacy);
        }
        let batch = Batch::of(Op::DeleteUser {
            id: self.id(),
            email_indexes,
            at: now,
        });
        self.engine.federated.withdraw(self.id());
        let audit = msg.audit.into_iter().map(|(a, b)| (a, b, now)).collect();
        self.submit(batch, audit);
        self.state.sessions = Box::default();
        let links = self
            .state
            .links
            .take()
            .map(|l| l.accounts)
            .unwrap_or_default();
        self.publish(Event::UserDeleted {});
        if let Some(s) = &self.stream {
            self.engine.realtime.close_all(s, CloseCode::UserDeleted);
        }
        self.leave(ctx);
        Ok(links)
    }
}
