//! The scheduler inside `roster serve`, and one file per job. Every job is a client of
//! the front door acting as its own [`Principal::System`] (so its changes are audited
//! under its name); the scheduler claims each run through
//! [`Jobs`](crate::engine::Jobs), which keeps the state and history in the store.
//!
//! The rules (docs/automation.md):
//! - a job runs when its cron expression is due in `automation.timezone`, or when an
//!   operator asks (`POST /api/v1/admin/jobs/{name}/run`);
//! - never two runs of one job at once: a due time that comes while the job still runs
//!   is skipped, and the job waits for its next time;
//! - a job that fails is recorded as failed and runs again at its next time;
//! - a due time missed while the server was down runs once at start-up, if it was at
//!   most `automation.catch_up` ago;
//! - a run still in progress when the server stops is recorded as interrupted.

mod analytics;
mod backup;
mod cleanup;
mod integrations;
pub mod provision;
mod provisioning;
mod recommendations;
pub mod tier_analysis;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

use crate::config::AutomationConfig;
use crate::domain::job::{JobKind, JobReport, JobRun, Outcome, Trigger};
use crate::domain::time::Timestamp;
use crate::engine::{EngineError, Principal, UserManager};

/// A job: what one run does. The report's summary and counts go into the history; an
/// error's text is the failed run's message.
pub trait Job: Send + Sync + 'static {
    /// Runs once, acting as `by`.
    fn run<'a>(
        &'a self,
        m: &'a UserManager,
        by: &'a Principal,
    ) -> BoxFuture<'a, Result<JobReport, String>>;
}

/// The job that does `kind`'s work.
pub fn builtin(kind: JobKind) -> Arc<dyn Job> {
    match kind {
        JobKind::Provisioning => Arc::new(provisioning::Inbox),
        JobKind::Analytics => Arc::new(analytics::Analytics),
        JobKind::Recommendations => Arc::new(recommendations::Recommendations),
        JobKind::Cleanup => Arc::new(cleanup::Cleanup),
        JobKind::TierAnalysis => Arc::new(tier_analysis::TierAnalysisJob),
        JobKind::Backup => Arc::new(backup::Backup),
        JobKind::Integrations => Arc::new(integrations::LinksJob),
    }
}

/// The principal a job acts as.
pub fn principal(kind: JobKind) -> Principal {
    Principal::System(kind.name())
}

struct Running {
    run: JobRun,
    /// Cuts the run short: it ends as interrupted, recorded by its own task.
    cancel: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// The scheduler: starts each job when it is due (see the module).
pub struct Scheduler {
    m: UserManager,
    config: AutomationConfig,
    jobs: BTreeMap<JobKind, Arc<dyn Job>>,
    next: BTreeMap<JobKind, Option<Timestamp>>,
    running: BTreeMap<JobKind, Running>,
}

impl Scheduler {
    /// A scheduler of the shipped jobs on `m`'s `[automation]` settings. Nothing runs
    /// before [`start`](Self::start).
    pub fn new(m: UserManager) -> Self {
        let config = m.config().automation.clone();
        let jobs = JobKind::ALL.into_iter().map(|k| (k, builtin(k))).collect();
        Self {
            m,
            config,
            jobs,
            next: BTreeMap::new(),
            running: BTreeMap::new(),
        }
    }

    /// Replaces the work of `kind` (tests plant slow and failing jobs).
    pub fn with_job(mut self, kind: JobKind, job: Arc<dyn Job>) -> Self {
        self.jobs.insert(kind, job);
        self
    }

    /// Opens the board, records runs the last stop interrupted, starts once each job
    /// whose due time passed while the server was down (within `catch_up`), and plans
    /// every job's next time. Returns the jobs it started.
    pub async fn start(&mut self) -> Result<Vec<JobKind>, EngineError> {
        let waiting = self
            .m
            .jobs()
            .open_board(&Principal::System("scheduler"))
            .await?;
        let now = self.m.now();
        let mut started = Vec::new();
        for job in self.config.jobs.clone() {
            let kind = job.kind;
            if job.enabled
                && let Some(Some(first)) = waiting.get(&kind)
                && *first <= now
            {
                // However many times it fell due, the last of them is the one to run.
                let due = job
                    .schedule
                    .last_at_or_before(now)
                    .map_or(*first, |t| t.max(*first));
                if now.since(due) <= self.config.catch_up {
                    tracing::info!(job = kind.name(), due = %due, "due while the server was down: running it now");
                    if self.launch(kind, Trigger::CatchUp, Some(due)).await {
                        started.push(kind);
                    }
                } else {
                    tracing::warn!(job = kind.name(), due = %due, catch_up = ?self.config.catch_up, "due while the server was down, longer ago than catch_up: skipped");
                }
            }
            self.plan(kind, now).await?;
        }
        Ok(started)
    }

