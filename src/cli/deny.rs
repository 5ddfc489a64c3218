//! `roster deny-network add | remove | list`: the operators' runtime deny-list of
//! networks, through a running server or on a stopped one's data directory. `add` also
//! ends the sessions that logged in from the network (a bulk revocation of it), unless
//! `--keep-sessions`.

use super::remote::Remote;
use super::revoke::{RevokeArgs, SelectorArgs};
use super::{CliError, Target};
use crate::config::Config;
use crate::domain::denylist::{DeniedNetwork, DenyRequest};
use crate::engine::Principal;

/// `roster deny-network` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct DenyArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: DenyAction,
}

/// A change to, or a read of, the deny-list.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum DenyAction {
    /// Deny a network (CIDR or one address): its logins are refused and its sessions end.
    Add {
        /// The network.
        network: String,
        /// Why (required: the next operator reads it).
        #[arg(long)]
        reason: String,
        /// When it stops applying by itself (RFC 3339; default: until removed).
        #[arg(long)]
        expires_at: Option<String>,
        /// Leave the sessions that logged in from the network alone (a session used from
        /// it still ends at that request).
        #[arg(long)]
        keep_sessions: bool,
        /// A server, or a data directory.
        #[command(flatten)]
        target: Target,
    },
    /// Allow a network again.
    Remove {
        /// The network, as listed.
        network: String,
        /// A server, or a data directory.
        #[command(flatten)]
        target: Target,
    },
    /// List the networks denied at run time.
    List {
        /// A server, or a data directory.
        #[command(flatten)]
        target: Target,
    },
}

impl DenyAction {
    /// Where it runs.
    pub fn target(&self) -> &Target {
        match self {
            Self::Add { target, .. } | Self::Remove { target, .. } | Self::List { target } => {
                target
            }
        }
    }
}

/// The request, in the JSON the API takes.
fn body(network: &str, reason: &str, expires_at: Option<&str>) -> serde_json::Value {
    serde_json::json!({ "network": network, "reason": reason, "expires_at": expires_at })
}

/// The request, checked as the API reads it.
fn request(network: &str, reason: &str, expires_at: Option<&str>) -> Result<DenyRequest, CliError> {
    serde_json::from_value(body(network, reason, expires_at))
        .map_err(|e| CliError::Usage(format!("--expires-at (RFC 3339): {e}")))
}

fn print_list(list: &[DeniedNetwork]) {
    if list.is_empty() {
        println!("no network is denied at run time");
    }
    for e in list {
        let until = e
            .expires_at
            .map_or("until removed".to_owned(), |t| format!("until {t}"));
        println!(
            "{}\t{until}\tby {} at {}\t{}",
            e.network, e.added_by, e.added_at, e.reason
        );
    }
}

/// The revocation of the sessions from `network` that `add` runs after it.
fn revocation(target: &Target, network: &DeniedNetwork) -> RevokeArgs {
    RevokeArgs {
        target: target.clone(),
        select: SelectorArgs {
            all: false,
            tier: None,
            user_ids: Vec::new(),
            cidr: Some(network.network.to_string()),
            created_after: None,
            created_before: None,
            event_kind: None,
            since: None,
            dry_run: false,
        },
        cancel: false,
    }
}

/// On a stopped server's data directory.
pub(super) async fn offline(config: Config, a: &DenyAction) -> Result<(), CliError> {
    let by = Principal::System("deny-network");
    let manager = super::open_local(config.clone()).await?;
    let ops = manager.ops();
    let done = match a {
        DenyAction::Add {
            network,
            reason,
            expires_at,
            ..
        } => match request(network, reason, expires_at.as_deref()) {
            Ok(r) => ops
                .deny_network(&by, &r)
                .await
                .map(|(e, _)| Some(e))
                .map_err(Into::into),
            Err(e) => Err(e),
        },
        DenyAction::Remove { network, .. } => match ops.allow_network(&by, network).await {
            Ok(true) => Ok(None),
            Ok(false) => Err(CliError::Failed(format!("{network} is not denied"))),
            Err(e) => Err(e.into()),
        },
        DenyAction::List { .. } => ops
            .denied_networks(&by)
            .map(|l| {
                print_list(&l);
                None
            })
            .map_err(Into::into),
    };
    manager.shutdown().await?;
    let added = done?;
    report(a);
    if let (
        Some(entry),
        DenyAction::Add {
            target,
            keep_sessions: false,
            ..
        },
    ) = (added, a)
    {
        super::revoke::offline(config, &revocation(target, &entry)).await?;
    }
    Ok(())
}

fn report(a: &DenyAction) {
    match a {
        DenyAction::Add { network, .. } => println!("denied {network}: its logins are refused"),
        DenyAction::Remove { network, .. } => println!("{network} is allowed again"),
        DenyAction::List { .. } => {}
    }
}

/// Through a running server.
pub(super) async fn through_server(server: &Remote, a: &DenyAction) -> Result<(), CliError> {
    match a {
        DenyAction::Add {
            network,
            reason,
            expires_at,
            keep_sessions,
            target,
        } => {
            let body = body(network, reason, expires_at.as_deref());
            let denied: serde_json::Value = server
                .json_with(reqwest::Method::POST, "/admin/deny-networks", &body)
                .await?;
            let entry: DeniedNetwork = serde_json::from_value(denied["entry"].clone())
                .map_err(|e| CliError::Failed(format!("an unreadable answer: {e}")))?;
            report(a);
            if !keep_sessions {
                super::revoke::through_server(server, &revocation(target, &entry)).await?;
            }
        }
        DenyAction::Remove { network, .. } => {
            let path = format!("/admin/deny-networks?network={network}");
            server.send(reqwest::Method::DELETE, &path).await?;
            report(a);
        }
        DenyAction::List { .. } => {
            let list: Vec<DeniedNetwork> = server
                .json(reqwest::Method::GET, "/admin/deny-networks")
                .await?;
            print_list(&list);
        }
    }
    Ok(())
}
