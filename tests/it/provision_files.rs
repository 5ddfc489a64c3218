//! `provision-users` files (issue 20): a 10,000-row CSV with 3% bad rows — good rows
//! in, bad rows in the error file by number, the summary exact; a re-run changes
//! nothing; a run killed midway and resumed ends with the same users as one that was
//! not; a dry run writes nothing.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::future::BoxFuture;
use roster::domain::password::HashParams;
use roster::engine::{Principal, ProvisionRow};
use roster::jobs::provision::{Local, Options, RowOutcome, Sink, Summary, provision_file};
use roster::security::password::{Argon2Worker, params};

use crate::support::{PW, open};

const ROWS: u64 = 10_000;
const GOOD: u64 = ROWS - ROWS / 33;

/// The file: every 33rd row is bad, in one of five ways; the good ones carry a PHC
/// hash, a password or neither (an invitation).
fn write_file(path: &Path) {
    let phc = Argon2Worker::new(
        params(HashParams {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap(),
    )
    .unwrap()
    .hash(PW)
    .unwrap();
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record([
        "email",
        "tier",
        "display_name",
        "external_id",
        "password_hash",
        "password",
    ])
    .unwrap();
    for i in 1..=ROWS {
        let email = format!("user{i}@example.com");
        let tier = ["free", "premium", "enterprise", "vip"][(i % 4) as usize];
        let name = format!("User {i}");
        let ext = format!("src-{i}");
        let (hash, pw) = match i % 10 {
            0 => ("", ""),
            1 => ("", PW),
            _ => (phc.as_str(), ""),
        };
        let record: [String; 6] = if i % 33 == 0 {
            match (i / 33) % 5 {
                0 => [
                    format!("user{i}-at-example.com"),
                    tier.into(),
                    name,
                    ext,
                    hash.into(),
                    pw.into(),
                ],
                1 => [email, "gold".into(), name, ext, hash.into(), pw.into()],
                2 => [email, tier.into(), name, ext, phc.clone(), PW.into()],
                3 => [
                    email,
                    tier.into(),
                    name,
                    ext,
                    "$2b$04$short".into(),
                    String::new(),
                ],
                _ => [email, tier.into(), name, ext, String::new(), "short".into()],
            }
        } else {
            [email, tier.into(), name, ext, hash.into(), pw.into()]
        };
        w.write_record(&record).unwrap();
    }
    w.flush().unwrap();
}

/// Passes batches on, and after `after` of them fails — once the batch was written,
/// as a process killed before its checkpoint would.
struct KilledAfter<'a> {
    inner: Local<'a>,
    after: usize,
    seen: AtomicUsize,
}

impl Sink for KilledAfter<'_> {
    fn provision<'a>(
        &'a self,
        rows: Vec<ProvisionRow>,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Vec<RowOutcome>, String>> {
        // Batches are handed over in file order (and may run at once).
        let nth = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            let out = self.inner.provision(rows, dry_run).await?;
            if nth == self.after {
                return Err("killed".into());
            }
            Ok(out)
        })
    }
}

fn opts(dir: &Path, dry_run: bool) -> Options {
    Options {
        dry_run,
        batch: 500,
        in_flight: roster::jobs::provision::BATCHES_IN_FLIGHT,
        checkpoint: Some(dir.join("users.csv.checkpoint")),
        errors: Some(dir.join("users.csv.errors.csv")),
    }
}

fn counts(s: &Summary) -> [u64; 5] {
    [s.created, s.updated, s.unchanged, s.invited, s.refused]
}

