//! Listening activity reported by the user's clients: counted under the tier's rate and
//! only with the user's consent to analytics (and, for a minor, a parent's).

use actix::prelude::*;

use super::*;
use crate::domain::activity::EventRules;
use crate::domain::consent::ConsentRefusal;
use crate::domain::history::ActivityHistory;
use crate::domain::import_ledger::ImportLedger;
use crate::engine::durable::Durable;
use crate::engine::outcomes::ImportOutcome;
use crate::store::codec;

/// The period of the per-tier request allowance.
pub(crate) const RATE_PERIOD: std::time::Duration = std::time::Duration::from_secs(3600);

/// Counts activity events a client reported over its socket (taking one request from
/// the tier's rate) or over HTTP (whose request the authorization counted already).
#[derive(Message, Clone)]
#[rtype(result = "Result<ActivityOutcome, EngineError>")]
pub(crate) struct RecordActivity {
    pub session: SessionId,
    pub events: Vec<ActivityEvent>,
    pub take_request: bool,
}

/// Hands out what one recommendations list needs of the user: its taste (a copy, for
/// scoring off the actor thread), whether personalisation is consented to now, its
/// preferences and tier.
#[derive(Message, Clone)]
#[rtype(result = "Result<TasteView, EngineError>")]
pub(crate) struct GetTaste;

/// See [`GetTaste`].
pub(crate) struct TasteView {
    pub taste: Option<Box<crate::domain::taste::Taste>>,
    pub consented: bool,
    /// Whether it takes part in federated rounds now: the preference on and the
    /// consent granted.
    pub federated: bool,
    /// The user's own model that serves its lists, if one does.
    pub custom: Option<crate::engine::custom::CustomVersion>,
    pub prefs: AIPreferences,
    pub tier: UserTier,
}

impl Handler<GetTaste> for UserActor {
    type Result = Result<TasteView, EngineError>;
    fn handle(&mut self, _: GetTaste, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let min_age = self.engine.config.privacy.min_age;
        let custom = self.custom_in_force(now);
        let p = &self.state.profile;
        Ok(TasteView {
            taste: self.state.taste.clone(),
            consented: self
                .state
                .consents
                .allows(Purpose::Personalisation, min_age, now)
                .is_ok(),
            federated: p.ai_preferences.federated_learning_enabled
                && self
                    .state
                    .consents
                    .allows(Purpose::FederatedLearning, min_age, now)
                    .is_ok(),
            custom,
            prefs: p.ai_preferences.clone(),
            tier: p.tier,
        })
    }
}

/// Returns the activity history, whether it may be analysed now (the consent), and the
/// taste's genres.
#[derive(Message, Clone)]
#[rtype(result = "Result<ActivityView, EngineError>")]
pub(crate) struct GetActivity;

/// What [`GetActivity`] answers.
pub(crate) struct ActivityView {
    /// The history.
    pub history: ActivityHistory,
    /// Whether it may be analysed now (the consent to analytics and the age rule).
    pub analysed: bool,
    /// The taste's genre mix, strongest first, while the taste may be read (the consent
    /// to personalisation, a level other than `off`); empty otherwise.
    pub genres: Box<[crate::domain::taste::GenreWeight]>,
}

impl Handler<RecordActivity> for UserActor {
    type Result = Result<ActivityOutcome, EngineError>;
    fn handle(&mut self, msg: RecordActivity, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        if self.state.touch_session(msg.session, now).is_none() {
            return Ok(ActivityOutcome::SessionInvalid);
        }
        self.soften();
        if msg.take_request
            && let Some(retry_after_secs) = self.take_request(now)
        {
            return Ok(ActivityOutcome::RateLimited { retry_after_secs });
        }
        let rules = EventRules::live(now, self.state.profile.created_at, &self.policy().features);
        check_batch(&msg.events, &rules)?;
        if let Some(reason) = self.analytics_refusal(now) {
            return Ok(ActivityOutcome::ConsentRequired { reason });
        }
        self.state.history.record(&msg.events);
        self.state.feedback.record(&msg.events);
        self.learn_taste(&msg.events, now);
        self.log_listening(&msg.events, now);
        self.engine
            .metrics
            .activity_events
            .inc_by(msg.events.len() as u64);
        self.engine.live.events(msg.events.len() as u64);
        Ok(ActivityOutcome::Recorded {
            accepted: msg.events.len(),
        })
    }
}

