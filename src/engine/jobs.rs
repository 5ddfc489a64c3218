//! The jobs board: what the scheduler running in this process has told the engine about
//! its jobs (next due time, the run in progress, the last one) and the operators' requests
//! for a run, which wake it. The scheduler itself is the `jobs` layer; the history is in the
//! store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::domain::job::{JobKind, JobRun};
use crate::domain::time::Timestamp;

/// One job as the board knows it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Entry {
    /// The schedule time it waits for.
    pub next_due: Option<Timestamp>,
    /// The run in progress.
    pub running: Option<JobRun>,
    /// The last run that ended.
    pub last: Option<JobRun>,
    /// When a run last succeeded.
    pub last_success: Option<Timestamp>,
    /// The number of the last run started.
    pub last_run: u64,
}

#[derive(Default)]
struct Inner {
    /// Set while a scheduler runs in this process.
    entries: Option<BTreeMap<JobKind, Entry>>,
    requested: BTreeSet<JobKind>,
}

/// See the module.
#[derive(Default)]
pub(crate) struct Board {
    inner: Mutex<Inner>,
    wake: Arc<Notify>,
    /// Held from reading a job's state to writing it back, so two changes (a plan and
    /// the end of a run) never write over each other.
    turn: tokio::sync::Mutex<()>,
}

impl Board {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the turn to change a job's stored state.
    pub async fn turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.turn.lock().await
    }

    /// A scheduler starts with these jobs.
    pub fn open(&self, entries: BTreeMap<JobKind, Entry>) {
        let mut inner = self.lock();
        inner.entries = Some(entries);
        inner.requested.clear();
    }

    /// The scheduler stopped.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.entries = None;
        inner.requested.clear();
    }

    /// A copy of the job's entry; `None` while no scheduler runs.
    pub fn entry(&self, kind: JobKind) -> Option<Entry> {
        self.lock().entries.as_ref()?.get(&kind).cloned()
    }

    /// Whether a scheduler runs.
    pub fn is_open(&self) -> bool {
        self.lock().entries.is_some()
    }

    /// Changes the job's entry (nothing while no scheduler runs).
    pub fn update(&self, kind: JobKind, f: impl FnOnce(&mut Entry)) {
        if let Some(e) = self.lock().entries.as_mut().and_then(|m| m.get_mut(&kind)) {
            f(e);
        }
    }

    /// Claims the right to run `kind`: `Err` with the run in progress when one is.
    pub fn claim(&self, kind: JobKind, run: &JobRun) -> Result<(), Box<JobRun>> {
        let mut inner = self.lock();
        let Some(e) = inner.entries.as_mut().and_then(|m| m.get_mut(&kind)) else {
            return Ok(());
        };
        if let Some(r) = &e.running {
            return Err(Box::new(r.clone()));
        }
        e.running = Some(run.clone());
        e.last_run = run.run;
        Ok(())
    }

    /// Asks for a run of `kind` and wakes the scheduler. `Err` with the run in progress
    /// when one is; `Ok(false)` when no scheduler runs.
    pub fn request(&self, kind: JobKind) -> Result<bool, Box<JobRun>> {
        let mut inner = self.lock();
        let Some(entries) = inner.entries.as_ref() else {
            return Ok(false);
        };
        if let Some(r) = entries.get(&kind).and_then(|e| e.running.clone()) {
            return Err(Box::new(r));
        }
        inner.requested.insert(kind);
        drop(inner);
        self.wake.notify_one();
        Ok(true)
    }

    /// The runs asked for since the last call.
    pub fn take_requests(&self) -> BTreeSet<JobKind> {
        std::mem::take(&mut self.lock().requested)
    }

    /// What wakes the scheduler before its next due time.
    pub fn wake(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }
}
