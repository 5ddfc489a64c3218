//! The stored population, read off the actor threads: every record opened with its data
//! key and handed to a batch job as a [`Member`], one at a time, so a report over a
//! million users holds its accumulators, not a million states. Blocking: callers run it
//! on a batch thread ([`super::background`]).
//!
//! The work is spread over the machine's cores: the population is split into ranges of
//! ids, and each thread reads a range from the store (records and their wrapped keys side
//! by side, in id order), opens and decodes it in chunks; the caller's thread puts the
//! chunks back in id order and hands the members to the job, so a job's result does not
//! depend on which thread was faster.
//!
//! The first scan cuts the id space evenly; ids are time-ordered, so a population that
//! came in bursts (a migration imported in an hour, then years of sign-ups) would put
//! most users in a few ranges and leave the other threads idle. Each scan therefore
//! samples the ids it hands over and leaves the next scan cut points that split the
//! population evenly ([`Cuts`]); users added since fall into the last range until then.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Condvar, Mutex, PoisonError};

use super::state::{ReportView, report_view};
use super::{Engine, EngineError};
use crate::analytics::Member;
use crate::domain::consent::Purpose;
use crate::domain::history::ActivityHistory;
use crate::domain::ids::UserId;
use crate::domain::settings::PersonalizationLevel;
use crate::domain::time::Timestamp;
use crate::store::StoreError;

/// What a scan read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScanCounts {
    /// Records read.
    pub users: u64,
    /// Records that could not be opened (logged with the user id, left out).
    pub unreadable: u64,
}

/// Records read and decoded as one piece of work.
const CHUNK: usize = 512;

/// Ranges a scan splits the ids into: more than threads, so that a range denser than
/// another does not leave a thread idle (and see [`Gate`] for how far ahead they read).
const RANGES: u128 = 64;

/// A chunk of range `.0`, its number `.1` in the range, whether it is the range's last,
/// and its users (or the store's failure at that point).
type Chunk = ((usize, u64), bool, Result<Vec<Decoded>, StoreError>);

/// A decoded user, or why its record could not be read.
type Decoded = (UserId, Result<Opened, String>);

/// What a job sees of one user.
struct Opened {
    view: ReportView,
    consented: bool,
    personalised: bool,
}

/// How many threads read and decode: one per core, at most eight.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8))
}

/// Hands every stored user to `visit` as of `now`, in id order. A member's history is
/// empty unless it consents to analytics at `now` (and, under the minimum age, has a
/// parent's consent): withdrawing the consent takes a user out of the next report at
/// once.
pub(crate) fn scan(
    e: &Engine,
    now: Timestamp,
    mut visit: impl FnMut(&Member<'_>),
) -> Result<ScanCounts, EngineError> {
    let ranges = match e.scan_cuts.get() {
        Some(cuts) => ranges_at(&cuts),
        None => ranges(e.store.user_id_bounds()?),
    };
    let threads = threads().min(ranges.len());
    let next = AtomicUsize::new(0);
    let gate = Gate::new(threads * 2);
    std::thread::scope(|s| {
        // However the job ends (done, failed or panicking), waiting threads are let go.
        let _release = Release(&gate);
        let (tx, rx) = sync_channel::<Chunk>(threads * 2);
        for _ in 0..threads {
            let (tx, ranges, next, gate) = (tx.clone(), &ranges, &next, &gate);
            std::thread::Builder::new()
                .name("roster-scan".to_owned())
                .spawn_scoped(s, move || {
                    // A range at a time until none is left, or the job stopped reading.
                    loop {
                        let r = next.fetch_add(1, Ordering::Relaxed);
                        match ranges.get(r) {
                            Some(&range) if gate.admit(r) && read(e, now, r, range, &tx) => {}
                            _ => return,
                        }
                    }
                })
                .map_err(|err| EngineError::Internal(format!("cannot start a scan: {err}")))?;
        }
        drop(tx);
        let mut sample = Sample::default();
        let counts = deliver(&rx, &gate, &mut |m: &Member<'_>| {
            sample.add(m.id);
            visit(m)
        })?;
        e.scan_cuts.set(sample.cuts());
        Ok(counts)
    })
}

/// Cut points learned from the last scan (see the module documentation).
#[derive(Default)]
pub(crate) struct Cuts(Mutex<Option<Vec<UserId>>>);