/// Counts history an operator imports (a migration, an integration's sync), each event
/// once however often it is imported; durable when it replies.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<ImportOutcome>, EngineError>")]
pub(crate) struct ImportHistory {
    pub events: Vec<ActivityEvent>,
    /// Who imports, for the audit record written with the events.
    pub by: Option<crate::domain::audit::AuditActor>,
    /// The provider whose link is being synced: its `synced_at` is set with the
    /// events, and an event the rules refuse (a play from before the account existed)
    /// is left out rather than refusing the rest.
    pub synced: Option<String>,
    /// Empty, or one per event: its [alias](ImportLedger::unseen_as) (a synced play by
    /// the provider's track id).
    pub aliases: Vec<u64>,
}

type ImportReply = Result<Durable<ImportOutcome>, EngineError>;

impl Handler<ImportHistory> for UserActor {
    type Result = AtomicResponse<Self, ImportReply>;
    fn handle(&mut self, mut msg: ImportHistory, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let rules =
            EventRules::imported(now, self.state.profile.created_at, &self.policy().features);
        let refused = match msg.synced {
            // Each event checked on its own, the refused left out (none may be left).
            Some(_) => {
                let mut aliases = std::mem::take(&mut msg.aliases).into_iter();
                let (events, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut msg.events)
                    .into_iter()
                    .map(|e| (e, aliases.next()))
                    .filter(|(e, _)| check_batch(std::slice::from_ref(e), &rules).is_ok())
                    .take(rules.max_events)
                    .unzip();
                msg.events = events;
                msg.aliases = kept.into_iter().flatten().collect();
                None
            }
            None => check_batch(&msg.events, &rules)
                .map_err(EngineError::from)
                .err()
                .map(Err),
        };
        let refused = refused.or_else(|| {
            self.analytics_refusal(now).map(|reason| {
                Ok(Durable::new(
                    ImportOutcome::ConsentRequired { reason },
                    Vec::new(),
                ))
            })
        });
        if let Some(answer) = refused {
            return AtomicResponse::new(Box::pin(fut::ready(answer)));
        }
        if self.rare.get().is_some_and(|r| r.ledger.is_some()) {
            let answer = self.durably(|a| a.import(&msg, now));
            return AtomicResponse::new(Box::pin(fut::ready(answer)));
        }
        // The ledger is read off the Arbiter; the mailbox waits meanwhile, so no other
        // import of this user runs between the read and the write. The read waits for
        // this actor's last write first: a ledger written by the previous line may still
        // be in the writer's queue.
        let (store, id) = (Arc::clone(&self.engine.store), self.id());
        let pending = self.last_write.clone();
        let read = async move {
            if let Some(t) = pending {
                t.wait().await;
            }
            tokio::task::spawn_blocking(move || store.import_ledger(id))
                .await
                .map_err(|e| EngineError::Internal(format!("ledger read: {e}")))?
                .map_err(EngineError::from)
        };
        AtomicResponse::new(Box::pin(read.into_actor(self).map(
            move |stored, act, _| {
                let ledger = act.open_ledger(stored?)?;
                act.rare.make_mut().ledger.get_or_insert(ledger);
                act.durably(|a| a.import(&msg, now))
            },
        )))
    }
}

impl UserActor {
    fn ledger_aad(&self) -> [u8; 17] {
        let mut aad = [0u8; 17];
        aad[0] = b'l';
        aad[1..].copy_from_slice(self.id().as_bytes());
        aad
    }

    fn open_ledger(&self, stored: Option<Vec<u8>>) -> Result<ImportLedger, EngineError> {
        let Some(blob) = stored else {
            return Ok(ImportLedger::default());
        };
        let corrupt = |reason: String| EngineError::Corrupt {
            user: self.id(),
            reason,
        };
        let raw = codec::open_blob(&self.key, &self.ledger_aad(), &blob)
            .map_err(|e| corrupt(format!("import ledger: {e}")))?;
        ImportLedger::from_bytes(&raw).ok_or_else(|| corrupt("import ledger: truncated".into()))
    }

