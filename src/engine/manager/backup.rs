//! Backups and restores: a point-in-time copy of the store written while the engine
//! serves (operators and the system), and its restore into an empty data directory
//! (the command line, with no engine running).

use std::collections::HashSet;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::Ops;
use super::principal::Principal;
use crate::config::{Backend, Config};
use crate::domain::audit::AuditAction;
use crate::domain::time::Timestamp;
use crate::engine::EngineError;
use crate::store::backup::{self, BackupError, Header, Restored};

/// What a backup wrote.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct BackupReport {
    /// The file's size.
    pub bytes: u64,
    /// Rows of the store's scan.
    pub rows: u64,
    /// Writes made during the scan (a restore replays them).
    pub changes: u64,
    /// The audit log's length at the backup's point in time.
    pub audit_records: u64,
    /// The master key that opens it (never in the file).
    pub master_key_fingerprint: String,
    /// When it started.
    pub started_at: Timestamp,
    /// Its point in time: everything acknowledged before is in it.
    pub point_in_time: Timestamp,
}

impl Ops<'_> {
    /// Writes a backup of the store to `out` while the engine serves (see
    /// [`crate::store::backup`]): reads and writes go on, actors are not held. Audited
    /// when it starts (`backup_started`) and when it is written (`backup_taken`).
    pub async fn backup<W: Write + Send + 'static>(
        self,
        by: &Principal,
        out: W,
    ) -> Result<(W, BackupReport), EngineError> {
        by.privileged()?;
        if let Some(actor) = by.audit_actor() {
            self.m.audit(actor, AuditAction::BackupStarted).await?;
        }
        // Soft state only live actors hold (activity, risk history) is written first, so
        // the backup has it as of now.
        self.m.snapshot_live().await?;
        let e = Arc::clone(&self.m.engine);
        let started_at = self.m.now();
        let header = Header {
            format: backup::format::VERSION,
            created_at_ms: started_at.as_millis(),
            master_key_fingerprint: e.keys.fingerprint().to_string(),
            backend: match e.config.store.backend {
                Backend::Sled => "sled".into(),
            },
            roster_version: env!("CARGO_PKG_VERSION").into(),
        };
        let fingerprint = header.master_key_fingerprint.clone();
        // Not at batch priority: the thread reading the writes made meanwhile, which it
        // starts, must keep up with the store's writers (sled blocks them when it lags).
        let (out, trailer, bytes) = tokio::task::spawn_blocking(move || {
            backup::write(e.store.as_ref(), out, &header, || e.clock.now().as_millis())
        })
        .await
        .map_err(|err| EngineError::Internal(format!("backup task: {err}")))?
        .map_err(|err| EngineError::Store(err.to_string()))?;
        let report = BackupReport {
            bytes,
            rows: trailer.rows,
            changes: trailer.changes,
            audit_records: trailer.audit_records,
            master_key_fingerprint: fingerprint,
            started_at,
            point_in_time: Timestamp::from_millis(trailer.cut_at_ms),
        };
        if let Some(actor) = by.audit_actor() {
            let action = AuditAction::BackupTaken {
                rows: report.rows,
                changes: report.changes,
                bytes: report.bytes,
                audit_records: report.audit_records,
            };
            self.m.audit(actor, action).await?;
        }
        let data = serde_json::to_value(&report).unwrap_or_default();
        let e = &self.m.engine;
        e.realtime
            .publish_operator("backup_taken", self.m.now(), data);
        tracing::info!(
            bytes = report.bytes,
            rows = report.rows,
            changes = report.changes,
            "backup written; it does not hold the master key ({}): back the key up apart",
            report.master_key_fingerprint
        );
        Ok((out, report))
    }
}

/// Why a restore did not happen, or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The data directory to restore into holds something.
    #[error(
        "{0} is not empty: a backup is restored into a new, empty data directory only \
         (it may hold the master key file)"
    )]
    NotEmpty(PathBuf),
    /// A backup file (the one restored, or one read for its erasures) is bad.
    #[error("{file}: {error}")]
    Backup {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        error: BackupError,
    },
    /// The new store could not be written.
    #[error("restore: {0}")]
    Io(String),
    /// The backups read for the erasures since leave a gap longer than tombstones are
    /// kept (`privacy.tombstone_retention_days`): a user erased in it may have left no
    /// tombstone in any of them, and would come back.
    #[error(
        "{} ends {days} days after the point in time of {}, more than privacy.tombstone_retention_days \
         ({retention_days}): a user erased in between may have no tombstone left in it and \
         would come back; add a backup taken in between to --erasures-from",
        later.display(),
        earlier.display()
    )]
    ErasureGap {
        /// The restored backup, or the newer one before the gap.
        earlier: PathBuf,
        /// The newer backup after the gap.
        later: PathBuf,
        /// The gap, in whole days.
        days: i64,
        /// How long tombstones are kept, in days.
        retention_days: u64,
    },
}

/// Checks that the backups read for the erasures since a restored backup leave no gap
/// longer than tombstones are kept: from the restored backup's start (`restored`), each
/// newer backup's point in time in order must lie within `retention` of the one before,
/// so that every user erased up to the last of them has its tombstone in one of them. A
/// backup from before the restored one adds nothing and is passed over.
fn erasure_chain(
    restored: (&Path, i64),
    newer: &[(PathBuf, i64)],
    retention: std::time::Duration,
) -> Result<(), RestoreError> {
    let mut points: Vec<(&Path, i64)> = newer
        .iter()
        .filter(|(_, cut)| *cut > restored.1)
        .map(|(p, cut)| (p.as_path(), *cut))
        .collect();
    points.sort_by_key(|&(_, cut)| cut);
    let limit = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let mut before = restored;
    for next in points {
        if next.1 - before.1 > limit {
            return Err(RestoreError::ErasureGap {
                earlier: before.0.to_owned(),
                later: next.0.to_owned(),
                days: (next.1 - before.1) / 86_400_000,
                retention_days: retention.as_secs() / 86_400,
            });
        }
        before = next;
    }
    Ok(())
}

