//! What a run measured: counts by outcome and an HDR latency histogram, and the report
//! printed and written as JSON at the end.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The outcome of one request (or one delivery, one connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done as intended.
    Ok,
    /// Failed; the kind names the failure (`http_429`, `timeout`, `connect`...).
    Err(String),
}

impl Outcome {
    /// A failure of `kind`.
    pub fn err(kind: impl Into<String>) -> Self {
        Outcome::Err(kind.into())
    }
}

struct Inner {
    histogram: Histogram<u64>,
    sent: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
}

/// Counts and latencies of one measured stream of requests. Thread-safe.
pub struct Stats {
    inner: Mutex<Inner>,
}

/// Latencies are recorded in microseconds, from 1 µs to 10 minutes, 3 significant digits.
#[allow(clippy::expect_used)]
fn histogram() -> Histogram<u64> {
    // Fails only for invalid bounds; these are constants.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                histogram: histogram(),
                sent: 0,
                ok: 0,
                errors: BTreeMap::new(),
            }),
        }
    }
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one finished request: its outcome, and its latency if it succeeded.
    pub fn record(&self, outcome: &Outcome, latency: Duration) {
        let mut s = self.lock();
        s.sent += 1;
        match outcome {
            Outcome::Ok => {
                s.ok += 1;
                let us = u64::try_from(latency.as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                s.histogram.saturating_record(us);
            }
            Outcome::Err(kind) => *s.errors.entry(kind.clone()).or_insert(0) += 1,
        }
    }

    /// Sent, ok, errors and p99 so far (for the progress line).
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        let s = self.lock();
        let errors = s.errors.values().sum();
        (s.sent, s.ok, errors, s.histogram.value_at_quantile(0.99))
    }

    /// The summary over `elapsed`.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let s = self.lock();
        let h = &s.histogram;
        let secs = elapsed.as_secs_f64().max(1e-9);
        Summary {
            sent: s.sent,
            ok: s.ok,
            errors: s.errors.clone(),
            seconds: elapsed.as_secs_f64(),
            throughput_per_sec: s.ok as f64 / secs,
            latency_us: Latency {
                count: h.len(),
                mean: h.mean(),
                p50: h.value_at_quantile(0.50),
                p90: h.value_at_quantile(0.90),
                p99: h.value_at_quantile(0.99),
                p999: h.value_at_quantile(0.999),
                max: h.max(),
            },
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// Samples (equals `ok`).
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

/// Counts, throughput and latency of one measured stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Requests whose outcome was recorded (after the warm-up).
    pub sent: u64,
    /// Of those, the ones that succeeded.
    pub ok: u64,
    /// Of those, the failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// Measured time.
    pub seconds: f64,
    /// `ok` per second.
    pub throughput_per_sec: f64,
    /// Latency of the successful ones.
    pub latency_us: Latency,
}

impl Summary {
    /// Failures of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.latency_us;
        writeln!(
            f,
            "  sent {}  ok {}  errors {}  in {:.1} s  →  {:.1} ok/s",
            self.sent,
            self.ok,
            self.error_count(),
            self.seconds,
            self.throughput_per_sec
        )?;
        for (kind, n) in &self.errors {
            writeln!(f, "    {kind}: {n}")?;
        }
        write!(
            f,
            "  latency  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_and_only_successes_are_timed() {
        let s = Stats::default();
        for i in 1..=100u64 {
            s.record(&Outcome::Ok, Duration::from_micros(i * 1000));
        }
        s.record(&Outcome::err("http_500"), Duration::from_secs(9));
        s.record(&Outcome::err("timeout"), Duration::from_secs(9));
        let sum = s.summary(Duration::from_secs(2));
        assert_eq!((sum.sent, sum.ok, sum.error_count()), (102, 100, 2));
        assert_eq!(sum.latency_us.count, 100);
        assert!((49_000..=51_000).contains(&sum.latency_us.p50));
        assert!(sum.latency_us.max < 101_000, "failures are not timed");
        assert!((sum.throughput_per_sec - 50.0).abs() < 1e-9);
    }
}
