//! Live figures for the operators: users seen in the last five minutes by tier, events,
//! logins and risk decisions per second, sign-ups today, the password-hashing pool's
//! load. Counted as things happen (atomics, no locks on
//! the actors' path) and read once a second by the console's socket.
//!
//! "Seen in the last five minutes" is exact without a set of ids: each tier has a wheel
//! of per-minute slots, and every user is counted in exactly one slot, the minute it was
//! last seen — an actor seen again in a later minute moves its count from the old slot
//! to the new one. The figure is the sum of the last five minutes' slots. (A user whose
//! actor was passivated and activated again within five minutes may be counted twice
//! until the older minute leaves the window; passivation takes 15 idle minutes by
//! default, so it does not happen with the shipped settings.)

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::domain::risk::RiskDecision;
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;

/// Minutes a user counts as active after it was last seen.
pub const ACTIVE_MINUTES: u32 = 5;

/// Slots per wheel: more than the window, so a slot is reused only once out of it.
const SLOTS: usize = 8;

/// The window rates are averaged over, in milliseconds.
const RATE_WINDOW_MS: i64 = 10_000;

fn pack(minute: u32, count: u32) -> u64 {
    (u64::from(minute) << 32) | u64::from(count)
}

fn unpack(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

/// The minute (since 1970) of a time.
pub(crate) fn minute_of(t: Timestamp) -> u32 {
    (t.as_millis().max(0) / 60_000) as u32
}

#[derive(Default)]
struct Wheel {
    slots: [AtomicU64; SLOTS],
}

impl Wheel {
    fn update(&self, minute: u32, f: impl Fn(u32, u32) -> Option<u64>) {
        let slot = &self.slots[minute as usize % SLOTS];
        let _ = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            let (m, c) = unpack(v);
            f(m, c)
        });
    }

    /// A user last seen in `minute` is no longer counted there.
    fn unseen(&self, minute: u32) {
        self.update(minute, |m, c| {
            (m == minute && c > 0).then(|| pack(m, c - 1))
        });
    }

    /// A user last seen in `previous` (if known) is seen in `now`.
    fn seen(&self, previous: Option<u32>, now: u32) {
        if let Some(p) = previous.filter(|p| *p + SLOTS as u32 > now) {
            self.unseen(p);
        }
        self.update(now, |m, c| {
            Some(if m == now {
                pack(m, c + 1)
            } else {
                pack(now, 1)
            })
        });
    }

    fn active(&self, now: u32) -> u64 {
        self.slots
            .iter()
            .map(|s| unpack(s.load(Ordering::Acquire)))
            .filter(|(m, _)| *m <= now && *m + ACTIVE_MINUTES > now)
            .map(|(_, c)| u64::from(c))
            .sum()
    }
}

#[derive(Clone, Copy)]
struct Sample {
    at: i64,
    events: u64,
    logins: u64,
    refused: u64,
    risk: [u64; 3],
    pool: PoolReading,
}

/// The password-hashing pool's counters at one moment (the pool keeps them; the caller
/// reads them into this).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PoolReading {
    /// Hashing threads.
    pub workers: usize,
    /// Jobs waiting for a thread.
    pub queued: usize,
    /// Jobs started so far.
    pub jobs: u64,
    /// Their total wait for a thread, µs.
    pub waited_micros: u64,
    /// The threads' total time on finished jobs, µs.
    pub busy_micros: u64,
}

/// The password-hashing pool's load, over the same ten seconds as the rates.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HashPoolFigures {
    /// Hashing threads.
    pub workers: usize,
    /// Jobs waiting for a thread now (logins and password changes; when the queue is
    /// full they get 503).
    pub queued: usize,
    /// Jobs started per second.
    pub jobs_per_sec: f64,
    /// Their mean wait for a thread, milliseconds (0 with no job in the window).
    pub mean_wait_ms: f64,
    /// Share of the threads' time spent hashing, 0 to 1 (jobs still running count when
    /// they finish).
    pub busy: f64,
}

/// The counters.
#[derive(Default)]
pub(crate) struct Live {
    seen: [Wheel; 4],
    events: AtomicU64,
    logins: AtomicU64,
    refused: AtomicU64,
    /// Risk decisions: allow, require a second factor, deny.
    risk: [AtomicU64; 3],
    /// The day (since 1970) and the sign-ups counted on it.
    signups: AtomicU64,
    samples: Mutex<VecDeque<Sample>>,
}

