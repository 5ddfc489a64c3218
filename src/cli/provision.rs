//! `roster provision-users FILE…`: users from CSV or JSONL files, through a running
//! server (`--server`) or on a stopped one's data directory; resumable, with an error
//! file per input. The work is [`crate::jobs::provision`]'s.

use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;

use super::remote::Remote;
use super::{CliError, Target};
use crate::config::Config;
use crate::engine::{MAX_PROVISION_BATCH, Principal, ProvisionRow, Provisioned};
use crate::jobs::provision::{
    BATCHES_IN_FLIGHT, Local, MAX_BATCHES_IN_FLIGHT, Options, RowOutcome, Sink, Summary,
    provision_file,
};

/// `roster provision-users` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct ProvisionArgs {
    /// A server, or a data directory.
    #[command(flatten)]
    pub target: Target,
    /// The files: `.csv` (a header row naming the columns) or `.jsonl` (an object a
    /// line); docs/automation.md lists the fields.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Check every row; write and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Rows per call.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=MAX_PROVISION_BATCH as u64))]
    pub batch: u64,
    /// Calls sent at once (their rows are counted and checkpointed in file order).
    #[arg(long, default_value_t = BATCHES_IN_FLIGHT as u64, value_parser = clap::value_parser!(u64).range(1..=MAX_BATCHES_IN_FLIGHT as u64))]
    pub in_flight: u64,
    /// Where each file's error file (`<file>.errors.csv`, `<file>.dry-run.errors.csv`
    /// for a dry run) and checkpoint (`<file>.checkpoint`) go (default: beside the
    /// file; give files of one name different directories).
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Also write the summaries as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

/// A server's provisioning endpoint.
struct Server<'a>(&'a Remote);

impl Sink for Server<'_> {
    fn provision<'a>(
        &'a self,
        rows: Vec<ProvisionRow>,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Vec<RowOutcome>, String>> {
        Box::pin(async move {
            #[derive(serde::Deserialize)]
            struct Row {
                result: Option<Provisioned>,
                detail: Option<String>,
            }
            #[derive(serde::Deserialize)]
            struct Reply {
                rows: Vec<Row>,
            }
            let body = serde_json::json!({ "rows": rows, "dry_run": dry_run });
            let reply: Reply = self
                .0
                .json_with(reqwest::Method::POST, "/admin/users/provision", &body)
                .await
                .map_err(|e| e.to_string())?;
            Ok(reply
                .rows
                .into_iter()
                .map(|r| match r.result {
                    Some(p) => RowOutcome::Done(p),
                    None => RowOutcome::Refused(r.detail.unwrap_or_default()),
                })
                .collect())
        })
    }
}

/// `<dir or the file's>/<file name><suffix>`.
fn beside(file: &Path, dir: Option<&Path>, suffix: &str) -> PathBuf {
    let name = format!(
        "{}{suffix}",
        file.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    );
    match dir {
        Some(d) => d.join(name),
        None => file.with_file_name(name),
    }
}

async fn run_all(sink: &dyn Sink, a: &ProvisionArgs) -> Result<Vec<Summary>, CliError> {
    let mut summaries = Vec::new();
    for file in &a.files {
        let opts = Options {
            dry_run: a.dry_run,
            batch: a.batch as usize,
            in_flight: a.in_flight as usize,
            checkpoint: Some(beside(file, a.report_dir.as_deref(), ".checkpoint")),
            // A dry run's refusals apart, so that it leaves a real run's file alone.
            errors: Some(beside(
                file,
                a.report_dir.as_deref(),
                if a.dry_run {
                    ".dry-run.errors.csv"
                } else {
                    ".errors.csv"
                },
            )),
        };
        let bar = progress_bar(file, a.quiet);
        let summary = provision_file(sink, file, &opts, |s| match &bar {
            Some(bar) => {
                bar.set_length(bar.length().unwrap_or(0).max(s.rows));
                bar.set_position(s.rows);
                bar.set_message(format!(
                    "{} created, {} updated, {} unchanged, {} refused",
                    s.created, s.updated, s.unchanged, s.refused
                ));
            }
            None if !a.quiet => eprintln!(
                "{}: {} rows: {} created, {} updated, {} unchanged, {} refused",
                s.file, s.rows, s.created, s.updated, s.unchanged, s.refused
            ),
            None => {}
        })
        .await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let summary = summary.map_err(|why| {
            CliError::Failed(format!("{}: {why} (run again to resume)", file.display()))
        })?;
        println!(
            "{}{}: {} rows ({} resumed): {} created, {} updated, {} unchanged, {} invited, {} refused{}",
            if a.dry_run { "dry run: " } else { "" },
            summary.file,
            summary.rows,
            summary.resumed,
            summary.created,
            summary.updated,
            summary.unchanged,
            summary.invited,
            summary.refused,
            if summary.refused > 0 {
                format!(
                    " (see {})",
                    opts.errors
                        .as_ref()
                        .map_or(String::new(), |p| p.display().to_string())
                )
            } else {
                String::new()
            }
        );
        summaries.push(summary);
    }
    if let Some(path) = &a.json {
        let text =
            serde_json::to_vec_pretty(&summaries).map_err(|e| CliError::Failed(e.to_string()))?;
        std::fs::write(path, text)
            .map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))?;
    }
    Ok(summaries)
}

/// A progress bar over `file`'s rows when stderr is a terminal and not `quiet` (else
/// plain lines, or nothing). Its length is the file's line count, less a CSV header:
/// an estimate (blank lines count), raised if the rows outrun it.
fn progress_bar(file: &Path, quiet: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal as _;
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let lines = std::fs::read(file)
        .map(|b| bytecount_lines(&b))
        .unwrap_or(0);
    let csv = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let bar = super::bar(
        lines.saturating_sub(u64::from(csv)),
        "{prefix} [{bar:30}] {pos}/{len} rows, {per_sec}, eta {eta} — {msg}",
    );
    bar.set_prefix(file.display().to_string());
    Some(bar)
}

/// Lines in `bytes` (a last line without its newline counts).
fn bytecount_lines(bytes: &[u8]) -> u64 {
    let newlines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
    newlines + u64::from(bytes.last().is_some_and(|&b| b != b'\n'))
}

pub(super) async fn offline(config: Config, a: &ProvisionArgs) -> Result<(), CliError> {
    let manager = super::open_local(config).await?;
    let sink = Local {
        manager: &manager,
        by: Principal::System("provision-users"),
    };
    let ran = run_all(&sink, a).await;
    manager.shutdown().await?;
    ran.map(drop)
}

pub(super) async fn through_server(server: &Remote, a: &ProvisionArgs) -> Result<(), CliError> {
    run_all(&Server(server), a).await.map(drop)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_files_lines_count_a_last_one_without_its_newline() {
        assert_eq!(super::bytecount_lines(b""), 0);
        assert_eq!(super::bytecount_lines(b"a\nb\n"), 2);
        assert_eq!(super::bytecount_lines(b"a\nb"), 2);
    }
}
