//! Custom dashboards: an operator composes one from the console's panels — each a
//! figure of the analytics API with its filter and time range — and saves it by name.
//! Stored in clear (names, titles and panel choices, no personal data).

use serde::{Deserialize, Serialize};

use super::share::Share;
use super::tier::UserTier;
use super::time::Timestamp;
use super::validation::ValidationError;

/// Dashboards kept at most.
pub const MAX_DASHBOARDS: usize = 100;
/// Panels of one dashboard at most.
pub const MAX_PANELS: usize = 24;
/// The longest time range a panel may ask for, in days.
pub const MAX_DAYS: u32 = 366;

/// What a panel shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PanelKind {
    /// The overview's figures (users, DAU/WAU/MAU, events).
    Overview,
    /// Users by tier now.
    TierDistribution,
    /// Users by tier by week, with the migrations (`days`: how far back).
    TiersByWeek,
    /// Retention cohorts by week of sign-up (`days`: how far back; `tier`: one tier's).
    Cohorts,
    /// The behaviour segments.
    Segments,
    /// The users most at risk of churning.
    ChurnAtRisk,
    /// Sign-ups, active users and security events per day (`days`: how far back).
    DailyUsage,
    /// The engagement distribution.
    Engagement,
    /// Feature usage (`days`: the period).
    FeatureUsage,
}

impl PanelKind {
    /// The heading a panel of this kind has unless it is given one.
    pub fn label(self) -> &'static str {
        match self {
            PanelKind::Overview => "Overview",
            PanelKind::TierDistribution => "Users by tier",
            PanelKind::TiersByWeek => "Users by tier, by week",
            PanelKind::Cohorts => "Retention cohorts",
            PanelKind::Segments => "Segments",
            PanelKind::ChurnAtRisk => "Highest churn risk",
            PanelKind::DailyUsage => "Daily usage",
            PanelKind::Engagement => "Engagement",
            PanelKind::FeatureUsage => "Feature usage",
        }
    }

    /// Whether the panel can be narrowed to one tier.
    pub fn takes_tier(self) -> bool {
        matches!(self, PanelKind::Cohorts)
    }

    /// Whether the panel covers a time range.
    pub fn takes_days(self) -> bool {
        matches!(
            self,
            PanelKind::TiersByWeek
                | PanelKind::Cohorts
                | PanelKind::DailyUsage
                | PanelKind::FeatureUsage
        )
    }
}

/// One panel of a dashboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Panel {
    /// What it shows.
    pub kind: PanelKind,
    /// Its heading (default: the kind's).
    #[serde(default)]
    pub title: Option<String>,
    /// Only this tier's users (panels that take one).
    #[serde(default)]
    pub tier: Option<UserTier>,
    /// The time range, in days back from today (panels that take one; default: the
    /// figure's own).
    #[serde(default)]
    pub days: Option<u32>,
}

impl Panel {
    /// Its heading: its title, else its kind's with its tier and time range.
    pub fn heading(&self) -> String {
        if let Some(t) = &self.title {
            return t.clone();
        }
        let mut extra: Vec<String> = Vec::new();
        extra.extend(self.tier.map(|t| t.as_str().to_owned()));
        extra.extend(self.days.map(|d| format!("{d} days")));
        if extra.is_empty() {
            self.kind.label().to_owned()
        } else {
            format!("{} ({})", self.kind.label(), extra.join(", "))
        }
    }
}

/// A dashboard as an operator saves it (`PUT /api/v1/admin/dashboards/{name}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DashboardDraft {
    /// Its heading.
    pub title: String,
    /// Its panels, in order (1 to 24).
    pub panels: Vec<Panel>,
}

/// A saved dashboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dashboard {
    /// Its name: the key it is saved and opened by.
    pub name: String,
    /// Its heading.
    pub title: String,
    /// Its panels, in order.
    pub panels: Vec<Panel>,
    /// When it was first saved.
    pub created_at: Timestamp,
    /// When it was last saved.
    pub updated_at: Timestamp,
    /// Its read-only links, live and expired (expired ones are dropped at the next
    /// change of the list).
    #[serde(default)]
    pub shares: Vec<Share>,
}

/// What a dashboard shows now: each panel's figures as a table.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DashboardReport {
    /// The dashboard's name.
    pub name: String,
    /// Its heading.
    pub title: String,
    /// When the figures were computed.
    pub generated_at: Timestamp,
    /// When the dashboard was last saved.
    pub updated_at: Timestamp,
    /// Its panels, in order.
    pub panels: Vec<PanelTable>,
}

/// One panel's figures.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PanelTable {
    /// What it shows.
    pub kind: PanelKind,
    /// Its heading.
    pub title: String,
    /// The columns' names.
    pub columns: Vec<String>,
    /// The rows, a value per column: a number, a text (shares as `"12.5%"`, days as
    /// `"2026-12-01"`), or `null` where there is none (a period not ended yet).
    #[schema(value_type = Vec<Vec<Object>>)]
    pub rows: Vec<Vec<serde_json::Value>>,
}

