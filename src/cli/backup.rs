//! `roster backup`: a point-in-time copy of the store as one file, through a running
//! server (it goes on serving) or from a stopped one's data directory; and `roster
//! restore`: that file into a new, empty data directory, checked before it says so.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::remote::Remote;
use super::{CliError, ConfigArgs, Target};
use crate::config::Config;
use crate::domain::time::Timestamp;
use crate::engine::{BackupFile, BackupHeader, BackupTrailer, Principal, Restored};

/// `roster backup` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct BackupArgs {
    /// A server, or a data directory.
    #[command(flatten)]
    pub target: Target,
    /// The file to write (it must not exist; written as `<FILE>.partial` first).
    #[arg(long)]
    pub out: PathBuf,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

/// `roster restore` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct RestoreArgs {
    /// The backup file.
    pub file: PathBuf,
    /// The configuration and the new data directory (--data-dir is required: it must not
    /// exist, or be empty but for the master key file).
    #[command(flatten)]
    pub local: ConfigArgs,
    /// A newer backup whose erased users are erased again in the restored store (may be
    /// given more than once). Without it, users erased after FILE was taken come back.
    #[arg(long = "erasures-from")]
    pub erasures_from: Vec<PathBuf>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("{what}: {e}"))
}

fn partial_of(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Refuses to overwrite a backup, and makes the partial file.
fn create(out: &Path) -> Result<(PathBuf, std::fs::File), CliError> {
    if out.exists() {
        return Err(CliError::Usage(format!(
            "{} exists: a backup never replaces another; name a new file",
            out.display()
        )));
    }
    let partial = partial_of(out);
    let file = std::fs::File::create(&partial)
        .map_err(|e| failed(&format!("creating {}", partial.display()), e))?;
    Ok((partial, file))
}

/// Checks the whole written file, then gives it its name.
async fn seal(partial: PathBuf, out: &Path) -> Result<(BackupHeader, BackupTrailer), CliError> {
    let out = out.to_owned();
    tokio::task::spawn_blocking(move || BackupFile::seal(&partial, &out))
        .await
        .map_err(|e| failed("checking the backup", e))?
        .map_err(|e| failed("the written backup", e))
}

fn print_backup(out: &Path, bytes: u64, header: &BackupHeader, trailer: &BackupTrailer) {
    println!(
        "backup written to {}: {bytes} bytes, {} rows and {} changes made during it, {} \
         audit records; point in time {}\n\
         IT DOES NOT CONTAIN THE MASTER KEY (fingerprint {}). Without that key nothing in \
         it can be read: keep a copy of the key file apart from the backups \
         (docs/operations.md, \"Disaster recovery\")",
        out.display(),
        trailer.rows,
        trailer.changes,
        trailer.audit_records,
        Timestamp::from_millis(trailer.cut_at_ms),
        header.master_key_fingerprint
    );
}

/// Backs up a stopped server's data directory.
pub(super) async fn offline(config: Config, a: &BackupArgs) -> Result<(), CliError> {
    let (partial, file) = create(&a.out)?;
    let manager = super::open_local(config).await?;
    let spinner = super::spinner("writing the backup", a.quiet);
    let written = manager
        .ops()
        .backup(&Principal::System("backup"), std::io::BufWriter::new(file))
        .await;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    manager.shutdown().await?;
    let (_, report) = written.inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    let (header, trailer) = seal(partial, &a.out).await?;
    print_backup(&a.out, report.bytes, &header, &trailer);
    Ok(())
}

/// Backs up a running server, which goes on serving.
pub(super) async fn through_server(server: &Remote, a: &BackupArgs) -> Result<(), CliError> {
    let (partial, file) = create(&a.out)?;
    let mut out = std::io::BufWriter::new(file);
    let spinner = super::spinner("receiving the backup", a.quiet);
    let received = async {
        let mut resp = server.send(reqwest::Method::GET, "/admin/backup").await?;
        let mut bytes = 0u64;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| failed("the backup stopped before it was complete", e))?
        {
            out.write_all(&chunk)
                .map_err(|e| failed(&format!("writing {}", partial.display()), e))?;
            bytes += chunk.len() as u64;
            if let Some(s) = &spinner {
                s.set_message(format!("receiving the backup: {} MiB", bytes >> 20));
            }
        }
        out.flush()
            .map_err(|e| failed(&format!("writing {}", partial.display()), e))?;
        Ok::<_, CliError>(bytes)
    }
    .await;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let bytes = received.inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    let (header, trailer) = seal(partial, &a.out).await?;
    print_backup(&a.out, bytes, &header, &trailer);
    Ok(())
}

/// Restores a backup into a new data directory.
pub(super) async fn restore(config: Config, a: &RestoreArgs) -> Result<(), CliError> {
    if a.local.data_dir.is_none() {
        return Err(CliError::Usage(
            "restore needs --data-dir NEW: a new, empty data directory".into(),
        ));
    }
    let (file, erasures) = (a.file.clone(), a.erasures_from.clone());
    let key_file = config.master_key_file();
    let dir = config.store.data_dir.clone();
    let restored: Restored =
        tokio::task::spawn_blocking(move || BackupFile::restore(&config, &file, &erasures))
            .await
            .map_err(|e| failed("the restore", e))?
            .map_err(|e| CliError::Failed(e.to_string()))?;
    println!(
        "restored {} into {}: {} users, audit chain of {} records verified, {} users erased \
         since the backup erased again\n\
         start the server on it with the master key of fingerprint {} (at {}, or in the \
         variable the configuration names)",
        a.file.display(),
        dir.display(),
        restored.users,
        restored.audit_records,
        restored.erased_again,
        restored.header.master_key_fingerprint,
        key_file.display()
    );
    if a.erasures_from.is_empty() {
        println!(
            "no --erasures-from given: users erased after this backup's point in time ({}) \
             are back, readable; restore with the newest backup as \
             --erasures-from to erase them again",
            Timestamp::from_millis(restored.trailer.cut_at_ms)
        );
    }
    Ok(())
}
