//! `roster revoke-sessions`: ends, across every user, the sessions a selector names —
//! through a running server (it goes on serving) or on a stopped one's data directory.

use super::remote::Remote;
use super::{CliError, Target};
use crate::config::Config;
use crate::domain::revocation::SessionSelector;
use crate::engine::{BulkRevocation, Principal, RevocationProgress};

/// A selector as flags, combined with "and" (the bulk revocation's and the bulk
/// account actions').
#[derive(clap::Args, Clone, Debug)]
pub struct SelectorArgs {
    /// Every session or account (needed when no other criterion is given).
    #[arg(long)]
    pub all: bool,
    /// Users of this tier (free, premium, enterprise, vip).
    #[arg(long)]
    pub tier: Option<String>,
    /// Only this user (repeat for more, at most 10,000).
    #[arg(long = "user-id")]
    pub user_ids: Vec<String>,
    /// Sessions that logged in from, or were last used from, this network.
    #[arg(long)]
    pub cidr: Option<String>,
    /// Sessions created at or after this time (RFC 3339).
    #[arg(long)]
    pub created_after: Option<String>,
    /// Sessions created before this time (RFC 3339).
    #[arg(long)]
    pub created_before: Option<String>,
    /// Users with a security event of this kind (e.g. login_failed) since --since.
    #[arg(long)]
    pub event_kind: Option<String>,
    /// See --event-kind (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Count what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl SelectorArgs {
    /// The selector, in the JSON the API takes (checked there, with the API's messages).
    pub(super) fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({ "all": self.all, "dry_run": self.dry_run });
        for (name, value) in [
            ("tier", &self.tier),
            ("cidr", &self.cidr),
            ("created_after", &self.created_after),
            ("created_before", &self.created_before),
            ("event_kind", &self.event_kind),
            ("since", &self.since),
        ] {
            if let Some(value) = value {
                v[name] = serde_json::Value::String(value.clone());
            }
        }
        if !self.user_ids.is_empty() {
            v["user_ids"] = serde_json::json!(self.user_ids);
        }
        v
    }

    /// The selector, checked as the API checks it.
    pub(super) fn selector(&self) -> Result<SessionSelector, CliError> {
        serde_json::from_value(self.json())
            .map_err(|e| CliError::Usage(format!("the selector: {e}")))
    }
}

/// `roster revoke-sessions` arguments: the selector as flags.
#[derive(clap::Args, Clone, Debug)]
pub struct RevokeArgs {
    /// A server, or a data directory.
    #[command(flatten)]
    pub target: Target,
    /// Which sessions.
    #[command(flatten)]
    pub select: SelectorArgs,
    /// Cancel the bulk revocation or account action running on the server (with
    /// --server; the selector flags are not used).
    #[arg(long, requires = "server")]
    pub cancel: bool,
}

fn print_progress(p: RevocationProgress) {
    eprintln!(
        "users {}/{}: {} sessions matched, {} ended",
        p.done, p.users, p.matched, p.revoked
    );
}

fn print_report(r: &BulkRevocation) {
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
    if r.dry_run {
        println!(
            "dry run: {} live sessions of {} users would end ({} users read); nothing ended",
            r.matched, r.users, r.scanned
        );
    } else {
        println!(
            "{} sessions ended of {} matched, for {} users ({} users read); sessions \
             created after {} were left alone",
            r.revoked, r.matched, r.users, r.scanned, r.started_at
        );
    }
}

/// On a stopped server's data directory.
pub(super) async fn offline(config: Config, a: &RevokeArgs) -> Result<(), CliError> {
    let selector = a.select.selector()?;
    let manager = super::open_local(config).await?;
    let report = manager
        .sessions()
        .revoke_matching(
            &Principal::System("revoke-sessions"),
            selector,
            print_progress,
        )
        .await;
    manager.shutdown().await?;
    print_report(&report?);
    Ok(())
}

/// Through a running server, printing the progress it streams.
pub(super) async fn through_server(server: &Remote, a: &RevokeArgs) -> Result<(), CliError> {
    if a.cancel {
        server
            .send(reqwest::Method::POST, "/admin/sessions/revoke/cancel")
            .await?;
        println!("cancelled: the revocation asks no more users and reports what it did");
        return Ok(());
    }
    let resp = server
        .send_json(
            reqwest::Method::POST,
            "/admin/sessions/revoke",
            &a.select.json(),
        )
        .await?;
    let report =
        super::remote::follow(resp, "revocation", "the revocation", print_progress).await?;
    print_report(&report);
    Ok(())
}
