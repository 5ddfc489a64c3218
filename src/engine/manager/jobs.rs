//! The scheduler's jobs (issue 20): their state and history in the store, the board of
//! the scheduler running in this process, and the operators' view and requests. The
//! scheduler (the `jobs` layer) is a client of this facade acting as each job's
//! [`Principal::System`]; it claims a run here, so two runs of one job never overlap,
//! whoever asked for them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use super::UserManager;
use super::principal::Principal;
use crate::domain::audit::{AuditAction, AuditActor};
use crate::domain::job::{JobKind, JobReport, JobRun, JobState, Outcome, Trigger};
use crate::domain::time::Timestamp;
use crate::engine::EngineError;
use crate::engine::durable::settled;
use crate::engine::jobs::Entry;
use crate::metrics::{JobLabels, JobOutcomeLabels};
use crate::store::{Batch, Op};

/// Most runs one history page holds.
pub const MAX_RUNS_PAGE: usize = 1000;

/// See [`UserManager::jobs`].
#[derive(Clone, Copy)]
pub struct Jobs<'a> {
    pub(super) m: &'a UserManager,
}

/// A job as operators see it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct JobStatus {
    /// Its name.
    pub name: String,
    /// Its cron expression.
    pub schedule: String,
    /// The zone the expression is read in.
    pub timezone: String,
    /// Whether the schedule starts it.
    pub enabled: bool,
    /// When the schedule starts it next (none while no scheduler runs, or disabled).
    pub next_run: Option<Timestamp>,
    /// The run in progress.
    pub running: Option<JobRun>,
    /// The last run that ended.
    pub last_run: Option<JobRun>,
    /// When a run last succeeded.
    pub last_success: Option<Timestamp>,
}

/// The jobs, and whether a scheduler runs them in this server.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct JobsView {
    /// Whether this server's scheduler runs (`automation.enabled`).
    pub scheduler_running: bool,
    /// Every job.
    pub jobs: Vec<JobStatus>,
}

fn job_only(by: &Principal) -> Result<(), EngineError> {
    match by {
        Principal::System(_) => Ok(()),
        _ => Err(EngineError::Forbidden("only the scheduler runs jobs")),
    }
}

