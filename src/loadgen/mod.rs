//! `roster loadgen`: a load generator for Roster servers, open-model by default, with HDR
//! histograms and a JSON report. Scenarios: `signup`, `login`, `validate`, `mixed`,
//! `ws-hold`, `ws-fanout`, `tier-isolation` (see `BENCHMARKS.md` for how each is run).
//!
//! It needs the operator key: users are prepared through the import endpoint, and
//! logins and sign-ups carry the key so the per-address limit on anonymous endpoints
//! does not throttle the generator (every request still goes through the real path).

mod activity;
mod client;
mod driver;
mod federated;
pub mod population;
mod raw;
mod recommend;
mod stats;
mod ws;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};

pub use client::Client;
pub(crate) use driver::drive;
pub use driver::{Load, Plan};
pub use population::{HashCost, Population, Session};
pub use stats::{Latency, Outcome, Stats, Summary};
pub use ws::rss_bytes;

use crate::domain::tier::UserTier;

/// A failure that stops a run (bad options, an unreachable or refusing server).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LoadgenError(pub String);

/// The scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// `POST /users`: sign-ups (argon2 at the server's cost).
    Signup,
    /// `POST /auth/login` as random users of the population.
    Login,
    /// `GET /users/me` with tokens of logged-in users.
    Validate,
    /// Reads, profile updates, usage reports and logins, mixed by `--mix`.
    Mixed,
    /// Opens and holds `--sockets` event sockets.
    WsHold,
    /// Changes profiles over HTTP and times the events' arrival on the sockets.
    WsFanout,
    /// Sends activity frames of 50 events over one socket per session, each after the
    /// last one's ack (ingestion throughput).
    WsActivity,
    /// VIP latency alone, then under a Free-tier flood.
    TierIsolation,
    /// `GET /users/{id}/recommendations?limit=20` over a planted catalog of `--tracks`
    /// and the sessions' simulated histories, after a training.
    Recommend,
    /// `POST /federated/updates`: each session's user sends its device's update once.
    Federated,
}

/// Weights of the `mixed` scenario's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mix {
    /// `GET /users/me`.
    pub reads: u32,
    /// `PUT /users/{id}`.
    pub updates: u32,
    /// `POST /users/{id}/usage`.
    pub usage: u32,
    /// `POST /auth/login`.
    pub logins: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            reads: 80,
            updates: 10,
            usage: 8,
            logins: 2,
        }
    }
}

impl std::str::FromStr for Mix {
    type Err = String;
    /// `reads=80,updates=10,usage=8,logins=2` (missing ones are 0).
    fn from_str(s: &str) -> Result<Self, String> {
        let mut m = Mix {
            reads: 0,
            updates: 0,
            usage: 0,
            logins: 0,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected name=weight"))?;
            let v: u32 = v
                .parse()
                .map_err(|_| format!("{part:?}: weight must be a number"))?;
            match k {
                "reads" => m.reads = v,
                "updates" => m.updates = v,
                "usage" => m.usage = v,
                "logins" => m.logins = v,
                other => return Err(format!("unknown operation {other:?}")),
            }
        }
        if m.reads + m.updates + m.usage + m.logins == 0 {
            return Err("the weights add up to 0".into());
        }
        Ok(m)
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// The operator key.
    pub admin_key: String,
    /// What to run.
    pub scenario: Scenario,
    /// Open model rate or closed-loop concurrency.
    pub load: Load,
    /// Measured time.
    pub duration: Duration,
    /// Unrecorded time before it.
    pub warmup: Duration,
    /// Most requests (or changes) to send; `None`: as many as the duration allows.
    pub max_requests: Option<u64>,
    /// Population size.
    pub users: usize,
    /// Logged-in users the token scenarios draw from (at most `users`).
    pub sessions: usize,
    /// Tiers of the population, round robin.
    pub tiers: Vec<UserTier>,
    /// The population file (read if it exists, written if not).
    pub population: Option<PathBuf>,
    /// Hash cost of prepared users.
    pub hash: HashCost,
    /// Seed for the user sample and the random choices.
    pub seed: u64,
    /// Operation mix of `mixed`.
    pub mix: Mix,
    /// Sockets of `ws-hold` and `ws-fanout`.
    pub sockets: usize,
    /// Local addresses to open sockets from (spreads ephemeral ports).
    pub source_ips: Vec<std::net::IpAddr>,
    /// The server's pid, to read its memory (same machine only).
    pub server_pid: Option<u32>,
    /// Workers of the Free-tier flood in `tier-isolation`.
    pub flood_concurrency: usize,
    /// If set, the flood is open-model at this rate instead of a closed loop.
    pub flood_rate: Option<f64>,
    /// Most requests in flight (open model).
    pub max_in_flight: usize,
    /// Most keep-alive connections of the reads (`GET /users/me`).
    pub connections: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Tracks of the planted catalog `recommend` uploads.
    pub tracks: usize,
    /// Print a progress line.
    pub progress: bool,
}

impl Options {
    /// Defaults for `scenario` against `url`.
    pub fn new(url: impl Into<String>, admin_key: impl Into<String>, scenario: Scenario) -> Self {
        Self {
            url: url.into(),
            admin_key: admin_key.into(),
            scenario,
            load: Load::Closed { concurrency: 32 },
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            max_requests: None,
            users: 1000,
            sessions: 1000,
            tiers: vec![UserTier::Premium],
            population: None,
            hash: HashCost::Cheap,
            seed: 1,
            mix: Mix::default(),
            sockets: 1000,
            source_ips: Vec::new(),
            server_pid: None,
            flood_concurrency: 64,
            flood_rate: None,
            max_in_flight: 8192,
            connections: 256,
            timeout: Duration::from_secs(30),
            tracks: 100_000,
            progress: false,
        }
    }

