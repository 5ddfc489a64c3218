//! Tier analysis (`roster analyze-tiers`): which users are candidates for a move between
//! tiers, and why — from one read of the stored population, the tiers' policies and the
//! churn model in force. Only users who consent to analytics are analysed: an upgrade
//! offer is profiling.
//!
//! Four kinds, each user judged on the last [`WINDOW_DAYS`] days (`docs/automation.md`):
//!
//! | kind | who | signals (any one) |
//! |---|---|---|
//! | `upgrade` | Free | playlists or storage at ≥ 80% of the tier's quota; requests refused for the tier's rate on ≥ 3 of the days; active on ≥ 16 of the days |
//! | `downgrade` | paid, signed up ≥ 28 days ago | active on ≤ 2 of the days; for Enterprise and VIP also none of the tier's own features (those the tier below lacks) used |
//! | `enterprise_fit` | Premium | a feature Enterprise users use markedly more (see below) used at least as often as the Enterprise median |
//! | `retention` | paid | the churn model's probability in its high band (≥ 0.6), with its top reasons |
//!
//! An **Enterprise-like feature** is one Premium and Enterprise share (Free lacks it)
//! that a recent use is at least twice as common among Enterprise users as among
//! Premium ones, with at least [`MIN_BASELINE`] Enterprise users using it; its baseline
//! is the Enterprise users' median rate. A rate is lifetime uses per week since sign-up
//! (at least one week), counted only when the feature was used in the window.
//!
//! A user may be a candidate of several kinds (a quiet paid user is often also at risk).
//! Each candidate has a `score` for ordering within its kind: the largest ratio of a
//! signal to its threshold (for retention, the probability).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Member;
use super::churn::ChurnModel;
use crate::domain::history::day_of;
use crate::domain::ids::UserId;
use crate::domain::profile::UsageCounters;
use crate::domain::tier::{Limit, TierPolicy, UserTier};
use crate::domain::time::Timestamp;

/// Days a user is judged on.
pub const WINDOW_DAYS: u32 = 28;

/// Share of a quota that makes a Free user an upgrade candidate.
pub const QUOTA_NEAR: f64 = 0.8;

/// Active days in the window that make a Free user an upgrade candidate.
pub const ENGAGED_DAYS: u32 = 16;

/// Days in the window with a request refused for the tier's rate that make a Free user
/// an upgrade candidate.
pub const LIMITED_DAYS: u32 = 3;

/// Active days in the window at or below which a paid user uses little of its tier.
pub const QUIET_DAYS: u32 = 2;

/// Enterprise users who must use a feature for it to have a baseline.
pub const MIN_BASELINE: usize = 5;

/// The churn probability of the high band.
pub const HIGH_RISK: f64 = 0.6;

/// Most churn reasons a retention candidate lists.
const RISK_REASONS: usize = 3;

/// What move a candidate is for.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A Free user outgrowing its tier.
    Upgrade,
    /// A paid user using little of its tier (a downgrade, or a churn, coming).
    Downgrade,
    /// A Premium user using the tier like Enterprise users do.
    EnterpriseFit,
    /// A paid user the churn model gives a high probability of churning: a retention
    /// offer.
    Retention,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 4] = [
        Kind::Upgrade,
        Kind::Downgrade,
        Kind::EnterpriseFit,
        Kind::Retention,
    ];

    /// Its name in JSON and CSV.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Upgrade => "upgrade",
            Kind::Downgrade => "downgrade",
            Kind::EnterpriseFit => "enterprise_fit",
            Kind::Retention => "retention",
        }
    }
}

/// One signal behind a candidate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Signal {
    /// What was measured: `playlists`, `storage`, `rate_limited_days`, `active_days`,
    /// `own_features_used`, `feature:<name>`, or a churn feature `churn:<name>`.
    pub signal: String,
    /// Its value for the user, in its own units.
    pub value: f64,
    /// The threshold it met (a churn reason: its contribution to the log-odds).
    pub threshold: f64,
    /// The reason in words.
    pub detail: String,
}

/// A user with a suggested move.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Candidate {
    /// The move.
    pub kind: Kind,
    /// The user.
    pub user_id: UserId,
    /// Its tier now.
    pub tier: UserTier,
    /// The tier suggested (none for a retention offer).
    pub suggested_tier: Option<UserTier>,
    /// Strength, for ordering within the kind (see the module documentation).
    pub score: f64,
    /// Why, strongest first.
    pub reasons: Vec<Signal>,
}

/// How many candidates of a kind were found, and how many are listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KindCount {
    /// The kind.
    pub kind: Kind,
    /// Candidates found.
    pub found: u64,
    /// Candidates listed (the strongest, up to the limit).
    pub listed: u64,
}

