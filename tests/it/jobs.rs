//! The scheduler (issue 20) on a manual clock: cron times, no overlap, catch-up after
//! downtime, history, failures retried, interrupted runs; and the operators' endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use roster::config::{DEFAULT_TOML, parse_toml};
use roster::domain::job::{JobKind, JobReport, Outcome, Trigger};
use roster::domain::time::{ManualClock, Timestamp};
use roster::engine::{EngineError, JobRun, Principal, Setup};
use roster::jobs::{Job, Scheduler};
use roster::{Config, UserManager};

use crate::support::{ADMIN_KEY, TestServer, open_with_clock};

/// 2027-01-15T08:00:00Z, where the manual clock starts.
const START: i64 = 1_800_000_000_000;
const MINUTE: i64 = 60_000;

/// The analytics job every ten minutes; the others off.
const EVERY_TEN: &str = r#"
[automation]
enabled = true
catch_up = "6h"
keep_runs = 5
[automation.jobs.analytics]
schedule = "*/10 * * * *"
[automation.jobs.recommendations]
enabled = false
[automation.jobs.cleanup]
enabled = false
[automation.jobs.provisioning]
enabled = false
[automation.jobs.tier_analysis]
enabled = false
[automation.jobs.backup]
enabled = false
[automation.jobs.integrations]
enabled = false
"#;

/// A job that counts its runs, fails when told, and can be held until released.
struct Planted {
    runs: AtomicUsize,
    fail_next: std::sync::atomic::AtomicBool,
    hold: tokio::sync::Semaphore,
    held: std::sync::atomic::AtomicBool,
}

impl Default for Planted {
    fn default() -> Self {
        Self {
            runs: AtomicUsize::new(0),
            fail_next: Default::default(),
            hold: tokio::sync::Semaphore::new(0),
            held: Default::default(),
        }
    }
}

impl Job for Planted {
    fn run<'a>(
        &'a self,
        _m: &'a UserManager,
        by: &'a Principal,
    ) -> BoxFuture<'a, Result<JobReport, String>> {
        Box::pin(async move {
            assert_eq!(*by, Principal::System("analytics"), "a job acts as itself");
            let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            if self.held.load(Ordering::SeqCst) {
                let _ = self.hold.acquire().await;
            }
            if self.fail_next.swap(false, Ordering::SeqCst) {
                return Err("the disk is on fire".into());
            }
            Ok(JobReport::new(format!("run {n}")).count("n", n as u64))
        })
    }
}

fn at(minutes: i64) -> Timestamp {
    Timestamp::from_millis(START + minutes * MINUTE)
}

fn history(m: &UserManager) -> Vec<JobRun> {
    m.jobs()
        .runs(&Principal::Operator, "analytics", 100)
        .unwrap()
}

