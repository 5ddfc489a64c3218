//! `roster cleanup` and `roster run-all` (issue 20): the jobs run now, through a
//! server's scheduler or on a stopped data directory, each reported; cleanup drops
//! invitations past their end.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, TestServer};

/// Every job enabled for operators but none started by its schedule, so that only the
/// command's runs happen.
const BY_HAND: &str = r#"
[automation]
enabled = true
[automation.jobs.provisioning]
enabled = false
[automation.jobs.analytics]
enabled = false
[automation.jobs.recommendations]
enabled = false
[automation.jobs.cleanup]
enabled = false
[automation.jobs.tier_analysis]
enabled = false
"#;

fn args(target: roster::cli::Target, json: &std::path::Path) -> roster::cli::JobsArgs {
    roster::cli::JobsArgs {
        target,
        json: Some(json.to_owned()),
        quiet: true,
    }
}

fn report(path: &std::path::Path) -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn invite(srv: &TestServer, email: &str) {
    let body = json!({"rows": [{"email": email}]});
    let (s, r) = srv
        .call(
            Method::POST,
            "/admin/users/provision",
            Some(ADMIN_KEY),
            Some(body),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["rows"][0]["result"]["invited"], true, "{r}");
}

async fn wait_for_scheduler(srv: &TestServer) {
    for _ in 0..200 {
        let (_, v) = srv
            .call(Method::GET, "/admin/jobs", Some(ADMIN_KEY), None)
            .await;
        if v["scheduler_running"] == true && v["jobs"][4]["name"] == "cleanup" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the scheduler did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_and_run_all_run_the_jobs_through_the_servers_scheduler() {
    let srv = TestServer::start(BY_HAND).await;
    wait_for_scheduler(&srv).await;
    invite(&srv, "old@example.com").await;
    srv.clock.advance(Duration::from_secs(8 * 86_400));
    invite(&srv, "new@example.com").await;
    let out = tempfile::tempdir().unwrap();
    let json_path = out.path().join("cleanup.json");
    let target = roster::cli::Target {
        server: Some(srv.base.trim_end_matches("/api/v1").to_owned()),
        admin_key: Some(ADMIN_KEY.into()),
        ..Default::default()
    };
    roster::cli::run(
        roster::cli::Command::Cleanup(args(target.clone(), &json_path)),
        None,
    )
    .await
    .unwrap();
    let ran = report(&json_path);
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(ran[0]["job"], "cleanup");
    assert_eq!(ran[0]["outcome"], "succeeded", "{ran:?}");
    assert_eq!(
        ran[0]["counts"]["invitations_purged"], 1,
        "only the expired one: {ran:?}"
    );
    // Recorded in the job's history like any run.
    let (_, runs) = srv
        .call(
            Method::GET,
            "/admin/jobs/cleanup/runs",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    // The next provisioning of the expired user invites it again.
    invite(&srv, "old@example.com").await;

    let json_path = out.path().join("run-all.json");
    let result =
        roster::cli::run(roster::cli::Command::RunAll(args(target, &json_path)), None).await;
    let ran = report(&json_path);
    let jobs: Vec<&str> = ran.iter().map(|r| r["job"].as_str().unwrap()).collect();
    assert_eq!(
        jobs,
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
    assert_eq!(ran[4]["outcome"], "succeeded", "{ran:?}");
    assert_eq!(ran[4]["counts"]["invitations_purged"], 0, "{ran:?}");
    let all_ok = ran.iter().all(|r| r["outcome"] == "succeeded");
    assert_eq!(
        result.is_ok(),
        all_ok,
        "exit status follows the jobs: {ran:?} {result:?}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_a_stopped_data_directory_runs_every_job_and_reports_a_failed_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::support::config(dir.path(), &[]);
    let out = tempfile::tempdir().unwrap();
    let json_path = out.path().join("run-all.json");
    let result = roster::cli::run(
        roster::cli::Command::RunAll(args(roster::cli::Target::default(), &json_path)),
        Some(config),
    )
    .await;
    let ran = report(&json_path);
    let jobs: Vec<&str> = ran.iter().map(|r| r["job"].as_str().unwrap()).collect();
    assert_eq!(
        jobs,
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
    assert_eq!(
        ran[0]["outcome"], "succeeded",
        "no inbox: nothing to do: {ran:?}"
    );
    // The tier analysis wrote its report into the data directory's reports/.
    assert_eq!(ran[2]["outcome"], "succeeded", "{ran:?}");
    assert_eq!(ran[2]["counts"]["users_read"], 0, "{ran:?}");
    let mut written: Vec<String> = std::fs::read_dir(dir.path().join("reports"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written.len(), 2, "{written:?}");
    assert!(
        written[0].starts_with("tier-analysis-") && written[0].ends_with(".csv"),
        "{written:?}"
    );
    assert!(written[1].ends_with(".json"), "{written:?}");
    assert_eq!(ran[4]["outcome"], "succeeded", "{ran:?}");
    // The backup went to the data directory's backups/, and reads back whole.
    assert_eq!(ran[5]["outcome"], "succeeded", "{ran:?}");
    let backups: Vec<_> = std::fs::read_dir(dir.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    roster::engine::BackupFile::check(&backups[0]).unwrap();
    // The analytics job cannot train on an empty store: it fails alone, says why, the
    // later jobs still ran, and the command fails.
    let failed: Vec<&str> = ran
        .iter()
        .filter(|r| r["outcome"] != "succeeded")
        .map(|r| r["job"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["analytics"], "{ran:?}");
    assert!(
        ran[1]["message"]
            .as_str()
            .unwrap()
            .contains("too little history"),
        "{ran:?}"
    );
    let e = result.expect_err("a failed job fails the command");
    assert!(e.to_string().contains("did not succeed"), "{e}");

    // So does the backup when its folder is a file: the job after it still runs, and
    // the report says which failed and why.
    let blocker = out.path().join("not-a-folder");
    std::fs::write(&blocker, b"a file").unwrap();
    let layer = format!(
        "[automation.backup]\nfolder = {:?}\n",
        blocker.display().to_string()
    );
    let config = crate::support::config(dir.path(), &[&layer]);
    let result = roster::cli::run(
        roster::cli::Command::RunAll(args(roster::cli::Target::default(), &json_path)),
        Some(config),
    )
    .await;
    let again = report(&json_path);
    assert_eq!(again[5]["job"], "backup");
    assert_ne!(again[5]["outcome"], "succeeded", "{again:?}");
    assert!(
        again[5]["message"]
            .as_str()
            .unwrap()
            .contains("not-a-folder"),
        "{again:?}"
    );
    assert_eq!(again[6]["job"], "integrations");
    assert_eq!(again[6]["outcome"], "succeeded", "{again:?}");
    let e = result.expect_err("a failed job fails the command");
    assert!(e.to_string().contains("did not succeed"), "{e}");
}