fn kind_of(name: &str) -> Result<JobKind, EngineError> {
    JobKind::from_name(name).ok_or(EngineError::NoSuch("job"))
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, EngineError> {
    serde_json::to_vec(v).map_err(|e| EngineError::Internal(format!("job record: {e}")))
}

fn running_refusal(r: &JobRun) -> EngineError {
    EngineError::Conflict(format!(
        "job {} is running (run {}, started {})",
        r.job, r.run, r.started_at
    ))
}

impl Jobs<'_> {
    /// A job's stored state and runs, oldest first (unreadable runs logged and skipped).
    fn stored(self, kind: JobKind) -> Result<(JobState, Vec<JobRun>), EngineError> {
        let store = self.m.engine.store.as_ref();
        let state = match store.job(kind.name())? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| EngineError::Internal(format!("job {}: {e}", kind.name())))?,
            None => JobState::default(),
        };
        let runs = store
            .job_runs(kind.name())?
            .into_iter()
            .filter_map(|(run, bytes)| {
                serde_json::from_slice(&bytes)
                    .inspect_err(|e| tracing::error!(job = kind.name(), run, error = %e, "unreadable job run"))
                    .ok()
            })
            .collect();
        Ok((state, runs))
    }

    /// The job as the board has it, or (no scheduler in this process) as stored.
    fn entry(self, kind: JobKind) -> Result<Entry, EngineError> {
        if let Some(e) = self.m.engine.jobs.entry(kind) {
            return Ok(e);
        }
        let (state, runs) = self.stored(kind)?;
        Ok(entry_of(state, &runs))
    }

    async fn write(
        self,
        batch: Batch,
        audit: Vec<(AuditActor, AuditAction)>,
    ) -> Result<(), EngineError> {
        let now = self.m.now();
        let drafts = audit.into_iter().map(|(a, b)| (a, b, now)).collect();
        let e = &self.m.engine;
        let ticket = e.commit.submit(batch, drafts, None);
        settled(e.commit.wait(&ticket).await)
    }

    /// A scheduler starts in this process (the system): each job's run found in
    /// progress is recorded as interrupted (the server stopped during it), and the due
    /// time each job was waiting for is returned — one in the past was missed while the
    /// server was down.
    pub async fn open_board(
        self,
        by: &Principal,
    ) -> Result<BTreeMap<JobKind, Option<Timestamp>>, EngineError> {
        job_only(by)?;
        let _turn = self.m.engine.jobs.turn().await;
        let mut entries = BTreeMap::new();
        let mut waiting = BTreeMap::new();
        for kind in JobKind::ALL {
            let (mut state, mut runs) = self.stored(kind)?;
            if let Some(mut run) = state.running.take() {
                run.outcome = Outcome::Interrupted;
                run.message = "the server stopped while it ran".into();
                tracing::warn!(
                    job = kind.name(),
                    run = run.run,
                    "a job run was interrupted"
                );
                self.record(kind, &run, &state).await?;
                self.count(kind, Outcome::Interrupted);
                runs.push(run);
            }
            waiting.insert(kind, state.next_due);
            entries.insert(kind, entry_of(state, &runs));
        }
        self.m.engine.jobs.open(entries);
        Ok(waiting)
    }

    /// The scheduler of this process stopped.
    pub fn close_board(self) {
        self.m.engine.jobs.close();
    }

    /// Records the schedule time `kind` waits for now (written when it changed).
    pub async fn plan(
        self,
        by: &Principal,
        kind: JobKind,
        next_due: Option<Timestamp>,
    ) -> Result<(), EngineError> {
        job_only(by)?;
        let _turn = self.m.engine.jobs.turn().await;
        let mut entry = self.entry(kind)?;
        if entry.next_due == next_due {
            return Ok(());
        }
        entry.next_due = next_due;
        let record = json(&state_of(&entry))?;
        self.write(
            Batch::of(Op::PutJob {
                name: kind.name(),
                record,
            }),
            Vec::new(),
        )
        .await?;
        self.m.engine.jobs.update(kind, |e| e.next_due = next_due);
        Ok(())
    }

    /// Starts a run of `kind` (the scheduler, as the job): durably recorded as in
    /// progress, so a crash during it is found at the next start. A conflict while a
    /// run of the job is in progress.
    pub async fn begin(
        self,
        by: &Principal,
        kind: JobKind,
        trigger: Trigger,
        scheduled_for: Option<Timestamp>,
    ) -> Result<JobRun, EngineError> {
        job_only(by)?;
        let _turn = self.m.engine.jobs.turn().await;
        let mut entry = self.entry(kind)?;
        if let Some(r) = &entry.running {
            return Err(running_refusal(r));
        }
        let run = JobRun {
            job: kind.name().to_owned(),
            run: entry.last_run + 1,
            trigger,
            scheduled_for,
            started_at: self.m.now(),
            ended_at: None,
            outcome: Outcome::Running,
            message: String::new(),
            counts: BTreeMap::new(),
        };
        let board = &self.m.engine.jobs;
        board.claim(kind, &run).map_err(|r| running_refusal(&r))?;
        entry.running = Some(run.clone());
        entry.last_run = run.run;
        let written = match json(&state_of(&entry)) {
            Ok(record) => {
                let batch = Batch::of(Op::PutJob {
                    name: kind.name(),
                    record,
                });
                self.write(batch, Vec::new()).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            board.update(kind, |e| {
                e.running = None;
                e.last_run = run.run - 1;
            });
            return Err(e);
        }
        self.gauge(kind).set(1);
        Ok(run)
    }

    /// Ends `run` with `outcome` and the job's `report` (the scheduler, as the job): the
    /// run joins the history (beyond `automation.keep_runs` the oldest leave it), the
    /// audit log and the metrics. A conflict when `run` is not the one in progress (it
    /// ended already). Should the write fail, the run still ends here — the job is not
    /// held up — and the next start records it as interrupted.
    pub async fn finish(
        self,
        by: &Principal,
        mut run: JobRun,
        outcome: Outcome,
        report: JobReport,
    ) -> Result<JobRun, EngineError> {
        job_only(by)?;
        let kind = kind_of(&run.job)?;
        let _turn = self.m.engine.jobs.turn().await;
        let mut entry = self.entry(kind)?;
        if entry.running.as_ref().map(|r| r.run) != Some(run.run) {
            return Err(EngineError::Conflict(format!(
                "run {} of job {} is not in progress",
                run.run, run.job
            )));
        }
        let now = self.m.now();
        run.ended_at = Some(now);
        run.outcome = outcome;
        run.message = report.summary;
        run.counts = report.counts;
        entry.running = None;
        let written = self.record(kind, &run, &state_of(&entry)).await;
        let succeeded = outcome == Outcome::Succeeded;
        self.m.engine.jobs.update(kind, |e| {
            e.running = None;
            if succeeded {
                e.last_success = Some(now);
            }
            e.last = Some(run.clone());
        });
        self.gauge(kind).set(0);
        self.count(kind, outcome);
        let m = &self.m.engine.metrics;
        let job = kind.name();
        m.job_duration
            .get_or_create(&JobLabels { job })
            .observe(now.since(run.started_at).as_secs_f64());
        if succeeded {
            m.job_last_success
                .get_or_create(&JobLabels { job })
                .set(now.as_millis() as f64 / 1000.0);
        }
        written?;
        tracing::info!(job, run = run.run, outcome = outcome.name(), message = %run.message, "job run ended");
        Ok(run)
    }

    fn count(self, kind: JobKind, outcome: Outcome) {
        let labels = JobOutcomeLabels {
            job: kind.name(),
            outcome: outcome.name(),
        };
        self.m.engine.metrics.job_runs.get_or_create(&labels).inc();
    }

    fn gauge(self, kind: JobKind) -> prometheus_client::metrics::gauge::Gauge {
        self.m
            .engine
            .metrics
            .job_running
            .get_or_create(&JobLabels { job: kind.name() })
            .clone()
    }

    /// Writes an ended run with the job's state, dropping runs beyond the history's
    /// length, and audits it as the job.
    async fn record(
        self,
        kind: JobKind,
        run: &JobRun,
        state: &JobState,
    ) -> Result<(), EngineError> {
        let name = kind.name();
        let keep = self.m.engine.config.automation.keep_runs as u64;
        let mut batch = Batch::of(Op::PutJobRun {
            name,
            run: run.run,
            record: json(run)?,
        });
        batch.push(Op::PutJob {
            name,
            record: json(state)?,
        });
        for (old, _) in self.m.engine.store.job_runs(name)? {
            if old + keep <= run.run {
                batch.push(Op::DropJobRun { name, run: old });
            }
        }
        let audit = vec![(
            AuditActor::System { job: name.into() },
            AuditAction::JobRan {
                job: name.into(),
                run: run.run,
                trigger: run.trigger,
                outcome: run.outcome,
            },
        )];
        self.write(batch, audit).await
    }

    /// Every job with its schedule, next and last run (operators).
    pub fn list(self, by: &Principal) -> Result<JobsView, EngineError> {
        by.privileged()?;
        let jobs = self
            .m
            .engine
            .config
            .automation
            .jobs
            .iter()
            .map(|j| {
                let e = self.entry(j.kind)?;
                Ok(JobStatus {
                    name: j.kind.name().into(),
                    schedule: j.schedule.expression().into(),
                    timezone: j.schedule.zone().into(),
                    enabled: j.enabled,
                    next_run: if self.m.engine.jobs.is_open() && j.enabled {
                        e.next_due
                    } else {
                        None
                    },
                    running: e.running,
                    last_run: e.last,
                    last_success: e.last_success,
                })
            })
            .collect::<Result<_, EngineError>>()?;
        Ok(JobsView {
            scheduler_running: self.m.engine.jobs.is_open(),
            jobs,
        })
    }

    /// A job's history, newest first, the run in progress at the top (operators; at
    /// most `limit`, up to [`MAX_RUNS_PAGE`]).
    pub fn runs(
        self,
        by: &Principal,
        name: &str,
        limit: usize,
    ) -> Result<Vec<JobRun>, EngineError> {
        by.privileged()?;
        let kind = kind_of(name)?;
        let running = self.entry(kind)?.running;
        let (_, runs) = self.stored(kind)?;
        Ok(running
            .into_iter()
            .chain(runs.into_iter().rev())
            .take(limit.clamp(1, MAX_RUNS_PAGE))
            .collect())
    }

    /// Asks this server's scheduler to run the job `name` now (operators; audited). A
    /// conflict while a run of it is in progress or when no scheduler runs here.
    pub async fn request(self, by: &Principal, name: &str) -> Result<(), EngineError> {
        by.privileged()?;
        let kind = kind_of(name)?;
        let board = &self.m.engine.jobs;
        let no_scheduler = || {
            EngineError::Conflict(
                "no scheduler runs in this server (automation.enabled = false); run the job's command instead".into(),
            )
        };
        // Refused before it is audited; audited before the scheduler hears of it.
        match board.entry(kind) {
            None => return Err(no_scheduler()),
            Some(Entry {
                running: Some(r), ..
            }) => return Err(running_refusal(&r)),
            Some(_) => {}
        }
        if let Some(actor) = by.audit_actor() {
            let action = AuditAction::JobRequested { job: name.into() };
            self.write(Batch::default(), vec![(actor, action)]).await?;
        }
        match board.request(kind) {
            Err(r) => Err(running_refusal(&r)),
            Ok(false) => Err(no_scheduler()),
            Ok(true) => Ok(()),
        }
    }

    /// The runs operators asked for since the last call (the scheduler).
    pub fn take_requests(self) -> BTreeSet<JobKind> {
        self.m.engine.jobs.take_requests()
    }

    /// What wakes the scheduler when an operator asks for a run.
    pub fn wake(self) -> Arc<tokio::sync::Notify> {
        self.m.engine.jobs.wake()
    }
}

fn entry_of(state: JobState, runs: &[JobRun]) -> Entry {
    Entry {
        next_due: state.next_due,
        running: state.running,
        last: runs.last().cloned(),
        last_success: runs
            .iter()
            .rev()
            .find(|r| r.outcome == Outcome::Succeeded)
            .and_then(|r| r.ended_at),
        last_run: state.last_run.max(runs.last().map_or(0, |r| r.run)),
    }
}

fn state_of(e: &Entry) -> JobState {
    JobState {
        next_due: e.next_due,
        running: e.running.clone(),
        last_run: e.last_run,
    }
}
