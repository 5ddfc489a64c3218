//! The `integrations` job (issue 21): links whose history is due are synced (only with
//! the consent to analytics), links whose refresh token lay unused for
//! `idle_refresh_after` are refreshed before the provider expires it, and nothing is
//! done twice for a link that is not due again.

use std::time::Duration;

use roster::domain::consent::Purpose;
use roster::domain::job::{JobKind, JobReport};
use roster::domain::time::Clock as _;

use crate::fake_provider::{self, FakeProvider};
use crate::recommendations::consent;
use crate::support::TestServer;

async fn run(srv: &TestServer) -> JobReport {
    let job = roster::jobs::builtin(JobKind::Integrations);
    let by = roster::jobs::principal(JobKind::Integrations);
    job.run(&srv.manager, &by).await.unwrap()
}

fn counts(r: &JobReport) -> (u64, u64, u64) {
    let c = |name: &str| r.counts[name];
    (c("links_synced"), c("plays_imported"), c("links_refreshed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_syncs_due_links_and_refreshes_idle_ones_once() {
    let fake = FakeProvider::start().await;
    let config = format!("{}{}", fake.config("spotify"), fake.config("discord"));
    let srv = TestServer::start(&config).await;
    let (a, a_token) = srv.user("consenting@example.com", "premium").await;
    consent(&srv, &a, vec![(Purpose::Analytics, true)]).await;
    fake_provider::link(&srv, &fake, &a, &a_token, "spotify").await;
    fake_provider::wait_synced(&srv, &a, "spotify").await;
    fake_provider::link(&srv, &fake, &a, &a_token, "discord").await;
    let (b, b_token) = srv.user("private@example.com", "premium").await;
    fake_provider::link(&srv, &fake, &b, &b_token, "spotify").await;
    let created = srv.clock.now();
    let at = |m: u64| created.plus(Duration::from_secs(60 * m)).to_string();
    let plays = [(10, "sp1"), (20, "sp2"), (30, "sp3")].map(|(m, id)| (id, at(m)));
    let plays: Vec<(&str, &str, &str, Option<&str>, &str)> = plays
        .iter()
        .map(|(id, t)| (*id, "A Song", "An Artist", None, t.as_str()))
        .collect();
    fake.set_plays(&plays);

    // Just synced at the link; the other user did not consent: nothing due.
    let r = run(&srv).await;
    assert_eq!(counts(&r), (0, 0, 0), "{r:?}");
    assert_eq!(r.counts["users_read"], 2);
    let read = fake.history_requests();

    // Past the sync interval (6 h): the consenting user's link only.
    srv.clock.advance(Duration::from_secs(7 * 3_600));
    let r = run(&srv).await;
    assert_eq!(counts(&r), (1, 3, 0), "{r:?}");
    assert_eq!(
        fake.history_requests(),
        read + 1,
        "the other user's history is not read"
    );
    let refreshed = fake.refreshes();
    assert_eq!(refreshed, 1, "the expired token was refreshed for the sync");

    // A month on: every link's refresh token has lain unused, the sync is due again.
    srv.clock.advance(Duration::from_secs(31 * 86_400));
    let r = run(&srv).await;
    assert_eq!(counts(&r), (1, 0, 3), "{r:?}");
    assert_eq!(fake.refreshes(), refreshed + 3);
    assert!(fake.reused().is_empty(), "no rotating token sent twice");
    // And nothing is due right after.
    let r = run(&srv).await;
    assert_eq!(counts(&r), (0, 0, 0), "{r:?}");
    assert_eq!(fake.refreshes(), refreshed + 3);
}