    fn plan(&self) -> Plan {
        Plan {
            load: self.load,
            warmup: self.warmup,
            duration: self.duration,
            max_requests: self.max_requests,
            max_in_flight: self.max_in_flight,
        }
    }
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The scenario.
    pub scenario: Scenario,
    /// The server.
    pub url: String,
    /// `open` (with `rate`) or `closed` (with `concurrency`).
    pub model: Value,
    /// Population size and logged-in users used.
    pub population: usize,
    /// Sessions drawn from it.
    pub sessions: usize,
    /// The main measured stream.
    pub summary: Summary,
    /// Scenario-specific figures (hash ceiling, socket memory, tier comparison...).
    pub extra: Value,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:?} against {} ({}), population {}, sessions {}",
            self.scenario, self.url, self.model, self.population, self.sessions
        )?;
        writeln!(f, "{}", self.summary)?;
        if !self.extra.is_null() {
            write!(
                f,
                "  {}",
                serde_json::to_string_pretty(&self.extra).unwrap_or_default()
            )?;
        }
        Ok(())
    }
}

/// Runs one scenario and returns its report.
pub async fn run(opts: &Options) -> Result<Report, LoadgenError> {
    let client = Client::new(opts).await?;
    let (status, _) = client.get_json("/healthz", None).await?;
    if status != 200 {
        return Err(LoadgenError(format!(
            "{} is not healthy ({status})",
            opts.url
        )));
    }
    match opts.scenario {
        Scenario::Signup => signup(opts, &client).await,
        Scenario::Login | Scenario::Validate | Scenario::Mixed => {
            token_scenario(opts, &client).await
        }
        Scenario::WsHold => ws::hold(opts, &client).await,
        Scenario::WsFanout => ws::fanout(opts, &client).await,
        Scenario::WsActivity => activity::run(opts, &client).await,
        Scenario::TierIsolation => tier_isolation(opts, &client).await,
        Scenario::Recommend => recommend::run(opts, &client).await,
        Scenario::Federated => federated::run(opts, &client).await,
    }
}

fn model(load: Load) -> Value {
    match load {
        Load::Open { rate } => json!({"model": "open", "rate": rate}),
        Load::Closed { concurrency } => json!({"model": "closed", "concurrency": concurrency}),
    }
}

fn report(
    opts: &Options,
    population: usize,
    sessions: usize,
    summary: Summary,
    extra: Value,
) -> Report {
    Report {
        scenario: opts.scenario,
        url: opts.url.clone(),
        model: model(opts.load),
        population,
        sessions,
        summary,
        extra,
    }
}

/// Measures `stats` under `plan` with a progress line.
async fn measured<F, Fut>(opts: &Options, plan: Plan, label: &str, make: F) -> Summary
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let stats = Arc::new(Stats::default());
    let progress = driver::Progress::start(label.to_owned(), Arc::clone(&stats), opts.progress);
    let elapsed = drive(plan, Arc::clone(&stats), make).await;
    drop(progress);
    stats.summary(elapsed)
}

