//! `roster lock-accounts`, `unlock-accounts` and `reset-passwords`: an operator's bulk
//! account actions over the accounts a selector names — through a running server (it
//! goes on serving) or on a stopped one's data directory.

use super::remote::Remote;
use super::revoke::SelectorArgs;
use super::{CliError, Target};
use crate::config::Config;
use crate::domain::hold::AccountAction;
use crate::engine::{BulkHold, HoldProgress, Principal};

/// The arguments of a bulk account action: the selector as flags.
#[derive(clap::Args, Clone, Debug)]
pub struct HoldArgs {
    /// A server, or a data directory.
    #[command(flatten)]
    pub target: Target,
    /// Which accounts: those of --all, --tier, --user-id, --event-kind with --since;
    /// with --cidr, --created-after or --created-before, those with a live session
    /// they match.
    #[command(flatten)]
    pub select: SelectorArgs,
}

fn path(action: AccountAction) -> &'static str {
    match action {
        AccountAction::Lock => "/admin/users/lock",
        AccountAction::Unlock => "/admin/users/unlock",
        AccountAction::ResetPassword => "/admin/users/reset-password",
    }
}

fn print_progress(p: HoldProgress) {
    eprintln!(
        "users {}/{}: {} accounts matched, {} changed",
        p.done, p.users, p.matched, p.changed
    );
}

fn print_report(r: &BulkHold) {
    if r.cancelled {
        println!("cancelled by an operator: the users not yet asked were left alone");
    }
    if r.failed > 0 {
        println!(
            "{} users could not be read or did not answer and were left as they were (the \
             server's log names them): run it again to retry them",
            r.failed
        );
    }
    let done = match r.action {
        AccountAction::Lock => "locked",
        AccountAction::Unlock => "unlocked",
        AccountAction::ResetPassword => "made to set a new password",
    };
    if r.dry_run {
        println!(
            "dry run: {} accounts would be {done} and {} live sessions end ({} users \
             read); nothing changed",
            r.matched, r.sessions_ended, r.scanned
        );
        return;
    }
    println!(
        "{} accounts {done} of {} matched, {} sessions ended ({} users read)",
        r.changed, r.matched, r.sessions_ended, r.scanned
    );
    if r.action == AccountAction::ResetPassword {
        println!("{} reset links emailed", r.links_sent);
        if r.links_unsent > 0 {
            println!(
                "{} links could not be queued: run the reset again for those users (the \
                 server's log names them)",
                r.links_unsent
            );
        }
    }
}

/// On a stopped server's data directory.
pub(super) async fn offline(
    config: Config,
    action: AccountAction,
    a: &HoldArgs,
) -> Result<(), CliError> {
    let selector = a.select.selector()?;
    let manager = super::open_local(config).await?;
    let report = manager
        .accounts()
        .hold_matching(
            &Principal::System("hold-accounts"),
            action,
            selector,
            print_progress,
        )
        .await;
    manager.shutdown().await?;
    print_report(&report?);
    Ok(())
}

/// Through a running server, printing the progress it streams.
pub(super) async fn through_server(
    server: &Remote,
    action: AccountAction,
    a: &HoldArgs,
) -> Result<(), CliError> {
    let resp = server
        .send_json(reqwest::Method::POST, path(action), &a.select.json())
        .await?;
    let what = format!("the {} action", action.as_str());
    let report = super::remote::follow(resp, "accounts", &what, print_progress).await?;
    print_report(&report);
    Ok(())
}
