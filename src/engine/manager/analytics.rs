//! The analytics engine (issue 17): activity in from the user's clients, and the reports
//! over the stored population. Batch work reads the store off the actor threads, never
//! by activating every user.

use super::UserManager;
use super::principal::{Principal, UserSession};
use std::sync::Arc;

use futures_util::StreamExt;

use crate::analytics::Member;
use crate::analytics::churn::{Band, ChurnModel, ChurnPrediction, TrainProgress, Trainer};
use crate::analytics::cohorts::{
    CohortBuilder, CohortQuery, CohortTable, MAX_MONTHS, MAX_PERIODS, Unit as CohortUnit,
};
use crate::analytics::compliance::{ComplianceReport, ComplianceTally};
use crate::analytics::opportunities::{Analyzer, TierAnalysis};
use crate::analytics::overview::{Overview, OverviewBuilder};
use crate::analytics::segments::{SegmentModel, Segmenter};
use crate::analytics::tiers::{TierBuilder, TierChange, TierReport};
use crate::analytics::usage::{MAX_DAYS, UsageBuilder, UsageReport};
use crate::domain::activity::ActivityEvent;
use crate::domain::audit::AuditAction;
use crate::domain::history::day_of;
use crate::domain::ids::UserId;
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;
use crate::domain::validation::ValidationError;
use crate::engine::durable::settled;
use crate::engine::live::{LiveFigures, PoolReading};
use crate::engine::models;
use crate::engine::outcomes::{
    ActivityOutcome, AtRisk, BandCount, ChurnReport, ImportOutcome, ModelVersion, Trained,
};
use crate::engine::population;
use crate::engine::user::{ImportHistory, RecordActivity};
use crate::engine::{EngineError, background};
use crate::store::{Batch, ModelKind};

/// See [`UserManager::analytics`].
#[derive(Clone, Copy)]
pub struct Analytics<'a> {
    pub(super) m: &'a UserManager,
}

