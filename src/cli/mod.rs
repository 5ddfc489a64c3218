//! The `roster` command line: one file per command, each a client of the library's front
//! door — [`UserManager`](crate::engine::UserManager) on a data directory, or a running server
//! over its HTTP API (`--server URL`, the operator key from `ROSTER_ADMIN_KEY`).
//!
//! `main.rs` parses a [`Cli`], loads the configuration it names ([`Cli::config`]), sets up
//! tracing and hands both to [`run`].

mod audit;
mod backup;
mod deny;
mod hold;
mod jobs;
pub use jobs::JobsArgs;
pub use report::GenerateAnalyticsArgs;
pub use tiers::AnalyzeTiersArgs;
mod loadgen;
mod provision;
mod purge;
mod remote;
mod report;
mod revoke;
mod rotate;
mod serve;
mod siem;
pub mod simulate;
mod tiers;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, Flags};
use crate::domain::hold::AccountAction;
use crate::domain::job::JobKind;

/// The command line.
#[derive(Parser)]
#[command(name = "roster", version, about = "User-management engine and server")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Start the engine and serve it.
    Serve(serve::ServeArgs),
    /// Generate load against a Roster server and report throughput and latency.
    Loadgen(Box<loadgen::LoadgenArgs>),
    /// Check the audit log's hash chain: of a running server (--server), or of a data
    /// directory whose server is stopped (the store is locked while one runs).
    VerifyAudit(audit::VerifyAuditArgs),
    /// Replace the master key of encryption at rest: every user's data key is rewrapped
    /// with a new, generated key; the old key file is kept as
    /// `<file>.retired-<fingerprint>`. With --server the running server does it, with
    /// no downtime; without, the store is opened here (stop the server first).
    RotateMasterKey(rotate::RotateArgs),
    /// Delete security events older than `privacy.security_event_retention_days`, from
    /// users' records and the archive (retention): through a running server (--server),
    /// or on a data directory whose server is stopped.
    Purge(purge::PurgeArgs),
    /// Build a seeded population with a planted truth (tiers, sign-up dates, listening
    /// habits, a churn process) through the import endpoints, and write the truth to a
    /// CSV file: for demos, benches and judging a model against the best achievable.
    Simulate(simulate::SimulateArgs),
    /// Create or update users from CSV or JSONL files (docs/automation.md): each row
    /// once however often it is run, refused rows in `<file>.errors.csv`, a run that
    /// stopped resumes from `<file>.checkpoint`; through a running server (--server)
    /// or on a data directory whose server is stopped.
    ProvisionUsers(provision::ProvisionArgs),
    /// Tier analysis: users who are candidates for an upgrade (Free near its quotas or
    /// listening most days), a downgrade (paid, using little), an Enterprise plan
    /// (Premium using features as Enterprise users do) or a retention offer (paid, at
    /// high churn risk), each with its reasons; a summary table, --json and --csv.
    /// Through a running server (--server) or on a stopped data directory.
    AnalyzeTiers(tiers::AnalyzeTiersArgs),
    /// The usage report of a period (--from, --to): tier distribution and migrations,
    /// sign-ups, logins and active users per day, DAU/WAU/MAU, engagement, retention
    /// cohorts, segments, the churn model card, security events and risk decisions,
    /// feature usage — as report.json, CSV tables and a self-contained report.html in
    /// --out. Through a running server (--server) or on a stopped data directory.
    GenerateAnalytics(report::GenerateAnalyticsArgs),
    /// Run the `cleanup` job now (retention of security events, expired invitations):
    /// through a running server's scheduler (--server), recorded in its job history, or
    /// on a data directory whose server is stopped.
    Cleanup(jobs::JobsArgs),
    /// Run every job now, in order — provisioning (the inbox), analytics, tier analysis,
    /// recommendations, cleanup, backup — each reported, a failed one not stopping the next;
    /// exits non-zero if any failed. Through a running server (--server) or on a
    /// stopped data directory.
    RunAll(jobs::JobsArgs),
    /// Write a point-in-time backup of the store to one file (--out), checked after it
    /// is written: through a running server (--server), which goes on serving, or from
    /// a data directory whose server is stopped. The master key is never in it.
    Backup(backup::BackupArgs),
    /// Restore a backup into a new, empty data directory (--data-dir), checking its
    /// checksum, the audit chain and its counts first; users erased in newer backups
    /// (--erasures-from) are erased again. The server is then started on it.
    Restore(backup::RestoreArgs),
    /// End, across every user, the live sessions a selector names (--all, --tier,
    /// --cidr, --created-after/--created-before, --event-kind with --since; combined
    /// with "and"), or count them (--dry-run): through a running server (--server) or on
    /// a stopped data directory. Audited; passivated users are included.
    RevokeSessions(Box<revoke::RevokeArgs>),
    /// Lock the accounts a selector names (the flags of revoke-sessions, and --user-id):
    /// their sessions end and no login completes until they are unlocked; or count them
    /// (--dry-run). Through a running server (--server) or on a stopped data directory.
    LockAccounts(Box<hold::HoldArgs>),
    /// Unlock the locked accounts a selector names (a required new password stays
    /// required).
    UnlockAccounts(Box<hold::HoldArgs>),
    /// Require a new password of the accounts a selector names: their sessions end, the
    /// old password no longer logs in, and each is emailed a single-use link to set one.
    ResetPasswords(Box<hold::HoldArgs>),
    /// The runtime deny-list of networks: `add NETWORK --reason R` (its logins are
    /// refused and its sessions end at once), `remove NETWORK`, `list`. Through a
    /// running server (--server) or on a stopped data directory.
    DenyNetwork(Box<deny::DenyArgs>),
    /// Write the security events of a window (--from, --to; default the last day) as
    /// JSON lines for a SIEM (schema roster.security_event/1, OCSF field names) to
    /// --out: through a running server (--server) or from a stopped data directory.
    ExportSecurityEvents(siem::SiemArgs),
}

