//! Operating the engine: shard figures and metrics, the audit log and its check, the
//! master key and its rotation, and the retention purge. For the operator and the
//! system only.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::UserManager;
use super::principal::Principal;
use super::{AuditVerdict, PurgeReport, ShardStats};
use crate::domain::ids::UserId;
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;
use crate::domain::validation::ValidationError;
use crate::engine::keyring::{KeyHistory, RotationAudit, RotationProgress, RotationReport};
use crate::engine::user::PurgeEvents;
use crate::engine::{Engine, EngineError};
use crate::metrics::{ShardLabels, TierLabels};
use crate::store::audit::{self, AuditEntry};
use crate::store::{Batch, Op, codec};

/// Longest page of the audit log, and the page size when none is asked for.
pub const MAX_AUDIT_PAGE: usize = 1000;
const DEFAULT_AUDIT_PAGE: usize = 100;
/// Archived events removed per batch by a purge.
const PURGE_BATCH: usize = 512;

/// See [`UserManager::ops`].
#[derive(Clone, Copy)]
pub struct Ops<'a> {
    pub(super) m: &'a UserManager,
}

impl Ops<'_> {
    /// Per tier and shard: resident actors, activations, passivations, restarts, messages
    /// and their latency over the last sweep window.
    pub fn shard_stats(self, by: &Principal) -> Result<Vec<ShardStats>, EngineError> {
        by.privileged()?;
        Ok(shard_stats(&self.m.engine))
    }

    /// Every metric in the Prometheus text format, with the gauges read now.
    pub fn render_metrics(self, by: &Principal) -> Result<String, EngineError> {
        by.privileged()?;
        let e = &self.m.engine;
        let m = &e.metrics;
        let mut live = [0i64; 4];
        for s in shard_stats(e) {
            let labels = ShardLabels {
                tier: s.tier.into(),
                shard: u32::try_from(s.index).unwrap_or(u32::MAX),
            };
            m.shard_resident
                .get_or_create(&labels)
                .set(i64::try_from(s.resident).unwrap_or(i64::MAX));
            m.shard_activations
                .get_or_create(&labels)
                .set(s.activations);
            m.shard_passivations
                .get_or_create(&labels)
                .set(s.passivations);
            m.shard_restarts.get_or_create(&labels).set(s.restarts);
            m.shard_in_flight.get_or_create(&labels).set(s.in_flight);
            live[s.tier.index()] += i64::try_from(s.resident).unwrap_or(i64::MAX);
        }
        for t in UserTier::ALL {
            m.live_users
                .get_or_create(&TierLabels { tier: t.into() })
                .set(live[t.index()]);
        }
        m.hash_queue_depth
            .set(i64::try_from(e.hasher.queue_depth()).unwrap_or(i64::MAX));
        let (flushes, commits) = self.m.commit_stats();
        m.store_flushes.set(flushes);
        m.store_commits.set(commits);
        let micros = e.commit.stats().flush_micros.load(Ordering::Relaxed);
        m.store_flush_seconds.set(micros as f64 / 1e6);
        if let Some(bytes) = e.store.size_on_disk() {
            m.store_disk_bytes.set(bytes);
        }
        let (jobs, waited) = e.hasher.wait_stats();
        m.hash_jobs.set(jobs);
        m.hash_wait_seconds.set(waited.as_secs_f64());
        let (workers, busy) = e.hasher.busy_stats();
        m.hash_workers
            .set(i64::try_from(workers).unwrap_or(i64::MAX));
        m.hash_busy_seconds.set(busy.as_secs_f64());
        Ok(m.render())
    }

    /// Audit records numbered above `after` (default 0), oldest first, at most `limit`
    /// (1 to 1000, default 100).
    pub fn audit_entries(
        self,
        by: &Principal,
        after: Option<u64>,
        limit: Option<usize>,
    ) -> Result<Vec<AuditEntry>, EngineError> {
        by.privileged()?;
        let limit = limit.unwrap_or(DEFAULT_AUDIT_PAGE);
        if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
            return Err(ValidationError::new(
                "limit",
                format!("must be between 1 and {MAX_AUDIT_PAGE}"),
            )
            .into());
        }
        let store = self.m.engine.store.as_ref();
        Ok(audit::entries(store, after.unwrap_or(0), limit)?)
    }

    /// Every user's security events as they happen, for the operators' live feed (lossy:
    /// a reader that falls behind is told how many it missed).
    pub fn security_feed(
        self,
        by: &Principal,
    ) -> Result<tokio::sync::broadcast::Receiver<bytes::Bytes>, EngineError> {
        by.privileged()?;
        Ok(self.m.engine.realtime.security_feed())
    }

    /// Checks the whole audit chain.
    pub fn verify_audit(self, by: &Principal) -> Result<AuditVerdict, EngineError> {
        by.privileged()?;
        Ok(verdict(audit::verify(self.m.engine.store.as_ref())))
    }

    /// The fingerprint of the master key in use (never the key).
    pub fn master_key_fingerprint(self, by: &Principal) -> Result<String, EngineError> {
        by.privileged()?;
        Ok(self.m.engine.keys.fingerprint().to_string())
    }

    /// Since when the master key in use has been the store's key, and which it replaced
    /// (operators).
    pub fn master_key_history(self, by: &Principal) -> Result<KeyHistory, EngineError> {
        by.privileged()?;
        let e = &self.m.engine;
        e.keys.history(e.store.as_ref())
    }

    /// Rotates the master key while the engine serves: a new key is generated, every
    /// data key is rewrapped with it (reporting progress), the keyring switches to it
    /// together with the rotation's audit record, and the old key file is retired. See
    /// [`crate::engine::keyring`].
    pub async fn rotate_master_key(
        self,
        by: &Principal,
        progress: impl FnMut(RotationProgress) + Send + 'static,
    ) -> Result<RotationReport, EngineError> {
        by.privileged()?;
        let actor = by.audit_actor();
        let engine = Arc::clone(&self.m.engine);
        let at = self.m.now();
        let report = tokio::task::spawn_blocking(move || {
            let mut progress = progress;
            let audit = actor.map(|actor| RotationAudit {
                commit: &engine.commit,
                at,
                actor,
            });
            engine
                .keys
                .rotate(engine.store.as_ref(), &mut progress, audit)
        })
        .await
        .map_err(|e| EngineError::Internal(format!("rotation task: {e}")))??;
        self.m.engine.commit.commit().await?;
        tracing::warn!(
            from = %report.from,
            to = %report.to,
            rewrapped = report.rewrapped,
            retired = %report.retired_key_file,
            "master key rotated. Back up the new key file; keep the retired one only as \
             long as backups taken before now must stay readable"
        );
        Ok(report)
    }

    /// Retention: removes every security event older than
    /// `privacy.security_event_retention_days`, from the users' records (through their
    /// actors, so it runs while the engine serves) and from the archive; the records'
    /// ended sessions and expired link challenges go in the same writes.
    pub async fn purge_security_events(self, by: &Principal) -> Result<PurgeReport, EngineError> {
        by.privileged()?;
        let e = &self.m.engine;
        let retention = i64::try_from(e.config.privacy.security_event_retention.as_millis())
            .unwrap_or(i64::MAX);
        let now = self.m.now();
        let cutoff = Timestamp::from_millis(now.as_millis().saturating_sub(retention));
        let engine = Arc::clone(e);
        // The stored records are read off the actor threads; only users that hold
        // something to remove are activated.
        let (users, candidates) = blocking(move || stale_holders(&engine, now, cutoff)).await??;
        let mut report = PurgeReport {
            cutoff,
            users,
            rewritten: 0,
            in_state: 0,
            archived: 0,
            sessions: 0,
            challenges: 0,
        };
        for id in candidates {
            match e.call_durable(id, PurgeEvents { before: cutoff }).await {
                Ok(gone) if gone.any() => {
                    report.rewritten += 1;
                    report.in_state += gone.events;
                    report.sessions += gone.sessions;
                    report.challenges += gone.challenges;
                }
                Ok(_) | Err(EngineError::NotFound) => {}
                Err(err) => return Err(err),
            }
        }
        e.commit.commit().await?;
        let engine = Arc::clone(e);
        let old = blocking(move || archived_before(&engine, cutoff)).await??;
        report.archived = old.len();
        removals(e, &old).await?;
        Ok(report)
    }

    /// Retention of erasures: drops the tombstones of users erased longer than
    /// `privacy.tombstone_retention_days` ago; returns how many went. Backups are kept
    /// for less than that, so no restore needs them any more.
    pub async fn purge_tombstones(self, by: &Principal) -> Result<usize, EngineError> {
        by.privileged()?;
        let e = &self.m.engine;
        let retention =
            i64::try_from(e.config.privacy.tombstone_retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = Timestamp::from_millis(self.m.now().as_millis().saturating_sub(retention));
        let engine = Arc::clone(e);
        let old = blocking(move || -> Result<Vec<Op>, EngineError> {
            let mut old = Vec::new();
            for item in engine.store.scan_tombstones() {
                let (id, at) = item?;
                if at < cutoff {
                    old.push(Op::DropTombstone { id });
                }
            }
            Ok(old)
        })
        .await??;
        removals(e, &old).await?;
        Ok(old.len())
    }
}