impl Cuts {
    fn get(&self) -> Option<Vec<UserId>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, cuts: Vec<UserId>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = (!cuts.is_empty()).then_some(cuts);
    }
}

/// Every `stride`-th id handed over, the stride doubling whenever the sample fills, so
/// that a sample of a million ids stays a few thousand, evenly spread by rank.
struct Sample {
    ids: Vec<UserId>,
    stride: u64,
    seen: u64,
}

/// Ids a sample holds at most before it halves.
const SAMPLE_MAX: usize = 64 * RANGES as usize;

impl Default for Sample {
    fn default() -> Self {
        Self {
            ids: Vec::new(),
            stride: 1,
            seen: 0,
        }
    }
}

impl Sample {
    fn add(&mut self, id: UserId) {
        if self.seen.is_multiple_of(self.stride) {
            if self.ids.len() == SAMPLE_MAX {
                // Keep every other one: those at multiples of the doubled stride.
                let kept: Vec<UserId> = self.ids.iter().step_by(2).copied().collect();
                self.ids = kept;
                self.stride *= 2;
            }
            if self.seen.is_multiple_of(self.stride) {
                self.ids.push(id);
            }
        }
        self.seen += 1;
    }

    /// `RANGES - 1` cut points splitting the sampled ids evenly (none for a population
    /// too small to be worth splitting by rank).
    fn cuts(&self) -> Vec<UserId> {
        let n = self.ids.len();
        if n < RANGES as usize * 4 {
            return Vec::new();
        }
        let mut cuts: Vec<UserId> = (1..RANGES as usize)
            .map(|i| self.ids[i * n / RANGES as usize])
            .collect();
        cuts.dedup();
        cuts
    }
}

/// The ranges between cut points: before the first, between each two, after the last.
fn ranges_at(cuts: &[UserId]) -> Vec<(Option<UserId>, Option<UserId>)> {
    let starts = std::iter::once(None).chain(cuts.iter().copied().map(Some));
    let ends = cuts.iter().copied().map(Some).chain(std::iter::once(None));
    starts.zip(ends).collect()
}

/// Keeps the threads at most `ahead` ranges past the one the job is being handed, so that
/// what the job's thread holds read ahead of its turn stays bounded however unevenly the
/// users fall into ranges.
struct Gate {
    ahead: usize,
    /// Ranges handed to the job so far, and whether it stopped.
    state: Mutex<(usize, bool)>,
    moved: Condvar,
}

impl Gate {
    fn new(ahead: usize) -> Self {
        Self {
            ahead: ahead.max(1),
            state: Mutex::new((0, false)),
            moved: Condvar::new(),
        }
    }

    /// Waits until range `r` may be read; `false` once the job stopped.
    fn admit(&self, r: usize) -> bool {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !s.1 && r >= s.0 + self.ahead {
            s = self.moved.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        !s.1
    }

    fn update(&self, f: impl FnOnce(&mut (usize, bool))) {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
        self.moved.notify_all();
    }
}

/// Stops the gate when dropped.
struct Release<'a>(&'a Gate);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.update(|s| s.1 = true);
    }
}

/// The id ranges between the lowest and the highest stored id, cut evenly (ids are
/// time-ordered UUIDs, so a range is a stretch of sign-up or import time).
fn ranges(bounds: Option<(UserId, UserId)>) -> Vec<(Option<UserId>, Option<UserId>)> {
    let Some((lo, hi)) = bounds else {
        return Vec::new();
    };
    let (lo, hi) = (
        u128::from_be_bytes(*lo.as_bytes()),
        u128::from_be_bytes(*hi.as_bytes()),
    );
    let step = hi.saturating_sub(lo) / RANGES;
    if step == 0 {
        return vec![(None, None)];
    }
    let cuts: Vec<UserId> = (1..RANGES)
        .map(|i| UserId::from_bytes((lo + step * i).to_be_bytes()))
        .collect();
    ranges_at(&cuts)
}

