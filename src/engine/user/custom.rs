//! A user's own models in its actor: read from the store, and changed only here — a
//! trained version added, one pinned or deleted — so that a change cannot cross the
//! write that turns the feature off (or withdraws the consent) and clears them.

use actix::prelude::*;

use super::*;
use crate::engine::custom::{self, CustomModels, CustomVersion};
use crate::engine::listening;

/// The user's own models (none stored: empty).
#[derive(Message, Clone)]
#[rtype(result = "Result<CustomModels, EngineError>")]
pub(crate) struct GetCustomModels;

/// The user's listening log (stored and gathered since the last write, oldest first)
/// and its own models: for its data export.
#[derive(Message, Clone)]
#[rtype(result = "Result<(Vec<ActivityEvent>, CustomModels), EngineError>")]
pub(crate) struct GetOwnData;

/// A change of the user's own models.
#[derive(Clone, Debug)]
pub(crate) enum CustomChange {
    /// A trained version (its number is given here), with the compaction of the
    /// listening log it was trained from (the chunks it read: `read`); the newest
    /// `keep` versions are kept.
    Add {
        version: Box<CustomVersion>,
        keep: usize,
        compaction: Vec<Op>,
        read: Vec<u64>,
    },
    /// Pins a version (it must have beaten the global blend), or unpins.
    Pin(Option<u64>),
    /// Deletes a version.
    Delete(u64),
}

/// Makes a [`CustomChange`]; replies the models after it, once durable.
#[derive(Message, Clone)]
#[rtype(result = "Result<Durable<CustomModels>, EngineError>")]
pub(crate) struct ChangeCustomModels(pub CustomChange);

impl UserActor {
    /// The stored models.
    pub(super) fn custom_models(&self) -> Result<CustomModels, EngineError> {
        let user = self.id();
        let Some(blob) = self.engine.store.custom_models(user)? else {
            return Ok(CustomModels::default());
        };
        custom::open(&self.key, user, &blob).map_err(|e| EngineError::Corrupt {
            user,
            reason: format!("its own models: {e}"),
        })
    }

    /// The version that serves the user's lists now, if one does: only while its log is
    /// kept (the tier feature, the preference on, the consent), read from the store once
    /// a tick.
    pub(super) fn custom_in_force(&mut self, now: Timestamp) -> Option<CustomVersion> {
        if !self.logs_listening(now) {
            return None;
        }
        if let Some(read) = self.rare.get().and_then(|r| r.own.as_ref()) {
            return read.as_deref().cloned();
        }
        match self.custom_models() {
            Ok(m) => {
                let v = m.in_force().cloned();
                self.rare.make_mut().own = Some(v.clone().map(Box::new));
                v
            }
            Err(e) => {
                tracing::error!(user = %self.id(), error = %e, "own models unreadable");
                None
            }
        }
    }

    /// The ops that replace the stored log by its newest `log_events` events, `pending`
    /// included, as chunk `seq` — if it grew a quarter beyond that (none otherwise; a
    /// log too small in bytes to hold that many is not even opened).
    pub(super) fn compact_listens(
        &self,
        seq: u64,
        pending: &[ActivityEvent],
    ) -> Result<Option<Vec<Op>>, EngineError> {
        let user = self.id();
        let cap = self.engine.config.personalization.custom.log_events;
        let over = cap + cap / 4;
        let stored = self.engine.store.listens(user)?;
        let bytes: usize = stored.iter().map(|(_, b)| b.len()).sum();
        if stored.is_empty() || bytes < (over - pending.len().min(over)) * listening::MIN_BYTES {
            return Ok(None);
        }
        let mut events = Vec::new();
        for (s, blob) in &stored {
            let mut chunk =
                listening::open(&self.key, user, *s, blob).map_err(|e| EngineError::Corrupt {
                    user,
                    reason: format!("listening log chunk {s}: {e}"),
                })?;
            events.append(&mut chunk);
        }
        if events.len() + pending.len() <= over {
            return Ok(None);
        }
        events.extend_from_slice(pending);
        events.sort_by_key(|e| e.at());
        events.drain(..events.len() - cap);
        let mut ops: Vec<Op> = (stored.iter())
            .map(|(s, _)| Op::DropListens { user, seq: *s })
            .collect();
        let blob = listening::seal(&self.key, user, seq, &events)
            .map_err(|e| EngineError::Internal(format!("listening log: {e}")))?;
        ops.push(Op::PutListens { user, seq, blob });
        Ok(Some(ops))
    }

