//! `roster loadgen`: load against any Roster server (a client of its HTTP API only), with
//! a report on throughput and latency.

use std::path::PathBuf;

use super::CliError;

/// `roster loadgen` arguments.
#[derive(clap::Args)]
pub struct LoadgenArgs {
    /// What to run.
    #[arg(value_enum)]
    scenario: crate::loadgen::Scenario,
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
    tiers: Vec<crate::domain::tier::UserTier>,
    /// Population file: read if it exists, written after preparing if not.
    #[arg(long)]
    population: Option<PathBuf>,
    /// argon2 cost of prepared users' password hash.
    #[arg(long, value_enum, default_value = "cheap")]
    hash: crate::loadgen::HashCost,
    /// Seed for the user sample and random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Operation weights of `mixed`.
    #[arg(long, default_value = "reads=80,updates=10,usage=8,logins=2")]
    mix: crate::loadgen::Mix,
    /// Sockets of ws-hold and ws-fanout (ws-activity: at most one per session).
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
    /// Tracks of the planted catalog `recommend` uploads.
    #[arg(long, default_value_t = 100_000)]
    tracks: usize,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

impl LoadgenArgs {
    fn options(&self) -> crate::loadgen::Options {
        use crate::loadgen::{Load, Options};
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
        o.tracks = self.tracks;
        o.progress = !self.quiet;
        o
    }
}

pub(super) async fn run(args: &LoadgenArgs) -> Result<(), CliError> {
    let report = crate::loadgen::run(&args.options())
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    println!("{report}");
    if let Some(path) = &args.json {
        let json =
            serde_json::to_vec_pretty(&report).map_err(|e| CliError::Failed(e.to_string()))?;
        std::fs::write(path, json)
            .map_err(|e| CliError::Failed(format!("writing {}: {e}", path.display())))?;
    }
    Ok(())
}