    /// Plans `kind`'s next due time after `now` (none when disabled).
    async fn plan(&mut self, kind: JobKind, now: Timestamp) -> Result<(), EngineError> {
        let next = self
            .config
            .job(kind)
            .filter(|j| j.enabled)
            .and_then(|j| j.schedule.next_after(now));
        self.next.insert(kind, next);
        self.m.jobs().plan(&principal(kind), kind, next).await
    }

    /// One look at the clock: starts every job that is due or that an operator asked
    /// for, unless a run of it is in progress. Returns the jobs it started.
    pub async fn tick(&mut self) -> Result<Vec<JobKind>, EngineError> {
        self.running.retain(|_, r| !r.task.is_finished());
        let requested = self.m.jobs().take_requests();
        let now = self.m.now();
        let mut started = Vec::new();
        for kind in JobKind::ALL {
            let due = self
                .next
                .get(&kind)
                .copied()
                .flatten()
                .filter(|t| *t <= now);
            if let Some(due) = due {
                if let Some(r) = self.running.get(&kind) {
                    tracing::warn!(job = kind.name(), due = %due, running = r.run.run, "due while its last run goes on: skipped");
                } else if self.launch(kind, Trigger::Schedule, Some(due)).await {
                    started.push(kind);
                }
                self.plan(kind, now).await?;
            } else if requested.contains(&kind)
                && !self.running.contains_key(&kind)
                && self.launch(kind, Trigger::Operator, None).await
            {
                started.push(kind);
            }
        }
        Ok(started)
    }

    /// Claims a run of `kind` and starts it on a task of its own; `false` if it could
    /// not be claimed (logged).
    async fn launch(&mut self, kind: JobKind, trigger: Trigger, due: Option<Timestamp>) -> bool {
        let Some(job) = self.jobs.get(&kind).cloned() else {
            return false;
        };
        let by = principal(kind);
        let run = match self.m.jobs().begin(&by, kind, trigger, due).await {
            Ok(run) => run,
            Err(err) => {
                tracing::error!(job = kind.name(), %err, "a job run could not start");
                return false;
            }
        };
        let m = self.m.clone();
        let claimed = run.clone();
        let (cancel, mut cancelled) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let work = std::panic::AssertUnwindSafe(job.run(&m, &by)).catch_unwind();
            let (outcome, report) = tokio::select! {
                ran = work => match ran {
                    Ok(Ok(report)) => (Outcome::Succeeded, report),
                    Ok(Err(why)) => (Outcome::Failed, JobReport::new(why)),
                    Err(_) => (Outcome::Failed, JobReport::new("the job panicked")),
                },
                Ok(()) = &mut cancelled => {
                    (Outcome::Interrupted, JobReport::new("the server stopped while it ran"))
                }
            };
            if let Err(err) = m.jobs().finish(&by, claimed, outcome, report).await {
                tracing::error!(job = kind.name(), %err, "a job run's end could not be recorded");
            }
        });
        self.running.insert(kind, Running { run, cancel, task });
        true
    }

    /// When the scheduler must look next: the earliest due time.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.next.values().flatten().min().copied()
    }

    /// Waits until every run in progress has ended (tests).
    pub async fn settle(&mut self) {
        for (_, r) in std::mem::take(&mut self.running) {
            let _ = r.task.await;
        }
    }

    /// Stops: runs in progress are cut short and recorded as interrupted (each by its own
    /// task, so a run that was just ending is recorded once, as it ended), and the board
    /// closes.
    pub async fn stop(mut self) {
        for (_, r) in std::mem::take(&mut self.running) {
            let _ = r.cancel.send(());
            let _ = r.task.await;
        }
        self.m.jobs().close_board();
    }

    /// Runs the scheduler until `shutdown` completes: [`start`](Self::start), then a
    /// [`tick`](Self::tick) at each due time, at each operator's request, and at least
    /// every `automation.poll`.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        if let Err(err) = self.start().await {
            tracing::error!(%err, "the scheduler could not start");
            self.m.jobs().close_board();
            return;
        }
        let wake = self.m.jobs().wake();
        loop {
            let now = self.m.now();
            let until_due = self
                .next_due()
                .map_or(self.config.poll, |t| t.since(now))
                .min(self.config.poll)
                // A due time reached within the clock's resolution.
                .max(Duration::from_millis(10));
            tokio::select! {
                () = &mut shutdown => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(until_due) => {}
            }
            if let Err(err) = self.tick().await {
                tracing::error!(%err, "the scheduler's tick failed; it tries again");
            }
        }
        self.stop().await;
    }
}

/// How long a job waits for another kind's training to end before it gives up.
const TRAINING_WAIT: Duration = Duration::from_secs(30 * 60);

/// Runs `train` again while another training holds the engine's one training slot (the
/// daily trainings are scheduled close together), for up to [`TRAINING_WAIT`].
async fn when_training_free<T, F, Fut>(mut train: F) -> Result<T, EngineError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, EngineError>>,
{
    let started = std::time::Instant::now();
    loop {
        match train().await {
            Err(EngineError::Conflict(m))
                if m == crate::engine::TRAINING_RUNNING && started.elapsed() < TRAINING_WAIT =>
            {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            other => return other,
        }
    }
}
