//! A seeded population simulator with a planted truth, for tests, benches and demos: no
//! real listening data ships with Roster, so quality is measured against a process whose
//! answer is known.
//!
//! Each user has a tier, a sign-up day within the simulated span, a daily chance of
//! being active (`p`, lower on Free, spread wide), a listening habit (the hour it plays
//! around and how much), and — for 40% of users — a lapse: from a day drawn uniformly
//! between its sign-up and 60 days after today, its daily chance decays as
//! `p · exp(−days since / 4)`. Churn in the horizon is therefore partly visible before
//! the cutoff (a lapse already begun) and partly not (one still to come).
//!
//! The **oracle** is the exact probability of no activity in the label window given
//! what is true at the cutoff: the user's `p`, and whether and when its lapse began; a
//! lapse not yet begun enters through its known distribution, not its drawn day. No
//! model seeing only the history can beat it on average, so a model's AUC is judged
//! against the oracle's on the same users.

use rand::rngs::Xoshiro256PlusPlus as Rng64;
use rand::{RngExt, SeedableRng};

use crate::domain::activity::{ActivityEvent, Platform};
use crate::domain::history::{ActivityHistory, day_of, day_start};
use crate::domain::ids::UserId;
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;

/// Share of users who lapse at some point.
const LAPSE_SHARE: f64 = 0.4;

/// Days after today a lapse may still be drawn for.
const LAPSE_TAIL_DAYS: u32 = 60;

/// How fast a lapsed user's activity fades (days).
const LAPSE_DECAY_DAYS: f64 = 4.0;

/// What to simulate.
#[derive(Clone, Copy, Debug)]
pub struct SimConfig {
    /// Users.
    pub users: usize,
    /// The seed: the same seed gives the same population.
    pub seed: u64,
    /// Today (the simulated history ends the day before).
    pub now: Timestamp,
    /// Sign-ups spread over this many days before today.
    pub days: u32,
    /// The churn horizon the oracle answers for.
    pub horizon_days: u32,
    /// Whether each user keeps its events (to import them into a server), besides the
    /// history they make.
    pub keep_events: bool,
}

/// A planted listening habit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Habit {
    /// The hour of day (UTC) plays cluster around.
    pub hour: u8,
    /// Plays on an active day, on average.
    pub plays_per_day: f64,
    /// Share of started tracks skipped.
    pub skip_share: f64,
}

/// One simulated user with its truth.
#[derive(Clone, Debug)]
pub struct SimUser {
    /// Its id (drawn from the seed).
    pub id: UserId,
    /// Its tier.
    pub tier: UserTier,
    /// Its sign-up.
    pub created_at: Timestamp,
    /// Its history until yesterday.
    pub history: ActivityHistory,
    /// The events of that history, oldest first (only with `keep_events`).
    pub events: Vec<ActivityEvent>,
    /// The daily chance of activity before any lapse.
    pub p: f64,
    /// The day its lapse began or will begin, if it lapses.
    pub lapse_day: Option<u32>,
    /// Its habit.
    pub habit: Habit,
    /// The oracle's probability of no activity from the cutoff to today (`None` for a
    /// user who signed up after the cutoff).
    pub churn_probability: Option<f64>,
}

impl SimUser {
    /// Whether the lapse had begun by the cutoff (the user was "lapsing" when observed).
    pub fn lapsing_at(&self, cutoff: u32) -> bool {
        self.lapse_day.is_some_and(|l| l < cutoff)
    }
}

