//! `roster generate-analytics`: the usage report of a period — tier distribution and
//! migrations, sign-ups, logins and active users per day, DAU/WAU/MAU, the engagement
//! distribution, retention cohorts, segments, the churn model card, security events and
//! risk decisions, feature usage — from a running server's analytics endpoints or a
//! stopped data directory's engine, written as `report.json` (each endpoint's answer
//! as it gave it), CSV tables and one self-contained `report.html` (charts drawn as
//! inline SVG: no script, no stylesheet or font to fetch, nothing from the network).

mod html;
mod tables;

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use super::remote::Remote;
use super::{CliError, Target};
use crate::config::Config;
use crate::domain::history::{day_of, format_day, parse_day, week_start};
use crate::domain::time::Timestamp;
use crate::engine::{CohortQuery, CohortUnit, Principal, UserManager};

/// `roster generate-analytics` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct GenerateAnalyticsArgs {
    /// A server, or a data directory.
    #[command(flatten)]
    pub target: Target,
    /// The period's first day, YYYY-MM-DD (UTC; default: 29 days before --to).
    #[arg(long)]
    pub from: Option<String>,
    /// The period's last day, included, YYYY-MM-DD (UTC; default: today).
    #[arg(long)]
    pub to: Option<String>,
    /// The folder the report is written to (made if missing).
    #[arg(long, default_value = "analytics-report")]
    pub out: PathBuf,
    /// At-risk users listed in the churn section.
    #[arg(long, default_value_t = 20)]
    pub at_risk: usize,
    /// No spinner while the figures are gathered.
    #[arg(long)]
    pub quiet: bool,
}

/// Most weeks the tier and cohort sections go back (the endpoints' bound).
const MAX_WEEKS: u32 = 104;

/// The figures of a report: each endpoint's answer as JSON.
#[derive(Serialize)]
struct Figures {
    from: String,
    to: String,
    overview: Value,
    usage: Value,
    tiers: Value,
    cohorts: Value,
    segments: Value,
    churn: Value,
}

/// The period asked for, checked: days since 1970-01-01.
fn period(a: &GenerateAnalyticsArgs) -> Result<(Option<u32>, Option<u32>), CliError> {
    let day = |flag: &str, text: &Option<String>| -> Result<Option<u32>, CliError> {
        text.as_deref()
            .map(|t| {
                parse_day(t).ok_or_else(|| {
                    CliError::Usage(format!("{flag} must be a date as YYYY-MM-DD, got {t:?}"))
                })
            })
            .transpose()
    };
    Ok((day("--from", &a.from)?, day("--to", &a.to)?))
}

/// Weeks from the week of `from` to the current one, within the endpoints' bound.
fn weeks(from: u32, today: u32) -> u32 {
    ((week_start(today).saturating_sub(week_start(from))) / 7 + 1).clamp(1, MAX_WEEKS)
}

fn today_of(overview: &Value) -> Result<u32, CliError> {
    serde_json::from_value::<Timestamp>(overview["generated_at"].clone())
        .map(day_of)
        .map_err(|e| CliError::Failed(format!("the overview has no readable time: {e}")))
}

fn to_value(v: impl Serialize) -> Result<Value, CliError> {
    serde_json::to_value(v).map_err(|e| CliError::Failed(e.to_string()))
}

async fn gather_local(
    m: &UserManager,
    from: Option<u32>,
    to: Option<u32>,
    at_risk: usize,
) -> Result<Figures, CliError> {
    let by = Principal::System("generate-analytics");
    let a = m.analytics();
    let overview = to_value(a.overview(&by).await?)?;
    let usage = a.usage(&by, from, to).await?;
    let (first, today) = (day_of(usage.from), today_of(&overview)?);
    let n = weeks(first, today);
    let query = CohortQuery {
        unit: CohortUnit::Week,
        periods: n,
        tier: None,
    };
    Ok(Figures {
        from: format_day(first),
        to: format_day(day_of(usage.to)),
        usage: to_value(&usage)?,
        tiers: to_value(a.tiers(&by, n).await?)?,
        cohorts: to_value(a.cohorts(&by, query).await?)?,
        segments: json!({ "model": a.segments(&by)? }),
        churn: to_value(a.churn_report(&by, 0, at_risk).await?)?,
        overview,
    })
}

async fn gather_remote(
    r: &Remote,
    a: &GenerateAnalyticsArgs,
    from: Option<u32>,
    to: Option<u32>,
) -> Result<Figures, CliError> {
    let get = |path: String| async move { r.json::<Value>(reqwest::Method::GET, &path).await };
    let overview = get("/admin/analytics/overview".into()).await?;
    let mut query = Vec::new();
    if let Some(f) = from {
        query.push(format!("from={}", format_day(f)));
    }
    if let Some(t) = to {
        query.push(format!("to={}", format_day(t)));
    }
    let usage = get(format!("/admin/analytics/usage?{}", query.join("&"))).await?;
    let day = |field: &str| {
        serde_json::from_value::<Timestamp>(usage[field].clone())
            .map(day_of)
            .map_err(|e| CliError::Failed(format!("the usage report has no readable {field}: {e}")))
    };
    let (first, last) = (day("from")?, day("to")?);
    let n = weeks(first, today_of(&overview)?);
    Ok(Figures {
        from: format_day(first),
        to: format_day(last),
        tiers: get(format!("/admin/analytics/tiers?weeks={n}")).await?,
        cohorts: get(format!("/admin/analytics/cohorts?unit=week&periods={n}")).await?,
        segments: get("/admin/analytics/segments".into()).await?,
        churn: get(format!("/admin/analytics/churn?limit={}", a.at_risk)).await?,
        overview,
        usage,
    })
}

pub(super) async fn offline(config: Config, a: &GenerateAnalyticsArgs) -> Result<(), CliError> {
    let (from, to) = period(a)?;
    let manager = super::open_local(config).await?;
    let spinner = super::spinner("gathering the figures from the stored users", a.quiet);
    let figures = gather_local(&manager, from, to, a.at_risk).await;
    manager.shutdown().await?;
    finish(&figures?, &a.out, spinner)
}

pub(super) async fn through_server(
    server: &Remote,
    a: &GenerateAnalyticsArgs,
) -> Result<(), CliError> {
    let (from, to) = period(a)?;
    let spinner = super::spinner("gathering the figures from the server", a.quiet);
    let figures = gather_remote(server, a, from, to).await?;
    finish(&figures, &a.out, spinner)
}

fn finish(
    f: &Figures,
    out: &Path,
    spinner: Option<indicatif::ProgressBar>,
) -> Result<(), CliError> {
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let write = |name: &str, bytes: &[u8]| {
        let path = out.join(name);
        std::fs::write(&path, bytes)
            .map_err(|e| CliError::Failed(format!("writing {}: {e}", path.display())))
    };
    std::fs::create_dir_all(out)
        .map_err(|e| CliError::Failed(format!("{}: {e}", out.display())))?;
    let json = serde_json::to_vec_pretty(f).map_err(|e| CliError::Failed(e.to_string()))?;
    write("report.json", &json)?;
    let figures = to_value(f)?;
    let mut names = Vec::new();
    for (name, table) in tables::all(&figures) {
        let bytes = table.to_csv().map_err(CliError::Failed)?;
        write(&format!("{name}.csv"), &bytes)?;
        names.push(name);
    }
    write("report.html", html::page(&figures).as_bytes())?;
    println!(
        "the report of {} to {} is in {}: report.html, report.json and {} CSV tables ({})",
        f.from,
        f.to,
        out.display(),
        names.len(),
        names.join(", ")
    );
    Ok(())
}
