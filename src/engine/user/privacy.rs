//! Consents and the age rule in the user's actor: consent changes (with what a withdrawal
//! turns off), the birth date, a parental consent, retention of security events, and
//! reading them.

use actix::prelude::*;

use super::*;
use crate::engine::listening;
use crate::engine::state::Expired;

/// The user's consents.
#[derive(Message, Clone)]
#[rtype(result = "Result<ConsentView, EngineError>")]
pub(crate) struct GetConsents;

/// Grants or withdraws consents and sets the birth date; each change made is written
/// with an audit record naming `actor`, in the same batch.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<ConsentView>, EngineError>")]
pub(crate) struct UpdateConsents {
    pub changes: Vec<(Purpose, bool)>,
    pub birth_date: Option<Date>,
    /// The operator may correct a birth date; the user may only give one.
    pub by_operator: bool,
    /// Who the audit records name.
    pub actor: Option<AuditActor>,
}

/// Records a verified parental consent (operator), with its audit record.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<ConsentView>, EngineError>")]
pub(crate) struct RecordParentalConsent {
    pub reference: String,
    pub audit: Option<super::Audited>,
}

/// Removes security events older than `before` from the user's record (retention), and
/// the sessions and link challenges that ran out ([`UserState::drop_expired`]); replies
/// what went. Durable with the caller's commit.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<Expired>, EngineError>")]
pub(crate) struct PurgeEvents {
    pub before: Timestamp,
}

/// The newest security events numbered below `before`, and the number of the oldest the
/// state holds; the reply comes once the older ones are in the store's archive.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<(Vec<SecurityEvent>, Option<u64>)>, EngineError>")]
pub(crate) struct GetSecurityEvents {
    pub before: u64,
    pub limit: usize,
}

/// What withdrawing `purpose` turns off in the preferences.
pub(crate) fn withdraw_from(prefs: &mut AIPreferences, purpose: Purpose) {
    match purpose {
        Purpose::FederatedLearning => prefs.federated_learning_enabled = false,
        Purpose::Personalisation => {
            prefs.mood_detection_enabled = false;
            prefs.custom_model_training = false;
            if matches!(
                prefs.personalization_level,
                PersonalizationLevel::Standard | PersonalizationLevel::Advanced
            ) {
                prefs.personalization_level = PersonalizationLevel::Basic;
            }
        }
        Purpose::Analytics | Purpose::Marketing => {}
    }
}

/// Checks that a preference change does not start processing the user has not agreed
/// to: federated learning needs a granted consent; personal-history personalisation
/// (standard or advanced level, mood detection, a model of one's own) must not have
/// been withdrawn.
pub(crate) fn check_preferences(
    before: &AIPreferences,
    after: &AIPreferences,
    consents: &ConsentState,
) -> Result<(), ValidationError> {
    if after.federated_learning_enabled
        && !before.federated_learning_enabled
        && !consents.granted(Purpose::FederatedLearning)
    {
        return Err(ValidationError::new(
            "ai_preferences.federated_learning_enabled",
            "needs the user's consent to federated_learning (PUT /users/{id}/consents)",
        ));
    }
    let withdrawn = consents
        .current(Purpose::Personalisation)
        .is_some_and(|c| !c.granted);
    if withdrawn {
        let mut capped = after.clone();
        withdraw_from(&mut capped, Purpose::Personalisation);
        if &capped != after {
            return Err(ValidationError::new(
                "ai_preferences",
                "personalisation from personal history was withdrawn: grant the \
                 personalisation consent again first",
            ));
        }
    }
    Ok(())
}

impl Handler<GetConsents> for UserActor {
    type Result = Result<ConsentView, EngineError>;
    fn handle(&mut self, _: GetConsents, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let min_age = self.engine.config.privacy.min_age;
        Ok(ConsentView::of(&self.state.consents, min_age, now))
    }
}

impl Handler<UpdateConsents> for UserActor {
    type Result = Result<Durable<ConsentView>, EngineError>;
    fn handle(&mut self, msg: UpdateConsents, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_update_consents(msg, ctx))
    }
}

impl Handler<PurgeEvents> for UserActor {
    type Result = Result<Durable<Expired>, EngineError>;
    fn handle(&mut self, msg: PurgeEvents, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_purge_events(msg, ctx))
    }
}

impl Handler<RecordParentalConsent> for UserActor {
    type Result = Result<Durable<ConsentView>, EngineError>;
    fn handle(&mut self, msg: RecordParentalConsent, ctx: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_record_parental_consent(msg, ctx))
    }
}