/// An Enterprise-like feature and its baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeatureBaseline {
    /// The feature.
    pub feature: String,
    /// Share of Enterprise users who used it in the window.
    pub enterprise_share: f64,
    /// Share of Premium users who used it in the window.
    pub premium_share: f64,
    /// The Enterprise users' median rate (uses a week).
    pub enterprise_median_per_week: f64,
}

/// The analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TierAnalysis {
    /// When it was made.
    pub generated_at: Timestamp,
    /// The days judged on.
    pub window_days: u32,
    /// Stored users read.
    pub users: u64,
    /// Users analysed (consenting to analytics).
    pub analysed: u64,
    /// Analysed users by tier.
    pub analysed_by_tier: BTreeMap<UserTier, u64>,
    /// The churn model used for retention candidates (`null`: none in force, no
    /// retention candidates).
    pub churn_model_version: Option<u64>,
    /// The Enterprise-like features found.
    pub enterprise_like_features: Vec<FeatureBaseline>,
    /// Candidates found and listed per kind.
    pub kinds: Vec<KindCount>,
    /// The candidates: by kind, strongest first within a kind.
    pub candidates: Vec<Candidate>,
}

/// A Premium user's recent uses of the shared features: (feature index, uses a week).
type Rates = Vec<(u8, f32)>;

/// Builds the analysis from members handed in one at a time.
pub struct Analyzer {
    now: Timestamp,
    from: u32,
    end: u32,
    policies: [TierPolicy; 4],
    model: Option<std::sync::Arc<ChurnModel>>,
    limit: usize,
    users: u64,
    analysed: BTreeMap<UserTier, u64>,
    /// Features Premium and Enterprise share and Free lacks.
    shared: Vec<String>,
    /// Per shared feature: Enterprise users' rates.
    enterprise_rates: Vec<Vec<f32>>,
    /// Per shared feature: Premium users using it.
    premium_users: Vec<u64>,
    /// Premium users with a recent use of a shared feature.
    premium: Vec<(UserId, Rates)>,
    found: [u64; 4],
    best: [Vec<Candidate>; 4],
}

impl Analyzer {
    /// An analysis as of `now` under the tiers' `policies` (indexed by
    /// [`UserTier::index`]), with the churn model in force if any, listing at most
    /// `limit` candidates of each kind.
    pub fn new(
        now: Timestamp,
        policies: [TierPolicy; 4],
        model: Option<std::sync::Arc<ChurnModel>>,
        limit: usize,
    ) -> Self {
        let end = day_of(now) + 1;
        let [free, premium, enterprise, _] = &policies;
        let shared: Vec<String> = premium
            .features
            .iter()
            .filter(|f| enterprise.has_feature(f) && !free.has_feature(f))
            .take(usize::from(u8::MAX))
            .cloned()
            .collect();
        Self {
            now,
            from: end.saturating_sub(WINDOW_DAYS),
            end,
            model: model.filter(|m| m.fits()),
            limit: limit.max(1),
            users: 0,
            analysed: UserTier::ALL.iter().map(|t| (*t, 0)).collect(),
            enterprise_rates: vec![Vec::new(); shared.len()],
            premium_users: vec![0; shared.len()],
            shared,
            premium: Vec::new(),
            found: [0; 4],
            best: Default::default(),
            policies,
        }
    }

    /// Judges a stored user.
    pub fn add(&mut self, m: &Member<'_>) {
        self.users += 1;
        if !m.consented {
            return;
        }
        *self.analysed.entry(m.tier).or_insert(0) += 1;
        let active = self.window_days(m);
        match m.tier {
            UserTier::Free => self.judge_free(m, m.usage, active),
            paid => {
                self.judge_quiet(m, paid, active);
                self.judge_risk(m);
                if paid != UserTier::Vip {
                    self.note_rates(m, paid);
                }
            }
        }
    }

    fn window_days(&self, m: &Member<'_>) -> u32 {
        m.history.window(self.from, self.end).active_days
    }

