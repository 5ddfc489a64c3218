//! The actix runtime the engine runs in: a dedicated system thread owning the Arbiters
//! of every tier. Keeping the actix `System` to its own thread lets the library be used
//! from any tokio runtime (the server's, a test's, a bench's): callers only hold `Addr`s,
//! which are `Send`, and await replies from wherever they are.

use std::sync::mpsc;
use std::thread::{self, JoinHandle};

use actix::{Arbiter, ArbiterHandle, System};

use super::EngineError;

/// The running system thread and the Arbiters of each tier.
pub(crate) struct ActorRuntime {
    system: System,
    thread: Option<JoinHandle<()>>,
    /// Arbiter handles per tier, indexed by `UserTier::index`.
    pub arbiters: [Vec<ArbiterHandle>; 4],
}

impl ActorRuntime {
    /// Starts the system thread with `counts[tier]` Arbiter threads per tier.
    pub(crate) fn start(counts: [usize; 4]) -> Result<Self, EngineError> {
        let (tx, rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("roster-actors".into())
            .spawn(move || {
                let sys = System::new();
                // Arbiters must be created inside the system; they are kept alive here
                // until the system stops.
                let arbiters: Vec<Vec<Arbiter>> = sys.block_on(async {
                    counts
                        .iter()
                        .map(|&n| (0..n).map(|_| Arbiter::new()).collect())
                        .collect()
                });
                let handles: Vec<Vec<ArbiterHandle>> = arbiters
                    .iter()
                    .map(|tier| tier.iter().map(Arbiter::handle).collect())
                    .collect();
                let _ = tx.send((System::current(), handles));
                let _ = sys.run();
                for a in arbiters.into_iter().flatten() {
                    a.stop();
                    let _ = a.join();
                }
            })
            .map_err(|e| EngineError::Internal(format!("cannot start actor system: {e}")))?;
        let (system, handles) = rx
            .recv()
            .map_err(|_| EngineError::Internal("actor system failed to start".into()))?;
        let arbiters: [Vec<ArbiterHandle>; 4] = handles
            .try_into()
            .map_err(|_| EngineError::Internal("arbiter layout".into()))?;
        Ok(Self {
            system,
            thread: Some(thread),
            arbiters,
        })
    }

    /// Stops every Arbiter and the system, and waits for the thread.
    pub(crate) fn stop(&mut self) {
        self.system.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ActorRuntime {
    fn drop(&mut self) {
        self.stop();
    }
}
