//! Decoy passwordless challenges. A passwordless start for an email without passkeys (an
//! unknown address, an account without one, a locked one) hands out a challenge like a
//! real one; the follow-ups — WebAuthn options, a code send, an answer — must then
//! answer as a real passkey challenge would, or one more call would tell the accounts
//! apart. The decoys are kept here, in memory, as the real challenges are in their
//! users' actors, with the same clock and the same count of wrong answers
//! ([`Challenge`]).

use dashmap::DashMap;

use crate::domain::challenge::{AfterWrongAnswer, Challenge};
use crate::domain::ids::{SessionId, UserId};
use crate::domain::time::Timestamp;
use crate::security::token::SessionToken;

/// At most this many decoys are held; past it, expired ones are dropped, and a start in
/// a flood beyond that gets a challenge that is simply gone (as a real one would be
/// after its user's actor passivated).
const MAX_DECOYS: usize = 100_000;

/// One decoy: what its follow-ups need.
struct Decoy {
    session: SessionId,
    clock: Challenge,
    /// The normalised email it was started for, which its credential ids derive from.
    email: String,
}

/// The live decoys, by the made-up user id their token routes to.
#[derive(Default)]
pub(crate) struct Decoys {
    open: DashMap<UserId, Decoy>,
}

/// What answering a decoy came to.
pub(crate) enum DecoyAnswer {
    /// Wrong, with this many tries left.
    Rejected(u32),
    /// No tries left, or no such decoy: the challenge is gone.
    Gone,
}

impl Decoys {
    /// Keeps the decoy behind `token`, started for `email`, until `clock` runs out.
    pub(crate) fn open(&self, token: &SessionToken, email: &str, clock: Challenge, now: Timestamp) {
        if self.open.len() >= MAX_DECOYS {
            self.open.retain(|_, d| d.clock.is_live(now));
            if self.open.len() >= MAX_DECOYS {
                return;
            }
        }
        self.open.insert(
            token.user_id(),
            Decoy {
                session: token.session_id(),
                clock,
                email: email.to_owned(),
            },
        );
    }

    /// The email a live decoy was started for, if `token` is one.
    pub(crate) fn email_of(&self, token: &SessionToken, now: Timestamp) -> Option<String> {
        let d = self.open.get(&token.user_id())?;
        (d.session == token.session_id() && d.clock.is_live(now)).then(|| d.email.clone())
    }

    /// A wrong answer to the decoy behind `token` (every answer to a decoy is wrong).
    pub(crate) fn wrong_answer(
        &self,
        token: &SessionToken,
        max: u32,
        now: Timestamp,
    ) -> DecoyAnswer {
        let id = token.user_id();
        let after = match self.open.get_mut(&id) {
            Some(mut d) if d.session == token.session_id() && d.clock.is_live(now) => {
                d.clock.wrong_answer(max)
            }
            _ => AfterWrongAnswer::WornOut,
        };
        match after {
            AfterWrongAnswer::TriesLeft(n) => DecoyAnswer::Rejected(n),
            AfterWrongAnswer::WornOut => {
                self.open.remove(&id);
                DecoyAnswer::Gone
            }
        }
    }

    /// Whether `token` is a decoy at all (live or not): its answers never route to an
    /// actor.
    pub(crate) fn is_decoy(&self, token: &SessionToken) -> bool {
        self.open
            .get(&token.user_id())
            .is_some_and(|d| d.session == token.session_id())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_decoy_counts_wrong_answers_and_expires_like_a_challenge() {
        let decoys = Decoys::default();
        let t0 = Timestamp::from_millis(1_000_000);
        let token = SessionToken::issue(UserId::generate());
        decoys.open(
            &token,
            "x@y.io",
            Challenge::issued(t0, Duration::from_secs(60)),
            t0,
        );
        assert_eq!(decoys.email_of(&token, t0).as_deref(), Some("x@y.io"));
        let other = SessionToken::issue(token.user_id());
        assert!(decoys.email_of(&other, t0).is_none(), "another session id");
        assert!(matches!(
            decoys.wrong_answer(&token, 3, t0),
            DecoyAnswer::Rejected(2)
        ));
        assert!(matches!(
            decoys.wrong_answer(&token, 3, t0),
            DecoyAnswer::Rejected(1)
        ));
        assert!(matches!(
            decoys.wrong_answer(&token, 3, t0),
            DecoyAnswer::Gone
        ));
        assert!(!decoys.is_decoy(&token), "worn out and gone");
        let late = SessionToken::issue(UserId::generate());
        decoys.open(
            &late,
            "x@y.io",
            Challenge::issued(t0, Duration::from_secs(60)),
            t0,
        );
        let after = t0.plus(Duration::from_secs(61));
        assert!(decoys.email_of(&late, after).is_none(), "expired");
        assert!(matches!(
            decoys.wrong_answer(&late, 3, after),
            DecoyAnswer::Gone
        ));
    }
}