    fn on_change_custom(&mut self, change: CustomChange) -> Result<CustomModels, EngineError> {
        let now = self.touch();
        let mut models = self.custom_models()?;
        let mut ops = Vec::new();
        match change {
            CustomChange::Add {
                version,
                keep,
                compaction,
                read,
            } => {
                if !self.logs_listening(now) {
                    return Err(EngineError::ConsentRequired(
                        "a model of its own was turned off (or the consent to \
                         personalisation withdrawn) during the training: not kept",
                    ));
                }
                // Off and on again meanwhile: the log it read was cleared, and neither
                // the model nor the compacted log may bring it back. (A chunk read and
                // gone means a clear, or this actor compacted the log meanwhile: then
                // the training's compaction is stale too, and the user trains again.)
                let present: std::collections::HashSet<u64> =
                    (self.engine.store.listens(self.id())?.into_iter())
                        .map(|(seq, _)| seq)
                        .collect();
                if !read.iter().all(|seq| present.contains(seq)) {
                    return Err(EngineError::Conflict(
                        "the listening log was cleared or compacted during the training \
                         (a model of its own turned off, the consent withdrawn, or the log \
                         grown past its cap): not kept; train again"
                            .into(),
                    ));
                }
                models.add(*version, keep);
                ops = compaction;
            }
            CustomChange::Pin(_) if !self.logs_listening(now) => {
                return Err(EngineError::Conflict(
                    "a model of its own is off: there is nothing to pin".into(),
                ));
            }
            CustomChange::Pin(None) => models.pinned = None,
            CustomChange::Pin(Some(v)) => {
                let found = models.versions.iter().find(|x| x.version == v);
                match found {
                    None => return Err(EngineError::NoSuch("model version")),
                    Some(x) if !x.evaluation.better => {
                        return Err(EngineError::Conflict(format!(
                            "version {v} did not beat the global model on the held-out \
                             plays, so it cannot serve: {}",
                            x.evaluation.verdict()
                        )));
                    }
                    Some(_) => models.pinned = Some(v),
                }
            }
            CustomChange::Delete(v) => {
                let before = models.versions.len();
                models.versions.retain(|x| x.version != v);
                if models.versions.len() == before {
                    return Err(EngineError::NoSuch("model version"));
                }
                if models.pinned == Some(v) {
                    models.pinned = None;
                }
            }
        }
        let user = self.id();
        let blob = custom::seal(&self.key, user, &models)
            .map_err(|e| EngineError::Internal(format!("own models: {e}")))?;
        ops.push(Op::PutCustomModels { user, blob });
        self.rare.make_mut().archive.extend(ops);
        self.write(self.state.clone(), now, Vec::new())?;
        self.rare.make_mut().own = Some(models.in_force().cloned().map(Box::new));
        Ok(models)
    }
}

/// Tells the user's sockets how a training of its own model goes.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub(crate) struct AnnounceTraining(pub Event);

impl Handler<AnnounceTraining> for UserActor {
    type Result = ();
    fn handle(&mut self, msg: AnnounceTraining, _: &mut Context<Self>) {
        self.publish(msg.0);
    }
}

impl Handler<GetCustomModels> for UserActor {
    type Result = Result<CustomModels, EngineError>;
    fn handle(&mut self, _: GetCustomModels, _: &mut Context<Self>) -> Self::Result {
        self.touch();
        self.custom_models()
    }
}

impl Handler<GetOwnData> for UserActor {
    type Result = Result<(Vec<ActivityEvent>, CustomModels), EngineError>;
    fn handle(&mut self, _: GetOwnData, _: &mut Context<Self>) -> Self::Result {
        self.touch();
        let user = self.id();
        let mut events = Vec::new();
        for (seq, blob) in self.engine.store.listens(user)? {
            let mut chunk =
                listening::open(&self.key, user, seq, &blob).map_err(|e| EngineError::Corrupt {
                    user,
                    reason: format!("listening log chunk {seq}: {e}"),
                })?;
            events.append(&mut chunk);
        }
        if let Some(r) = self.rare.get() {
            events.extend(r.listens.iter().cloned());
        }
        events.sort_by_key(|e| e.at());
        Ok((events, self.custom_models()?))
    }
}

impl Handler<ChangeCustomModels> for UserActor {
    type Result = Result<Durable<CustomModels>, EngineError>;
    fn handle(&mut self, msg: ChangeCustomModels, _: &mut Context<Self>) -> Self::Result {
        self.durably(|a| a.on_change_custom(msg.0))
    }
}
