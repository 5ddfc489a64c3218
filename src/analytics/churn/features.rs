//! The churn model's features: what a user's history says about it as of a cutoff day,
//! from the days before the cutoff only.

use serde::{Deserialize, Serialize};

use crate::domain::history::{ActivityHistory, day_of};
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;

/// Longest inactivity the features tell apart (days).
const MAX_QUIET_DAYS: u32 = 120;

/// What a feature is about, so that an explanation can say "you have not been active
/// lately" whichever of the recency features carried it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// How long ago the user was last active, judged against its usual rhythm.
    Recency,
    /// How often it is active.
    Frequency,
    /// How much it does when active.
    Depth,
    /// How many kinds of things it does.
    Breadth,
    /// Whether it does more or less than before.
    Trend,
    /// How long it has been a member.
    Tenure,
    /// What it pays for.
    Tier,
}

/// A feature of the model.
#[derive(Clone, Copy, Debug)]
pub struct Feature {
    /// Its name in model cards and reasons.
    pub name: &'static str,
    /// What it is about.
    pub group: Group,
    /// What it measures.
    pub description: &'static str,
}

/// The features, in the model's order.
pub const FEATURES: [Feature; 19] = [
    Feature {
        name: "days_since_active",
        group: Group::Recency,
        description: "days from the last active day to the last day observed (since sign-up if never active; at most 120)",
    },
    Feature {
        name: "log_days_since_active",
        group: Group::Recency,
        description: "ln(1 + days_since_active): recency on a scale where the first quiet days weigh most",
    },
    Feature {
        name: "active_days_7",
        group: Group::Recency,
        description: "active days among the last 7",
    },
    Feature {
        name: "active_days_28",
        group: Group::Frequency,
        description: "active days among the last 28",
    },
    Feature {
        name: "active_days_56",
        group: Group::Frequency,
        description: "active days among the last 56",
    },
    Feature {
        name: "quiet_day_log_rate",
        group: Group::Frequency,
        description: "ln(1 − p̂), p̂ = (active days of the last 112 + ½) / (days observed of them before the current quiet spell + 1): the log-chance of a quiet day while the user was active",
    },
    Feature {
        name: "quiet_surprise",
        group: Group::Recency,
        description: "days_since_active × −ln(1 − p̂): how unlikely the current quiet spell is for this user (large: it has probably lapsed)",
    },
    Feature {
        name: "quiet_surprise_capped",
        group: Group::Recency,
        description: "quiet_surprise capped at 6: past that the user has lapsed, however long ago",
    },
    Feature {
        name: "alive_churn_logit",
        group: Group::Recency,
        description: "logit of the chance of no activity in the horizon under a buy-till-you-die model: daily activity p̂ while alive, a daily dropout hazard of 1/200, the current quiet spell as evidence",
    },
    Feature {
        name: "plays_28",
        group: Group::Depth,
        description: "ln(1 + plays in the last 28 days)",
    },
    Feature {
        name: "minutes_per_active_day_28",
        group: Group::Depth,
        description: "listening minutes per active day, last 28 days",
    },
    Feature {
        name: "skip_rate_28",
        group: Group::Depth,
        description: "skips / (plays + skips), last 28 days",
    },
    Feature {
        name: "likes_28",
        group: Group::Depth,
        description: "ln(1 + likes in the last 28 days)",
    },
    Feature {
        name: "searches_28",
        group: Group::Breadth,
        description: "ln(1 + searches in the last 28 days)",
    },
    Feature {
        name: "app_opens_28",
        group: Group::Breadth,
        description: "ln(1 + app opens in the last 28 days)",
    },
    Feature {
        name: "trend_14",
        group: Group::Trend,
        description: "(a − b) / (a + b + 1): active days of the last 14 (a) against the 14 before (b)",
    },
    Feature {
        name: "kinds_used_28",
        group: Group::Breadth,
        description: "kinds of activity used in the last 28 days (of 6)",
    },
    Feature {
        name: "account_age_days",
        group: Group::Tenure,
        description: "ln(1 + days since sign-up)",
    },
    Feature {
        name: "paid_tier",
        group: Group::Tier,
        description: "1 for Premium, Enterprise and VIP, 0 for Free",
    },
];

/// The dropout hazard per day of the buy-till-you-die feature.
const DROPOUT_HAZARD: f64 = 1.0 / 200.0;

/// The horizon the buy-till-you-die feature looks ahead (days); the model's own horizon
/// may differ, the feature's rank is what matters.
const ALIVE_HORIZON: i32 = 14;

/// The chance of no activity in the next [`ALIVE_HORIZON`] days for a user active on a
/// fraction `p` of its days while "alive", who may drop out any day with hazard `h`, and
/// has now been quiet `q` days (BG/NBD's reasoning on days): `P(alive | quiet q)` by
/// Bayes, then silence ahead whether alive or not.
fn alive_churn(p: f64, q: u32, h: f64) -> f64 {
    let ab = (1.0 - p) * (1.0 - h);
    let stay = ab.powi(q.min(10_000) as i32);
    let died = h * (1.0 - stay) / (1.0 - ab);
    let alive = stay / (stay + died);
    let silent_if_alive = ab.powi(ALIVE_HORIZON) + h * (1.0 - ab.powi(ALIVE_HORIZON)) / (1.0 - ab);
    (1.0 - alive) + alive * silent_if_alive
}