    /// Counts the events the ledger has not seen and writes the history and the ledger
    /// together (with the `synced` link's time of sync).
    fn import(
        &mut self,
        msg: &ImportHistory,
        now: Timestamp,
    ) -> Result<ImportOutcome, EngineError> {
        let (events, synced) = (&msg.events, msg.synced.as_deref());
        let ledger = self
            .rare
            .make_mut()
            .ledger
            .get_or_insert_with(ImportLedger::default);
        let (fresh, marks) = ledger.unseen_as(events, &msg.aliases);
        let duplicates = events.len() - fresh.len();
        if fresh.is_empty() && synced.is_none() {
            // Nothing new, but what made these duplicates may not be durable yet: the
            // answer waits for it too.
            if let Some(t) = self.last_write.clone() {
                self.tickets.push(t);
            }
            return Ok(ImportOutcome::Imported {
                accepted: 0,
                duplicates,
            });
        }
        let mut next_ledger = ledger.clone();
        next_ledger.remember(&marks);
        let mut next = self.state.clone();
        if let Some(link) = synced.and_then(|p| next.links.as_mut()?.get_mut(p)) {
            link.synced_at = Some(now);
        }
        next.history.record(&fresh);
        next.feedback.record(&fresh);
        if let Some(taste) = self.taste_allowed(now) {
            // An import teaches the taste in the order the events happened.
            let mut ordered: Vec<&ActivityEvent> = fresh.iter().collect();
            ordered.sort_by_key(|e| e.at());
            let index = self.engine.recommender.index();
            let t = next.taste.get_or_insert_with(Box::default);
            for e in ordered {
                t.learn(e, e.track_id().and_then(|id| index.traits_of(id)), taste);
            }
        }
        let logged = self.rare.get().map_or(0, |r| r.listens.len());
        self.log_listening(&fresh, now);
        let blob = codec::seal_blob(&self.key, &self.ledger_aad(), &next_ledger.to_bytes());
        let action = AuditAction::HistoryImported {
            user: self.id(),
            events: fresh.len() as u64,
        };
        let user = self.id();
        self.rare
            .make_mut()
            .archive
            .push(Op::PutImportLedger { user, blob });
        let audit = msg
            .by
            .clone()
            .filter(|_| !fresh.is_empty())
            .map(|a| (a, action));
        if let Err(e) = self.write(next, now, audit.into_iter().collect()) {
            // Not written: the ledger must not go out with a later snapshot alone.
            if let Some(r) = self.rare.held_mut() {
                r.archive
                    .retain(|op| !matches!(op, Op::PutImportLedger { .. }));
                r.listens.truncate(logged);
            }
            return Err(e);
        }
        self.rare.make_mut().ledger = Some(next_ledger);
        Ok(ImportOutcome::Imported {
            accepted: fresh.len(),
            duplicates,
        })
    }

    /// The learning rate the taste learns at, if it may learn now: with the consent to
    /// personalisation (and for a minor, a parent's) and a level other than `off`.
    fn taste_allowed(&self, now: Timestamp) -> Option<f64> {
        let min_age = self.engine.config.privacy.min_age;
        let prefs = &self.state.profile.ai_preferences;
        (prefs.personalization_level != PersonalizationLevel::Off
            && self
                .state
                .consents
                .allows(Purpose::Personalisation, min_age, now)
                .is_ok())
        .then_some(prefs.learning_rate)
    }

    /// Teaches the taste the plays, likes, skips and app opens among `events` (already
    /// counted).
    fn learn_taste(&mut self, events: &[ActivityEvent], now: Timestamp) {
        let teaches = |e: &ActivityEvent| {
            matches!(
                e,
                ActivityEvent::TrackPlayed { .. }
                    | ActivityEvent::TrackLiked { .. }
                    | ActivityEvent::TrackSkipped { .. }
                    | ActivityEvent::AppOpened { .. }
            )
        };
        if !events.iter().any(teaches) {
            return;
        }
        let Some(rate) = self.taste_allowed(now) else {
            return;
        };
        let index = self.engine.recommender.index();
        let taste = self.state.taste.get_or_insert_with(Box::default);
        for e in events.iter().filter(|e| teaches(e)) {
            taste.learn(e, e.track_id().and_then(|id| index.traits_of(id)), rate);
        }
    }

    /// Why activity may not be collected now, if it may not.
    pub(super) fn analytics_refusal(&self, now: Timestamp) -> Option<&'static str> {
        let min_age = self.engine.config.privacy.min_age;
        match self.state.consents.allows(Purpose::Analytics, min_age, now) {
            Ok(()) => None,
            Err(ConsentRefusal::ParentalConsentRequired) => Some(
                "the account is under the minimum age and needs a recorded parental consent \
                 before activity is collected",
            ),
            Err(ConsentRefusal::NotGranted(_)) => Some(
                "activity is collected only with the user's consent to analytics \
                 (PUT /api/v1/users/{id}/consents)",
            ),
        }
    }
}

impl Handler<GetActivity> for UserActor {
    type Result = Result<ActivityView, EngineError>;
    fn handle(&mut self, _: GetActivity, _: &mut Context<Self>) -> Self::Result {
        let now = self.touch();
        let analysed = self.analytics_refusal(now).is_none();
        let genres = match (&self.state.taste, self.taste_allowed(now)) {
            (Some(t), Some(_)) => t.genres.clone(),
            _ => Box::default(),
        };
        Ok(ActivityView {
            history: self.state.history.clone(),
            analysed,
            genres,
        })
    }
}