impl Analytics<'_> {
    /// Counts activity events the user `id` reports over HTTP (a server-side client of
    /// its own): the same rules as the socket's frame — all or none, only with the
    /// user's consent to analytics — and the request counts once against the tier's
    /// rate (its authorization counted it).
    pub async fn record_activity(
        self,
        by: &Principal,
        id: UserId,
        events: Vec<ActivityEvent>,
    ) -> Result<ActivityOutcome, EngineError> {
        let session = by.own(id)?;
        let me = UserSession { user: id, session };
        self.record(me, events, false).await
    }

    /// Sends the events to the user's actor; `take_request` when the transport has not
    /// counted the request against the rate yet.
    pub(super) async fn record(
        self,
        me: UserSession,
        events: Vec<ActivityEvent>,
        take_request: bool,
    ) -> Result<ActivityOutcome, EngineError> {
        let msg = RecordActivity {
            session: me.session,
            events,
            take_request,
        };
        match self.m.engine.call(me.user, msg).await {
            Err(EngineError::NotFound) => Ok(ActivityOutcome::SessionInvalid),
            other => other,
        }
    }

    /// Whether `by` may import history, asked before a large body is read.
    pub fn may_import(self, by: &Principal) -> Result<(), EngineError> {
        by.privileged()
    }

    /// Imports activity history (operators): for each `(user, events)` line, the events
    /// not imported before are counted into the user's history, durably, with an audit
    /// record; each line's outcome is its own (a bad line refuses only itself). Lines run
    /// a few at a time; two lines of one user run one after the other.
    pub async fn import_history(
        self,
        by: &Principal,
        lines: Vec<(UserId, Vec<ActivityEvent>)>,
    ) -> Result<Vec<Result<ImportOutcome, EngineError>>, EngineError> {
        by.privileged()?;
        let actor = by.audit_actor();
        let engine = &self.m.engine;
        Ok(futures_util::stream::iter(lines)
            .map(|(id, events)| {
                let msg = ImportHistory {
                    events,
                    by: actor.clone(),
                    synced: None,
                    aliases: Vec::new(),
                };
                engine.call_durable(id, msg)
            })
            .buffered(IMPORT_CONCURRENCY)
            .collect()
            .await)
    }

    /// The live figures (operators): users seen in the last five minutes by tier,
    /// events and logins per second, sign-ups today, live actors, the hashing pool.
    pub fn live(self, by: &Principal) -> Result<LiveFigures, EngineError> {
        by.privileged()?;
        let e = &self.m.engine;
        let (jobs, waited) = e.hasher.wait_stats();
        let (workers, busy) = e.hasher.busy_stats();
        let pool = PoolReading {
            workers,
            queued: e.hasher.queue_depth(),
            jobs,
            waited_micros: u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
            busy_micros: u64::try_from(busy.as_micros()).unwrap_or(u64::MAX),
        };
        Ok(e.live.figures(self.m.now(), e.directory.live_count(), pool))
    }

    /// Second factors by tier and consents by purpose over every stored user
    /// (operators): one read of the stored records over every core, off the actor
    /// threads, after the live actors' state is written.
    pub async fn compliance(self, by: &Principal) -> Result<ComplianceReport, EngineError> {
        by.privileged()?;
        self.m.snapshot_live().await?;
        let e = &self.m.engine;
        let tally = Arc::new(ComplianceTally::new(self.m.now(), e.config.privacy.min_age));
        let counting = Arc::clone(&tally);
        let (_, _, unreadable) = super::revocation::candidates(e, move |_, s| {
            let p = &s.profile;
            counting.add(p.tier, p.security_settings.require_mfa, &s.mfa, &s.consents);
            false
        })
        .await?;
        let tally = Arc::into_inner(tally)
            .ok_or_else(|| EngineError::Internal("the compliance scan is still counting".into()))?;
        Ok(tally.finish(unreadable))
    }

    /// The population at a glance: users by tier, DAU/WAU/MAU, events (operators).
    pub async fn overview(self, by: &Principal) -> Result<Overview, EngineError> {
        by.privileged()?;
        let now = self.m.now();
        let b = self
            .batch(OverviewBuilder::new(now), now, |b, m| b.add(m))
            .await?;
        Ok(b.finish())
    }

    /// Users by tier at the end of each of the last `weeks` weeks and the migrations
    /// between tiers week by week (operators), from the stored users and the audit log's
    /// tier changes.
    pub async fn tiers(self, by: &Principal, weeks: u32) -> Result<TierReport, EngineError> {
        by.privileged()?;
        if !(1..=MAX_PERIODS).contains(&weeks) {
            return Err(
                ValidationError::new("weeks", format!("must be 1 to {MAX_PERIODS}")).into(),
            );
        }
        let now = self.m.now();
        let engine = self.m.engine.clone();
        background::run("roster-report", move || {
            let store = engine.store.as_ref();
            let mut changes = Vec::new();
            crate::store::audit::scan(store, |e| {
                if let AuditAction::TierChanged { user, to, from } = e.body.action {
                    changes.push(TierChange {
                        at: e.body.at,
                        user,
                        from,
                        to,
                    });
                }
            })?;
            let mut b = TierBuilder::new(now, weeks, changes);
            population::scan(&engine, now, |m| b.add(m.id, m.tier, m.created_at))?;
            Ok(b.finish())
        })
        .await?
    }

    /// Tier analysis (operators): the users who are candidates for a move between tiers
    /// (upgrade, downgrade, Enterprise fit, retention offer) with their reasons, at most
    /// `limit` of each kind, strongest first ([`crate::analytics::opportunities`]).
    pub async fn tier_analysis(
        self,
        by: &Principal,
        limit: usize,
    ) -> Result<TierAnalysis, EngineError> {
        by.privileged()?;
        if !(1..=MAX_CANDIDATES).contains(&limit) {
            return Err(
                ValidationError::new("limit", format!("must be 1 to {MAX_CANDIDATES}")).into(),
            );
        }
        let now = self.m.now();
        let e = &self.m.engine;
        let policies = UserTier::ALL.map(|t| e.config.tier(t).policy.clone());
        let analyzer = Analyzer::new(now, policies, e.models.churn(), limit);
        let a = self.batch(analyzer, now, |a, m| a.add(m)).await?;
        Ok(a.finish())
    }

    /// The usage report of days `from..=to` (operators): sign-ups, active users,
    /// security events and risk decisions day by day, feature usage over the period,
    /// the engagement distribution now ([`crate::analytics::usage`]). Days count from
    /// 1970-01-01 (UTC); `to` is today unless given, `from` the 30th day before `to`
    /// unless given. The period ends today at the latest and covers at most
    /// [`MAX_DAYS`] days.
    pub async fn usage(
        self,
        by: &Principal,
        from: Option<u32>,
        to: Option<u32>,
    ) -> Result<UsageReport, EngineError> {
        by.privileged()?;
        let now = self.m.now();
        let today = day_of(now);
        let to = to.unwrap_or(today);
        let from = from.unwrap_or(to.saturating_sub(29));
        if to > today {
            return Err(ValidationError::new("to", "must not be after today").into());
        }
        if from > to {
            return Err(ValidationError::new("from", "must not be after `to`").into());
        }
        if to - from + 1 > MAX_DAYS {
            return Err(ValidationError::new(
                "from",
                format!("a period covers at most {MAX_DAYS} days"),
            )
            .into());
        }
        let mut b = self
            .batch(UsageBuilder::new(now, from, to), now, |b, m| b.add(m))
            .await?;
        let engine = self.m.engine.clone();
        background::run("roster-report", move || {
            crate::engine::security_scan::scan(&engine, |_, ev| {
                b.add_security(ev);
                true
            })?;
            Ok(b.finish())
        })
        .await?
    }

    /// The retention cohort table (operators); see `docs/analytics.md` for how to read it.
    pub async fn cohorts(
        self,
        by: &Principal,
        query: CohortQuery,
    ) -> Result<CohortTable, EngineError> {
        by.privileged()?;
        // Activity is kept two years: month tables stop there.
        let most = match query.unit {
            CohortUnit::Week => MAX_PERIODS,
            CohortUnit::Month => MAX_MONTHS,
        };
        if !(1..=most).contains(&query.periods) {
            return Err(ValidationError::new(
                "periods",
                format!("must be 1 to {most} for this unit"),
            )
            .into());
        }
        let now = self.m.now();
        let b = self
            .batch(CohortBuilder::new(query, now), now, |b, m| b.add(m))
            .await?;
        Ok(b.finish())
    }

    /// Runs a batch job over the stored population: live actors write their unsaved
    /// activity first (so the job sees what clients sent until now), then the store is
    /// scanned at batch priority ([`background`]), each member handed to `visit` with
    /// `acc`.
    pub(super) async fn batch<A: Send + 'static>(
        self,
        mut acc: A,
        now: Timestamp,
        mut visit: impl FnMut(&mut A, &Member<'_>) + Send + 'static,
    ) -> Result<A, EngineError> {
        self.m.snapshot_live().await?;
        let engine = self.m.engine.clone();
        background::run("roster-report", move || {
            population::scan(&engine, now, |m| visit(&mut acc, m)).map(|_| acc)
        })
        .await?
    }

    /// Trains the analytics models on the stored population (operators; one training at
    /// a time), from one read of the store: the churn model (fitted, evaluated on the
    /// held-out fifth, put in force if usable) and the behaviour segments. Each is stored
    /// as its next version (versions beyond `analytics.keep_models` are dropped).
    /// `progress` hears each phase. Too little history for a churn model refuses the
    /// whole training (nothing is stored).
    pub async fn train(
        self,
        by: &Principal,
        progress: impl FnMut(TrainProgress) + Send + 'static,
    ) -> Result<Trained, EngineError> {
        by.privileged()?;
        let e = &self.m.engine;
        let _running = e.models.start_training()?;
        let now = self.m.now();
        let cfg = e.config.analytics;
        let start = (
            Trainer::new(now, cfg.churn_horizon_days),
            Segmenter::new(now),
            progress,
        );
        let (trainer, segmenter, mut progress) = self
            .batch(start, now, |(t, s, p), m| {
                t.add(m);
                s.add(m);
                if t.users().is_multiple_of(PROGRESS_EVERY) {
                    p(TrainProgress::Reading { users: t.users() });
                }
            })
            .await?;
        let engine = self.m.engine.clone();
        let (trained, batch) = background::run("roster-training", move || {
            let store = engine.store.as_ref();
            let (churn_version, churn_versions) = models::versions(store, ModelKind::Churn)?;
            let churn = trainer
                .train(churn_version, now, &mut progress)
                .map_err(|err| EngineError::Conflict(err.to_string()))?;
            let mut batch = Batch::default();
            models::store_into(
                &mut batch,
                ModelKind::Churn,
                &churn,
                (churn_version, &churn_versions),
                cfg.keep_models,
                engine.models.churn().map(|m| m.version),
            )?;
            let (seg_version, seg_versions) = models::versions(store, ModelKind::Segments)?;
            let segments = segmenter.train(cfg.segments, seg_version);
            if let Some(s) = &segments {
                models::store_into(
                    &mut batch,
                    ModelKind::Segments,
                    s,
                    (seg_version, &seg_versions),
                    cfg.keep_models,
                    None,
                )?;
            }
            Ok::<_, EngineError>((Trained { churn, segments }, batch))
        })
        .await??;
        let ticket = e.commit.submit(batch, Vec::new(), None);
        settled(e.commit.wait(&ticket).await)?;
        if trained.churn.usable {
            e.models.install(trained.churn.clone());
        }
        if let Some(s) = &trained.segments {
            e.models.install_segments(s.clone());
        }
        tracing::info!(
            version = trained.churn.version,
            auc = trained.churn.evaluation.auc,
            rows = trained.churn.training_rows,
            usable = trained.churn.usable,
            segments = trained.segments.as_ref().map(|s| s.segments.len()),
            "analytics models trained"
        );
        Ok(trained)
    }

    /// The segmentation in force (operators): its segments with sizes, centroids and
    /// names; `None` before one was trained.
    pub fn segments(self, by: &Principal) -> Result<Option<SegmentModel>, EngineError> {
        by.privileged()?;
        Ok(self.m.engine.models.segments().map(|s| (*s).clone()))
    }

    /// The churn model card and the users most likely to churn, highest first
    /// (operators): `offset` and `limit` page through them (at most [`MAX_PAGE`]).
    pub async fn churn_report(
        self,
        by: &Principal,
        offset: usize,
        limit: usize,
    ) -> Result<ChurnReport, EngineError> {
        by.privileged()?;
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ValidationError::new("limit", format!("must be 1 to {MAX_PAGE}")).into());
        }
        if offset.saturating_add(limit) > MAX_RANKED {
            return Err(ValidationError::new(
                "offset",
                format!("offset + limit must be at most {MAX_RANKED}"),
            )
            .into());
        }
        let e = &self.m.engine;
        let store = e.store.clone();
        let versions = tokio::task::spawn_blocking(move || {
            models::stored::<ChurnModel>(store.as_ref(), ModelKind::Churn)
        })
        .await
        .map_err(|err| EngineError::Internal(err.to_string()))??
        .iter()
        .map(ModelVersion::of)
        .collect();
        let Some(model) = e.models.churn() else {
            return Ok(ChurnReport {
                model: None,
                versions,
                scored: 0,
                bands: Vec::new(),
                at_risk: Vec::new(),
            });
        };
        let now = self.m.now();
        let keep = offset.saturating_add(limit);
        let scored = self
            .batch(
                (TopRisk::new(keep), Arc::clone(&model)),
                now,
                move |(top, model), m| {
                    if m.consented {
                        top.offer(m.id, m.tier, model.predict(m, now));
                    }
                },
            )
            .await?
            .0;
        Ok(ChurnReport {
            model: Some((*model).clone()),
            versions,
            scored: scored.seen,
            bands: scored
                .bands
                .iter()
                .map(|(&(tier, band), &users)| BandCount { tier, band, users })
                .collect(),
            at_risk: scored.into_sorted().into_iter().skip(offset).collect(),
        })
    }
}