/// What the operators see.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LiveFigures {
    /// When.
    pub at: Timestamp,
    /// Users seen in the last five minutes, by tier.
    pub active_users: std::collections::BTreeMap<UserTier, u64>,
    /// Their sum.
    pub active_total: u64,
    /// Activity events per second (the last ten seconds).
    pub events_per_sec: f64,
    /// Successful logins per second.
    pub logins_per_sec: f64,
    /// Refused logins per second (wrong credentials, locked, risk, a failed factor).
    pub refused_logins_per_sec: f64,
    /// Users created today (UTC) since this server started.
    pub signups_today: u64,
    /// User actors live in memory now.
    pub live_actors: usize,
    /// The risk engine's decisions per second, on logins and on sessions used from a
    /// new network.
    pub risk_decisions_per_sec: RiskRates,
    /// The password-hashing pool.
    pub hash_pool: HashPoolFigures,
}

/// Risk decisions per second, by decision (the last ten seconds).
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RiskRates {
    /// Let through.
    pub allow: f64,
    /// Asked for a second factor.
    pub require_mfa: f64,
    /// Refused.
    pub deny: f64,
}

fn risk_slot(d: RiskDecision) -> usize {
    match d {
        RiskDecision::Allow => 0,
        RiskDecision::RequireMfa => 1,
        RiskDecision::Deny => 2,
    }
}

impl Live {
    /// A user of `tier`, last seen in minute `previous`, is seen at `now`.
    pub fn seen(&self, tier: UserTier, previous: Option<u32>, now: u32) {
        self.seen[tier.index()].seen(previous, now);
    }

    /// A user last seen in minute `minute` as a user of `tier` left the tier.
    pub fn unseen(&self, tier: UserTier, minute: u32) {
        self.seen[tier.index()].unseen(minute);
    }

    /// `n` activity events were counted.
    pub fn events(&self, n: u64) {
        self.events.fetch_add(n, Ordering::Relaxed);
    }

    /// A login ended: in a session, or refused.
    pub fn login(&self, succeeded: bool) {
        let c = if succeeded {
            &self.logins
        } else {
            &self.refused
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The risk engine decided `d`.
    pub fn risk(&self, d: RiskDecision) {
        self.risk[risk_slot(d)].fetch_add(1, Ordering::Relaxed);
    }

    /// A user was created at `now`.
    pub fn signup(&self, now: Timestamp) {
        let day = u64::from(crate::domain::history::day_of(now));
        let _ = self
            .signups
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(if v >> 32 == day {
                    v + 1
                } else {
                    (day << 32) | 1
                })
            });
    }

    /// The figures at `now`; `live_actors` from the directory, `pool` from the hashing
    /// pool.
    pub fn figures(&self, now: Timestamp, live_actors: usize, pool: PoolReading) -> LiveFigures {
        let minute = minute_of(now);
        let active_users: std::collections::BTreeMap<UserTier, u64> = UserTier::ALL
            .iter()
            .map(|t| (*t, self.seen[t.index()].active(minute)))
            .collect();
        let current = Sample {
            at: now.as_millis(),
            events: self.events.load(Ordering::Relaxed),
            logins: self.logins.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            risk: std::array::from_fn(|i| self.risk[i].load(Ordering::Relaxed)),
            pool,
        };
        let oldest = match self.samples.lock() {
            Ok(mut ring) => {
                while ring
                    .front()
                    .is_some_and(|s| s.at < current.at - RATE_WINDOW_MS)
                {
                    ring.pop_front();
                }
                if ring.back().is_none_or(|s| s.at + 1000 <= current.at) {
                    ring.push_back(current);
                }
                ring.front().copied().unwrap_or(current)
            }
            Err(_) => current,
        };
        let secs = (current.at - oldest.at) as f64 / 1000.0;
        let rate = |a: u64, b: u64| {
            if secs > 0.0 {
                a.saturating_sub(b) as f64 / secs
            } else {
                0.0
            }
        };
        let (now_pool, then) = (current.pool, oldest.pool);
        let jobs = now_pool.jobs.saturating_sub(then.jobs);
        let micros = |a: u64, b: u64| a.saturating_sub(b) as f64;
        let hash_pool = HashPoolFigures {
            workers: now_pool.workers,
            queued: now_pool.queued,
            jobs_per_sec: rate(now_pool.jobs, then.jobs),
            mean_wait_ms: if jobs > 0 {
                micros(now_pool.waited_micros, then.waited_micros) / 1000.0 / jobs as f64
            } else {
                0.0
            },
            busy: if secs > 0.0 && now_pool.workers > 0 {
                (micros(now_pool.busy_micros, then.busy_micros)
                    / (secs * 1e6 * now_pool.workers as f64))
                    .min(1.0)
            } else {
                0.0
            },
        };
        let signups = self.signups.load(Ordering::Acquire);
        let today = u64::from(crate::domain::history::day_of(now));
        LiveFigures {
            at: now,
            active_total: active_users.values().sum(),
            active_users,
            events_per_sec: rate(current.events, oldest.events),
            logins_per_sec: rate(current.logins, oldest.logins),
            refused_logins_per_sec: rate(current.refused, oldest.refused),
            signups_today: if signups >> 32 == today {
                signups & u64::from(u32::MAX)
            } else {
                0
            },
            live_actors,
            risk_decisions_per_sec: RiskRates {
                allow: rate(current.risk[0], oldest.risk[0]),
                require_mfa: rate(current.risk[1], oldest.risk[1]),
                deny: rate(current.risk[2], oldest.risk[2]),
            },
            hash_pool,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const IDLE: PoolReading = PoolReading {
        workers: 2,
        queued: 0,
        jobs: 0,
        waited_micros: 0,
        busy_micros: 0,
    };

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 / MIN * MIN + ms)
    }