/// Reads, opens and decodes range `r` in chunks, handing each to `tx`; `false` once the
/// job stopped reading (or the store failed: the failure is the range's last chunk).
fn read(
    e: &Engine,
    now: Timestamp,
    r: usize,
    (from, to): (Option<UserId>, Option<UserId>),
    tx: &SyncSender<Chunk>,
) -> bool {
    let min_age = e.config.privacy.min_age;
    let mut scan = e.store.scan_users_with_keys(from, to);
    for seq in 0.. {
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut failed = None;
        for item in scan.by_ref().take(CHUNK) {
            let (id, wrapped, record) = match item {
                Ok(raw) => raw,
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            };
            let opened = open(e, id, wrapped.as_deref(), &record).map(|view| Opened {
                consented: view
                    .consents
                    .allows(Purpose::Analytics, min_age, now)
                    .is_ok(),
                // A user at level `off` asked for nothing personal: its taste (learned
                // before) is not read.
                personalised: view.personalization_level != PersonalizationLevel::Off
                    && view
                        .consents
                        .allows(Purpose::Personalisation, min_age, now)
                        .is_ok(),
                view,
            });
            chunk.push((id, opened));
        }
        let (last, sent) = match failed {
            Some(err) => (true, Err(err)),
            None => (chunk.len() < CHUNK, Ok(chunk)),
        };
        if tx.send(((r, seq), last, sent)).is_err() {
            return false;
        }
        if last {
            return true;
        }
    }
    true
}

/// One user's record opened with its data key, read as a report reads it.
fn open(
    e: &Engine,
    id: UserId,
    wrapped: Option<&[u8]>,
    record: &[u8],
) -> Result<ReportView, String> {
    let wrapped = wrapped.ok_or("no data key")?;
    let key = e.keys.unwrap(id, wrapped).map_err(|err| err.to_string())?;
    report_view(record, &key, id).map_err(|err| err.to_string())
}

