//! Backups of a serving server, restored into new data directories with the `roster`
//! binary and served again; bad files and bad targets refused; erasures kept.

use std::path::Path;
use std::process::{Command, Output};

use reqwest::Method;
use serde_json::json;

use crate::support::{ADMIN_KEY, PW, TestServer};

/// Runs `roster ARGS` with the test's cheap settings.
fn roster(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(args)
        .env("ROSTER_ADMIN_KEY", ADMIN_KEY)
        .env("ROSTER_PROFILES__DIR", "")
        .output()
        .unwrap()
}

async fn roster_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        roster(&args)
    })
    .await
    .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Writes `out`: a backup with no data that begins and ends `days` after `from` began,
/// as one taken that much later (whose tombstones, if any, are not needed here).
fn later_backup(from: &Path, days: i64, out: &Path) {
    use roster::store::backup::{BackupReader, BackupWriter};
    let input = std::io::BufReader::new(std::fs::File::open(from).unwrap());
    let mut header = BackupReader::open(input).unwrap().header().clone();
    header.created_at_ms += days * 86_400_000;
    let w = BackupWriter::new(std::fs::File::create(out).unwrap(), &header).unwrap();
    w.finish(0, header.created_at_ms).unwrap();
}

/// Restores `file` into `into` (with the master key of `from` put there first).
fn restore(file: &Path, into: &Path, from: &Path, extra: &[&str]) -> Output {
    std::fs::create_dir_all(into).unwrap();
    std::fs::copy(from.join("master.key"), into.join("master.key")).unwrap();
    let mut args = vec![
        "restore".to_owned(),
        path(file),
        "--data-dir".into(),
        path(into),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    roster(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_writes_restores_into_a_server_that_serves_and_bad_files_are_refused() {
    let srv = TestServer::start("").await;
    let mut before = Vec::new();
    for i in 0..6 {
        before.push(srv.user(&format!("b{i}@example.com"), "premium").await);
    }
    let (id0, token0) = before[0].clone();
    let (s, _) = srv
        .call(
            Method::PUT,
            &format!("/users/{id0}"),
            Some(&token0),
            Some(json!({"display_name": "Before The Backup"})),
        )
        .await;
    assert_eq!(s, 200);

    // Writes go on while the backup runs: profile updates and sign-ups.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (base, http, stop) = (srv.base.clone(), srv.http.clone(), stop.clone());
        let (id, token) = before[1].clone();
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 20 {
                let r = http
                    .put(format!("{base}/users/{id}"))
                    .bearer_auth(&token)
                    .json(&json!({"display_name": format!("load {n}")}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                let r = http
                    .post(format!("{base}/users"))
                    .bearer_auth(ADMIN_KEY)
                    .json(&json!({"email": format!("load{n}@example.com"), "password": PW}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                n += 1;
            }
            n
        })
    };
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("roster.backup");
    let server = format!("http://{}", srv.host());
    let made = roster_async(vec![
        "backup".into(),
        "--server".into(),
        server.clone(),
        "--out".into(),
        path(&file),
    ])
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let signed_up = load.await.unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let said = text(&made);
    assert!(said.contains("DOES NOT CONTAIN THE MASTER KEY"), "{said}");
    assert!(!out.path().join("roster.backup.partial").exists());
    // A second backup to the same name is refused: a backup never replaces another.
    let again = roster(&["backup", "--server", &server, "--out", &path(&file)]);
    assert!(!again.status.success());
    assert!(text(&again).contains("exists"), "{}", text(&again));

    // Restored into a new folder (the master key put there first), served again.
    let key_dir = srv.dir().to_owned();
    let into = tempfile::tempdir().unwrap();
    let restored = restore(&file, into.path(), &key_dir, &[]);
    assert!(restored.status.success(), "{}", text(&restored));
    assert!(
        text(&restored).contains("audit chain of"),
        "{}",
        text(&restored)
    );
    let bytes = std::fs::read(&file).unwrap();

    // Bad files and bad targets: each a clear error, and nothing left behind.
    let bad = |name: &str, content: &[u8]| {
        let p = out.path().join(name);
        std::fs::write(&p, content).unwrap();
        let target = out.path().join(format!("{name}.restored"));
        let o = restore(&p, &target, &key_dir, &[]);
        assert!(!o.status.success(), "{name} was restored");
        let left: Vec<_> = std::fs::read_dir(&target)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            left,
            ["master.key"],
            "{name}: a failed restore leaves nothing"
        );
        text(&o)
    };
    let truncated = bad("truncated", &bytes[..bytes.len() * 2 / 3]);
    assert!(truncated.contains("truncated"), "{truncated}");
    let mut altered = bytes.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 0x01;
    let altered = bad("altered", &altered);
    assert!(
        altered.contains("damaged") || altered.contains("SHA-256"),
        "{altered}"
    );
    let mut future = bytes.clone();
    future[9] = 9;
    let future = bad("future", &future);
    assert!(future.contains("format version 9 is unknown"), "{future}");
    let not_empty = restore(&file, into.path(), &key_dir, &[]);
    assert!(!not_empty.status.success());
    assert!(
        text(&not_empty).contains("is not empty"),
        "{}",
        text(&not_empty)
    );

    srv.stop().await;
    let restored = TestServer::start_in(into, "").await;
    let (s, me) = restored
        .call(Method::GET, "/users/me", Some(&token0), None)
        .await;
    assert_eq!(s, 200, "a session from before the backup works: {me}");
    assert_eq!(me["display_name"], "Before The Backup", "{me}");
    for (i, _) in before.iter().enumerate() {
        let (s, body) = restored
            .call(
                Method::POST,
                "/auth/login",
                None,
                Some(json!({"email": format!("b{i}@example.com"), "password": PW})),
            )
            .await;
        assert_eq!(s, 200, "b{i}: {body}");
    }
    let (s, verdict) = restored
        .call(Method::GET, "/admin/audit/verify", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 200, "{verdict}");
    assert_eq!(verdict["status"], "intact", "{verdict}");
    // The sign-ups acknowledged before the backup started are all there, and those
    // during it are a prefix of them (one point in time).
    let mut present = Vec::new();
    for n in 0..signed_up {
        let (s, _) = restored
            .call(
                Method::POST,
                "/auth/login",
                None,
                Some(json!({"email": format!("load{n}@example.com"), "password": PW})),
            )
            .await;
        present.push(s == 200);
    }
    let first_missing = present.iter().position(|p| !p).unwrap_or(present.len());
    assert!(
        present[first_missing..].iter().all(|p| !p),
        "sign-ups in the backup are not a prefix: {present:?}"
    );
    restored.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_from_before_an_erasure_restores_without_the_erased_user() {
    let srv = TestServer::start("").await;
    let (kept, _) = srv.user("kept@example.com", "free").await;
    let (erased, erased_token) = srv.user("erased@example.com", "free").await;
    let (s, _) = srv
        .call(Method::GET, "/admin/backup", Some(&erased_token), None)
        .await;
    assert_eq!(s, 403, "a user may not take a backup");
    let take = |name: &str| {
        let (http, url, file) = (
            srv.http.clone(),
            format!("{}/admin/backup", srv.base),
            srv.dir().join(name),
        );
        async move {
            let bytes = http
                .get(url)
                .bearer_auth(ADMIN_KEY)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            std::fs::write(&file, &bytes).unwrap();
            file
        }
    };
    let old = take("old.backup").await;
    let (s, _) = srv
        .call(
            Method::DELETE,
            &format!("/users/{erased}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let newer = take("newer.backup").await;
    let actions = srv.audit_actions().await;
    assert!(
        actions.iter().any(|a| a == "backup_taken")
            && actions.iter().any(|a| a == "backup_started"),
        "{actions:?}"
    );

    let into = tempfile::tempdir().unwrap();
    let done = restore(
        &old,
        into.path(),
        srv.dir(),
        &["--erasures-from", &path(&newer)],
    );
    assert!(done.status.success(), "{}", text(&done));
    assert!(
        text(&done).contains("1 users erased since the backup erased again"),
        "{}",
        text(&done)
    );
    // Backups for the erasures that leave a gap longer than tombstones are kept (400
    // days by default) are refused, and nothing is written; a chain without such a gap
    // (in any order) is taken.
    let (mid, far) = (srv.dir().join("mid.backup"), srv.dir().join("far.backup"));
    later_backup(&old, 250, &mid);
    later_backup(&old, 500, &far);
    let gap = tempfile::tempdir().unwrap();
    let refused = restore(
        &old,
        gap.path(),
        srv.dir(),
        &["--erasures-from", &path(&far)],
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("500 days after")
            && text(&refused).contains("privacy.tombstone_retention_days (400)"),
        "{}",
        text(&refused)
    );
    let left: Vec<_> = std::fs::read_dir(gap.path()).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "only the master key: {left:?}");
    let chained = tempfile::tempdir().unwrap();
    let taken = restore(
        &old,
        chained.path(),
        srv.dir(),
        &[
            "--erasures-from",
            &path(&far),
            "--erasures-from",
            &path(&newer),
            "--erasures-from",
            &path(&mid),
        ],
    );
    assert!(
        taken.status.success() && text(&taken).contains("1 users erased since"),
        "{}",
        text(&taken)
    );
    // Without the newer backup the user comes back, and the command says so.
    let careless = tempfile::tempdir().unwrap();
    let back = restore(&old, careless.path(), srv.dir(), &[]);
    assert!(
        text(&back).contains("no --erasures-from given"),
        "{}",
        text(&back)
    );
    // A restore that did not finish (killed midway) leaves its marker: nothing opens it.
    assert!(!careless.path().join(roster::store::RESTORE_MARKER).exists());
    std::fs::write(careless.path().join(roster::store::RESTORE_MARKER), b"").unwrap();
    let config = crate::support::config(careless.path(), &[]);
    let refused = roster::store::open(&config.store).err().unwrap();
    assert!(refused.to_string().contains("did not finish"), "{refused}");
    srv.stop().await;

    let restored = TestServer::start_in(into, "").await;
    let (s, _) = restored
        .call(
            Method::GET,
            &format!("/users/{erased}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 404, "the erased user's profile cannot be produced");
    let (s, _) = restored
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "erased@example.com", "password": PW})),
        )
        .await;
    assert_eq!(s, 401);
    let (s, body) = restored
        .call(
            Method::GET,
            &format!("/users/{kept}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    restored.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_backup_keeps_the_newest_and_each_one_restores() {
    use roster::domain::job::JobKind;
    let srv = TestServer::start("[automation.backup]\nfolder = \"bk\"\nkeep = 2\n").await;
    let job = roster::jobs::builtin(JobKind::Backup);
    let by = roster::jobs::principal(JobKind::Backup);
    let mut names = Vec::new();
    let mut feed = crate::ws::open(&srv, "/admin/events", Some(crate::support::ADMIN_KEY)).await;
    for i in 0..3 {
        srv.user(&format!("s{i}@example.com"), "free").await;
        let report = job.run(&srv.manager, &by).await.unwrap();
        // Operators see each backup taken on their feed, with what it holds.
        let told = crate::ws::operator_frame(&mut feed, "operator.backup_taken").await;
        assert_eq!(
            told["data"]["rows"], report.counts["rows"],
            "{told} {report:?}"
        );
        assert_eq!(report.counts["removed"], u64::from(i == 2), "{report:?}");
        assert!(report.summary.contains("master key"), "{report:?}");
        srv.clock.advance(std::time::Duration::from_secs(86_400));
        let mut now: Vec<String> = std::fs::read_dir(srv.dir().join("bk"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        now.sort();
        names = now;
    }
    assert_eq!(names.len(), 2, "the newest two are kept: {names:?}");
    assert!(
        names[0] < names[1] && names[0].starts_with("roster-"),
        "{names:?}"
    );
    // The newest holds the three users.
    let into = tempfile::tempdir().unwrap();
    let newest = srv.dir().join("bk").join(&names[1]);
    let done = restore(&newest, into.path(), srv.dir(), &[]);
    assert!(text(&done).contains(": 3 users"), "{}", text(&done));
    srv.stop().await;
}
