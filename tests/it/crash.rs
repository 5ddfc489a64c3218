//! Crash safety: a child process creates users, logs in and revokes sessions under
//! concurrent load, printing each change only after it was acknowledged; the parent
//! kills it with SIGKILL at a random point, reopens the data directory and checks every
//! acknowledged change against that model.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use roster::domain::ids::UserId;
use roster::domain::profile::ProfilePatch;
use roster::domain::session::LoginContext;
use roster::{LoginOutcome, UserTier};

use crate::support::{PW, SYS, open};

const CHILD_ENV: &str = "ROSTER_CRASH_CHILD_DIR";
const WORKERS: usize = 8;

/// The child's workload; does nothing unless started by the parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by crash::acknowledged_changes_survive_sigkill in a child process"]
async fn child_process() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let m = open(std::path::Path::new(&dir));
    let tasks: Vec<_> = (0..WORKERS)
        .map(|w| {
            let m = m.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let email = format!("w{w}-u{i}@crash.test");
                    let tier = UserTier::ALL[i % 4];
                    let p = m
                        .create_user(&email, PW, tier, ProfilePatch::default())
                        .await
                        .unwrap();
                    println!("ACK user {} {email}", p.id);
                    let mut tokens = Vec::new();
                    for _ in 0..2 {
                        if let LoginOutcome::Success(s) = m
                            .authenticate_user(&email, PW, LoginContext::default())
                            .await
                            .unwrap()
                        {
                            println!("ACK session {} {}", p.id, s.token);
                            tokens.push(s);
                        }
                    }
                    if let Some(first) = tokens.first() {
                        // Until acknowledged, a revocation may or may not have happened.
                        println!("INTENT revoke {} {}", p.id, first.token);
                        assert!(
                            m.sessions()
                                .revoke(&SYS, p.id, first.session_id)
                                .await
                                .unwrap()
                        );
                        println!("ACK revoked {} {}", p.id, first.token);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_changes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    // Kill somewhere between a few dozen and a few hundred acknowledgements.
    let kill_after = 40 + (rand::random::<u32>() % 300) as usize;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash::child_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut users: HashMap<UserId, String> = HashMap::new();
    // Sessions acknowledged and not (about to be) revoked: these must validate.
    let mut live: HashMap<String, UserId> = HashMap::new();
    let mut revoked: Vec<String> = Vec::new();
    // Each user's first session: the child revokes it next, and may do so after the
    // last line read here (it runs on until the kill lands), so its absence is no loss.
    let mut first_session: HashMap<UserId, String> = HashMap::new();
    let mut acks = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["ACK", "user", id, email] => {
                users.insert(id.parse().unwrap(), email.to_string());
            }
            ["ACK", "session", id, token] => {
                let id: UserId = id.parse().unwrap();
                first_session.entry(id).or_insert_with(|| token.to_string());
                live.insert(token.to_string(), id);
            }
            ["INTENT", "revoke", _, token] => {
                live.remove(*token);
                continue;
            }
            ["ACK", "revoked", _, token] => {
                live.remove(*token);
                revoked.push(token.to_string());
            }
            _ => continue,
        }
        acks += 1;
        if acks >= kill_after {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        acks >= kill_after,
        "child ended early after {acks} acknowledgements"
    );

    let m = open(dir.path());
    assert_eq!(m.verify_store().corrupt, Vec::new(), "no torn records");
    for (id, email) in &users {
        let p = m
            .get_user(*id)
            .await
            .unwrap_or_else(|e| panic!("acknowledged user {email} lost: {e}"));
        assert_eq!(&p.email.as_str(), email);
    }
    for (token, id) in &live {
        let info = m.login().validate(token).await.unwrap();
        if info.is_none() && first_session.get(id) == Some(token) {
            // Revoked after the parent stopped reading: the child's next step.
            continue;
        }
        if info.as_ref().map(|i| i.user_id) != Some(*id) {
            // Enough to tell a lost write from an expired or evicted session.
            let sessions = m.sessions().list(&SYS, *id).await;
            let profile = m.get_user(*id).await.map(|p| (p.tier, p.usage.logins));
            panic!(
                "acknowledged session lost: token {token} of user {id}; stored now: \
                 {sessions:?}; (tier, logins): {profile:?}; acks read: {acks}"
            );
        }
    }
    for token in &revoked {
        assert_eq!(
            m.login().validate(token).await.unwrap(),
            None,
            "a revoked session came back"
        );
    }
    assert!(m.user_count() >= users.len());
    m.shutdown().await.unwrap();
}