    fn judge_free(&mut self, m: &Member<'_>, usage: &UsageCounters, active: u32) {
        let policy = &self.policies[UserTier::Free.index()];
        let mut reasons = Vec::new();
        let quota = |name: &str, used: u64, limit: Limit, unit: &str| {
            let max = limit.value().filter(|n| *n > 0)?;
            let share = used as f64 / max as f64;
            (share >= QUOTA_NEAR).then(|| {
                let signal = Signal {
                    signal: name.to_owned(),
                    value: used as f64,
                    threshold: (QUOTA_NEAR * max as f64).ceil(),
                    detail: format!(
                        "{name}: {used}{unit} of {max}{unit} ({:.0}%)",
                        share * 100.0
                    ),
                };
                (share / QUOTA_NEAR, signal)
            })
        };
        reasons.extend(quota(
            "playlists",
            usage.playlists,
            policy.max_playlists,
            "",
        ));
        let mib = 1024 * 1024;
        let storage = match policy.max_storage_bytes {
            Limit::Limited(n) => Limit::Limited(n / mib),
            Limit::Unlimited => Limit::Unlimited,
        };
        reasons.extend(quota("storage", usage.storage_bytes / mib, storage, " MiB"));
        let (limited, refused) = m.refusals.map_or((0, 0), |r| r.within(self.from, self.end));
        if limited >= LIMITED_DAYS {
            reasons.push((
                f64::from(limited) / f64::from(LIMITED_DAYS),
                Signal {
                    signal: "rate_limited_days".into(),
                    value: f64::from(limited),
                    threshold: f64::from(LIMITED_DAYS),
                    detail: format!(
                        "refused for the tier's request rate on {limited} of the last \
                         {WINDOW_DAYS} days ({refused} requests)"
                    ),
                },
            ));
        }
        if active >= ENGAGED_DAYS {
            reasons.push((
                f64::from(active) / f64::from(ENGAGED_DAYS),
                Signal {
                    signal: "active_days".into(),
                    value: f64::from(active),
                    threshold: f64::from(ENGAGED_DAYS),
                    detail: format!("active on {active} of the last {WINDOW_DAYS} days"),
                },
            ));
        }
        self.offer(m, Kind::Upgrade, Some(UserTier::Premium), reasons);
    }

    fn judge_quiet(&mut self, m: &Member<'_>, tier: UserTier, active: u32) {
        // A user who signed up within the window has not had the time to use much.
        if day_of(m.created_at) > self.from {
            return;
        }
        let below = UserTier::ALL[tier.index() - 1];
        let mut reasons = Vec::new();
        if active <= QUIET_DAYS {
            reasons.push((
                f64::from(QUIET_DAYS + 1) / f64::from(active + 1),
                Signal {
                    signal: "active_days".into(),
                    value: f64::from(active),
                    threshold: f64::from(QUIET_DAYS),
                    detail: format!("active on {active} of the last {WINDOW_DAYS} days"),
                },
            ));
        }
        if matches!(tier, UserTier::Enterprise | UserTier::Vip) {
            let (own, lower) = (&self.policies[tier.index()], &self.policies[below.index()]);
            let own: Vec<&String> = own
                .features
                .iter()
                .filter(|f| !lower.has_feature(f))
                .collect();
            let from = crate::domain::history::day_start(self.from);
            let used = m
                .history
                .features
                .iter()
                .filter(|u| u.last_used_at >= from && own.contains(&&u.feature))
                .count();
            if !own.is_empty() && used == 0 {
                reasons.push((
                    1.0,
                    Signal {
                        signal: "own_features_used".into(),
                        value: 0.0,
                        threshold: 1.0,
                        detail: format!(
                            "none of {}'s own features used in the last {WINDOW_DAYS} days",
                            tier.as_str()
                        ),
                    },
                ));
            }
        }
        self.offer(m, Kind::Downgrade, Some(below), reasons);
    }

    fn judge_risk(&mut self, m: &Member<'_>) {
        let Some(model) = &self.model else { return };
        let p = model.predict(m, self.now);
        if p.probability < HIGH_RISK {
            return;
        }
        let mut reasons = vec![Signal {
            signal: "churn_probability".into(),
            value: p.probability,
            threshold: HIGH_RISK,
            detail: format!(
                "{:.0}% likely to be inactive in the next {} days",
                p.probability * 100.0,
                p.horizon_days
            ),
        }];
        reasons.extend(
            p.reasons
                .iter()
                .filter(|r| r.contribution > 0.0)
                .take(RISK_REASONS)
                .map(|r| Signal {
                    signal: format!("churn:{}", r.feature),
                    value: r.value,
                    threshold: r.contribution,
                    detail: format!(
                        "{} = {:.2} (log-odds +{:.2})",
                        r.feature, r.value, r.contribution
                    ),
                }),
        );
        self.found[Kind::Retention as usize] += 1;
        self.push(Candidate {
            kind: Kind::Retention,
            user_id: m.id,
            tier: m.tier,
            suggested_tier: None,
            score: p.probability,
            reasons,
        });
    }