/// Box–Muller: one standard normal draw.
fn normal(rng: &mut Rng64) -> f64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Knuth's Poisson draw (small means only).
fn poisson(rng: &mut Rng64, mean: f64) -> u32 {
    let limit = (-mean).exp();
    let (mut k, mut p) = (0, 1.0);
    loop {
        p *= rng.random::<f64>();
        if p <= limit || k > 1000 {
            return k;
        }
        k += 1;
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// The daily chance of activity on `day`.
fn chance(p: f64, lapse: Option<u32>, day: u32) -> f64 {
    match lapse {
        Some(l) if day >= l => p * (-(f64::from(day - l)) / LAPSE_DECAY_DAYS).exp(),
        _ => p,
    }
}

/// The oracle: the probability of no activity in days `[cutoff, end)` given the truth at
/// the cutoff (see the module documentation).
fn oracle(p: f64, lapse: Option<u32>, created: u32, cutoff: u32, end: u32) -> f64 {
    let silent = |from: u32, lapse: Option<u32>| -> f64 {
        (from..end).map(|d| 1.0 - chance(p, lapse, d)).product()
    };
    if let Some(l) = lapse.filter(|l| *l < cutoff) {
        return silent(cutoff, Some(l));
    }
    // Not lapsed by the cutoff: the lapse day is unknown, uniform over its range.
    let range = f64::from(end + LAPSE_TAIL_DAYS - created);
    let per_day = LAPSE_SHARE / range;
    let not_before = (1.0 - LAPSE_SHARE) + per_day * f64::from(end + LAPSE_TAIL_DAYS - cutoff);
    let none_in_window = (1.0 - LAPSE_SHARE) + per_day * f64::from(LAPSE_TAIL_DAYS);
    let mut total = none_in_window / not_before * silent(cutoff, None);
    for k in cutoff..end {
        total += per_day / not_before * silent(cutoff, Some(k));
    }
    total
}

/// The population, one user at a time (deterministic for a seed).
pub fn simulate(cfg: SimConfig) -> impl Iterator<Item = SimUser> {
    let end = day_of(cfg.now);
    let cutoff = end.saturating_sub(cfg.horizon_days);
    (0..cfg.users).map(move |i| {
        let mut rng =
            Rng64::seed_from_u64(cfg.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut id = [0u8; 16];
        rng.fill(&mut id);
        let (tier, mean) = match rng.random::<f64>() {
            r if r < 0.6 => (UserTier::Free, -1.0),
            r if r < 0.85 => (UserTier::Premium, -0.2),
            r if r < 0.95 => (UserTier::Enterprise, 0.0),
            _ => (UserTier::Vip, 0.3),
        };
        let p = sigmoid(mean + 1.3 * normal(&mut rng)).clamp(0.01, 0.97);
        let created = end.saturating_sub(1 + rng.random_range(0..cfg.days.max(1)));
        let lapse = (rng.random::<f64>() < LAPSE_SHARE)
            .then(|| created + rng.random_range(0..end + LAPSE_TAIL_DAYS - created));
        let habit = Habit {
            hour: [8u8, 13, 18, 21, 23][rng.random_range(0..5)],
            plays_per_day: 2.0 + 8.0 * p,
            skip_share: rng.random_range(0.05..0.4),
        };
        let mut history = ActivityHistory::default();
        let (mut day, mut kept) = (Vec::new(), Vec::new());
        for d in created..end {
            if rng.random::<f64>() >= chance(p, lapse, d) {
                continue;
            }
            day.clear();
            day_events(&mut rng, d, &habit, &mut day);
            history.record(&day);
            if cfg.keep_events {
                kept.append(&mut day);
            }
        }
        let churn_probability = (created < cutoff).then(|| oracle(p, lapse, created, cutoff, end));
        SimUser {
            id: UserId::from_bytes(id),
            tier,
            created_at: day_start(created),
            history,
            events: kept,
            p,
            lapse_day: lapse,
            habit,
            churn_probability,
        }
    })
}

/// One active day's events.
fn day_events(rng: &mut Rng64, day: u32, habit: &Habit, out: &mut Vec<ActivityEvent>) {
    let start = day_start(day).as_millis();
    let at = |rng: &mut Rng64| {
        let hour = (i64::from(habit.hour) + rng.random_range(-2..=2)).rem_euclid(24);
        Timestamp::from_millis(start + hour * 3_600_000 + rng.random_range(0..3_600_000))
    };
    out.push(ActivityEvent::AppOpened {
        at: at(rng),
        platform: [Platform::Ios, Platform::Android, Platform::Web][rng.random_range(0..3)],
    });
    let plays = 1 + poisson(rng, habit.plays_per_day - 1.0);
    for _ in 0..plays {
        let track_id = format!("t{}", rng.random_range(0..500u32));
        if rng.random::<f64>() < habit.skip_share {
            out.push(ActivityEvent::TrackSkipped {
                track_id,
                at: at(rng),
                position_ms: rng.random_range(1_000..30_000),
            });
        } else {
            out.push(ActivityEvent::TrackPlayed {
                track_id,
                at: at(rng),
                duration_ms: rng.random_range(120_000..300_000),
            });
        }
    }
    for _ in 0..poisson(rng, 0.1 * f64::from(plays)) {
        out.push(ActivityEvent::TrackLiked {
            track_id: format!("t{}", rng.random_range(0..500u32)),
            at: at(rng),
        });
    }
    for _ in 0..poisson(rng, 0.8) {
        out.push(ActivityEvent::Searched { at: at(rng) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(users: usize, seed: u64) -> SimConfig {
        SimConfig {
            users,
            seed,
            now: Timestamp::from_millis(20_800 * 86_400_000 + 43_200_000),
            days: 150,
            horizon_days: 14,
            keep_events: false,
        }
    }

    #[test]
    fn a_seed_is_a_population() {
        let a: Vec<_> = simulate(cfg(30, 1)).map(|u| (u.id, u.history)).collect();
        let b: Vec<_> = simulate(cfg(30, 1)).map(|u| (u.id, u.history)).collect();
        let c: Vec<_> = simulate(cfg(30, 2)).map(|u| u.id).collect();
        assert_eq!(a, b);
        assert_ne!(a[0].0, c[0]);
        // The events kept are the history's.
        for u in simulate(SimConfig {
            keep_events: true,
            ..cfg(5, 1)
        }) {
            let mut h = ActivityHistory::default();
            h.record(&u.events);
            assert_eq!(h, u.history);
        }
    }

    #[test]
    fn the_oracle_is_a_probability_and_matches_the_frequency() {
        // Over many users, the mean oracle probability matches the churned share.
        let (mut sum, mut churned, mut n) = (0.0, 0u32, 0u32);
        for u in simulate(cfg(3_000, 9)) {
            let Some(p) = u.churn_probability else {
                continue;
            };
            assert!((0.0..=1.0).contains(&p));
            sum += p;
            n += 1;
            churned += u32::from(!u.history.active_between(20_786, 20_800));
        }
        let (mean, share) = (sum / f64::from(n), f64::from(churned) / f64::from(n));
        assert!(
            (mean - share).abs() < 0.03,
            "oracle {mean:.3} vs observed {share:.3}"
        );
        // A user who never lapses and is active every other day almost never churns.
        assert!(oracle(0.5, None, 20_600, 20_786, 20_800) < 0.01);
        assert!(oracle(0.5, Some(20_700), 20_600, 20_786, 20_800) > 0.9);
    }
}
