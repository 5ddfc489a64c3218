//! `roster rotate-master-key`: every data key rewrapped with a new master key, through a
//! running server (no downtime) or on a stopped one's data directory.

use super::remote::Remote;
use super::{CliError, Target};
use crate::config::Config;
use crate::engine::{Principal, RotationProgress, RotationReport};

/// `roster rotate-master-key` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct RotateArgs {
    /// A server, or a data directory.
    #[command(flatten)]
    pub target: Target,
}

fn print_progress(p: RotationProgress) {
    let pct = if p.total == 0 {
        100.0
    } else {
        p.done as f64 * 100.0 / p.total as f64
    };
    eprint!("\rrewrapping data keys: {}/{} ({pct:.0}%)", p.done, p.total);
    if p.done >= p.total {
        eprintln!();
    }
}

fn print_report(r: &RotationReport) {
    println!(
        "master key rotated: {} -> {}, {} data keys rewrapped\n\
         back up the new key file now; the retired key is at {} and opens only backups \
         taken before the rotation: destroy it when they expire",
        r.from, r.to, r.rewrapped, r.retired_key_file
    );
    if r.unreadable > 0 {
        println!(
            "{} data keys did not unwrap and were left as they were (damaged before the \
             rotation; the log names their users)",
            r.unreadable
        );
    }
}

/// Rotates on a stopped server's store.
pub(super) async fn offline(config: Config) -> Result<(), CliError> {
    let manager = super::open_local(config).await?;
    let by = Principal::System("rotate-master-key");
    let report = manager.ops().rotate_master_key(&by, print_progress).await;
    manager.shutdown().await?;
    print_report(&report?);
    Ok(())
}

/// Asks a running server to rotate, printing the progress it streams.
pub(super) async fn through_server(server: &Remote) -> Result<(), CliError> {
    let resp = server
        .send(reqwest::Method::POST, "/admin/master-key/rotate")
        .await?;
    let report = super::remote::follow(resp, "rotated", "the rotation", print_progress).await?;
    print_report(&report);
    Ok(())
}