/// Commits `ops` (removals, each batch independent of the others) [`PURGE_BATCH`] at a
/// time; returns once all are durable.
async fn removals(e: &Engine, ops: &[Op]) -> Result<(), EngineError> {
    let mut tickets = Vec::new();
    for chunk in ops.chunks(PURGE_BATCH) {
        let mut batch = Batch::default();
        chunk.iter().for_each(|op| batch.push(op.clone()));
        tickets.push(e.commit.submit(batch, Vec::new(), None));
    }
    for t in &tickets {
        crate::engine::durable::settled(e.commit.wait(t).await)?;
    }
    Ok(())
}

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, EngineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::Internal(format!("blocking task: {e}")))
}

fn verdict(r: Result<u64, audit::ChainBroken>) -> AuditVerdict {
    match r {
        Ok(records) => AuditVerdict::Intact { records },
        Err(b) => AuditVerdict::Broken {
            seq: b.seq,
            reason: b.reason,
        },
    }
}

impl UserManager {
    /// Checks the audit chain of a stopped server's store, without starting the engine:
    /// the store alone, no master key (the log is not encrypted), so a copy of a data
    /// directory can be checked anywhere.
    pub fn verify_audit_offline(
        config: &crate::config::Config,
    ) -> Result<AuditVerdict, EngineError> {
        let store = crate::store::open(&config.store)?;
        Ok(verdict(audit::verify(store.as_ref())))
    }
}

