//! The `roster` binary: parses the command line, loads config, sets up tracing and calls
//! into the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use roster::{Config, UserManager};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: after a bulk import (or the start-up check of a
/// large store) glibc's heap is fragmented enough that `malloc` alone took 16% of the
/// CPU of `GET /users/me` at 1M stored users against 4% at 1k (BENCHMARKS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Generate load against a Roster server and report throughput and latency.
    Loadgen(Box<LoadgenArgs>),
    /// Check the audit log's hash chain (stop the server first: the store is locked).
    VerifyAudit {
        /// Config file layered over the embedded default.
        #[arg(long, env = "ROSTER_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory (default ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Replace the master key of encryption at rest: every user's data key is rewrapped
    /// with a new, generated key; the old key file is kept as
    /// `<file>.retired-<fingerprint>`. With --server the running server does it, with
    /// no downtime; without, the store is opened here (stop the server first).
    RotateMasterKey {
        /// Config file layered over the embedded default.
        #[arg(long, env = "ROSTER_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory (default ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// A running server to rotate through, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        server: Option<String>,
        /// The operator key, for --server.
        #[arg(long, env = "ROSTER_ADMIN_KEY", hide_env_values = true)]
        admin_key: Option<String>,
    },
    /// Delete security events older than `privacy.security_event_retention_days`, from
    /// users' records and the archive (retention). Run with the server stopped.
    Purge {
        /// Config file layered over the embedded default.
        #[arg(long, env = "ROSTER_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory (default ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct LoadgenArgs {
    /// What to run.
    #[arg(value_enum)]
    scenario: roster::loadgen::Scenario,
    /// The server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The operator key (users are prepared through the operator import).
    #[arg(long, env = "ROSTER_ADMIN_KEY", hide_env_values = true)]
    admin_key: String,
    /// Open model: requests per second on a fixed schedule (latency counts from each
    /// request's due time). Without it, a closed loop of --concurrency workers.
    #[arg(long)]
    rate: Option<f64>,
    /// Closed loop: workers sending back to back.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Measured time, e.g. 30s or 2m.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: std::time::Duration,
    /// Unrecorded time before it.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: std::time::Duration,
    /// Most requests to send (warm-up included).
    #[arg(long)]
    max_requests: Option<u64>,
    /// Users to prepare (or expected in --population).
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Logged-in users that token scenarios draw from (at most --users).
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Tiers of prepared users, round robin, e.g. free,vip.
    #[arg(long, value_delimiter = ',', default_value = "premium")]
    tiers: Vec<roster::UserTier>,
    /// Population file: read if it exists, written after preparing if not.
    #[arg(long)]
    population: Option<PathBuf>,
    /// argon2 cost of prepared users' password hash.
    #[arg(long, value_enum, default_value = "cheap")]
    hash: roster::loadgen::HashCost,
    /// Seed for the user sample and random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Operation weights of `mixed`.
    #[arg(long, default_value = "reads=80,updates=10,usage=8,logins=2")]
    mix: roster::loadgen::Mix,
    /// Sockets of ws-hold and ws-fanout.
    #[arg(long, default_value_t = 1000)]
    sockets: usize,
    /// Local addresses to open sockets from (127.0.0.x spreads ephemeral ports).
    #[arg(long, value_delimiter = ',')]
    source_ips: Vec<std::net::IpAddr>,
    /// The server's pid, to read its memory (same machine).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Workers of the Free-tier flood in tier-isolation.
    #[arg(long, default_value_t = 64)]
    flood_concurrency: usize,
    /// Offer the Free-tier flood at this rate (open model) instead of as fast as
    /// --flood-concurrency workers can.
    #[arg(long)]
    flood_rate: Option<f64>,
    /// Most keep-alive connections the reads (`GET /users/me`) use. In the open model
    /// a read due while all are busy waits for one, and the wait counts in its latency
    /// (as with wrk2's -c); unbounded, a stall would open thousands of connections and
    /// the generator's own cost would take the machine.
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

impl LoadgenArgs {
    fn options(&self) -> roster::loadgen::Options {
        use roster::loadgen::{Load, Options};
        let mut o = Options::new(&self.url, &self.admin_key, self.scenario);
        o.load = match self.rate {
            Some(rate) => Load::Open { rate },
            None => Load::Closed {
                concurrency: self.concurrency,
            },
        };
        o.duration = self.duration;
        o.warmup = self.warmup;
        o.max_requests = self.max_requests;
        o.users = self.users;
        o.sessions = self.sessions;
        o.tiers = self.tiers.clone();
        o.population = self.population.clone();
        o.hash = self.hash;
        o.seed = self.seed;
        o.mix = self.mix;
        o.sockets = self.sockets;
        o.source_ips = self.source_ips.clone();
        o.server_pid = self.server_pid;
        o.flood_concurrency = self.flood_concurrency;
        o.flood_rate = self.flood_rate;
        o.connections = self.connections.max(1);
        o.progress = !self.quiet;
        o
    }
}

async fn loadgen(args: &LoadgenArgs) -> anyhow::Result<()> {
    let report = roster::loadgen::run(&args.options()).await?;
    println!("{report}");
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
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
            let flags = roster::config::Flags { listen, data_dir };
            let cfg = Config::load(config.as_deref(), &flags).context("loading configuration")?;
            init_tracing(&cfg.log);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("roster-io")
                .build()
                .context("starting the tokio runtime")?;
            rt.block_on(serve(cfg))
        }
        Command::Purge { config, data_dir } => {
            let flags = roster::config::Flags {
                listen: None,
                data_dir,
            };
            let cfg = Config::load(config.as_deref(), &flags).context("loading configuration")?;
            let dir = cfg.store.data_dir.clone();
            let (store, keys) = roster::engine::keyring::open_store(&cfg).with_context(|| {
                format!(
                    "opening the store in {} (is the server stopped?)",
                    dir.display()
                )
            })?;
            let now = roster::domain::time::Clock::now(&roster::domain::time::SystemClock);
            let cutoff = roster::domain::time::Timestamp::from_millis(
                now.as_millis().saturating_sub(
                    i64::try_from(cfg.privacy.security_event_retention.as_millis())
                        .unwrap_or(i64::MAX),
                ),
            );
            let r = roster::engine::retention::purge_security_events(store.as_ref(), &keys, cutoff)
                .context("purging")?;
            println!(
                "purged security events before {cutoff}: {} from {} of {} users' records, {} archived",
                r.in_state, r.rewritten, r.users, r.archived
            );
            Ok(())
        }
        Command::RotateMasterKey {
            config,
            data_dir,
            server,
            admin_key,
        } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?;
            if let Some(url) = server {
                let key = admin_key
                    .context("--server needs the operator key (--admin-key or ROSTER_ADMIN_KEY)")?;
                return rt.block_on(rotate_through_server(&url, &key));
            }
            let flags = roster::config::Flags {
                listen: None,
                data_dir,
            };
            let cfg = Config::load(config.as_deref(), &flags).context("loading configuration")?;
            init_tracing(&cfg.log);
            rt.block_on(rotate_offline(cfg))
        }
        Command::VerifyAudit { config, data_dir } => {
            let flags = roster::config::Flags {
                listen: None,
                data_dir,
            };
            let cfg = Config::load(config.as_deref(), &flags).context("loading configuration")?;
            let dir = cfg.store.data_dir;
            let store = roster::store::SledStore::open(&dir, cfg.store.cache_bytes)
                .with_context(|| format!("opening the store in {}", dir.display()))?;
            match roster::engine::audit::verify(&store) {
                Ok(n) => {
                    println!("audit log intact: {n} records");
                    Ok(())
                }
                Err(broken) => anyhow::bail!("audit log broken: {broken}"),
            }
        }
        Command::Loadgen(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?;
            rt.block_on(loadgen(&args))
        }
    }
}

