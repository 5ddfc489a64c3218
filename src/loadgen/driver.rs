//! The two ways of sending load.
//!
//! **Open model** (`--rate`): request *i* is due at `start + i / rate`, whatever happened
//! to the ones before it, and its latency is measured from that due time. When the
//! server (or the generator) falls behind, the queueing shows up in the latency — the
//! coordinated omission a closed-loop tool hides.
//!
//! **Closed loop** (`--concurrency`): N workers each send, wait for the answer, send
//! again. Latency is measured from the actual send. Useful to find the maximum
//! throughput, not to report latency under a given load.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::stats::{Outcome, Stats};

/// The resolution of tokio's timer.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// How load is offered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Requests per second on a fixed schedule.
    Open {
        /// Requests per second.
        rate: f64,
    },
    /// Workers sending back to back.
    Closed {
        /// Workers.
        concurrency: usize,
    },
}

/// When to send and how much.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Open or closed.
    pub load: Load,
    /// Time sent but not recorded, before the measured part.
    pub warmup: Duration,
    /// The measured part.
    pub duration: Duration,
    /// Most requests to send in all (warm-up included); `None`: no limit.
    pub max_requests: Option<u64>,
    /// Most requests in flight in the open model (memory bound); the schedule still
    /// counts from the due times, so a backlog shows up as latency.
    pub max_in_flight: usize,
}

/// Runs `make(i)` as planned, recording into `stats` whatever finishes after the warm-up
/// (open model: whatever was due after it). Returns the measured time.
pub(crate) async fn drive<F, Fut>(plan: Plan, stats: Arc<Stats>, make: F) -> Duration
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let make = Arc::new(make);
    let start = Instant::now();
    let measured_from = start + plan.warmup;
    let end = measured_from + plan.duration;
    let budget = plan.max_requests.unwrap_or(u64::MAX);
    match plan.load {
        Load::Open { rate } => {
            let gap = Duration::from_secs_f64(1.0 / rate.max(1e-3));
            let slots = Arc::new(Semaphore::new(plan.max_in_flight.max(1)));
            let mut i = 0u64;
            while i < budget {
                let due = start + gap.mul_f64(i as f64);
                if due >= end {
                    break;
                }
                // tokio's timer fires on millisecond ticks, after its deadline: waking a
                // tick early keeps the generator's own timer from adding up to a
                // millisecond to every latency. A request sent before its due time is
                // timed from its sending, one sent late from its due time.
                tokio::time::sleep_until(due.checked_sub(TIMER_TICK).unwrap_or(due)).await;
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    break;
                };
                let from = due.min(Instant::now());
                let (make, stats) = (Arc::clone(&make), Arc::clone(&stats));
                tokio::spawn(async move {
                    let outcome = make(i).await;
                    if due >= measured_from {
                        stats.record(&outcome, from.elapsed());
                    }
                    drop(slot);
                });
                i += 1;
            }
            // Wait for the stragglers (each holds a slot).
            let all = u32::try_from(plan.max_in_flight.max(1)).unwrap_or(u32::MAX);
            let _ = tokio::time::timeout(Duration::from_secs(60), slots.acquire_many(all)).await;
        }
        Load::Closed { concurrency } => {
            let issued = Arc::new(AtomicU64::new(0));
            let workers: Vec<_> = (0..concurrency.max(1))
                .map(|_| {
                    let (make, stats, issued) =
                        (Arc::clone(&make), Arc::clone(&stats), Arc::clone(&issued));
                    tokio::spawn(async move {
                        loop {
                            let sent_at = Instant::now();
                            if sent_at >= end {
                                break;
                            }
                            let i = issued.fetch_add(1, Ordering::Relaxed);
                            if i >= budget {
                                break;
                            }
                            let outcome = make(i).await;
                            if sent_at >= measured_from {
                                stats.record(&outcome, sent_at.elapsed());
                            }
                        }
                    })
                })
                .collect();
            for w in workers {
                let _ = w.await;
            }
        }
    }
    Instant::now()
        .saturating_duration_since(measured_from)
        .min(plan.duration.max(Duration::from_millis(1)))
        .max(Duration::from_millis(1))
}

/// Prints a progress line to stderr every second until dropped.
pub struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts reporting `stats` under `label` (nothing when `enabled` is false).
    pub fn start(label: String, stats: Arc<Stats>, enabled: bool) -> Self {
        if !enabled {
            return Self { task: None };
        }
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let (sent, ok, errors, p99) = stats.snapshot();
                let secs = started.elapsed().as_secs_f64();
                eprint!(
                    "\r[{label}] {secs:5.0} s  sent {sent}  ok {ok}  errors {errors}  p99 {:.2} ms   ",
                    p99 as f64 / 1000.0
                );
            }
        });
        Self { task: Some(task) }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_model_latency_includes_the_wait_for_a_slow_server() {
        // A "server" that serves one request at a time, 20 ms each: 50/s at most. Offered
        // 100/s for half a second, requests queue up behind each other.
        let server = Arc::new(tokio::sync::Mutex::new(()));
        let slow = move |_| {
            let server = Arc::clone(&server);
            async move {
                let _one_at_a_time = server.lock().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                Outcome::Ok
            }
        };
        let plan = |load| Plan {
            load,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(500),
            max_requests: None,
            max_in_flight: 1000,
        };
        let open = Arc::new(Stats::default());
        drive(
            plan(Load::Open { rate: 100.0 }),
            Arc::clone(&open),
            slow.clone(),
        )
        .await;
        let closed = Arc::new(Stats::default());
        drive(
            plan(Load::Closed { concurrency: 1 }),
            Arc::clone(&closed),
            slow,
        )
        .await;
        let (o, c) = (
            open.summary(Duration::from_secs(1)),
            closed.summary(Duration::from_secs(1)),
        );
        assert_eq!(o.sent, 50, "every due request was sent: {o:?}");
        // The last ones waited for ~25 requests ahead of them: ~500 ms.
        assert!(o.latency_us.max > 300_000, "{o:?}");
        // The closed loop only ever sees the 20 ms service time.
        assert!(c.latency_us.max < 200_000, "{c:?}");
    }

    #[tokio::test]
    async fn budgets_and_warmup_bound_what_is_sent_and_recorded() {
        let count = Arc::new(AtomicU64::new(0));
        let c2 = Arc::clone(&count);
        let plan = Plan {
            load: Load::Closed { concurrency: 4 },
            warmup: Duration::ZERO,
            duration: Duration::from_secs(30),
            max_requests: Some(25),
            max_in_flight: 1,
        };
        let stats = Arc::new(Stats::default());
        drive(plan, Arc::clone(&stats), move |_| {
            c2.fetch_add(1, Ordering::Relaxed);
            async { Outcome::Ok }
        })
        .await;
        assert_eq!(count.load(Ordering::Relaxed), 25);
        assert_eq!(stats.summary(Duration::from_secs(1)).sent, 25);
    }
}
