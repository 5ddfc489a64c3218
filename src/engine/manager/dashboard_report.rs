//! A dashboard's report: each panel's figures as a table, computed here so the console,
//! a read-only link and a CSV export show the same rows. Panels that ask for the same
//! figure share one read of the store. A read-only link's report names no user, shows a
//! cohort or churn band under [`MIN_GROUP`] only as small, and is computed at most once
//! a minute per dashboard however many people open the link.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::Ops;
use super::principal::Principal;
use crate::analytics::churn::Band;
use crate::analytics::cohorts::{CohortQuery, CohortTable, Unit};
use crate::analytics::overview::Overview;
use crate::analytics::segments::SegmentModel;
use crate::analytics::tiers::TierReport;
use crate::analytics::usage::UsageReport;
use crate::domain::dashboard::{Dashboard, DashboardReport, Panel, PanelKind, PanelTable};
use crate::domain::history::{day_of, format_day};
use crate::domain::share::{looks_like_token, token_digest};
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;
use crate::engine::EngineError;
use crate::engine::outcomes::ChurnReport;

/// How long a read-only link's report is served before it is computed again.
pub const SHARED_REPORT_MAX_AGE: Duration = Duration::from_secs(60);
/// The refusal of a token that opens nothing (the same words whatever the reason).
const NO_SUCH_LINK: &str = "the link is unknown, has expired or was revoked";
/// Users a churn panel lists.
const AT_RISK: usize = 20;
/// The smallest group a read-only link describes: a retention cohort or a churn band of
/// fewer users shows only that it is small, so a link holder who knows who signed up
/// one week cannot read how those few people behave.
pub const MIN_GROUP: u64 = 10;
/// What a link shows of a group smaller than [`MIN_GROUP`].
const SMALL_GROUP: &str = "fewer than 10";

/// A group's size as `audience` may see it.
fn group_size(users: u64, audience: Audience) -> Value {
    if audience == Audience::Link && users < MIN_GROUP {
        json!(SMALL_GROUP)
    } else {
        json!(users)
    }
}

/// Who a report is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// An operator: users are named by id.
    Operator,
    /// The holder of a read-only link: no user is named.
    Link,
}

/// A figure of the analytics API, as panels ask for it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Overview,
    Tiers(u32),
    Cohorts(u32, Option<UserTier>),
    Segments,
    Churn,
    Usage(Option<u32>),
}

enum Figure {
    Overview(Overview),
    Tiers(TierReport),
    Cohorts(CohortTable),
    Segments(Option<SegmentModel>),
    Churn(ChurnReport),
    Usage(UsageReport),
}

/// Weeks a panel's `days` make (`fallback` without).
fn weeks(days: Option<u32>, fallback: u32) -> u32 {
    days.map_or(fallback, |d| d.div_ceil(7).clamp(1, 104))
}

fn want(p: &Panel) -> Want {
    match p.kind {
        PanelKind::Overview | PanelKind::TierDistribution => Want::Overview,
        PanelKind::TiersByWeek => Want::Tiers(weeks(p.days, 12)),
        PanelKind::Cohorts => Want::Cohorts(weeks(p.days, 12), p.tier),
        PanelKind::Segments => Want::Segments,
        PanelKind::ChurnAtRisk => Want::Churn,
        PanelKind::DailyUsage | PanelKind::Engagement | PanelKind::FeatureUsage => {
            Want::Usage(p.days)
        }
    }
}

fn share(x: f64) -> Value {
    Value::String(format!("{:.1}%", x * 100.0))
}

fn day(t: Timestamp) -> Value {
    Value::String(format_day(day_of(t)))
}

fn by_tier(m: &std::collections::BTreeMap<UserTier, u64>) -> impl Iterator<Item = Value> {
    UserTier::ALL
        .into_iter()
        .map(|t| json!(m.get(&t).copied().unwrap_or(0)))
}

fn tier_names() -> impl Iterator<Item = String> {
    UserTier::ALL.into_iter().map(|t| t.as_str().to_owned())
}