#[tokio::test]
async fn jobs_run_at_their_cron_times_never_overlap_and_retry_after_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (m, clock) = open_with_clock(dir.path(), EVERY_TEN);
    let job = Arc::new(Planted::default());
    let mut s = Scheduler::new(m.clone()).with_job(JobKind::Analytics, job.clone());
    assert_eq!(
        s.start().await.unwrap(),
        [],
        "a first start has nothing to catch up"
    );
    assert_eq!(s.next_due(), Some(at(10)));

    clock.set(at(9));
    assert_eq!(s.tick().await.unwrap(), [], "not yet");
    clock.set(at(10));
    assert_eq!(s.tick().await.unwrap(), [JobKind::Analytics]);
    s.settle().await;
    assert_eq!(job.runs.load(Ordering::SeqCst), 1);
    assert_eq!(s.next_due(), Some(at(20)));
    let runs = history(&m);
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].run, runs[0].trigger, runs[0].outcome),
        (1, Trigger::Schedule, Outcome::Succeeded)
    );
    assert_eq!(runs[0].scheduled_for, Some(at(10)));
    assert_eq!(runs[0].message, "run 1");
    assert_eq!(runs[0].counts.get("n"), Some(&1));

    // A late look runs the time it missed once, and plans from now.
    clock.set(at(35));
    assert_eq!(s.tick().await.unwrap(), [JobKind::Analytics]);
    s.settle().await;
    assert_eq!(history(&m)[0].scheduled_for, Some(at(20)));
    assert_eq!(s.next_due(), Some(at(40)));

    // A slow run: the due time that comes while it goes on is skipped.
    job.held.store(true, Ordering::SeqCst);
    clock.set(at(40));
    assert_eq!(s.tick().await.unwrap(), [JobKind::Analytics]);
    clock.set(at(50));
    assert_eq!(s.tick().await.unwrap(), [], "never two runs at once");
    assert_eq!(s.next_due(), Some(at(60)));
    let running = history(&m);
    assert_eq!(
        running[0].outcome,
        Outcome::Running,
        "the run in progress on top"
    );
    // An operator's request is refused while it runs.
    let refused = m.jobs().request(&Principal::Operator, "analytics").await;
    assert!(
        matches!(refused, Err(EngineError::Conflict(ref why)) if why.contains("running")),
        "{refused:?}"
    );
    job.held.store(false, Ordering::SeqCst);
    job.hold.add_permits(1);
    s.settle().await;
    assert_eq!(job.runs.load(Ordering::SeqCst), 3);

    // A failure is recorded, and the next time runs again.
    job.fail_next.store(true, Ordering::SeqCst);
    clock.set(at(60));
    assert_eq!(s.tick().await.unwrap(), [JobKind::Analytics]);
    s.settle().await;
    let failed = &history(&m)[0];
    assert_eq!(
        (failed.outcome, failed.message.as_str()),
        (Outcome::Failed, "the disk is on fire")
    );
    clock.set(at(70));
    assert_eq!(s.tick().await.unwrap(), [JobKind::Analytics]);
    s.settle().await;
    let runs = history(&m);
    assert_eq!(runs[0].outcome, Outcome::Succeeded);
    assert_eq!(
        runs.iter().map(|r| r.scheduled_for).collect::<Vec<_>>(),
        [at(70), at(60), at(40), at(20), at(10)].map(Some),
        "one run per due time, the 50 skipped"
    );

    // keep_runs = 5: a sixth run drops the first.
    clock.set(at(80));
    s.tick().await.unwrap();
    s.settle().await;
    let runs = history(&m);
    assert_eq!(runs.len(), 5);
    assert_eq!(
        (runs[0].run, runs[4].run),
        (6, 2),
        "the newest five are kept"
    );

    let status = m.jobs().list(&Principal::Operator).unwrap();
    assert!(status.scheduler_running);
    let analytics = &status.jobs[1];
    assert_eq!(
        (analytics.name.as_str(), analytics.next_run),
        ("analytics", Some(at(90)))
    );
    assert_eq!(analytics.last_run.as_ref().map(|r| r.run), Some(6));
    assert_eq!(analytics.last_success, Some(at(80)));
    assert!(
        status
            .jobs
            .iter()
            .filter(|j| j.name != "analytics")
            .all(|j| !j.enabled && j.next_run.is_none()),
        "disabled jobs have no next run"
    );
    let metrics = m.ops().render_metrics(&Principal::Operator).unwrap();
    assert!(
        metrics.contains(r#"roster_job_runs_total{job="analytics",outcome="succeeded"} 5"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"roster_job_runs_total{job="analytics",outcome="failed"} 1"#));
    assert!(metrics.contains(r#"roster_job_duration_seconds_count{job="analytics"} 6"#));
    assert!(
        metrics
            .contains(r#"roster_job_last_success_timestamp_seconds{job="analytics"} 1800004800"#)
    );
    s.stop().await;
}

#[tokio::test]
async fn a_time_missed_while_down_runs_once_within_catch_up_and_a_crash_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (m, clock) = open_with_clock(dir.path(), EVERY_TEN);
    let job = Arc::new(Planted::default());
    let mut s = Scheduler::new(m.clone()).with_job(JobKind::Analytics, job.clone());
    s.start().await.unwrap();
    s.stop().await;
    assert!(
        !m.jobs()
            .list(&Principal::Operator)
            .unwrap()
            .scheduler_running
    );

    // Down from 08:00 to 10:55: 17 due times passed; one run, for the last of them.
    clock.set(at(175));
    let mut s = Scheduler::new(m.clone()).with_job(JobKind::Analytics, job.clone());
    assert_eq!(s.start().await.unwrap(), [JobKind::Analytics]);
    s.settle().await;
    assert_eq!(job.runs.load(Ordering::SeqCst), 1);
    let runs = history(&m);
    assert_eq!(
        (runs.len(), runs[0].trigger, runs[0].scheduled_for),
        (1, Trigger::CatchUp, Some(at(170)))
    );
    assert_eq!(s.next_due(), Some(at(180)));
    assert_eq!(
        s.tick().await.unwrap(),
        [],
        "caught up once, not once per missed time"
    );
    s.stop().await;

    // A restart after a run that ended well runs nothing again and interrupts nothing.
    let mut s = Scheduler::new(m.clone()).with_job(JobKind::Analytics, job.clone());
    assert_eq!(s.start().await.unwrap(), []);
    s.stop().await;
    assert_eq!(job.runs.load(Ordering::SeqCst), 1);
    assert_eq!(history(&m).len(), 1);

    // A run the process died in (begun, never finished) is found at the next start.
    let by = Principal::System("analytics");
    let begun = m
        .jobs()
        .begin(&by, JobKind::Analytics, Trigger::Operator, None)
        .await
        .unwrap();
    m.jobs().close_board();
    let mut s = Scheduler::new(m.clone()).with_job(JobKind::Analytics, job.clone());
    s.start().await.unwrap();
    let runs = history(&m);
    assert_eq!(runs[0].run, begun.run);
    assert_eq!(runs[0].outcome, Outcome::Interrupted);

    // A run in progress when the scheduler stops is recorded as interrupted too.
    job.held.store(true, Ordering::SeqCst);
    m.jobs()
        .request(&Principal::Operator, "analytics")
        .await
        .unwrap();
    assert_eq!(s.tick().await.unwrap(), [JobKind::Analytics]);
    s.stop().await;
    let runs = history(&m);
    assert_eq!(
        (runs[0].trigger, runs[0].outcome),
        (Trigger::Operator, Outcome::Interrupted)
    );
    assert_eq!(runs[0].run, begun.run + 1);
    let refused = m.jobs().request(&Principal::Operator, "analytics").await;
    assert!(
        matches!(refused, Err(EngineError::Conflict(ref why)) if why.contains("no scheduler")),
        "{refused:?}"
    );
}

/// The analytics job daily at 08:30, where the clock starts at 08:00.
const DAILY: &str = r#"
[automation]
enabled = true
catch_up = "6h"
[automation.jobs.analytics]
schedule = "30 8 * * *"
[automation.jobs.recommendations]
enabled = false
[automation.jobs.cleanup]
enabled = false
[automation.jobs.provisioning]
enabled = false
[automation.jobs.tier_analysis]
enabled = false
[automation.jobs.backup]
enabled = false
[automation.jobs.integrations]
enabled = false
"#;

const DAY: i64 = 24 * 60;

#[tokio::test]
async fn catching_up_judges_the_last_missed_time_and_the_store_keeps_each_jobs_state() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::support::config(dir.path(), &[DAILY]);
    let store = roster::store::open(&config.store).unwrap();
    let clock = ManualClock::new(at(0));
    let setup = Setup::new(config)
        .clock(Arc::new(clock.clone()))
        .store(Arc::clone(&store));
    let m = UserManager::open(setup).unwrap();
    let stored_state = || -> serde_json::Value {
        let bytes = store.job("analytics").unwrap().unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let job = Arc::new(Planted::default());
    let restart =
        |m: &UserManager| Scheduler::new(m.clone()).with_job(JobKind::Analytics, job.clone());
    let mut s = restart(&m);
    s.start().await.unwrap();
    s.stop().await;

    // Down two days: the first missed 08:30 is 48 h old, the last half an hour.
    clock.set(at(2 * DAY + 60));
    let mut s = restart(&m);
    assert_eq!(s.start().await.unwrap(), [JobKind::Analytics]);
    s.settle().await;
    assert_eq!(history(&m)[0].scheduled_for, Some(at(2 * DAY + 30)));
    s.stop().await;
    let state = stored_state();
    assert_eq!(state["running"], serde_json::Value::Null, "{state}");
    assert_eq!(state["last_run"], 1, "{state}");
    assert_eq!(
        state["next_due"], "2027-01-18T08:30:00.000Z",
        "the next time, planned and stored: {state}"
    );

    // Down until 6.5 h after the last due time: beyond catch_up, skipped.
    clock.set(at(3 * DAY + 7 * 60));
    let mut s = restart(&m);
    assert_eq!(s.start().await.unwrap(), []);
    s.stop().await;
    assert_eq!(job.runs.load(Ordering::SeqCst), 1);
    assert_eq!(stored_state()["next_due"], "2027-01-19T08:30:00.000Z");

    // The end of a run that is not in progress is refused, not recorded twice.
    let by = Principal::System("analytics");
    let mut s = restart(&m);
    s.start().await.unwrap();
    let ended = history(&m)[0].clone();
    let again = m
        .jobs()
        .finish(&by, ended, Outcome::Failed, JobReport::new("late"))
        .await;
    assert!(
        matches!(again, Err(EngineError::Conflict(ref why)) if why.contains("not in progress")),
        "{again:?}"
    );
    assert_eq!(history(&m)[0].outcome, Outcome::Succeeded);
    s.stop().await;
}

fn config_error(extra: &str) -> String {
    let layers = vec![
        parse_toml("default", DEFAULT_TOML).unwrap(),
        parse_toml("extra", extra).unwrap(),
    ];
    Config::from_layers(layers).unwrap_err().to_string()
}

#[test]
fn bad_schedules_zones_and_jobs_are_refused_at_start_up() {
    let e = config_error("[automation.jobs.analytics]\nschedule = \"0 2 * *\"\n");
    assert!(
        e.contains("automation.jobs.analytics.schedule") && e.contains("five fields"),
        "{e}"
    );
    let e = config_error("[automation]\ntimezone = \"Europe/Atlantis\"\n");
    assert!(e.contains("automation.timezone"), "{e}");
    let e = config_error("[automation.backup]\nkeep = 0\n");
    assert!(e.contains("automation.backup.keep"), "{e}");
    let e = config_error("[automation.jobs.vacuum]\nschedule = \"0 2 * * *\"\n");
    assert!(
        e.contains("automation.jobs.vacuum")
            && e.contains("analytics, tier_analysis, recommendations, cleanup"),
        "{e}"
    );
    let e = config_error("[automation]\ncatch_up = \"soon\"\n");
    assert!(e.contains("automation.catch_up"), "{e}");
}

#[tokio::test]
async fn operators_see_the_jobs_and_run_one_through_the_api() {
    let server = TestServer::start("[automation]\nenabled = true\n").await;
    let key = Some(ADMIN_KEY);
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    // The scheduler starts beside the server: wait for it.
    let mut view = serde_json::Value::Null;
    for _ in 0..200 {
        let (status, v) = server.call(get.clone(), "/admin/jobs", key, None).await;
        assert_eq!(status, 200, "{v}");
        view = v;
        if view["jobs"][4]["next_run"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(view["scheduler_running"], true);
    let names: Vec<_> = view["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "provisioning",
            "analytics",
            "tier_analysis",
            "recommendations",
            "cleanup",
            "backup",
            "integrations"
        ]
    );
    assert_eq!(view["jobs"][4]["schedule"], "0 3 * * 0");
    assert_eq!(view["jobs"][4]["timezone"], "UTC");
    // 2027-01-15 is a Friday: the next Sunday 03:00.
    assert_eq!(view["jobs"][4]["next_run"], "2027-01-17T03:00:00.000Z");
    assert_eq!(view["jobs"][0]["next_run"], "2027-01-15T12:00:00.000Z");

    let (status, body) = server
        .call(post.clone(), "/admin/jobs/cleanup/run", key, None)
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["job"]["name"], "cleanup");
    let mut runs = serde_json::Value::Null;
    for _ in 0..200 {
        let (status, r) = server
            .call(get.clone(), "/admin/jobs/cleanup/runs", key, None)
            .await;
        assert_eq!(status, 200, "{r}");
        runs = r;
        if runs[0]["outcome"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(runs[0]["outcome"], "succeeded", "{runs}");
    assert_eq!(runs[0]["trigger"], "operator");
    assert_eq!(runs[0]["counts"]["events_purged"], 0);

    let (status, body) = server
        .call(post.clone(), "/admin/jobs/vacuum/run", key, None)
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = server
        .call(get.clone(), "/admin/jobs/cleanup/runs?limit=0", key, None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("limit"), "{body}");
    let (status, _) = server
        .call(post.clone(), "/admin/jobs/cleanup/run", None, None)
        .await;
    assert_eq!(status, 401);

    // Audited: the operator's request, and the run under the job's own name.
    let (_, audit) = server.call(get, "/admin/audit", key, None).await;
    let actions: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].clone(), e["action"]["type"].clone()))
        .collect();
    assert!(
        actions.contains(&(
            serde_json::json!({"kind": "operator"}),
            "job_requested".into()
        )),
        "{audit}"
    );
    assert!(
        actions.contains(&(
            serde_json::json!({"kind": "system", "job": "cleanup"}),
            "job_ran".into()
        )),
        "{audit}"
    );
    assert!(
        server
            .metrics_page()
            .await
            .contains(r#"roster_job_runs_total{job="cleanup",outcome="succeeded"} 1"#)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_retrains_the_recommender_at_its_time() {
    use crate::recommendations::{listener, ok, server_with};
    let srv = server_with(
        "[automation]\nenabled = true\npoll = \"20ms\"\n\
         [automation.jobs.recommendations]\nschedule = \"0 9 * * *\"\n",
    )
    .await;
    let (_, _) = listener(&srv, "a@example.com", "premium", "standard").await;
    let (_, _) = listener(&srv, "b@example.com", "premium", "standard").await;
    let (c, c_token) = listener(&srv, "c@example.com", "premium", "standard").await;
    assert!(ok(&srv, &c, &c_token, "").await["model"]["model_version"].is_null());

    // 08:00 → 09:00: the scheduler (looking every 20 ms) finds the job due.
    srv.clock.set(at(60));
    let mut runs = serde_json::Value::Null;
    for _ in 0..500 {
        let (_, r) = srv
            .call(
                reqwest::Method::GET,
                "/admin/jobs/recommendations/runs",
                Some(ADMIN_KEY),
                None,
            )
            .await;
        runs = r;
        if runs[0]["outcome"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(runs[0]["outcome"], "succeeded", "{runs}");
    assert_eq!(runs[0]["trigger"], "schedule");
    assert_eq!(runs[0]["scheduled_for"], "2027-01-15T09:00:00.000Z");
    assert_eq!(runs[0]["counts"]["users"], 3, "{runs}");
    assert_eq!(
        ok(&srv, &c, &c_token, "").await["model"]["model_version"],
        1,
        "the lists use the model the schedule trained"
    );
    srv.stop().await;
}