/// Import lines in flight at once.
const IMPORT_CONCURRENCY: usize = 32;

/// Users read between two progress reports of a training.
const PROGRESS_EVERY: u64 = 50_000;

/// Most candidates of a kind a tier analysis lists.
pub const MAX_CANDIDATES: usize = 100_000;

/// Most at-risk users one page lists.
pub const MAX_PAGE: usize = 500;

/// How deep the at-risk ranking may be paged (what a report holds in memory).
pub const MAX_RANKED: usize = 10_000;

/// The highest predictions seen, at most `keep` of them.
struct TopRisk {
    keep: usize,
    seen: u64,
    bands: std::collections::BTreeMap<(UserTier, Band), u64>,
    best: Vec<AtRisk>,
}

impl TopRisk {
    fn new(keep: usize) -> Self {
        Self {
            keep,
            seen: 0,
            bands: Default::default(),
            best: Vec::new(),
        }
    }

    fn offer(&mut self, user_id: UserId, tier: UserTier, prediction: ChurnPrediction) {
        self.seen += 1;
        *self.bands.entry((tier, prediction.band)).or_default() += 1;
        self.best.push(AtRisk {
            user_id,
            tier,
            prediction,
        });
        // Amortised: sort and cut only when twice as many are held.
        if self.best.len() >= self.keep.max(1).saturating_mul(2) {
            self.cut();
        }
    }

    fn cut(&mut self) {
        self.best.sort_by(|a, b| {
            b.prediction
                .probability
                .total_cmp(&a.prediction.probability)
                .then(a.user_id.as_bytes().cmp(b.user_id.as_bytes()))
        });
        self.best.truncate(self.keep);
    }

    fn into_sorted(mut self) -> Vec<AtRisk> {
        self.cut();
        self.best
    }
}