pub(super) fn shard_stats(e: &Engine) -> Vec<ShardStats> {
    let mut out = Vec::new();
    for (t, list) in e.directory.shards().iter().enumerate() {
        for (i, s) in list.iter().enumerate() {
            let c = &s.counters;
            let w = c.last_window();
            out.push(ShardStats {
                tier: UserTier::ALL[t],
                index: i,
                resident: c.resident.load(Ordering::Relaxed),
                activations: c.activations.load(Ordering::Relaxed),
                passivations: c.passivations.load(Ordering::Relaxed),
                restarts: c.restarts.load(Ordering::Relaxed),
                in_flight: c.in_flight.load(Ordering::Relaxed),
                messages: c.messages.load(Ordering::Relaxed),
                message_rate_per_sec: w.message_rate_per_sec,
                latency_p50_us: w.latency_p50_us,
                latency_p99_us: w.latency_p99_us,
                latency_max_us: w.latency_max_us,
            });
        }
    }
    out
}

/// Hands every stored user's whole state to `visit` (off the actor threads: a batch
/// job's scan); returns how many were read.
pub(super) fn each_stored_state(
    e: &Engine,
    mut visit: impl FnMut(UserId, crate::engine::state::UserState),
) -> Result<usize, EngineError> {
    let store = e.store.as_ref();
    let mut users = 0;
    for item in store.scan_users() {
        let (id, record) = item?;
        users += 1;
        let corrupt = |reason: String| EngineError::Corrupt { user: id, reason };
        let key = e
            .keys
            .data_key(store, id)?
            .ok_or_else(|| corrupt("no data key".into()))?;
        let s = crate::engine::state::decode(&record, &key, id)
            .map_err(|err| corrupt(err.to_string()))?;
        visit(id, s);
    }
    Ok(users)
}

/// Reads every stored record; returns how many, and the users whose record holds an
/// event older than `cutoff` or something else that ran out at `now`.
fn stale_holders(
    e: &Engine,
    now: Timestamp,
    cutoff: Timestamp,
) -> Result<(usize, Vec<UserId>), EngineError> {
    let mut holders = Vec::new();
    let users = each_stored_state(e, |id, mut s| {
        if s.drop_expired(now, cutoff).any() {
            holders.push(id);
        }
    })?;
    Ok((users, holders))
}

/// The removals of the archived events older than `cutoff`.
fn archived_before(e: &Engine, cutoff: Timestamp) -> Result<Vec<Op>, EngineError> {
    let store = e.store.as_ref();
    let mut old = Vec::new();
    let mut user_key = None;
    for item in store.scan_security_events() {
        let (user, seq, blob) = item?;
        if user_key.as_ref().is_none_or(|(u, _)| *u != user) {
            user_key = Some((user, e.keys.data_key(store, user)?));
        }
        let key = user_key.as_ref().and_then(|(_, k)| k.as_ref());
        let at = key
            .and_then(|k| {
                codec::open_blob(k, &crate::engine::state::event_aad(user, seq), &blob).ok()
            })
            .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok())
            .and_then(|v| serde_json::from_value::<Timestamp>(v["at"].clone()).ok());
        // An archived event that cannot be read (its user erased, or damaged) has no
        // date to keep it by.
        if at.is_none_or(|at| at < cutoff) {
            old.push(Op::DropArchivedEvent { user, seq });
        }
    }
    Ok(old)
}
