//! The `provisioning` job: the files dropped in `automation.provisioning.inbox` (a
//! folder, relative to the data directory unless absolute) are provisioned as
//! `roster provision-users` would, then moved to `done/` — beside their report (the
//! summary as JSON, and the refused rows when there were any) — or, when the file
//! cannot be read at all, to `failed/` with the reason. A run the engine cut short
//! leaves the file where it is; the next run resumes it from its checkpoint (kept in
//! `.state/`).

use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;

use super::Job;
use super::provision::{Local, Options, Summary, provision_file, read_rows};
use crate::domain::job::JobReport;
use crate::engine::{Principal, UserManager};

pub(super) struct Inbox;

/// The files of `dir` a run takes, by name: CSV and JSONL, not hidden.
fn inbox_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("the inbox {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let ext = p
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            !name.starts_with('.') && matches!(ext.as_deref(), Some("csv" | "jsonl" | "ndjson"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Moves `from` into `dir` (made if missing) under `name`, or a free variant of it.
fn move_into(from: &Path, dir: &Path, name: &str) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut to = dir.join(name);
    let mut n = 1;
    while to.exists() {
        to = dir.join(format!("{n}-{name}"));
        n += 1;
    }
    std::fs::rename(from, &to)
        .map_err(|e| format!("moving {} to {}: {e}", from.display(), to.display()))?;
    Ok(to)
}

fn write_report(path: &Path, value: &serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

impl Job for Inbox {
    fn run<'a>(
        &'a self,
        m: &'a UserManager,
        by: &'a Principal,
    ) -> BoxFuture<'a, Result<JobReport, String>> {
        Box::pin(async move {
            let config = m.config();
            let Some(inbox) = config.automation.provisioning.inbox.as_ref() else {
                return Ok(JobReport::new(
                    "no inbox configured (automation.provisioning.inbox): nothing to do",
                ));
            };
            let dir = config.store.data_dir.join(inbox);
            let (done, failed, state) = (dir.join("done"), dir.join("failed"), dir.join(".state"));
            std::fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
            let sink = Local {
                manager: m,
                by: by.clone(),
            };
            let mut total = Summary::default();
            let (mut taken, mut rejected) = (0u64, 0u64);
            for file in inbox_files(&dir)? {
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if let Err(why) = read_rows(&file) {
                    let to = move_into(&file, &failed, &name)?;
                    write_report(
                        &to.with_file_name(format!(
                            "{}.report.json",
                            to.file_name()
                                .map(|n| n.to_string_lossy())
                                .unwrap_or_default()
                        )),
                        &serde_json::json!({ "file": name, "error": why }),
                    )?;
                    tracing::warn!(file = %name, %why, "an inbox file could not be read: moved to failed/");
                    rejected += 1;
                    continue;
                }
                let errors = state.join(format!("{name}.errors.csv"));
                let opts = Options {
                    dry_run: false,
                    batch: 500,
                    in_flight: super::provision::BATCHES_IN_FLIGHT,
                    checkpoint: Some(state.join(format!("{name}.checkpoint"))),
                    errors: Some(errors.clone()),
                };
                // An engine failure stops the run here; the file stays and resumes.
                let summary = provision_file(&sink, &file, &opts, |_| {}).await?;
                let to = move_into(&file, &done, &name)?;
                let moved = to
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if summary.refused > 0 {
                    std::fs::rename(&errors, done.join(format!("{moved}.errors.csv")))
                        .map_err(|e| format!("{}: {e}", errors.display()))?;
                } else {
                    let _ = std::fs::remove_file(&errors);
                }
                let report = serde_json::to_value(&summary).map_err(|e| e.to_string())?;
                write_report(&done.join(format!("{moved}.report.json")), &report)?;
                for (sum, part) in [
                    (&mut total.rows, summary.rows),
                    (&mut total.created, summary.created),
                    (&mut total.updated, summary.updated),
                    (&mut total.unchanged, summary.unchanged),
                    (&mut total.invited, summary.invited),
                    (&mut total.refused, summary.refused),
                ] {
                    *sum += part;
                }
                taken += 1;
            }
            let summary = format!(
                "{taken} files provisioned ({} rows: {} created, {} updated, {} unchanged, {} refused), {rejected} unreadable",
                total.rows, total.created, total.updated, total.unchanged, total.refused
            );
            Ok(JobReport::new(summary)
                .count("files", taken)
                .count("files_failed", rejected)
                .count("rows", total.rows)
                .count("created", total.created)
                .count("updated", total.updated)
                .count("unchanged", total.unchanged)
                .count("invited", total.invited)
                .count("refused", total.refused))
        })
    }
}
