//! The `tier_analysis` job: the tier analysis of `roster analyze-tiers` (upgrade,
//! downgrade, Enterprise-fit and retention candidates with their reasons), written as
//! JSON and CSV into `automation.reports` (relative to the data directory unless
//! absolute) as `tier-analysis-<time>.json` and `.csv`. The CSV writer is the command's
//! too.

use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;

use super::Job;
use crate::domain::job::JobReport;
use crate::engine::{Principal, TierAnalysis, UserManager};

pub(super) struct TierAnalysisJob;

/// Candidates of each kind a scheduled analysis lists.
const LISTED: usize = 100_000;

/// The CSV table of the candidates: one row per candidate with its signals and reasons
/// (`docs/automation.md`).
pub fn csv(a: &TierAnalysis) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let row = |w: &mut csv::Writer<Vec<u8>>, cells: &[&str]| {
        w.write_record(cells).map_err(|e| e.to_string())
    };
    row(
        &mut w,
        &[
            "kind",
            "user_id",
            "tier",
            "suggested_tier",
            "score",
            "signals",
            "reasons",
        ],
    )?;
    for c in &a.candidates {
        let signals: Vec<&str> = c.reasons.iter().map(|r| r.signal.as_str()).collect();
        let reasons: Vec<&str> = c.reasons.iter().map(|r| r.detail.as_str()).collect();
        row(
            &mut w,
            &[
                c.kind.name(),
                &c.user_id.to_string(),
                c.tier.as_str(),
                c.suggested_tier.map_or("", |t| t.as_str()),
                &format!("{:.4}", c.score),
                &signals.join("|"),
                &reasons.join("; "),
            ],
        )?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

/// Writes `a` as `<stem>.json` and `<stem>.csv` in `dir` (made if missing); returns the
/// two paths.
pub fn write(a: &TierAnalysis, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (json, table) = (
        dir.join(format!("{stem}.json")),
        dir.join(format!("{stem}.csv")),
    );
    let text = serde_json::to_vec_pretty(a).map_err(|e| e.to_string())?;
    std::fs::write(&json, text).map_err(|e| format!("{}: {e}", json.display()))?;
    std::fs::write(&table, csv(a)?).map_err(|e| format!("{}: {e}", table.display()))?;
    Ok((json, table))
}

/// The file stem of an analysis made at `at`: `tier-analysis-20261202T021500Z`.
pub fn stem(a: &TierAnalysis) -> String {
    let t = a.generated_at.to_string();
    let compact: String = t
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    format!("tier-analysis-{compact}Z")
}

impl Job for TierAnalysisJob {
    fn run<'a>(
        &'a self,
        m: &'a UserManager,
        by: &'a Principal,
    ) -> BoxFuture<'a, Result<JobReport, String>> {
        Box::pin(async move {
            let a = m
                .analytics()
                .tier_analysis(by, LISTED)
                .await
                .map_err(|e| e.to_string())?;
            let config = m.config();
            let dir = config.store.data_dir.join(&config.automation.reports);
            let (json, _) = write(&a, &dir, &stem(&a))?;
            let mut report = JobReport::new(format!(
                "{} users analysed of {}: {}; report {}",
                a.analysed,
                a.users,
                a.kinds
                    .iter()
                    .map(|k| format!("{} {}", k.found, k.kind.name()))
                    .collect::<Vec<_>>()
                    .join(", "),
                json.display()
            ))
            .count("users_read", a.users)
            .count("analysed", a.analysed);
            for k in &a.kinds {
                report = report.count(k.kind.name(), k.found);
            }
            Ok(report)
        })
    }
}