const BY: Principal = Principal::System("provision-users");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_goes_in_once_its_bad_rows_are_named_and_a_killed_run_resumes() {
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("users.csv");
    write_file(&file);
    let invited = (1..=ROWS).filter(|i| i % 10 == 0 && i % 33 != 0).count() as u64;

    // Uninterrupted, after a dry run that writes nothing.
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let local = Local {
        manager: &m,
        by: BY,
    };
    let o = opts(files.path(), false);
    let dry = provision_file(&local, &file, &opts(files.path(), true), |_| {})
        .await
        .unwrap();
    assert_eq!(counts(&dry), [GOOD, 0, 0, invited, ROWS - GOOD]);
    assert!(!o.checkpoint.as_ref().unwrap().exists());
    let first = provision_file(&local, &file, &o, |_| {}).await.unwrap();
    assert_eq!(
        counts(&first),
        [GOOD, 0, 0, invited, ROWS - GOOD],
        "the dry run created nothing"
    );
    assert_eq!((first.rows, first.resumed), (ROWS, 0));
    assert!(
        !o.checkpoint.as_ref().unwrap().exists(),
        "done: no checkpoint left"
    );
    let mut errors = csv::Reader::from_path(o.errors.as_ref().unwrap()).unwrap();
    let named: Vec<u64> = errors
        .records()
        .map(|r| r.unwrap()[0].parse().unwrap())
        .collect();
    assert_eq!(
        named,
        (1..=ROWS).filter(|i| i % 33 == 0).collect::<Vec<_>>()
    );
    let again = provision_file(&local, &file, &o, |_| {}).await.unwrap();
    assert_eq!(
        counts(&again),
        [0, 0, GOOD, 0, ROWS - GOOD],
        "a re-run changes nothing"
    );
    m.shutdown().await.unwrap();
    drop(m);

    // Killed after its seventh batch was written, then resumed.
    let dir2 = tempfile::tempdir().unwrap();
    let m = open(dir2.path());
    let killed = KilledAfter {
        inner: Local {
            manager: &m,
            by: BY,
        },
        after: 7,
        seen: AtomicUsize::new(0),
    };
    let err = provision_file(&killed, &file, &o, |_| {})
        .await
        .unwrap_err();
    assert_eq!(err, "killed");
    assert!(o.checkpoint.as_ref().unwrap().exists());
    let local = Local {
        manager: &m,
        by: BY,
    };
    let resumed = provision_file(&local, &file, &o, |_| {}).await.unwrap();
    assert_eq!(resumed.resumed, 6 * 500, "six batches were checkpointed");
    let good = |rows: std::ops::RangeInclusive<u64>| rows.filter(|i| i % 33 != 0).count() as u64;
    // The seventh batch was written before the kill, and the batches in flight with it
    // may have been (all, some or none of their rows): each is found unchanged.
    let seventh = good(6 * 500 + 1..=7 * 500);
    assert!(
        (seventh..=seventh + 2 * 500).contains(&resumed.unchanged),
        "{resumed:?}"
    );
    assert_eq!(
        resumed.created + resumed.unchanged,
        good(6 * 500 + 1..=ROWS),
        "every good row after the checkpoint found or made its user"
    );
    // The same users as the uninterrupted run: every good row finds its user as it says.
    let check = provision_file(&local, &file, &opts(files.path(), true), |_| {})
        .await
        .unwrap();
    assert_eq!(counts(&check), [0, 0, GOOD, 0, ROWS - GOOD]);
    m.shutdown().await.unwrap();
}