/// The columns and rows of `panel` from its figure.
fn tabulate(panel: &Panel, figure: &Figure, audience: Audience) -> (Vec<String>, Vec<Vec<Value>>) {
    let cols = |c: &[&str]| c.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    match (panel.kind, figure) {
        (PanelKind::Overview, Figure::Overview(o)) => {
            let rows = [
                ("users", json!(o.users)),
                ("consenting", json!(o.consenting)),
                ("dau", json!(o.dau)),
                ("wau", json!(o.wau)),
                ("mau", json!(o.mau)),
                ("stickiness", share(o.stickiness)),
                ("events, 7 days", json!(o.events.last_7_days)),
                ("events, 30 days", json!(o.events.last_30_days)),
                (
                    "listening minutes, 30 days",
                    json!(o.listening_minutes_30_days),
                ),
            ];
            let rows = rows.into_iter().map(|(k, v)| vec![json!(k), v]).collect();
            (cols(&["figure", "value"]), rows)
        }
        (PanelKind::TierDistribution, Figure::Overview(o)) => {
            let rows = UserTier::ALL
                .into_iter()
                .map(|t| {
                    vec![
                        json!(t.as_str()),
                        json!(o.users_by_tier.get(&t).copied().unwrap_or(0)),
                    ]
                })
                .collect();
            (cols(&["tier", "users"]), rows)
        }
        (PanelKind::TiersByWeek, Figure::Tiers(r)) => {
            let columns = std::iter::once("week".to_owned())
                .chain(tier_names())
                .collect();
            let rows = r
                .weeks
                .iter()
                .map(|w| {
                    std::iter::once(day(w.start))
                        .chain(by_tier(&w.users_by_tier))
                        .collect()
                })
                .collect();
            (columns, rows)
        }
        (PanelKind::Cohorts, Figure::Cohorts(c)) => {
            let columns = ["week of sign-up".to_owned(), "users".to_owned()]
                .into_iter()
                .chain((0..c.periods).map(|i| format!("+{i}")))
                .collect();
            let rows = c
                .cohorts
                .iter()
                .map(|x| {
                    let head = [day(x.start), group_size(x.size, audience)];
                    let hidden = head[1].is_string();
                    let tail = x.retention.iter().map(|r| match r {
                        Some(r) if !hidden => share(*r),
                        _ => Value::Null,
                    });
                    head.into_iter().chain(tail).collect()
                })
                .collect();
            (columns, rows)
        }
        (PanelKind::Segments, Figure::Segments(s)) => {
            let rows = s
                .iter()
                .flat_map(|m| &m.segments)
                .map(|x| vec![json!(x.name), json!(x.size)])
                .collect();
            (cols(&["segment", "users"]), rows)
        }
        // A link holder sees how many users each band holds, never a person's row:
        // every tier and band, empty ones too, so a missing row tells nothing.
        (PanelKind::ChurnAtRisk, Figure::Churn(r)) if audience == Audience::Link => {
            let mut rows = Vec::new();
            for tier in UserTier::ALL {
                for band in [Band::Low, Band::Medium, Band::High] {
                    let users = r
                        .bands
                        .iter()
                        .find(|b| b.tier == tier && b.band == band)
                        .map_or(0, |b| b.users);
                    rows.push(vec![
                        json!(tier.as_str()),
                        json!(band),
                        group_size(users, audience),
                    ]);
                }
            }
            (cols(&["tier", "band", "users"]), rows)
        }
        (PanelKind::ChurnAtRisk, Figure::Churn(r)) => {
            let rows = r
                .at_risk
                .iter()
                .map(|u| {
                    vec![
                        json!(u.user_id.to_string()),
                        json!(u.tier.as_str()),
                        share(u.prediction.probability),
                        json!(u.prediction.band),
                    ]
                })
                .collect();
            (cols(&["user", "tier", "probability", "band"]), rows)
        }
        (PanelKind::Engagement, Figure::Usage(u)) => {
            let rows = u
                .engagement
                .bins
                .iter()
                .map(|b| vec![json!(format!("{}–{}", b.from, b.to)), json!(b.users)])
                .collect();
            (cols(&["score", "users"]), rows)
        }
        (PanelKind::FeatureUsage, Figure::Usage(u)) => {
            let rows = u
                .features
                .iter()
                .map(|f| {
                    vec![
                        json!(f.feature),
                        json!(f.users_in_period),
                        json!(f.users),
                        json!(f.uses),
                    ]
                })
                .collect();
            (cols(&["feature", "users in period", "users", "uses"]), rows)
        }
        (PanelKind::DailyUsage, Figure::Usage(u)) => {
            let rows = u
                .days
                .iter()
                .map(|d| {
                    vec![
                        day(d.day),
                        json!(d.signups.values().sum::<u64>()),
                        json!(d.active_users),
                        json!(d.security_events.values().sum::<u64>()),
                    ]
                })
                .collect();
            (
                cols(&["day", "sign-ups", "active users", "security events"]),
                rows,
            )
        }
        // `want` pairs every kind with its figure.
        _ => (Vec::new(), Vec::new()),
    }
}