    /// Notes a Premium or Enterprise user's recent rates of the shared features.
    fn note_rates(&mut self, m: &Member<'_>, tier: UserTier) {
        let from = crate::domain::history::day_start(self.from);
        let weeks = (self.now.since(m.created_at).as_secs_f64() / (7.0 * 86_400.0)).max(1.0);
        let mut rates = Rates::new();
        for u in m.history.features.iter().filter(|u| u.last_used_at >= from) {
            if let Some(k) = self.shared.iter().position(|f| *f == u.feature) {
                rates.push((k as u8, (u.count as f64 / weeks) as f32));
            }
        }
        if rates.is_empty() {
            return;
        }
        if tier == UserTier::Enterprise {
            for (k, r) in rates {
                self.enterprise_rates[usize::from(k)].push(r);
            }
        } else {
            for (k, _) in &rates {
                self.premium_users[usize::from(*k)] += 1;
            }
            self.premium.push((m.id, rates));
        }
    }

    fn offer(
        &mut self,
        m: &Member<'_>,
        kind: Kind,
        suggested_tier: Option<UserTier>,
        mut reasons: Vec<(f64, Signal)>,
    ) {
        if reasons.is_empty() {
            return;
        }
        reasons.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.found[kind as usize] += 1;
        self.push(Candidate {
            kind,
            user_id: m.id,
            tier: m.tier,
            suggested_tier,
            score: reasons[0].0,
            reasons: reasons.into_iter().map(|(_, s)| s).collect(),
        });
    }

    fn push(&mut self, c: Candidate) {
        let best = &mut self.best[c.kind as usize];
        best.push(c);
        // Amortised: sort and cut only when twice as many are held.
        if best.len() >= self.limit.saturating_mul(2) {
            cut(best, self.limit);
        }
    }

    /// The Enterprise-like features with their baselines.
    fn baselines(&mut self) -> Vec<(usize, FeatureBaseline)> {
        let (enterprise, premium) = (
            self.analysed[&UserTier::Enterprise].max(1) as f64,
            self.analysed[&UserTier::Premium].max(1) as f64,
        );
        let mut out = Vec::new();
        for (k, rates) in self.enterprise_rates.iter_mut().enumerate() {
            let e_share = rates.len() as f64 / enterprise;
            let p_share = self.premium_users[k] as f64 / premium;
            if rates.len() < MIN_BASELINE || e_share < 2.0 * p_share {
                continue;
            }
            rates.sort_by(f32::total_cmp);
            let median = f64::from(rates[rates.len() / 2]);
            out.push((
                k,
                FeatureBaseline {
                    feature: self.shared[k].clone(),
                    enterprise_share: e_share,
                    premium_share: p_share,
                    enterprise_median_per_week: median,
                },
            ));
        }
        out
    }

    /// The analysis.
    pub fn finish(mut self) -> TierAnalysis {
        let baselines = self.baselines();
        for (id, rates) in std::mem::take(&mut self.premium) {
            let mut reasons = Vec::new();
            for (k, rate) in rates {
                let Some((_, b)) = baselines.iter().find(|(i, _)| *i == usize::from(k)) else {
                    continue;
                };
                let (rate, median) = (f64::from(rate), b.enterprise_median_per_week);
                if median > 0.0 && rate >= median {
                    reasons.push((
                        rate / median,
                        Signal {
                            signal: format!("feature:{}", b.feature),
                            value: rate,
                            threshold: median,
                            detail: format!(
                                "{}: {rate:.1} uses a week (Enterprise median {median:.1})",
                                b.feature
                            ),
                        },
                    ));
                }
            }
            if reasons.is_empty() {
                continue;
            }
            reasons.sort_by(|a, b| b.0.total_cmp(&a.0));
            self.found[Kind::EnterpriseFit as usize] += 1;
            self.push(Candidate {
                kind: Kind::EnterpriseFit,
                user_id: id,
                tier: UserTier::Premium,
                suggested_tier: Some(UserTier::Enterprise),
                score: reasons[0].0,
                reasons: reasons.into_iter().map(|(_, s)| s).collect(),
            });
        }
        let mut kinds = Vec::new();
        let mut candidates = Vec::new();
        for kind in Kind::ALL {
            let mut best = std::mem::take(&mut self.best[kind as usize]);
            cut(&mut best, self.limit);
            kinds.push(KindCount {
                kind,
                found: self.found[kind as usize],
                listed: best.len() as u64,
            });
            candidates.append(&mut best);
        }
        TierAnalysis {
            generated_at: self.now,
            window_days: WINDOW_DAYS,
            users: self.users,
            analysed: self.analysed.values().sum(),
            analysed_by_tier: self.analysed,
            churn_model_version: self.model.as_ref().map(|m| m.version),
            enterprise_like_features: baselines.into_iter().map(|(_, b)| b).collect(),
            kinds,
            candidates,
        }
    }
}

/// Keeps the `limit` strongest, strongest first (ties by user id).
fn cut(best: &mut Vec<Candidate>, limit: usize) {
    best.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.user_id.as_bytes().cmp(b.user_id.as_bytes()))
    });
    best.truncate(limit);
}

#[cfg(test)]
mod tests;