/// How many features there are.
pub const N_FEATURES: usize = FEATURES.len();

/// The index of feature `name`.
pub fn index_of(name: &str) -> Option<usize> {
    FEATURES.iter().position(|f| f.name == name)
}

fn ln1p(v: u32) -> f64 {
    f64::from(v).ln_1p()
}

/// The features of a user as of `cutoff` (days before it are observed; the cutoff day
/// and later are not).
pub fn features(
    h: &ActivityHistory,
    created_at: Timestamp,
    tier: UserTier,
    cutoff: u32,
) -> [f64; N_FEATURES] {
    let created = day_of(created_at);
    let observed = cutoff.saturating_sub(created);
    let back = |days: u32| cutoff.saturating_sub(days);
    let quiet = match h.last_active_day_before(cutoff) {
        Some(d) if d >= created => cutoff - 1 - d,
        _ => observed,
    }
    .min(MAX_QUIET_DAYS);
    let [w7, w14, w28, prior14, w56, w112] = h.windows([
        (back(7), cutoff),
        (back(14), cutoff),
        (back(28), cutoff),
        (back(28), back(14)),
        (back(56), cutoff),
        (back(112), cutoff),
    ]);
    // The rate while active: the current quiet spell is what is being judged, so it is
    // not counted against the rate.
    let seen = observed.min(112).saturating_sub(quiet);
    let p_hat = ((f64::from(w112.active_days) + 0.5) / (f64::from(seen) + 1.0)).min(0.99);
    let s = &w28.sum;
    let started = u32::from(s.plays) + u32::from(s.skips);
    let (a, b) = (f64::from(w14.active_days), f64::from(prior14.active_days));
    let surprise = -f64::from(quiet) * (1.0 - p_hat).ln();
    let churn = alive_churn(p_hat, quiet, DROPOUT_HAZARD).clamp(1e-6, 1.0 - 1e-6);
    [
        f64::from(quiet),
        f64::from(quiet).ln_1p(),
        f64::from(w7.active_days),
        f64::from(w28.active_days),
        f64::from(w56.active_days),
        (1.0 - p_hat).ln(),
        surprise,
        surprise.min(6.0),
        (churn / (1.0 - churn)).ln(),
        ln1p(s.plays.into()),
        if w28.active_days == 0 {
            0.0
        } else {
            f64::from(s.listening_secs) / 60.0 / f64::from(w28.active_days)
        },
        if started == 0 {
            0.0
        } else {
            f64::from(s.skips) / f64::from(started)
        },
        ln1p(s.likes.into()),
        ln1p(s.searches.into()),
        ln1p(s.app_opens.into()),
        (a - b) / (a + b + 1.0),
        f64::from(s.kinds_used()),
        ln1p(observed),
        f64::from(u8::from(tier != UserTier::Free)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::activity::ActivityEvent;

    const DAY: i64 = 86_400_000;

    #[test]
    fn features_by_hand_and_nothing_from_after_the_cutoff() {
        let cutoff = 20_800;
        let created = Timestamp::from_millis(i64::from(cutoff - 100) * DAY);
        let mut h = ActivityHistory::default();
        for d in [cutoff - 20, cutoff - 10, cutoff - 3, cutoff + 1] {
            let at = Timestamp::from_millis(i64::from(d) * DAY + 5_000_000);
            h.record(&[
                ActivityEvent::TrackPlayed {
                    track_id: "t".into(),
                    at,
                    duration_ms: 600_000,
                },
                ActivityEvent::TrackSkipped {
                    track_id: "u".into(),
                    at,
                    position_ms: 1,
                },
            ]);
        }
        let f = features(&h, created, UserTier::Premium, cutoff);
        let get = |n: &str| f[index_of(n).unwrap()];
        assert_eq!(
            get("days_since_active"),
            2.0,
            "the day before the cutoff is day 0"
        );
        assert_eq!(get("active_days_7"), 1.0);
        assert_eq!(get("active_days_28"), 3.0);
        assert_eq!(get("active_days_56"), 3.0);
        let rate = (1.0 - 3.5 / 99.0f64).ln();
        assert!((get("quiet_day_log_rate") - rate).abs() < 1e-12);
        assert!((get("quiet_surprise") + 2.0 * rate).abs() < 1e-12);
        assert!((get("plays_28") - 3.0f64.ln_1p()).abs() < 1e-12);
        assert_eq!(get("minutes_per_active_day_28"), 10.0);
        assert_eq!(get("skip_rate_28"), 0.5);
        assert_eq!(get("trend_14"), (2.0 - 1.0) / 4.0);
        assert_eq!(get("kinds_used_28"), 1.0, "a skip is not a kind of its own");
        assert!((get("account_age_days") - 100.0f64.ln_1p()).abs() < 1e-12);
        assert_eq!(get("paid_tier"), 1.0);
        // Someone who never did anything has been quiet since sign-up.
        let never = features(&ActivityHistory::default(), created, UserTier::Free, cutoff);
        assert_eq!(never[0], 100.0);
        assert_eq!(never[index_of("paid_tier").unwrap()], 0.0);
    }
}