/// Where a command's configuration comes from (the settings of `roster serve`).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ConfigArgs {
    /// Config file layered over the embedded default (only the keys it sets).
    #[arg(long, env = "ROSTER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (default ./data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl ConfigArgs {
    fn load(&self, listen: Option<std::net::SocketAddr>) -> Result<Config, ConfigError> {
        let flags = Flags {
            listen,
            data_dir: self.data_dir.clone(),
        };
        Config::load(self.config.as_deref(), &flags)
    }
}

/// Where a command that can work either way runs: a running server, or a data directory.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Target {
    /// The configuration of the data directory worked on (without --server).
    #[command(flatten)]
    pub local: ConfigArgs,
    /// A running server to work through, e.g. http://127.0.0.1:8080.
    #[arg(long, conflicts_with_all = ["config", "data_dir"])]
    pub server: Option<String>,
    /// The operator key, for --server.
    #[arg(long, env = "ROSTER_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
}

impl Cli {
    /// The configuration the command works with: `None` for a command that only talks to
    /// a server (its settings are the server's).
    pub fn config(&self) -> Result<Option<Config>, ConfigError> {
        match &self.command {
            Command::Serve(a) => a.local.load(a.listen).map(Some),
            Command::Loadgen(_) => Ok(None),
            Command::VerifyAudit(a) => a.target.config(),
            Command::RotateMasterKey(a) => a.target.config(),
            Command::Purge(a) => a.target.config(),
            Command::Simulate(a) => a.target.config(),
            Command::ProvisionUsers(a) => a.target.config(),
            Command::AnalyzeTiers(a) => a.target.config(),
            Command::GenerateAnalytics(a) => a.target.config(),
            Command::Cleanup(a) | Command::RunAll(a) => a.target.config(),
            Command::Backup(a) => a.target.config(),
            Command::Restore(a) => a.local.load(None).map(Some),
            Command::RevokeSessions(a) => a.target.config(),
            Command::LockAccounts(a) | Command::UnlockAccounts(a) | Command::ResetPasswords(a) => {
                a.target.config()
            }
            Command::ExportSecurityEvents(a) => a.target.config(),
            Command::DenyNetwork(a) => a.action.target().config(),
        }
    }
}

impl Target {
    fn config(&self) -> Result<Option<Config>, ConfigError> {
        match self.server {
            Some(_) => Ok(None),
            None => self.local.load(None).map(Some),
        }
    }

    /// The server and its key, for --server.
    fn remote(&self) -> Result<Option<remote::Remote>, CliError> {
        let Some(url) = &self.server else {
            return Ok(None);
        };
        let key = self.admin_key.clone().ok_or_else(|| {
            CliError::Usage(
                "--server needs the operator key (--admin-key or ROSTER_ADMIN_KEY)".into(),
            )
        })?;
        Ok(Some(remote::Remote::new(url, key)))
    }
}