fn print_progress(p: roster::engine::keyring::RotationProgress) {
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

fn print_report(r: &roster::engine::keyring::RotationReport) {
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
async fn rotate_offline(cfg: Config) -> anyhow::Result<()> {
    let dir = cfg.store.data_dir.clone();
    let manager = tokio::task::spawn_blocking(move || UserManager::open(cfg))
        .await?
        .with_context(|| {
            format!(
                "opening the store in {} (if a server is running, use --server)",
                dir.display()
            )
        })?;
    let report = manager.rotate_master_key(print_progress).await;
    manager.shutdown().await?;
    print_report(&report?);
    Ok(())
}

/// Asks a running server to rotate, printing the progress it streams.
async fn rotate_through_server(url: &str, admin_key: &str) -> anyhow::Result<()> {
    let endpoint = format!(
        "{}/api/v1/admin/master-key/rotate",
        url.trim_end_matches('/')
    );
    let mut resp = reqwest::Client::new()
        .post(&endpoint)
        .bearer_auth(admin_key)
        .send()
        .await
        .with_context(|| format!("POST {endpoint}"))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        anyhow::bail!("the server refused the rotation ({status}): {body}");
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .context("reading the rotation's progress")?
    {
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let v: serde_json::Value =
                serde_json::from_slice(&line).context("a malformed progress line")?;
            if let Some(r) = v.get("rotated") {
                print_report(&serde_json::from_value(r.clone())?);
                return Ok(());
            }
            if let Some(e) = v.get("error") {
                anyhow::bail!("the rotation failed: {}", e["detail"]);
            }
            print_progress(serde_json::from_value(v)?);
        }
    }
    anyhow::bail!(
        "the server closed the connection before the rotation finished; it goes on there: check its log"
    )
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
    if let Some(maddr) = manager.config().server.metrics_listen {
        let metrics_listener = tokio::net::TcpListener::bind(maddr)
            .await
            .with_context(|| format!("binding server.metrics_listen {maddr}"))?;
        let maddr = metrics_listener.local_addr()?;
        tracing::info!(%maddr, "metrics on http://{maddr}/metrics");
        let metrics = roster::api::metrics_app(manager.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(metrics_listener, metrics).await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
    }
    let app = axum::ServiceExt::into_make_service_with_connect_info::<SocketAddr>(
        roster::api::app(manager.clone()),
    );
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
