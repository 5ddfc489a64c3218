//! Prometheus metrics: one registry per engine (no global state, so two engines in one
//! process — tests — count separately), rendered in the Prometheus text format at
//! `/metrics`. Label sets are bounded: tiers, shard indexes, outcomes, routes — never user
//! ids, emails or addresses.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::domain::tier::UserTier;

/// A tier as a label value (`free`, `premium`, `enterprise`, `vip`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct TierLabel(UserTier);

impl From<UserTier> for TierLabel {
    fn from(t: UserTier) -> Self {
        TierLabel(t)
    }
}

impl EncodeLabelValue for TierLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0.as_str(), encoder)
    }
}

/// How a login ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum LoginResult {
    /// A session was issued.
    Success,
    /// Unknown email or wrong password.
    WrongCredentials,
    /// Refused because the account is locked.
    Locked,
    /// The password was right; a second factor was asked for.
    MfaChallenged,
    /// The password was right; the risk engine refused.
    RiskDenied,
    /// A second factor was wrong (or replayed, or its challenge expired).
    MfaFailed,
}

impl EncodeLabelValue for LoginResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let name = match self {
            LoginResult::Success => "success",
            LoginResult::WrongCredentials => "wrong_credentials",
            LoginResult::Locked => "locked",
            LoginResult::MfaChallenged => "mfa_challenged",
            LoginResult::RiskDenied => "risk_denied",
            LoginResult::MfaFailed => "mfa_failed",
        };
        EncodeLabelValue::encode(&name, encoder)
    }
}

/// Labels: tier.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabels {
    /// The tier.
    pub tier: TierLabel,
}

/// Labels: login outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginLabels {
    /// The outcome.
    pub outcome: LoginResult,
}

/// Labels: a tier change.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierChangeLabels {
    /// Tier before.
    pub from: TierLabel,
    /// Tier after.
    pub to: TierLabel,
}

/// Labels: one registry shard.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabels {
    /// The shard's tier.
    pub tier: TierLabel,
    /// Its index in the tier.
    pub shard: u32,
}

/// Labels: an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route template (`/api/v1/users/{id}`), or `unmatched`.
    pub route: String,
    /// The method (`other` for a non-standard one).
    pub method: &'static str,
    /// `2xx`, `4xx`, `5xx`…
    pub status: &'static str,
}

/// Labels: a route's latency, by the caller's tier.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template.
    pub route: String,
    /// The calling user's tier, or `anonymous` / `operator`.
    pub tier: &'static str,
}

/// Labels: why a WebSocket closed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    /// The close reason (`slow_consumer`, `session_ended`...).
    pub reason: &'static str,
}

/// Labels: a security event's kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SecurityLabels {
    /// The event type (`security.new_device`, `security.lockout`...).
    pub kind: &'static str,
}

/// Labels: a risk decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RiskLabels {
    /// `allow`, `require_mfa` or `deny`.
    pub decision: &'static str,
}

/// Labels: a risk signal.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalLabels {
    /// The signal (`new_device`, `impossible_travel`...).
    pub signal: &'static str,
}

/// Labels: an email's kind and fate.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EmailLabels {
    /// `login_code`, `new_device`, `login_blocked`.
    pub kind: &'static str,
    /// `queued`, `dropped`, `sent`, `failed`.
    pub outcome: &'static str,
}

/// Labels: a scheduled job.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// The job's name.
    pub job: &'static str,
}

/// Labels: a scheduled job's run and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobOutcomeLabels {
    /// The job's name.
    pub job: &'static str,
    /// `succeeded`, `failed` or `interrupted`.
    pub outcome: &'static str,
}