/// The job's side: chunks put back in order (range by range, each range's in turn),
/// each user handed to `visit`.
fn deliver(
    rx: &Receiver<Chunk>,
    gate: &Gate,
    visit: &mut impl FnMut(&Member<'_>),
) -> Result<ScanCounts, EngineError> {
    let none = ActivityHistory::default();
    let mut counts = ScanCounts::default();
    let mut early = BTreeMap::new();
    let mut turn = (0, 0);
    for (at, last, chunk) in rx {
        early.insert(at, (last, chunk));
        while let Some((last, chunk)) = early.remove(&turn) {
            turn = if last {
                gate.update(|s| s.0 = turn.0 + 1);
                (turn.0 + 1, 0)
            } else {
                (turn.0, turn.1 + 1)
            };
            for (id, opened) in chunk? {
                counts.users += 1;
                let o = match opened {
                    Ok(o) => o,
                    Err(reason) => {
                        tracing::error!(user = %id, %reason, "unreadable record left out of a batch job");
                        counts.unreadable += 1;
                        continue;
                    }
                };
                visit(&Member {
                    id,
                    tier: o.view.tier,
                    created_at: o.view.created_at,
                    consented: o.consented,
                    history: if o.consented { &o.view.history } else { &none },
                    taste: o.view.taste.as_deref().filter(|_| o.personalised),
                    feedback: Some(&o.view.feedback).filter(|_| o.consented),
                    usage: &o.view.usage,
                    refusals: Some(&o.view.refusals).filter(|_| o.consented),
                });
            }
        }
    }
    Ok(counts)
}

/// The stored users whose whole state `keep` takes, over every core (as [`scan`], but
/// each record decoded whole and nothing handed over in order): their ids in id order,
/// how many records were read and how many could not be opened (logged with the id).
/// For the operators' bulk actions, which must see sessions and holds.
pub(crate) fn select(
    e: &Engine,
    keep: impl Fn(UserId, &super::state::UserState) -> bool + Sync,
) -> Result<(u64, Vec<UserId>, u64), EngineError> {
    let ranges = match e.scan_cuts.get() {
        Some(cuts) => ranges_at(&cuts),
        None => ranges(e.store.user_id_bounds()?),
    };
    let threads = threads().min(ranges.len());
    let next = AtomicUsize::new(0);
    let (keep, ranges, next) = (&keep, &ranges, &next);
    let per_thread = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                std::thread::Builder::new()
                    .name("roster-select".to_owned())
                    .spawn_scoped(s, move || {
                        let (mut read, mut found, mut unreadable) = (0u64, Vec::new(), 0u64);
                        while let Some(&(from, to)) = ranges.get(next.fetch_add(1, Ordering::Relaxed)) {
                            for item in e.store.scan_users_with_keys(from, to) {
                                let (id, wrapped, record) = item?;
                                read += 1;
                                let opened = wrapped
                                    .ok_or_else(|| "no data key".to_owned())
                                    .and_then(|w| e.keys.unwrap(id, &w).map_err(|err| err.to_string()))
                                    .and_then(|key| {
                                        super::state::decode(&record, &key, id)
                                            .map_err(|err| err.to_string())
                                    });
                                match opened {
                                    Ok(state) if keep(id, &state) => found.push(id),
                                    Ok(_) => {}
                                    Err(reason) => {
                                        tracing::warn!(user = %id, %reason, "a record a bulk operation could not read");
                                        unreadable += 1;
                                    }
                                }
                            }
                        }
                        Ok::<_, StoreError>((read, found, unreadable))
                    })
            })
            .collect::<Result<_, _>>()
            .map_err(|err| EngineError::Internal(format!("cannot start a scan: {err}")))?;
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .map_err(|_| EngineError::Internal("a scan thread panicked".into()))
            })
            .collect::<Result<Vec<_>, EngineError>>()
    })?;
    let (mut read, mut found, mut unreadable) = (0, Vec::new(), 0);
    for part in per_thread {
        let (r, f, u) = part?;
        read += r;
        found.extend(f);
        unreadable += u;
    }
    found.sort_unstable();
    Ok((read, found, unreadable))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> UserId {
        UserId::from_bytes(n.to_be_bytes())
    }

    #[test]
    fn the_gate_lets_threads_read_only_so_far_ahead_and_lets_them_go_when_the_job_stops() {
        let gate = Gate::new(2);
        assert!(gate.admit(0) && gate.admit(1), "within reach at once");
        std::thread::scope(|s| {
            let third = s.spawn(|| gate.admit(2));
            let far = s.spawn(|| gate.admit(9));
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(
                !third.is_finished(),
                "range 2 waits for range 0 to be handed over"
            );
            gate.update(|st| st.0 = 1);
            assert!(third.join().unwrap());
            assert!(!far.is_finished());
            drop(Release(&gate));
            assert!(
                !far.join().unwrap(),
                "a stopped job lets waiting threads go, unread"
            );
        });
    }

    #[test]
    fn a_bursty_population_is_cut_into_even_ranges_by_what_the_last_scan_saw() {
        // 100,000 ids: 90% in a burst one-thousandth of the id span wide.
        let ids: Vec<UserId> = (0..100_000u128)
            .map(|i| match i % 10 {
                0 => id(i * 1_000_000),
                _ => id(50_000_000_000 + i),
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let per_range = |r: &[(Option<UserId>, Option<UserId>)]| -> Vec<usize> {
            r.iter()
                .map(|(from, to)| {
                    ids.iter()
                        .filter(|i| from.is_none_or(|f| **i >= f) && to.is_none_or(|t| **i < t))
                        .count()
                })
                .collect()
        };
        let even = per_range(&ranges(Some((ids[0], ids[ids.len() - 1]))));
        assert!(
            *even.iter().max().unwrap() > 80_000,
            "even cuts: one range holds the burst"
        );
        let mut sample = Sample::default();
        ids.iter().for_each(|i| sample.add(*i));
        assert!(sample.ids.len() <= SAMPLE_MAX);
        let learned = per_range(&ranges_at(&sample.cuts()));
        assert_eq!(
            learned.iter().sum::<usize>(),
            ids.len(),
            "every id in one range"
        );
        assert_eq!(learned.len(), RANGES as usize);
        let fair = ids.len() / RANGES as usize;
        assert!(
            learned
                .iter()
                .all(|n| *n <= fair * 11 / 10 && *n >= fair * 9 / 10),
            "{learned:?}"
        );
        let mut few = Sample::default();
        (0..100).for_each(|i| few.add(id(i)));
        assert!(
            few.cuts().is_empty(),
            "a small population keeps the even cuts"
        );
    }

    #[test]
    fn the_ranges_cover_every_id_once() {
        assert!(ranges(None).is_empty());
        assert_eq!(ranges(Some((id(5), id(5)))), vec![(None, None)]);
        let r = ranges(Some((id(1000), id(1000 + 64 * 10))));
        assert_eq!(r.len(), 64);
        assert_eq!(r[0], (None, Some(id(1010))));
        assert_eq!(r[63], (Some(id(1000 + 63 * 10)), None));
        for w in r.windows(2) {
            assert_eq!(w[0].1, w[1].0, "each range starts where the last ended");
        }
    }
}