fn text_ok(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// Checks a dashboard's name: 1 to 64 of `a-z`, `0-9`, `-` and `_`.
pub fn check_name(name: &str) -> Result<(), ValidationError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "name",
            "must be 1 to 64 of a-z, 0-9, - and _",
        ))
    }
}

impl DashboardDraft {
    /// Checks every field, naming the first one that is wrong.
    pub fn check(&self) -> Result<(), ValidationError> {
        let title = self.title.trim();
        if title.is_empty() || title.chars().count() > 120 || !text_ok(title) {
            return Err(ValidationError::new(
                "title",
                "must be 1 to 120 characters, none a control character",
            ));
        }
        if self.panels.is_empty() || self.panels.len() > MAX_PANELS {
            return Err(ValidationError::new(
                "panels",
                format!("must hold 1 to {MAX_PANELS} panels"),
            ));
        }
        for (i, p) in self.panels.iter().enumerate() {
            let field = |f: &str| format!("panels[{i}].{f}");
            if let Some(t) = &p.title
                && (t.trim().is_empty() || t.chars().count() > 80 || !text_ok(t))
            {
                return Err(ValidationError::new(
                    field("title"),
                    "must be 1 to 80 characters, none a control character",
                ));
            }
            if p.tier.is_some() && !p.kind.takes_tier() {
                return Err(ValidationError::new(
                    field("tier"),
                    "this panel cannot be narrowed to a tier",
                ));
            }
            match p.days {
                Some(_) if !p.kind.takes_days() => {
                    return Err(ValidationError::new(
                        field("days"),
                        "this panel has no time range",
                    ));
                }
                Some(d) if d == 0 || d > MAX_DAYS => {
                    return Err(ValidationError::new(
                        field("days"),
                        format!("must be 1 to {MAX_DAYS}"),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The dashboard it makes, saved at `now` (keeping `created_at` of the one it
    /// replaces).
    pub fn into_dashboard(
        self,
        name: String,
        now: Timestamp,
        previous: Option<&Dashboard>,
    ) -> Dashboard {
        Dashboard {
            name,
            title: self.title.trim().to_owned(),
            panels: self.panels,
            created_at: previous.map_or(now, |d| d.created_at),
            updated_at: now,
            shares: previous.map_or_else(Vec::new, |d| d.shares.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(kind: PanelKind) -> Panel {
        Panel {
            kind,
            title: None,
            tier: None,
            days: None,
        }
    }

    fn draft(panels: Vec<Panel>) -> DashboardDraft {
        DashboardDraft {
            title: "Weekly review".into(),
            panels,
        }
    }

    fn field(d: &DashboardDraft) -> String {
        d.check().unwrap_err().field
    }

    #[test]
    fn names_and_panels_are_checked_naming_the_field() {
        assert!(check_name("weekly-review_2").is_ok());
        for bad in ["", "Weekly", "a b", "é", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        let mut cohorts = panel(PanelKind::Cohorts);
        cohorts.tier = Some(UserTier::Premium);
        cohorts.days = Some(84);
        assert!(
            draft(vec![panel(PanelKind::Overview), cohorts.clone()])
                .check()
                .is_ok()
        );
        assert_eq!(field(&draft(vec![])), "panels");
        assert_eq!(
            field(&draft(vec![panel(PanelKind::Segments); 25])),
            "panels"
        );
        let mut d = draft(vec![panel(PanelKind::Overview)]);
        d.title = " ".into();
        assert_eq!(field(&d), "title");
        let mut overview = panel(PanelKind::Overview);
        overview.tier = Some(UserTier::Vip);
        assert_eq!(
            field(&draft(vec![cohorts.clone(), overview])),
            "panels[1].tier"
        );
        let mut segments = panel(PanelKind::Segments);
        segments.days = Some(7);
        assert_eq!(field(&draft(vec![segments])), "panels[0].days");
        cohorts.days = Some(0);
        assert_eq!(field(&draft(vec![cohorts.clone()])), "panels[0].days");
        cohorts.days = Some(MAX_DAYS + 1);
        assert_eq!(field(&draft(vec![cohorts])), "panels[0].days");
    }

    #[test]
    fn a_replaced_dashboard_keeps_its_creation_time() {
        let t0 = Timestamp::from_millis(1_000);
        let t1 = Timestamp::from_millis(2_000);
        let first = draft(vec![panel(PanelKind::Overview)]).into_dashboard("a".into(), t0, None);
        let second =
            draft(vec![panel(PanelKind::Segments)]).into_dashboard("a".into(), t1, Some(&first));
        assert_eq!((second.created_at, second.updated_at), (t0, t1));
        assert_eq!(second.panels[0].kind, PanelKind::Segments);
    }
}