impl Handler<GetSecurityEvents> for UserActor {
    type Result = Result<Durable<(Vec<SecurityEvent>, Option<u64>)>, EngineError>;
    fn handle(&mut self, msg: GetSecurityEvents, _: &mut Context<Self>) -> Self::Result {
        self.touch();
        // Events the state let go of wait for its next write; a reader of the archive
        // must find them there.
        let archive = self.rare.take_archive();
        if !archive.is_empty() {
            let mut batch = Batch::default();
            archive.into_iter().for_each(|op| batch.push(op));
            self.submit(batch, Vec::new());
        }
        let log = &self.state.security;
        let page = (log.newest_before(msg.before, msg.limit), log.oldest_seq());
        let pending = self.last_write.iter().cloned().collect();
        self.tickets.clear();
        Ok(Durable::new(page, pending))
    }
}

impl UserActor {
    /// What a change written now turns off outside the user's record: federated
    /// learning turned off (or its consent withdrawn) takes its update out of the open
    /// round at once; a model of its own turned off (or the consent to personalisation
    /// withdrawn, or a tier without the feature) clears its listening log and models
    /// in the same batch.
    pub(super) fn leave_processing_turned_off(&mut self, next: &UserState, batch: &mut Batch) {
        let (before, after) = (
            &self.state.profile.ai_preferences,
            &next.profile.ai_preferences,
        );
        if before.federated_learning_enabled && !after.federated_learning_enabled {
            self.engine.federated.withdraw(self.id());
        }
        if before.custom_model_training && !after.custom_model_training {
            let r = self.rare.make_mut();
            r.listens = Vec::new();
            r.own = Some(None);
            batch.push(Op::ClearListening { user: self.id() });
        }
    }

    /// Whether the user's listening is logged now: a model of its own turned on (which
    /// needs the tier feature) and its consent to personalisation in force.
    pub(super) fn logs_listening(&self, now: Timestamp) -> bool {
        let min_age = self.engine.config.privacy.min_age;
        self.state.profile.ai_preferences.custom_model_training
            && (self.policy()).has_feature(crate::domain::settings::CUSTOM_MODEL_TRAINING_FEATURE)
            && (self.state.consents)
                .allows(Purpose::Personalisation, min_age, now)
                .is_ok()
    }

    /// Keeps the plays, skips, likes and app opens of `events` for the listening log,
    /// if it is kept now (the newest [`listening::MAX_PENDING`] until a write takes
    /// them).
    pub(super) fn log_listening(&mut self, events: &[ActivityEvent], now: Timestamp) {
        if !events.iter().any(listening::kept) || !self.logs_listening(now) {
            return;
        }
        let pending = &mut self.rare.make_mut().listens;
        pending.extend(events.iter().filter(|e| listening::kept(e)).cloned());
        let over = pending.len().saturating_sub(listening::MAX_PENDING);
        pending.drain(..over);
    }

    /// The listening gathered since the last write, as its chunk `seq`; one write in
    /// [`listening::COMPACT_EVERY`] compacts the log with it when it grew a
    /// quarter beyond `log_events` ([`Self::compact_listens`]).
    pub(super) fn take_listens(&mut self, seq: u64) -> Vec<Op> {
        let Some(r) = self.rare.held_mut() else {
            return Vec::new();
        };
        let events = std::mem::take(&mut r.listens);
        if events.is_empty() {
            return Vec::new();
        }
        let user = self.id();
        // The revision counts the record's writes in its high half.
        if (seq >> 32).is_multiple_of(listening::COMPACT_EVERY) {
            match self.compact_listens(seq, &events) {
                Ok(Some(ops)) => return ops,
                Ok(None) => {}
                Err(e) => tracing::error!(%user, error = %e, "listening log not compacted"),
            }
        }
        match listening::seal(&self.key, user, seq, &events) {
            Ok(blob) => vec![Op::PutListens { user, seq, blob }],
            Err(e) => {
                tracing::error!(%user, error = %e, "listening log chunk not sealed");
                Vec::new()
            }
        }
    }