/// The server's hashing pool: how many jobs per second it can do at most, from
/// `/metrics` before and after, and how close the run came to that.
async fn hash_ceiling(client: &Client, before: (f64, f64), summary: &Summary) -> Value {
    let jobs = client.metric("roster_hash_jobs ").await.unwrap_or(0.0) - before.0;
    let busy = client
        .metric("roster_hash_busy_seconds ")
        .await
        .unwrap_or(0.0)
        - before.1;
    let workers = client.metric("roster_hash_workers ").await.unwrap_or(0.0);
    if jobs <= 0.0 || busy <= 0.0 {
        return json!({"hash_ceiling_per_sec": null});
    }
    let ceiling = workers * jobs / busy;
    json!({
        "hash_workers": workers,
        "hash_ms_per_job": 1000.0 * busy / jobs,
        "hash_ceiling_per_sec": ceiling,
        "share_of_ceiling": summary.throughput_per_sec / ceiling,
    })
}

async fn hash_counters(client: &Client) -> (f64, f64) {
    (
        client.metric("roster_hash_jobs ").await.unwrap_or(0.0),
        client
            .metric("roster_hash_busy_seconds ")
            .await
            .unwrap_or(0.0),
    )
}

async fn signup(opts: &Options, client: &Client) -> Result<Report, LoadgenError> {
    let before = hash_counters(client).await;
    let run = format!("{:x}", rand::random::<u64>());
    let c = client.clone();
    let summary = measured(opts, opts.plan(), "signup", move |i| {
        let c = c.clone();
        let body = json!({
            "email": format!("signup-{run}-{i}@loadgen.example"),
            "password": "loadgen correct horse battery staple",
        });
        async move {
            let r = c
                .request(reqwest::Method::POST, "/api/v1/users", c.admin())
                .json(&body);
            c.outcome(r).await
        }
    })
    .await;
    let extra = hash_ceiling(client, before, &summary).await;
    Ok(report(opts, 0, 0, summary, extra))
}

/// An operation of the token scenarios.
#[derive(Clone, Copy)]
enum Op {
    Read,
    Update,
    Usage,
    Login,
}

fn pick(mix: &Mix, roll: u32) -> Op {
    let mut r = roll;
    for (w, op) in [
        (mix.reads, Op::Read),
        (mix.updates, Op::Update),
        (mix.usage, Op::Usage),
        (mix.logins, Op::Login),
    ] {
        if r < w {
            return op;
        }
        r -= w;
    }
    Op::Read
}

struct Shared {
    client: Client,
    pop: Population,
    sessions: Vec<Session>,
    seed: u64,
    mix: Mix,
    fixed: Option<Op>,
    counter: AtomicU64,
}

/// One request of a token scenario.
enum Planned<'a> {
    /// Sent through reqwest (boxed: a builder is ~300 bytes).
    Built(Box<reqwest::RequestBuilder>),
    /// `GET /users/me` as this session, through the lean client.
    ReadMe(&'a Session),
}

impl Shared {
    async fn send(&self, i: u64) -> Outcome {
        match self.request(i) {
            Planned::Built(r) => self.client.outcome(*r).await,
            Planned::ReadMe(s) => self.client.read_me(s).await,
        }
    }

    /// Request `i`.
    fn request(&self, i: u64) -> Planned<'_> {
        // One cheap generator per request, seeded from the run's seed and the index:
        // reproducible whatever order tasks run in.
        let mut rng = StdRng::seed_from_u64(self.seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let total = self.mix.reads + self.mix.updates + self.mix.usage + self.mix.logins;
        let op = self
            .fixed
            .unwrap_or_else(|| pick(&self.mix, rng.random_range(0..total.max(1))));
        let c = &self.client;
        if let Op::Login = op {
            let u = &self.pop.users[rng.random_range(0..self.pop.users.len())];
            let body = json!({"email": u.email, "password": self.pop.password});
            return Planned::Built(Box::new(
                c.request(reqwest::Method::POST, "/api/v1/auth/login", c.admin())
                    .json(&body),
            ));
        }
        let s = &self.sessions[rng.random_range(0..self.sessions.len())];
        let id = &self.pop.users[s.user].id;
        Planned::Built(Box::new(match op {
            Op::Update => {
                let n = self.counter.fetch_add(1, Ordering::Relaxed);
                c.request(
                    reqwest::Method::PUT,
                    &format!("/api/v1/users/{id}"),
                    Some(&s.token),
                )
                .json(&json!({"display_name": format!("Listener {n}")}))
            }
            Op::Usage => c
                .request(
                    reqwest::Method::POST,
                    &format!("/api/v1/users/{id}/usage"),
                    Some(&s.token),
                )
                .json(&json!({"kind": "storage_bytes", "delta": 1024})),
            Op::Read | Op::Login => return Planned::ReadMe(s),
        }))
    }
}

