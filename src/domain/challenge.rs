//! Login challenges as time-bound questions: how long one may be answered, how many
//! wrong answers it takes, when a code may be sent again and how long a sent code lives.
//!
//! ```text
//!  issued ──▶ live ── wrong answer, tries left ──▶ live
//!               │  └─ wrong answer, none left ───▶ worn out (gone)
//!               ├─ right answer ─────────────────▶ used (gone)
//!               └─ expires_at passes ────────────▶ expired (gone)
//! ```
//!
//! A user holds a few at a time ([`Challenges`]); the oldest gives way to a new one.

use std::time::Duration;

use super::time::Timestamp;

/// The clock-bound part of a challenge (the engine keeps the rest beside it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// When it stops being answerable.
    pub expires_at: Timestamp,
    /// Wrong answers so far.
    pub attempts: u32,
    /// When a code was last sent for it.
    pub last_sent: Option<Timestamp>,
}

/// What a wrong answer left of a challenge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterWrongAnswer {
    /// This many more tries.
    TriesLeft(u32),
    /// None: the challenge is void.
    WornOut,
}

impl Challenge {
    /// A challenge issued at `now`, answerable for `ttl`.
    pub fn issued(now: Timestamp, ttl: Duration) -> Self {
        Self {
            expires_at: now.plus(ttl),
            attempts: 0,
            last_sent: None,
        }
    }

    /// Whether it may still be answered.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at > now
    }

    /// Counts a wrong answer against at most `max_attempts`.
    pub fn wrong_answer(&mut self, max_attempts: u32) -> AfterWrongAnswer {
        self.attempts += 1;
        match max_attempts.saturating_sub(self.attempts) {
            0 => AfterWrongAnswer::WornOut,
            left => AfterWrongAnswer::TriesLeft(left),
        }
    }

    /// Sends a code now, if the last one went out at least `resend` ago; else the
    /// seconds to wait. A sent code lives `code_ttl`, never past the challenge.
    pub fn send_code(
        &mut self,
        resend: Duration,
        code_ttl: Duration,
        now: Timestamp,
    ) -> Result<Timestamp, u64> {
        if let Some(wait) = resend_wait(self.last_sent, resend, now) {
            return Err(wait);
        }
        self.last_sent = Some(now);
        Ok(now.plus(code_ttl).min(self.expires_at))
    }
}

/// Seconds to wait before another code may go out, if one went out less than `resend`
/// ago (at least 1).
pub(crate) fn resend_wait(
    last: Option<Timestamp>,
    resend: Duration,
    now: Timestamp,
) -> Option<u64> {
    let waited = now.since(last?);
    (waited < resend).then(|| (resend - waited).as_secs().max(1))
}

/// The challenges one user has open, oldest first: at most `max`.
#[derive(Debug)]
pub struct Challenges<T> {
    open: Vec<(Challenge, T)>,
    max: usize,
}

impl<T> Challenges<T> {
    /// None open, room for `max`.
    pub fn new(max: usize) -> Self {
        Self {
            open: Vec::new(),
            max: max.max(1),
        }
    }

    /// Drops the expired ones.
    pub fn prune(&mut self, now: Timestamp) {
        self.open.retain(|(c, _)| c.is_live(now));
    }

    /// Opens one (the oldest gives way when full); returns its position.
    pub fn open(&mut self, challenge: Challenge, extra: T, now: Timestamp) -> usize {
        self.prune(now);
        if self.open.len() >= self.max {
            self.open.remove(0);
        }
        self.open.push((challenge, extra));
        self.open.len() - 1
    }

    /// The position of the first live one `matches` picks.
    pub fn find(&mut self, now: Timestamp, matches: impl Fn(&T) -> bool) -> Option<usize> {
        self.prune(now);
        self.open.iter().position(|(_, t)| matches(t))
    }

    /// The one at `i`.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut (Challenge, T)> {
        self.open.get_mut(i)
    }

    /// Takes the one at `i` out (answered, or void).
    pub fn take(&mut self, i: usize) -> Option<(Challenge, T)> {
        (i < self.open.len()).then(|| self.open.remove(i))
    }

    /// The newest.
    pub fn last_mut(&mut self) -> Option<&mut (Challenge, T)> {
        self.open.last_mut()
    }

    /// How many are open (expired ones included until pruned).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(300);

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + secs * 1000)
    }

    #[test]
    fn a_challenge_expires_and_wears_out() {
        let mut c = Challenge::issued(at(0), TTL);
        assert!(c.is_live(at(299)));
        assert!(!c.is_live(at(300)), "expired at its end");
        assert_eq!(c.wrong_answer(3), AfterWrongAnswer::TriesLeft(2));
        assert_eq!(c.wrong_answer(3), AfterWrongAnswer::TriesLeft(1));
        assert_eq!(c.wrong_answer(3), AfterWrongAnswer::WornOut);
    }

    #[test]
    fn codes_wait_for_the_resend_delay_and_never_outlive_their_challenge() {
        let resend = Duration::from_secs(30);
        let code_ttl = Duration::from_secs(600);
        let mut c = Challenge::issued(at(0), TTL);
        assert_eq!(
            c.send_code(resend, code_ttl, at(0)),
            Ok(at(300)),
            "cut to the challenge"
        );
        assert_eq!(c.send_code(resend, code_ttl, at(10)), Err(20));
        assert_eq!(c.send_code(resend, code_ttl, at(29)), Err(1));
        assert_eq!(c.send_code(resend, code_ttl, at(30)), Ok(at(300)));
        let mut long = Challenge::issued(at(0), Duration::from_secs(3600));
        let short = Duration::from_secs(60);
        assert_eq!(long.send_code(resend, short, at(100)), Ok(at(160)));
        assert_eq!(resend_wait(None, resend, at(0)), None);
    }

    #[test]
    fn the_oldest_open_challenge_gives_way_and_expired_ones_go() {
        let mut open = Challenges::new(2);
        open.open(Challenge::issued(at(0), TTL), "a", at(0));
        open.open(Challenge::issued(at(10), TTL), "b", at(10));
        open.open(Challenge::issued(at(20), TTL), "c", at(20));
        assert_eq!(open.len(), 2);
        assert_eq!(
            open.find(at(20), |t| *t == "a"),
            None,
            "the oldest gave way"
        );
        let b = open.find(at(20), |t| *t == "b").unwrap();
        assert_eq!(open.take(b).map(|(_, t)| t), Some("b"));
        // "c", issued at 20, is live until 320.
        assert!(open.find(at(319), |t| *t == "c").is_some());
        assert_eq!(open.find(at(320), |t| *t == "c"), None);
        assert!(open.is_empty());
    }
}