    fn on_update_consents(
        &mut self,
        msg: UpdateConsents,
        _: &mut Context<Self>,
    ) -> Result<ConsentView, EngineError> {
        let now = self.touch();
        let min_age = self.engine.config.privacy.min_age;
        let mut next = self.state.clone();
        if let Some(b) = msg.birth_date {
            if b > Date::of(now) {
                return Err(ValidationError::new("birth_date", "is in the future").into());
            }
            match next.consents.birth_date {
                Some(old) if old != b && !msg.by_operator => {
                    return Err(EngineError::Conflict(
                        "the birth date is already set; an operator may correct it".into(),
                    ));
                }
                _ => next.consents.birth_date = Some(b),
            }
        }
        let mut made = Vec::new();
        let mut prefs = next.profile.ai_preferences.clone();
        for (purpose, granted) in msg.changes {
            if next.consents.set(purpose, granted, now) {
                made.push(ConsentChange {
                    purpose,
                    granted,
                    at: now,
                });
                if !granted {
                    withdraw_from(&mut prefs, purpose);
                }
            }
        }
        // What personalization learned goes with the consent to it (in the same write).
        if made
            .iter()
            .any(|c| c.purpose == Purpose::Personalisation && !c.granted)
        {
            next.taste = None;
        }
        let prefs_changed = prefs != next.profile.ai_preferences;
        if prefs_changed {
            let p = next.profile.make_mut();
            p.ai_preferences = prefs;
            p.updated_at = now;
        }
        if made.is_empty() && next.consents.birth_date == self.state.consents.birth_date {
            return Ok(ConsentView::of(&self.state.consents, min_age, now));
        }
        let user = self.id();
        let audit = msg
            .actor
            .iter()
            .flat_map(|actor| {
                made.iter().map(move |c| {
                    let action = AuditAction::ConsentChanged {
                        user,
                        purpose: c.purpose,
                        granted: c.granted,
                    };
                    (actor.clone(), action)
                })
            })
            .collect();
        self.write(next, now, audit)?;
        if prefs_changed {
            self.publish(Event::PreferencesUpdated {
                ai_preferences: self.state.profile.ai_preferences.clone(),
            });
        }
        Ok(ConsentView::of(&self.state.consents, min_age, now))
    }

    fn on_record_parental_consent(
        &mut self,
        msg: RecordParentalConsent,
        _: &mut Context<Self>,
    ) -> Result<ConsentView, EngineError> {
        let now = self.touch();
        let reference = msg.reference.trim().to_owned();
        if reference.is_empty()
            || reference.chars().count() > 200
            || reference.chars().any(char::is_control)
        {
            return Err(
                ValidationError::new("reference", "must be 1 to 200 printable characters").into(),
            );
        }
        let mut next = self.state.clone();
        next.consents.parental = Some(Box::new(ParentalConsent { at: now, reference }));
        self.write(next, now, msg.audit.into_iter().collect())?;
        let min_age = self.engine.config.privacy.min_age;
        Ok(ConsentView::of(&self.state.consents, min_age, now))
    }

    fn on_purge_events(
        &mut self,
        msg: PurgeEvents,
        _: &mut Context<Self>,
    ) -> Result<Expired, EngineError> {
        let now = self.touch();
        let mut next = self.state.clone();
        let removed = next.drop_expired(now, msg.before);
        if removed.any() {
            self.persist(next, now)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::Timestamp;

    pub(super) fn prefs() -> AIPreferences {
        AIPreferences {
            personalization_level: PersonalizationLevel::Advanced,
            learning_rate: 0.1,
            custom_model_training: true,
            bias_mitigation_enabled: true,
            mood_detection_enabled: true,
            federated_learning_enabled: false,
            explanations_enabled: true,
        }
    }

    #[test]
    pub(super) fn federated_learning_needs_a_grant_and_withdrawn_personalisation_stays_off() {
        let t = Timestamp::from_millis(1_000);
        let mut c = ConsentState::default();
        let before = prefs();
        let mut fed = prefs();
        fed.federated_learning_enabled = true;
        assert!(check_preferences(&before, &fed, &c).is_err());
        c.set(Purpose::FederatedLearning, true, t);
        assert!(check_preferences(&before, &fed, &c).is_ok());
        // Personalisation is on until withdrawn; then it cannot come back silently.
        assert!(check_preferences(&before, &before, &c).is_ok());
        c.set(Purpose::Personalisation, false, t);
        let mut off = prefs();
        withdraw_from(&mut off, Purpose::Personalisation);
        assert_eq!(off.personalization_level, PersonalizationLevel::Basic);
        assert!(!off.mood_detection_enabled && !off.custom_model_training);
        assert!(check_preferences(&off, &off, &c).is_ok());
        assert!(check_preferences(&off, &before, &c).is_err());
    }
}
