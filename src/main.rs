//! The `roster` binary: parses the command line, loads config, sets up tracing and calls
//! into the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use roster::{Config, UserManager};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "roster", version, about = "User-management engine and server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the engine and serve it.
    Serve {
        /// Config file layered over the embedded default (only the keys it sets).
        #[arg(long, env = "ROSTER_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on (default 127.0.0.1:8080; port 0 picks one).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory (default ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// Sets up logging from config; `ROSTER_LOG` or `RUST_LOG` override the filter.
fn init_tracing(log: &roster::config::LogConfig) {
    let filter = EnvFilter::try_from_env("ROSTER_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if log.json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
        } => {
            let mut cfg = Config::load(config.as_deref()).context("loading configuration")?;
            if let Some(l) = listen {
                cfg.server.listen = l;
            }
            if let Some(d) = data_dir {
                cfg.store.data_dir = d;
            }
            init_tracing(&cfg.log);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("roster-io")
                .build()
                .context("starting the tokio runtime")?;
            rt.block_on(serve(cfg))
        }
    }
}

/// Opens the engine, serves HTTP until SIGTERM or Ctrl-C, then drains and snapshots.
async fn serve(cfg: Config) -> anyhow::Result<()> {
    let listen = cfg.server.listen;
    let data_dir = cfg.store.data_dir.clone();
    let manager = tokio::task::spawn_blocking(move || UserManager::open(cfg))
        .await?
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %data_dir.display(), users = manager.user_count(), "listening on {addr}");
    let app = roster::api::app(manager.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let drain = manager.config().engine.shutdown_timeout;
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let realtime = std::sync::Arc::clone(manager.realtime());
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        // Sockets are not requests: tell them (1001) instead of waiting for them.
        realtime.close_everything(roster::engine::events::CloseCode::ServerShutdown);
        tracing::info!(
            ?drain,
            "signal received: no new connections, draining requests"
        );
        let _ = signalled_tx.send(());
    });
    // Requests in flight get `drain` to finish after the signal; then we stop regardless.
    let deadline = async move {
        if signalled_rx.await.is_ok() {
            tokio::time::sleep(drain).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = server => served?,
        () = deadline => tracing::warn!("drain timed out; closing remaining connections"),
    }
    tracing::info!("shutting down: writing snapshots");
    manager.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
