//! `roster analyze-tiers`: the tier analysis — users who are candidates for an upgrade, a
//! downgrade, an Enterprise plan or a retention offer, with their reasons — from a
//! running server (`GET /api/v1/admin/analytics/opportunities`) or a stopped data
//! directory, printed as a summary table and written as JSON and CSV.

use std::path::PathBuf;

use super::remote::Remote;
use super::{CliError, Target};
use crate::config::Config;
use crate::engine::{Principal, TierAnalysis};

/// `roster analyze-tiers` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct AnalyzeTiersArgs {
    /// A server, or a data directory.
    #[command(flatten)]
    pub target: Target,
    /// Candidates listed of each kind, strongest first (1–100,000).
    #[arg(long, default_value_t = 1_000)]
    pub limit: usize,
    /// Write the whole analysis as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the candidates as CSV to this file (one row each, with its reasons).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Candidates of each kind shown on the terminal.
    #[arg(long, default_value_t = 5)]
    pub show: usize,
    /// No spinner while the analysis runs.
    #[arg(long)]
    pub quiet: bool,
}

pub(super) async fn offline(config: Config, a: &AnalyzeTiersArgs) -> Result<(), CliError> {
    let manager = super::open_local(config).await?;
    let spinner = super::spinner("analysing the stored users", a.quiet);
    let by = Principal::System("analyze-tiers");
    let analysis = manager.analytics().tier_analysis(&by, a.limit).await;
    manager.shutdown().await?;
    finish(analysis?, a, spinner)
}

pub(super) async fn through_server(server: &Remote, a: &AnalyzeTiersArgs) -> Result<(), CliError> {
    let spinner = super::spinner("the server is analysing its users", a.quiet);
    let path = format!("/admin/analytics/opportunities?limit={}", a.limit);
    let analysis: TierAnalysis = server.json(reqwest::Method::GET, &path).await?;
    finish(analysis, a, spinner)
}

fn finish(
    analysis: TierAnalysis,
    a: &AnalyzeTiersArgs,
    spinner: Option<indicatif::ProgressBar>,
) -> Result<(), CliError> {
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    print!("{}", table(&analysis, a.show));
    let write = |path: &PathBuf, bytes: Vec<u8>| {
        std::fs::write(path, bytes)
            .map_err(|e| CliError::Failed(format!("writing {}: {e}", path.display())))
    };
    if let Some(path) = &a.json {
        let text =
            serde_json::to_vec_pretty(&analysis).map_err(|e| CliError::Failed(e.to_string()))?;
        write(path, text)?;
    }
    if let Some(path) = &a.csv {
        write(
            path,
            crate::jobs::tier_analysis::csv(&analysis).map_err(CliError::Failed)?,
        )?;
    }
    Ok(())
}

/// The terminal's summary: the counts, then the strongest `show` of each kind.
fn table(a: &TierAnalysis, show: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} users, {} analysed (consenting to analytics); churn model: {}",
        a.users,
        a.analysed,
        a.churn_model_version
            .map_or_else(|| "none in force".to_owned(), |v| format!("v{v}"))
    );
    let _ = writeln!(out, "\n{:<16} {:>8} {:>8}", "kind", "found", "listed");
    for k in &a.kinds {
        let _ = writeln!(out, "{:<16} {:>8} {:>8}", k.kind.name(), k.found, k.listed);
    }
    for f in &a.enterprise_like_features {
        let _ = writeln!(
            out,
            "\nenterprise-like feature {}: used by {:.0}% of Enterprise and {:.0}% of Premium users, Enterprise median {:.1} a week",
            f.feature,
            f.enterprise_share * 100.0,
            f.premium_share * 100.0,
            f.enterprise_median_per_week
        );
    }
    for k in a.kinds.iter().filter(|k| k.listed > 0 && show > 0) {
        let _ = writeln!(out, "\n{}:", k.kind.name());
        for c in a.candidates.iter().filter(|c| c.kind == k.kind).take(show) {
            let to = c
                .suggested_tier
                .map_or(String::new(), |t| format!(" → {t}"));
            let why = c.reasons.first().map_or("", |r| r.detail.as_str());
            let _ = writeln!(out, "  {} {}{to}: {why}", c.user_id, c.tier);
        }
    }
    out
}
