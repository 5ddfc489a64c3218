//! Durability by construction. A message that changes what a client was promised replies
//! a [`Durable`]: its value together with the tickets of the writes it handed to the
//! store's writer. Only [`Engine::call_durable`] opens one, and it does so after every
//! ticket came back durable, so no caller can acknowledge a change that a crash could
//! still undo, and no new message can forget the commit.

use actix::dev::ToEnvelope;
use actix::prelude::*;

use super::user::UserActor;
use super::{Engine, EngineError};
use crate::domain::ids::UserId;
use crate::store::Applied;
use crate::store::commit::{Outcome, Ticket};

/// A reply whose writes are on their way to the store.
pub(crate) struct Durable<R> {
    value: R,
    tickets: Vec<Ticket>,
}

impl<R> Durable<R> {
    /// `value`, once `tickets` are durable.
    pub(crate) fn new(value: R, tickets: Vec<Ticket>) -> Self {
        Self { value, tickets }
    }
}

/// What a ticket's outcome means to the caller waiting for it.
pub(crate) fn settled(outcome: Outcome) -> Result<(), EngineError> {
    match outcome {
        Outcome::Durable => Ok(()),
        // Another writer got there first: this actor's copy was stale, and it reloads.
        Outcome::Refused(Applied::Stale { .. }) => Err(EngineError::Conflict(
            "the account changed meanwhile; retry".into(),
        )),
        Outcome::Refused(Applied::EmailTaken) => Err(EngineError::EmailTaken),
        Outcome::Refused(Applied::Done) => Ok(()),
        Outcome::Failed(e) => Err(EngineError::Store(e)),
    }
}

impl Engine {
    /// Delivers `msg` to the actor of `id` and returns its reply once every write it made
    /// is durable.
    pub(crate) async fn call_durable<M, R>(&self, id: UserId, msg: M) -> Result<R, EngineError>
    where
        M: Message<Result = Result<Durable<R>, EngineError>> + Clone + Send + 'static,
        R: Send + 'static,
        UserActor: Handler<M>,
        <UserActor as Actor>::Context: ToEnvelope<UserActor, M>,
    {
        let Durable { value, tickets } = self.call(id, msg).await?;
        for t in &tickets {
            settled(self.commit.wait(t).await)?;
        }
        Ok(value)
    }
}