impl Ops<'_> {
    /// The report of the dashboard `name` (operators and the system): every panel's
    /// figures, computed now.
    pub async fn dashboard_report(
        self,
        by: &Principal,
        name: &str,
    ) -> Result<DashboardReport, EngineError> {
        let dashboard = self.dashboard(by, name)?;
        self.report(&dashboard, Audience::Operator).await
    }

    /// The report a read-only link's `token` opens (anyone holding it): no user named,
    /// cohorts and churn bands under [`MIN_GROUP`] only as small, computed at most once
    /// per [`SHARED_REPORT_MAX_AGE`] for each dashboard; also the time the link stops
    /// working. A token that opens nothing — malformed, unknown, expired or revoked — is
    /// refused with the same words, and so is one revoked while its view waited or was
    /// computed: the link is checked again just before the report is handed out.
    pub async fn shared_report(
        self,
        token: &str,
    ) -> Result<(Arc<DashboardReport>, Timestamp), EngineError> {
        let refused = || EngineError::Unauthenticated(NO_SUCH_LINK);
        if !looks_like_token(token) {
            return Err(refused());
        }
        let digest = token_digest(token);
        let dashboard = self.opened_by(&digest)?.ok_or_else(refused)?;
        let e = &self.m.engine;
        // One computation at a time per dashboard: a burst of views of a cold link
        // waits for one, and other dashboards' links do not wait for it.
        let slot = Arc::clone(&*e.shared_reports.entry(dashboard.name.clone()).or_default());
        let mut last = slot.lock().await;
        // What the dashboard is now: a save while this view waited changes its panels.
        let dashboard = self
            .opened(&dashboard.name, &digest)?
            .ok_or_else(refused)?
            .0;
        let now = self.m.now();
        let report = match last.as_ref() {
            Some(r)
                if r.updated_at == dashboard.updated_at
                    && now.since(r.generated_at) < SHARED_REPORT_MAX_AGE =>
            {
                Arc::clone(r)
            }
            _ => {
                let r = Arc::new(self.report(&dashboard, Audience::Link).await?);
                *last = Some(Arc::clone(&r));
                r
            }
        };
        drop(last);
        let (_, expires_at) = self.opened(&dashboard.name, &digest)?.ok_or_else(refused)?;
        Ok((report, expires_at))
    }

    /// The dashboard `name` as stored now, and when its link of `digest` stops working,
    /// if that link opens it now.
    fn opened(
        self,
        name: &str,
        digest: &str,
    ) -> Result<Option<(Dashboard, Timestamp)>, EngineError> {
        let system = Principal::System("dashboard link");
        let d = match self.dashboard(&system, name) {
            Ok(d) => d,
            Err(EngineError::NotFound) => return Ok(None),
            Err(err) => return Err(err),
        };
        let now = self.m.now();
        let expires_at = d
            .shares
            .iter()
            .find(|s| s.opens(digest, now))
            .map(|s| s.expires_at);
        Ok(expires_at.map(|at| (d, at)))
    }

    /// The dashboard a live link of `digest` opens. A record that does not read is
    /// skipped (and logged): it cannot hold the link of a dashboard that does.
    fn opened_by(self, digest: &str) -> Result<Option<Dashboard>, EngineError> {
        let now = self.m.now();
        for (name, record) in self.m.engine.store.dashboards()? {
            match super::dashboards::decode(&name, &record) {
                Ok(d) if d.shares.iter().any(|s| s.opens(digest, now)) => return Ok(Some(d)),
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "a dashboard is skipped by its links"),
            }
        }
        Ok(None)
    }

    async fn report(
        self,
        d: &Dashboard,
        audience: Audience,
    ) -> Result<DashboardReport, EngineError> {
        let by = Principal::System("dashboard report");
        let now = self.m.now();
        let mut figures: Vec<(Want, Figure)> = Vec::new();
        let mut panels = Vec::with_capacity(d.panels.len());
        for p in &d.panels {
            let w = want(p);
            if !figures.iter().any(|(have, _)| *have == w) {
                figures.push((w, self.figure(&by, w, now).await?));
            }
            let figure = figures
                .iter()
                .find_map(|(have, f)| (*have == w).then_some(f))
                .ok_or_else(|| EngineError::Internal("a panel's figure went missing".into()))?;
            let (columns, rows) = tabulate(p, figure, audience);
            panels.push(PanelTable {
                kind: p.kind,
                title: p.heading(),
                columns,
                rows,
            });
        }
        Ok(DashboardReport {
            name: d.name.clone(),
            title: d.title.clone(),
            generated_at: now,
            updated_at: d.updated_at,
            panels,
        })
    }

    async fn figure(self, by: &Principal, w: Want, now: Timestamp) -> Result<Figure, EngineError> {
        let a = self.m.analytics();
        Ok(match w {
            Want::Overview => Figure::Overview(a.overview(by).await?),
            Want::Tiers(weeks) => Figure::Tiers(a.tiers(by, weeks).await?),
            Want::Cohorts(periods, tier) => {
                let q = CohortQuery {
                    unit: Unit::Week,
                    periods,
                    tier,
                };
                Figure::Cohorts(a.cohorts(by, q).await?)
            }
            Want::Segments => Figure::Segments(a.segments(by)?),
            Want::Churn => Figure::Churn(a.churn_report(by, 0, AT_RISK).await?),
            Want::Usage(days) => {
                let from = days.map(|d| day_of(now).saturating_sub(d.saturating_sub(1)));
                Figure::Usage(a.usage(by, from, None).await?)
            }
        })
    }
}
