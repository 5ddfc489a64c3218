//! `roster purge`: retention of security events, through a running server or on a stopped
//! one's data directory; both go through the engine's front door.

use super::remote::Remote;
use super::{CliError, Target};
use crate::config::Config;
use crate::engine::{Principal, PurgeReport};

/// `roster purge` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct PurgeArgs {
    /// A server, or a data directory.
    #[command(flatten)]
    pub target: Target,
}

fn print(r: &PurgeReport) {
    println!(
        "purged security events before {}: {} from {} of {} users' records, {} archived; \
         {} ended sessions and {} expired link challenges dropped",
        r.cutoff, r.in_state, r.rewritten, r.users, r.archived, r.sessions, r.challenges
    );
}

pub(super) async fn offline(config: Config) -> Result<(), CliError> {
    let manager = super::open_local(config).await?;
    let by = Principal::System("purge");
    let report = manager.ops().purge_security_events(&by).await;
    manager.shutdown().await?;
    print(&report?);
    Ok(())
}

pub(super) async fn through_server(server: &Remote) -> Result<(), CliError> {
    let report: PurgeReport = server
        .json(reqwest::Method::POST, "/admin/security-events/purge")
        .await?;
    print(&report);
    Ok(())
}
