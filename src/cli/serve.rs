//! `roster serve`: binds the configured address and runs the server until SIGTERM or
//! Ctrl-C.

use std::net::SocketAddr;

use super::{CliError, ConfigArgs};
use crate::config::Config;

/// `roster serve` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    /// The configuration.
    #[command(flatten)]
    pub local: ConfigArgs,
    /// Address to listen on (default 127.0.0.1:8080; port 0 picks one).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

pub(super) async fn run(config: Config) -> Result<(), CliError> {
    let addr = config.server.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::Failed(format!("binding {addr}: {e}")))?;
    crate::server::run(config, listener, crate::server::signalled()).await?;
    Ok(())
}