fn job_histogram() -> Histogram {
    // 10 ms to ~46 min.
    Histogram::new(exponential_buckets(0.01, 2.0, 19))
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~3.3 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

/// Every metric Roster exports.
pub struct Metrics {
    registry: Registry,
    /// Users created (sign-up and import).
    pub users_created: Counter,
    /// Logins by outcome.
    pub logins: Family<LoginLabels, Counter>,
    /// Sessions created.
    pub sessions_created: Counter,
    /// Sessions revoked (logout, revoke, password change, deletion not included).
    pub sessions_revoked: Counter,
    /// Tier changes by direction.
    pub tier_changes: Family<TierChangeLabels, Counter>,
    /// Requests refused by a tier's hourly rate.
    pub rate_limited: Family<TierLabels, Counter>,
    /// HTTP requests by route, method and status class.
    pub http_requests: Family<HttpLabels, Counter>,
    /// HTTP latency by route and caller tier.
    pub http_latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Live user actors by tier (set at scrape time).
    pub live_users: Family<TierLabels, Gauge>,
    /// Resident actors per shard (set at scrape time).
    pub shard_resident: Family<ShardLabels, Gauge>,
    /// Activations per shard (set at scrape time from the shard's counter).
    pub shard_activations: Family<ShardLabels, Gauge<u64, AtomicU64>>,
    /// Passivations per shard (set at scrape time).
    pub shard_passivations: Family<ShardLabels, Gauge<u64, AtomicU64>>,
    /// Crashed actors restarted, per shard (set at scrape time).
    pub shard_restarts: Family<ShardLabels, Gauge<u64, AtomicU64>>,
    /// Round-trip time of messages to user actors, per shard (time in the mailbox plus
    /// handling); its `_count` is the message rate.
    pub message_latency: Family<ShardLabels, Histogram, fn() -> Histogram>,
    /// Messages in flight to each shard's user actors (set at scrape time).
    pub shard_in_flight: Family<ShardLabels, Gauge<u64, AtomicU64>>,
    /// Password jobs waiting for a worker (set at scrape time).
    pub hash_queue_depth: Gauge,
    /// Store flushes run by the group committer (set at scrape time).
    pub store_flushes: Gauge<u64, AtomicU64>,
    /// Durable commits answered by those flushes (set at scrape time).
    pub store_commits: Gauge<u64, AtomicU64>,
    /// Bytes of snapshot records written.
    pub snapshot_bytes: Counter,
    /// Store size on disk (set at scrape time).
    pub store_disk_bytes: Gauge<u64, AtomicU64>,
    /// Password jobs started (set at scrape time).
    pub hash_jobs: Gauge<u64, AtomicU64>,
    /// Seconds those jobs waited for a worker (set at scrape time).
    pub hash_wait_seconds: Gauge<f64, AtomicU64>,
    /// Seconds spent in those flushes (set at scrape time).
    pub store_flush_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Seconds hashing threads spent running jobs (set at scrape time).
    pub hash_busy_seconds: Gauge<f64, AtomicU64>,
    /// Hashing threads (set at scrape time).
    pub hash_workers: Gauge,
    /// Requests that waited for their tier's admission budget.
    pub admission_waits: Family<TierLabels, Counter>,
    /// Open event sockets.
    pub ws_connections: Gauge,
    /// Events published by user actors (once per event, whatever the socket count).
    pub ws_events_published: Counter,
    /// Event and reply frames written to sockets.
    pub ws_events_sent: Counter,
    /// Events not delivered because a socket's queue was full (the socket is closed).
    pub ws_events_dropped: Counter,
    /// Sockets closed, by reason.
    pub ws_closes: Family<CloseLabels, Counter>,
    /// Activity events received over sockets and counted.
    pub activity_events: Counter,
    /// Security events by kind.
    pub security_events: Family<SecurityLabels, Counter>,
    /// Risk assessments by decision.
    pub risk_decisions: Family<RiskLabels, Counter>,
    /// Risk signals raised, by signal.
    pub risk_signals: Family<SignalLabels, Counter>,
    /// Scheduled job runs by job and outcome.
    pub job_runs: Family<JobOutcomeLabels, Counter>,
    /// How long job runs took.
    pub job_duration: Family<JobLabels, Histogram, fn() -> Histogram>,
    /// When a job last succeeded (Unix seconds).
    pub job_last_success: Family<JobLabels, Gauge<f64, AtomicU64>>,
    /// 1 while a job runs.
    pub job_running: Family<JobLabels, Gauge>,
    /// Emails by kind and outcome.
    pub emails: Family<EmailLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("roster");
        let m = Self {
            users_created: Counter::default(),
            logins: Family::default(),
            sessions_created: Counter::default(),
            sessions_revoked: Counter::default(),
            tier_changes: Family::default(),
            rate_limited: Family::default(),
            http_requests: Family::default(),
            http_latency: Family::new_with_constructor(latency_histogram),
            live_users: Family::default(),
            shard_resident: Family::default(),
            shard_activations: Family::default(),
            shard_passivations: Family::default(),
            shard_restarts: Family::default(),
            message_latency: Family::new_with_constructor(latency_histogram),
            shard_in_flight: Family::default(),
            hash_queue_depth: Gauge::default(),
            store_flushes: Gauge::default(),
            store_commits: Gauge::default(),
            store_flush_seconds: Gauge::default(),
            snapshot_bytes: Counter::default(),
            store_disk_bytes: Gauge::default(),
            hash_jobs: Gauge::default(),
            hash_wait_seconds: Gauge::default(),
            hash_busy_seconds: Gauge::default(),
            hash_workers: Gauge::default(),
            admission_waits: Family::default(),
            ws_connections: Gauge::default(),
            ws_events_published: Counter::default(),
            ws_events_sent: Counter::default(),
            ws_events_dropped: Counter::default(),
            ws_closes: Family::default(),
            activity_events: Counter::default(),
            security_events: Family::default(),
            risk_decisions: Family::default(),
            risk_signals: Family::default(),
            emails: Family::default(),
            job_runs: Family::default(),
            job_duration: Family::new_with_constructor(job_histogram),
            job_last_success: Family::default(),
            job_running: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register("users_created", "Users created", m.users_created.clone());
        r.register("logins", "Logins by outcome", m.logins.clone());
        r.register(
            "sessions_created",
            "Sessions created",
            m.sessions_created.clone(),
        );
        r.register(
            "sessions_revoked",
            "Sessions revoked",
            m.sessions_revoked.clone(),
        );
        r.register(
            "tier_changes",
            "Tier changes by direction",
            m.tier_changes.clone(),
        );
        r.register(
            "rate_limited",
            "Requests refused by the tier's hourly rate",
            m.rate_limited.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests by route, method and status class",
            m.http_requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "HTTP latency by route and caller tier (anonymous, operator, or the user's tier)",
            m.http_latency.clone(),
        );
        r.register(
            "live_users",
            "Live user actors by tier",
            m.live_users.clone(),
        );
        r.register(
            "shard_resident_actors",
            "Resident user actors per shard",
            m.shard_resident.clone(),
        );
        r.register(
            "shard_activations",
            "User actors activated per shard",
            m.shard_activations.clone(),
        );
        r.register(
            "shard_passivations",
            "User actors passivated per shard",
            m.shard_passivations.clone(),
        );
        r.register(
            "shard_restarts",
            "Crashed user actors restarted per shard",
            m.shard_restarts.clone(),
        );
        r.register(
            "hash_queue_depth",
            "Password jobs waiting for a worker",
            m.hash_queue_depth.clone(),
        );
        r.register(
            "store_flushes",
            "Store flushes run by group commit",
            m.store_flushes.clone(),
        );
        r.register(
            "store_commits",
            "Durable commits answered by those flushes",
            m.store_commits.clone(),
        );
        r.register(
            "store_flush_seconds",
            "Time spent in store flushes; divided by store_flushes, the mean flush latency",
            m.store_flush_seconds.clone(),
        );
        r.register(
            "snapshot_bytes",
            "Bytes of snapshot records written",
            m.snapshot_bytes.clone(),
        );
        r.register(
            "store_disk_bytes",
            "Store size on disk",
            m.store_disk_bytes.clone(),
        );
        r.register("hash_jobs", "Password jobs started", m.hash_jobs.clone());
        r.register(
            "hash_wait_seconds",
            "Time password jobs waited for a worker; divided by hash_jobs, the mean wait",
            m.hash_wait_seconds.clone(),
        );
        r.register(
            "actor_message_duration_seconds",
            "Round trip of messages to user actors per shard (mailbox wait plus handling)",
            m.message_latency.clone(),
        );
        r.register(
            "shard_messages_in_flight",
            "Messages sent to a shard's user actors and not yet answered",
            m.shard_in_flight.clone(),
        );
        r.register(
            "hash_busy_seconds",
            "Time hashing threads spent on jobs; hash_workers / (this / hash_jobs) is the pool's ceiling in jobs per second",
            m.hash_busy_seconds.clone(),
        );
        r.register("hash_workers", "Hashing threads", m.hash_workers.clone());
        r.register(
            "admission_waits",
            "Requests that waited for their tier's max_concurrent_requests budget",
            m.admission_waits.clone(),
        );
        r.register(
            "ws_connections",
            "Open event sockets",
            m.ws_connections.clone(),
        );
        r.register(
            "ws_events_published",
            "Events published by user actors",
            m.ws_events_published.clone(),
        );
        r.register(
            "ws_frames_sent",
            "Frames written to event sockets",
            m.ws_events_sent.clone(),
        );
        r.register(
            "ws_events_dropped",
            "Events dropped because a socket's queue was full (the socket is closed)",
            m.ws_events_dropped.clone(),
        );
        r.register(
            "ws_closes",
            "Event sockets closed, by reason",
            m.ws_closes.clone(),
        );
        r.register(
            "activity_events",
            "Client activity events counted",
            m.activity_events.clone(),
        );
        r.register(
            "security_events",
            "Security events by kind",
            m.security_events.clone(),
        );
        r.register(
            "risk_decisions",
            "Risk assessments of logins and session context changes, by decision",
            m.risk_decisions.clone(),
        );
        r.register(
            "risk_signals",
            "Risk signals raised, by signal",
            m.risk_signals.clone(),
        );
        r.register("emails", "Emails by kind and outcome", m.emails.clone());
        r.register(
            "job_runs",
            "Scheduled job runs by job and outcome",
            m.job_runs.clone(),
        );
        r.register(
            "job_duration_seconds",
            "Scheduled job run durations",
            m.job_duration.clone(),
        );
        r.register(
            "job_last_success_timestamp_seconds",
            "When each job last succeeded (Unix time)",
            m.job_last_success.clone(),
        );
        r.register("job_running", "1 while a job runs", m.job_running.clone());
        Self { registry, ..m }
    }

    /// The registry in Prometheus text format.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
