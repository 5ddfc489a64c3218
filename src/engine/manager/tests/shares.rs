//! Read-only dashboard links against views in flight: a link revoked while its view
//! waits for the dashboard's report is refused; a slow report of one dashboard
//! does not hold up the links of another, and a view that waited through a save shows
//! the dashboard as saved.

use super::*;
use crate::domain::dashboard::DashboardDraft;
use crate::domain::share::ShareDraft;

/// Saves the one-panel dashboard `name` with `title`.
async fn save(m: &UserManager, name: &str, title: &str) {
    let draft: DashboardDraft = serde_json::from_value(serde_json::json!({
        "title": title,
        "panels": [{"kind": "overview"}],
    }))
    .unwrap();
    let by = Principal::System("test");
    m.ops().save_dashboard(&by, name, draft).await.unwrap();
}

/// Saves a one-panel dashboard `name` and makes a link to it: the link's id and token.
async fn shared(m: &UserManager, name: &str) -> (String, String) {
    save(m, name, "Board").await;
    let by = Principal::System("test");
    let (share, token) = m
        .ops()
        .share_dashboard(&by, name, ShareDraft::default())
        .await
        .unwrap();
    (share.id, token)
}

/// Holds the report slot of the dashboard `name`, as a computation of its report does.
fn slot(m: &UserManager, name: &str) -> Arc<crate::engine::SharedReportSlot> {
    Arc::clone(&*m.engine.shared_reports.entry(name.to_owned()).or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_revoked_while_its_view_waits_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _clock) = open(dir.path());
    let (id, token) = shared(&m, "board").await;
    assert!(m.ops().shared_report(&token).await.is_ok());

    let slot = slot(&m, "board");
    let held = slot.lock().await;
    let view = tokio::spawn({
        let (m, token) = (m.clone(), token.clone());
        async move { m.ops().shared_report(&token).await.map(|_| ()) }
    });
    // The view finds the link live and waits for the slot (or, if it is slower than
    // this, finds the link revoked): refused either way.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let by = Principal::System("test");
    m.ops().revoke_share(&by, "board", &id).await.unwrap();
    drop(held);
    let answer = view.await.unwrap();
    assert!(
        matches!(answer, Err(EngineError::Unauthenticated(_))),
        "{answer:?}"
    );
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_dashboard_busy_does_not_hold_up_the_links_of_another() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _clock) = open(dir.path());
    let (_, busy) = shared(&m, "busy").await;
    let (_, free) = shared(&m, "free").await;
    let slot = slot(&m, "busy");
    let held = slot.lock().await;
    // Answered while the other dashboard's report is being computed (the bound only
    // turns a hang into a failure).
    let free = tokio::time::timeout(Duration::from_secs(30), m.ops().shared_report(&free));
    let (report, _) = free.await.expect("held up by another dashboard").unwrap();
    assert_eq!(report.name, "free");
    let waiting = tokio::spawn({
        let m = m.clone();
        async move {
            m.ops()
                .shared_report(&busy)
                .await
                .map(|(r, _)| r.name.clone())
        }
    });
    drop(held);
    assert_eq!(waiting.await.unwrap().unwrap(), "busy");
    m.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_that_waited_through_a_save_shows_the_dashboard_as_saved() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _clock) = open(dir.path());
    let (_, token) = shared(&m, "board").await;
    let slot = slot(&m, "board");
    let held = slot.lock().await;
    let view = tokio::spawn({
        let m = m.clone();
        async move {
            m.ops()
                .shared_report(&token)
                .await
                .map(|(r, _)| r.title.clone())
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    save(&m, "board", "Board, v2").await;
    drop(held);
    assert_eq!(view.await.unwrap().unwrap(), "Board, v2");
    m.shutdown().await.unwrap();
}