    #[test]
    fn a_user_counts_once_while_seen_and_leaves_after_five_minutes() {
        let live = Live::default();
        let m0 = minute_of(at(0));
        // Two users; the first is seen again in later minutes.
        live.seen(UserTier::Free, None, m0);
        live.seen(UserTier::Free, None, m0);
        live.seen(UserTier::Free, Some(m0), m0 + 2);
        live.seen(UserTier::Vip, None, m0 + 1);
        let f = live.figures(at(2 * MIN), 0, IDLE);
        assert_eq!(f.active_users[&UserTier::Free], 2);
        assert_eq!(f.active_users[&UserTier::Vip], 1);
        assert_eq!(f.active_total, 3);
        // Minute m0 + 5: the second user (last seen in m0) has left the window.
        let f = live.figures(at(5 * MIN), 0, IDLE);
        assert_eq!(f.active_users[&UserTier::Free], 1);
        // Much later, the wheel's old slots do not count, and are reused cleanly.
        assert_eq!(live.figures(at(30 * MIN), 0, IDLE).active_total, 0);
        live.seen(UserTier::Free, Some(m0 + 2), m0 + 30);
        assert_eq!(
            live.figures(at(30 * MIN), 0, IDLE).active_users[&UserTier::Free],
            1
        );
    }

    #[test]
    fn rates_and_signups() {
        let live = Live::default();
        assert_eq!(live.figures(at(0), 7, IDLE).live_actors, 7);
        live.events(100);
        live.login(true);
        live.login(true);
        live.login(false);
        live.signup(at(0));
        live.signup(at(0));
        for d in [RiskDecision::Allow, RiskDecision::Allow, RiskDecision::Deny] {
            live.risk(d);
        }
        let f = live.figures(at(4000), 0, IDLE);
        let r = &f.risk_decisions_per_sec;
        assert_eq!((r.allow, r.require_mfa, r.deny), (0.5, 0.0, 0.25));
        assert_eq!(f.events_per_sec, 25.0);
        assert_eq!(f.logins_per_sec, 0.5);
        assert_eq!(f.refused_logins_per_sec, 0.25);
        assert_eq!(f.signups_today, 2);
        // Tomorrow, the count starts again.
        assert_eq!(live.figures(at(24 * 60 * MIN), 0, IDLE).signups_today, 0);
    }

    #[test]
    fn the_hash_pools_load_over_the_window() {
        let live = Live::default();
        let f = live.figures(at(0), 0, IDLE);
        assert_eq!((f.hash_pool.jobs_per_sec, f.hash_pool.busy), (0.0, 0.0));
        // Four seconds later: 40 jobs that waited 200 ms in all and kept the two
        // threads busy for 6 of their 8 seconds; 3 jobs wait now.
        let busy = PoolReading {
            workers: 2,
            queued: 3,
            jobs: 40,
            waited_micros: 200_000,
            busy_micros: 6_000_000,
        };
        let p = live.figures(at(4000), 0, busy).hash_pool;
        assert_eq!(p.workers, 2);
        assert_eq!(p.queued, 3);
        assert_eq!(p.jobs_per_sec, 10.0);
        assert_eq!(p.mean_wait_ms, 5.0);
        assert_eq!(p.busy, 0.75);
        // Once the busy seconds leave the ten-second window, the pool reads idle again.
        let p = live.figures(at(20_000), 0, busy).hash_pool;
        assert_eq!((p.jobs_per_sec, p.mean_wait_ms, p.busy), (0.0, 0.0, 0.0));
    }
}