/// Why a command failed; printed as `roster: <reason>` with a non-zero exit.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The arguments do not make sense together.
    #[error("{0}")]
    Usage(String),
    /// The server could not run.
    #[error(transparent)]
    Server(#[from] crate::server::ServerError),
    /// The engine refused or failed.
    #[error("{0}")]
    Engine(#[from] crate::engine::EngineError),
    /// The command ran and found something wrong (a broken audit chain).
    #[error("{0}")]
    Failed(String),
}

/// Runs `command` with the `config` that [`Cli::config`] loaded for it.
pub async fn run(command: Command, config: Option<Config>) -> Result<(), CliError> {
    let local = || config.ok_or_else(|| CliError::Usage("no configuration".into()));
    match command {
        Command::Serve(_) => serve::run(local()?).await,
        Command::Loadgen(args) => loadgen::run(&args).await,
        Command::VerifyAudit(a) => match a.target.remote()? {
            Some(r) => audit::verify_remote(&r).await,
            None => audit::verify_local(&local()?),
        },
        Command::RotateMasterKey(a) => match a.target.remote()? {
            Some(r) => rotate::through_server(&r).await,
            None => rotate::offline(local()?).await,
        },
        Command::Purge(a) => match a.target.remote()? {
            Some(r) => purge::through_server(&r).await,
            None => purge::offline(local()?).await,
        },
        Command::Simulate(a) => match a.target.remote()? {
            Some(r) => simulate::through_server(&r, &a).await,
            None => simulate::offline(local()?, &a).await,
        },
        Command::ProvisionUsers(a) => match a.target.remote()? {
            Some(r) => provision::through_server(&r, &a).await,
            None => provision::offline(local()?, &a).await,
        },
        Command::AnalyzeTiers(a) => match a.target.remote()? {
            Some(r) => tiers::through_server(&r, &a).await,
            None => tiers::offline(local()?, &a).await,
        },
        Command::GenerateAnalytics(a) => match a.target.remote()? {
            Some(r) => report::through_server(&r, &a).await,
            None => report::offline(local()?, &a).await,
        },
        Command::Cleanup(a) => run_jobs(&[JobKind::Cleanup], &a, local).await,
        Command::RunAll(a) => run_jobs(&JobKind::ALL, &a, local).await,
        Command::Backup(a) => match a.target.remote()? {
            Some(r) => backup::through_server(&r, &a).await,
            None => backup::offline(local()?, &a).await,
        },
        Command::Restore(a) => backup::restore(local()?, &a).await,
        Command::RevokeSessions(a) => match a.target.remote()? {
            Some(r) => revoke::through_server(&r, &a).await,
            None => revoke::offline(local()?, &a).await,
        },
        Command::LockAccounts(a) => hold_accounts(AccountAction::Lock, &a, local).await,
        Command::UnlockAccounts(a) => hold_accounts(AccountAction::Unlock, &a, local).await,
        Command::ResetPasswords(a) => hold_accounts(AccountAction::ResetPassword, &a, local).await,
        Command::DenyNetwork(a) => match a.action.target().remote()? {
            Some(r) => deny::through_server(&r, &a.action).await,
            None => deny::offline(local()?, &a.action).await,
        },
        Command::ExportSecurityEvents(a) => match a.target.remote()? {
            Some(r) => siem::through_server(&r, &a).await,
            None => siem::offline(local()?, &a).await,
        },
    }
}

async fn hold_accounts(
    action: AccountAction,
    a: &hold::HoldArgs,
    local: impl FnOnce() -> Result<Config, CliError>,
) -> Result<(), CliError> {
    match a.target.remote()? {
        Some(r) => hold::through_server(&r, action, a).await,
        None => hold::offline(local()?, action, a).await,
    }
}

async fn run_jobs(
    kinds: &[JobKind],
    a: &jobs::JobsArgs,
    local: impl FnOnce() -> Result<Config, CliError>,
) -> Result<(), CliError> {
    match a.target.remote()? {
        Some(r) => jobs::through_server(&r, kinds, a).await,
        None => jobs::offline(local()?, kinds, a).await,
    }
}

/// A progress bar of `len` steps drawn by `template` (indicatif's), for a terminal.
fn bar(len: u64, template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template(template).map(|s| s.progress_chars("=> "))
    {
        bar.set_style(style);
    }
    bar
}

/// A spinner with `msg` on a terminal, a plain line on standard error otherwise, nothing
/// with `quiet`: for a command that waits on one long call.
fn spinner(msg: &str, quiet: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal as _;
    if quiet {
        return None;
    }
    if !std::io::stderr().is_terminal() {
        eprintln!("{msg}…");
        return None;
    }
    let s = indicatif::ProgressBar::new_spinner().with_message(msg.to_owned());
    s.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(s)
}

/// Opens the engine on a stopped server's data directory (blocking work, off the
/// runtime); the error says so if a server holds it.
async fn open_local(config: Config) -> Result<crate::engine::UserManager, CliError> {
    let dir = config.store.data_dir.clone();
    tokio::task::spawn_blocking(move || crate::engine::UserManager::open(config))
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?
        .map_err(|e| {
            CliError::Failed(format!(
                "opening the store in {} (if a server is running, use --server): {e}",
                dir.display()
            ))
        })
}
