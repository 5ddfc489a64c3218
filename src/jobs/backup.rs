//! The `backup` job: a point-in-time backup of the store, as `roster backup` writes it,
//! into `automation.backup.folder` (relative to the data directory unless absolute) as
//! `roster-<time>.backup`, checked after it is written; then only the newest
//! `automation.backup.keep` of those files are kept. The master key is never in them.

use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;

use super::Job;
use crate::domain::job::JobReport;
use crate::domain::time::Timestamp;
use crate::engine::{BackupFile, Principal, UserManager};

pub(super) struct Backup;

/// What a scheduled backup's files are called: `roster-20270115T033000Z.backup`, so
/// that their names sort as their times.
fn file_name(at: Timestamp) -> String {
    let compact: String = at
        .to_string()
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    format!("roster-{compact}Z.backup")
}

fn is_scheduled_backup(name: &str) -> bool {
    name.starts_with("roster-") && name.ends_with("Z.backup")
}

/// Removes all but the newest `keep` scheduled backups in `dir`; returns how many went.
fn prune(dir: &Path, keep: usize) -> Result<u64, String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_scheduled_backup(n))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep);
    for name in &names[..excess] {
        let p = dir.join(name);
        std::fs::remove_file(&p).map_err(|e| format!("removing {}: {e}", p.display()))?;
    }
    Ok(excess as u64)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())?
}

impl Job for Backup {
    fn run<'a>(
        &'a self,
        m: &'a UserManager,
        by: &'a Principal,
    ) -> BoxFuture<'a, Result<JobReport, String>> {
        Box::pin(async move {
            let config = m.config();
            let dir = config.store.data_dir.join(&config.automation.backup.folder);
            let keep = config.automation.backup.keep;
            let out = dir.join(file_name(m.now()));
            let partial = PathBuf::from(format!("{}.partial", out.display()));
            let file = {
                let (dir, partial) = (dir.clone(), partial.clone());
                blocking(move || {
                    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                    std::fs::File::create(&partial)
                        .map_err(|e| format!("{}: {e}", partial.display()))
                })
                .await?
            };
            let written = m
                .ops()
                .backup(by, std::io::BufWriter::new(file))
                .await
                .map_err(|e| e.to_string());
            let checked = match written {
                Ok((_, report)) => {
                    let (partial, out) = (partial.clone(), out.clone());
                    blocking(move || {
                        BackupFile::seal(&partial, &out).map_err(|e| e.to_string())?;
                        Ok(report)
                    })
                    .await
                }
                Err(e) => Err(e),
            };
            let report = match checked {
                Ok(r) => r,
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(format!("the backup was not written: {e}"));
                }
            };
            let removed = blocking(move || prune(&dir, keep)).await?;
            Ok(JobReport::new(format!(
                "backup {} written ({} bytes, {} rows, {} changes during it), checked; {removed} older removed, the newest {keep} kept; it does not hold the master key ({})",
                out.display(),
                report.bytes,
                report.rows,
                report.changes,
                report.master_key_fingerprint
            ))
            .count("bytes", report.bytes)
            .count("rows", report.rows)
            .count("changes", report.changes)
            .count("removed", removed))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_as_times_and_only_the_newest_are_kept() {
        let at = Timestamp::from_millis(1_800_000_000_000);
        let name = file_name(at);
        assert!(is_scheduled_backup(&name), "{name}");
        assert!(file_name(Timestamp::from_millis(1_800_000_060_000)) > name);
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "roster-20270101T000000Z.backup",
            "roster-20270102T000000Z.backup",
            "roster-20270103T000000Z.backup",
            "mine.backup",
            "roster-20270104T000000Z.backup.partial",
        ] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        assert_eq!(prune(dir.path(), 2).unwrap(), 1);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "mine.backup",
                "roster-20270102T000000Z.backup",
                "roster-20270103T000000Z.backup",
                "roster-20270104T000000Z.backup.partial"
            ]
        );
    }
}
