//! `roster verify-audit`: checks the audit log's hash chain, offline on a data directory
//! (the store alone: no master key is needed, the log is not encrypted) or through a
//! running server.

use super::remote::Remote;
use super::{CliError, Target};
use crate::config::Config;
use crate::engine::AuditVerdict;

/// `roster verify-audit` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct VerifyAuditArgs {
    /// A server, or a data directory.
    #[command(flatten)]
    pub target: Target,
}

fn report(verdict: AuditVerdict) -> Result<(), CliError> {
    match verdict {
        AuditVerdict::Intact { records } => {
            println!("audit log intact: {records} records");
            Ok(())
        }
        AuditVerdict::Broken { seq, reason } => Err(CliError::Failed(format!(
            "audit log broken: record {seq}: {reason}"
        ))),
    }
}

pub(super) fn verify_local(config: &Config) -> Result<(), CliError> {
    report(crate::engine::UserManager::verify_audit_offline(config)?)
}

pub(super) async fn verify_remote(server: &Remote) -> Result<(), CliError> {
    report(
        server
            .json(reqwest::Method::GET, "/admin/audit/verify")
            .await?,
    )
}