/// Backup files, as the commands and jobs handle them (no engine needed).
pub struct BackupFile;

impl BackupFile {
    /// Checks a whole backup file; returns its header and trailer.
    pub fn check(file: &Path) -> Result<(Header, backup::Trailer), RestoreError> {
        let bad = |error| RestoreError::Backup {
            file: file.to_owned(),
            error,
        };
        let f = std::fs::File::open(file).map_err(|e| bad(BackupError::Io(e.to_string())))?;
        backup::check(BufReader::new(f)).map_err(bad)
    }

    /// Checks the whole written backup `partial`, makes it durable and gives it its name
    /// `out` (a file synced, renamed, its folder synced), so that a crash never leaves a
    /// backup that was reported good but is not on disk. On a failed check `partial` is
    /// removed.
    pub fn seal(partial: &Path, out: &Path) -> Result<(Header, backup::Trailer), RestoreError> {
        let checked = BackupFile::check(partial);
        if checked.is_err() {
            let _ = std::fs::remove_file(partial);
            return checked;
        }
        let io = |what: &str, e: std::io::Error| RestoreError::Io(format!("{what}: {e}"));
        std::fs::File::open(partial)
            .and_then(|f| f.sync_all())
            .map_err(|e| io(&format!("syncing {}", partial.display()), e))?;
        std::fs::rename(partial, out).map_err(|e| io(&format!("naming {}", out.display()), e))?;
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io(&format!("syncing {}", dir.display()), e))?;
        }
        checked
    }

    /// Restores `file` into the data directory of `config`, which must not exist or hold
    /// nothing but the master key file; users erased in any of `erasures_from` (newer
    /// backups) are erased again — refused if those leave a gap longer than tombstones are
    /// kept (see [`RestoreError::ErasureGap`]). The new store is checked before this
    /// reports success;
    /// on a failure what it wrote is removed, and until it succeeds the directory holds
    /// [`crate::store::RESTORE_MARKER`]. No engine runs: start a server on the directory
    /// afterwards, with the master key the header names.
    pub fn restore(
        config: &Config,
        file: &Path,
        erasures_from: &[PathBuf],
    ) -> Result<Restored, RestoreError> {
        let dir = &config.store.data_dir;
        // The master key may already be in place (its default file is in the directory).
        let key_file = config.master_key_file();
        let foreign = |dir: &Path| -> std::io::Result<Vec<PathBuf>> {
            match std::fs::read_dir(dir) {
                Ok(entries) => Ok(entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| *p != key_file)
                    .collect()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        };
        let existed = dir.exists();
        if !foreign(dir)
            .map_err(|e| RestoreError::Io(e.to_string()))?
            .is_empty()
        {
            return Err(RestoreError::NotEmpty(dir.clone()));
        }
        let open = |f: &Path| {
            std::fs::File::open(f)
                .map(BufReader::new)
                .map_err(|e| RestoreError::Backup {
                    file: f.to_owned(),
                    error: BackupError::Io(e.to_string()),
                })
        };
        let started = backup::BackupReader::open(open(file)?)
            .map_err(|error| RestoreError::Backup {
                file: file.to_owned(),
                error,
            })?
            .header()
            .created_at_ms;
        let mut erased = HashSet::new();
        let mut points = Vec::with_capacity(erasures_from.len());
        for newer in erasures_from {
            let (users, trailer) =
                backup::erasures(open(newer)?).map_err(|error| RestoreError::Backup {
                    file: newer.clone(),
                    error,
                })?;
            erased.extend(users);
            points.push((newer.clone(), trailer.cut_at_ms));
        }
        erasure_chain((file, started), &points, config.privacy.tombstone_retention)?;
        let input = open(file)?;
        let marker = dir.join(crate::store::RESTORE_MARKER);
        let restored = crate::store::open(&config.store)
            .map_err(|e| RestoreError::Io(e.to_string()))
            .and_then(|store| {
                // Until the restore has checked out, no store opens here (a crash midway
                // leaves the marker, and the half-restored store is refused).
                std::fs::write(&marker, b"a restore into this directory has not finished\n")
                    .map_err(|e| RestoreError::Io(format!("{}: {e}", marker.display())))?;
                let done = backup::restore(input, store.as_ref(), &erased).map_err(|error| {
                    RestoreError::Backup {
                        file: file.to_owned(),
                        error,
                    }
                })?;
                std::fs::remove_file(&marker)
                    .map_err(|e| RestoreError::Io(format!("{}: {e}", marker.display())))?;
                Ok(done)
            });
        if restored.is_err() {
            // Nothing half-restored is left to be started by mistake.
            let cleanup = foreign(dir).and_then(|paths| {
                paths.into_iter().try_for_each(|p| {
                    if p.is_dir() {
                        std::fs::remove_dir_all(p)
                    } else {
                        std::fs::remove_file(p)
                    }
                })
            });
            let cleanup = cleanup.and_then(|()| match existed {
                // An empty directory this restore made goes too.
                false if foreign(dir).is_ok_and(|rest| rest.is_empty()) && !key_file.exists() => {
                    std::fs::remove_dir(dir)
                }
                _ => Ok(()),
            });
            if let Err(e) = cleanup {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove a failed restore");
            }
        }
        restored
    }
}