async fn token_scenario(opts: &Options, client: &Client) -> Result<Report, LoadgenError> {
    let pop = population::prepare(opts, client).await?;
    let fixed = match opts.scenario {
        Scenario::Login => Some(Op::Login),
        Scenario::Validate => Some(Op::Read),
        _ => None,
    };
    let needs_sessions = fixed.is_none_or(|op| !matches!(op, Op::Login));
    let sessions = if needs_sessions {
        population::log_in(client, &pop, opts.sessions.max(1), None, opts.seed).await?
    } else {
        Vec::new()
    };
    let before = hash_counters(client).await;
    let shared = Arc::new(Shared {
        client: client.clone(),
        pop,
        sessions,
        seed: opts.seed,
        mix: opts.mix,
        fixed,
        counter: AtomicU64::new(0),
    });
    let (population, session_count) = (shared.pop.users.len(), shared.sessions.len());
    let s2 = Arc::clone(&shared);
    let label = format!("{:?}", opts.scenario).to_lowercase();
    let summary = measured(opts, opts.plan(), &label, move |i| {
        let s = Arc::clone(&s2);
        async move { s.send(i).await }
    })
    .await;
    let extra = if opts.scenario == Scenario::Login {
        let mut e = hash_ceiling(client, before, &summary).await;
        e["population_hash_cost"] = json!(shared.pop.hash_cost);
        e
    } else {
        Value::Null
    };
    Ok(report(opts, population, session_count, summary, extra))
}

/// VIP probes at the planned load, alone and then beside a closed-loop flood of
/// Free-tier reads; the main summary is the probe under the flood.
async fn tier_isolation(opts: &Options, client: &Client) -> Result<Report, LoadgenError> {
    let mut o = opts.clone();
    o.tiers = vec![UserTier::Free, UserTier::Vip];
    let pop = population::prepare(&o, client).await?;
    let half = opts.sessions.max(2) / 2;
    let vip = population::log_in(client, &pop, half, Some(UserTier::Vip), opts.seed).await?;
    let free = population::log_in(client, &pop, half, Some(UserTier::Free), opts.seed + 1).await?;
    let probe = |sessions: Arc<Vec<Session>>, c: Client, seed: u64| {
        move |i: u64| {
            let mut rng = StdRng::seed_from_u64(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let (s, c) = (Arc::clone(&sessions), c.clone());
            let k = rng.random_range(0..s.len());
            async move { c.read_me(&s[k]).await }
        }
    };
    let (vip, free) = (Arc::new(vip), Arc::new(free));
    let plan = opts.plan();
    let alone = measured(
        opts,
        plan,
        "vip alone",
        probe(Arc::clone(&vip), client.clone(), opts.seed),
    )
    .await;
    // The flood: closed loop as hard as it can (or at --flood-rate), for warm-up +
    // duration + a margin.
    let flood_stats = Arc::new(Stats::default());
    let flood_load = match opts.flood_rate {
        Some(rate) => Load::Open { rate },
        None => Load::Closed {
            concurrency: opts.flood_concurrency,
        },
    };
    let flood_plan = Plan {
        load: flood_load,
        warmup: Duration::ZERO,
        duration: plan.warmup + plan.duration + Duration::from_secs(1),
        max_requests: None,
        max_in_flight: opts.max_in_flight,
    };
    let flood = tokio::spawn(drive(
        flood_plan,
        Arc::clone(&flood_stats),
        probe(Arc::clone(&free), client.clone(), opts.seed + 7),
    ));
    let vip_count = vip.len() + free.len();
    let loaded = measured(
        opts,
        plan,
        "vip under flood",
        probe(vip, client.clone(), opts.seed + 3),
    )
    .await;
    let flood_time = flood.await.map_err(|e| LoadgenError(e.to_string()))?;
    let flood = flood_stats.summary(flood_time);
    let ratio = |a: u64, b: u64| {
        if b == 0 {
            Value::Null
        } else {
            json!(a as f64 / b as f64)
        }
    };
    let extra = json!({
        "vip_alone": alone,
        "free_flood": {
            "load": model(flood_load),
            "answered_per_sec": (flood.ok + flood.error_count()) as f64 / flood.seconds.max(1e-9),
            "ok": flood.ok,
            "errors": flood.errors,
        },
        "p99_ratio_loaded_to_alone": ratio(loaded.latency_us.p99, alone.latency_us.p99),
        "p50_ratio_loaded_to_alone": ratio(loaded.latency_us.p50, alone.latency_us.p50),
    });
    Ok(report(opts, pop.users.len(), vip_count, loaded, extra))
}

#[cfg(test)]
mod tests;