/// `roster provision-users` with `args`, its exit status, stdout and stderr.
async fn roster(args: Vec<String>) -> (bool, String, String) {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
            .arg("provision-users")
            .args(args)
            .env("ROSTER_ADMIN_KEY", crate::support::ADMIN_KEY)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_provisions_a_jsonl_file_through_a_running_server() {
    let s = crate::support::TestServer::start("").await;
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("people.jsonl");
    std::fs::write(
        &file,
        format!(
            "{{\"email\": \"ann@example.com\", \"tier\": \"premium\", \"password\": {PW:?}}}\n\
             \n\
             {{\"email\": \"ben@example.com\", \"external_id\": \"42\"}}\n\
             {{\"email\": \"cat@example.com\", \"shoe_size\": 9}}\n\
             not json\n"
        ),
    )
    .unwrap();
    let server = format!("http://{}", s.host());
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = ["--server", server.as_str(), "--quiet"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        a.push(file.display().to_string());
        a
    };
    let (ok, stdout, stderr) = roster(args(&[])).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "4 rows (0 resumed): 2 created, 0 updated, 0 unchanged, 1 invited, 2 refused"
        ),
        "{stdout}"
    );
    let errors = std::fs::read_to_string(files.path().join("people.jsonl.errors.csv")).unwrap();
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(lines[0], "row,email,reason");
    assert!(
        lines[1].starts_with("3,cat@example.com,") && lines[1].contains("shoe_size"),
        "{errors}"
    );
    assert!(lines[2].starts_with("4,,not JSON"), "{errors}");
    let login = serde_json::json!({"email": "ann@example.com", "password": PW});
    let (status, _) = s
        .call(reqwest::Method::POST, "/auth/login", None, Some(login))
        .await;
    assert_eq!(status, 200);

    let (ok, stdout, _) = roster(args(&["--dry-run"])).await;
    assert!(ok);
    assert!(
        stdout.starts_with("dry run: ") && stdout.contains("0 created, 0 updated, 2 unchanged"),
        "{stdout}"
    );

    // A batch of 1,000 rows is far over the 64 KiB of an ordinary body.
    let big = files.path().join("big.jsonl");
    let phc = bcrypt::hash(PW, 4).unwrap();
    let lines: String = (0..1000)
        .map(|i| {
            format!(
                "{{\"email\": \"bulk{i}@example.com\", \"display_name\": \"Bulk user number {i}\", \"language\": \"en\", \"timezone\": \"Europe/Berlin\", \"external_id\": \"hr-{i:06}\", \"password_hash\": \"{phc}\"}}\n"
            )
        })
        .collect();
    assert!(lines.len() > 64 * 1024, "{}", lines.len());
    std::fs::write(&big, lines).unwrap();
    let (ok, stdout, stderr) = roster(vec![
        "--server".into(),
        server.clone(),
        "--batch".into(),
        "1000".into(),
        "--quiet".into(),
        big.display().to_string(),
    ])
    .await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1000 rows (0 resumed): 1000 created"),
        "{stdout}"
    );

    // A file the command cannot read fails it, saying why.
    let bad = files.path().join("bad.csv");
    std::fs::write(&bad, "email,shoe_size\na@example.com,9\n").unwrap();
    let (ok, _, stderr) = roster(vec![
        "--server".into(),
        server.clone(),
        bad.display().to_string(),
    ])
    .await;
    assert!(!ok);
    assert!(stderr.contains("unknown column \"shoe_size\""), "{stderr}");
    s.stop().await;

    // The same command on a stopped data directory (the embedded configuration): the
    // file goes in once, and a second run finds it all there.
    let data = files.path().join("data");
    let local = |extra: &[&str]| {
        let mut a: Vec<String> = ["--data-dir", data.to_str().unwrap(), "--quiet"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        a.push(big.display().to_string());
        a
    };
    let (ok, stdout, stderr) = roster(local(&[])).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1000 rows (0 resumed): 1000 created"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = roster(local(&[])).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("0 created, 0 updated, 1000 unchanged"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_provisions_the_inbox_every_six_hours() {
    use roster::domain::job::JobKind;
    let dir = tempfile::tempdir().unwrap();
    let (m, clock) = crate::support::open_with_clock(
        dir.path(),
        "[automation]\nenabled = true\n\
         [automation.provisioning]\ninbox = \"inbox\"\n\
         [automation.jobs.analytics]\nenabled = false\n\
         [automation.jobs.recommendations]\nenabled = false\n\
         [automation.jobs.cleanup]\nenabled = false\n\
         [automation.jobs.tier_analysis]\nenabled = false\n\
         [automation.jobs.integrations]\nenabled = false\n",
    );
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(
        inbox.join("hires.csv"),
        format!("email,password,tier\nnew1@example.com,{PW},premium\nnew2@example.com,{PW},\nnope,{PW},\n"),
    )
    .unwrap();
    std::fs::write(inbox.join("broken.csv"), "mail,password\na@example.com,x\n").unwrap();
    std::fs::write(inbox.join("notes.txt"), "not for provisioning").unwrap();

    let mut s = roster::jobs::Scheduler::new(m.clone());
    s.start().await.unwrap();
    // 2027-01-15T08:00Z: the job's next time is 12:00.
    clock.set(roster::domain::time::Timestamp::from_millis(
        1_800_000_000_000 + 4 * 3_600_000,
    ));
    assert_eq!(s.tick().await.unwrap(), [JobKind::Provisioning]);
    s.settle().await;
    let run = m
        .jobs()
        .runs(&Principal::Operator, "provisioning", 1)
        .unwrap()
        .remove(0);
    assert_eq!(
        run.outcome,
        roster::domain::job::Outcome::Succeeded,
        "{}",
        run.message
    );
    assert_eq!(
        [
            run.counts["files"],
            run.counts["files_failed"],
            run.counts["created"],
            run.counts["refused"]
        ],
        [1, 1, 2, 1],
        "{}",
        run.message
    );
    let done = inbox.join("done");
    assert!(done.join("hires.csv").exists() && !inbox.join("hires.csv").exists());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(done.join("hires.csv.report.json")).unwrap())
            .unwrap();
    assert_eq!(
        (report["created"].as_u64(), report["refused"].as_u64()),
        (Some(2), Some(1))
    );
    let errors = std::fs::read_to_string(done.join("hires.csv.errors.csv")).unwrap();
    assert!(errors.contains("3,nope,"), "{errors}");
    let failed: serde_json::Value = serde_json::from_slice(
        &std::fs::read(inbox.join("failed").join("broken.csv.report.json")).unwrap(),
    )
    .unwrap();
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("unknown column \"mail\""),
        "{failed}"
    );
    assert!(
        inbox.join("notes.txt").exists(),
        "other files are left alone"
    );
    let outcome = m
        .authenticate_user("new1@example.com", PW, Default::default())
        .await
        .unwrap();
    assert!(matches!(outcome, roster::LoginOutcome::Success(_)));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_in_flight_never_race_for_one_user() {
    // Twenty one-row batches naming one user: sent at once they would race to create
    // it; each waits for the one before, so the user is created once and renamed in
    // file order.
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("same.jsonl");
    let rows: String = (0..20)
        .map(|i| format!("{{\"email\":\"Same@Example.com\",\"display_name\":\"Name {i}\"}}\n"))
        .collect();
    std::fs::write(&file, rows).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    let local = Local {
        manager: &m,
        by: BY,
    };
    let o = Options {
        batch: 1,
        ..opts(files.path(), false)
    };
    let s = provision_file(&local, &file, &o, |_| {}).await.unwrap();
    assert_eq!((s.created, s.updated, s.refused), (1, 19, 0), "{s:?}");
    // The last name stuck: a dry run finds only the last row unchanged.
    let dry = Options {
        batch: 1,
        ..opts(files.path(), true)
    };
    let d = provision_file(&local, &file, &dry, |_| {}).await.unwrap();
    assert_eq!((d.updated, d.unchanged), (19, 1), "{d:?}");
    m.shutdown().await.unwrap();
}
