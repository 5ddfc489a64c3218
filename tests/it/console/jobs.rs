//! The jobs view in a real browser: an operator runs a job and reads its history.

use std::time::Duration;

use fantoccini::Locator;
use reqwest::Method;

use super::browser::{Browser, console_sign_in};
use crate::support::{ADMIN_KEY, TestServer};

/// The runs of `job` the API lists, once `ready` holds of them (at most 5 s).
async fn runs_until(srv: &TestServer, job: &str, ready: impl Fn(&[serde_json::Value]) -> bool) {
    let path = format!("/admin/jobs/{job}/runs");
    for _ in 0..250 {
        let (s, r) = srv.call(Method::GET, &path, Some(ADMIN_KEY), None).await;
        assert_eq!(s, 200, "{r}");
        if ready(r.as_array().unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{job}'s runs never got there");
}

fn succeeded(n: usize) -> impl Fn(&[serde_json::Value]) -> bool {
    move |runs| runs.len() == n && runs.iter().all(|r| r["outcome"] == "succeeded")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_a_job_and_reads_its_history() {
    let srv = TestServer::start("[automation]\nenabled = true\n").await;
    let (s, body) = srv
        .call(
            Method::POST,
            "/admin/jobs/cleanup/run",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 202, "{body}");
    runs_until(&srv, "cleanup", succeeded(1)).await;

    let b = Browser::start().await;
    console_sign_in(&b, &format!("http://{}", srv.host())).await;
    b.click("nav-jobs").await;
    let history = Locator::Css("#jobs tr[data-job='cleanup'] button.history");
    b.client
        .wait()
        .for_element(history)
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let rows = "return document.querySelectorAll('#job-runs tbody tr[data-run]').length";
    assert_eq!(b.until(Duration::from_secs(5), rows, |v| v == 1).await, 1);
    let first = b.text("#job-runs tbody tr[data-run]").await;
    assert!(
        first.contains("operator") && first.contains("succeeded"),
        "{first}"
    );
    assert!(first.contains("events purged: 0"), "its counts: {first}");

    // "Run now" on the page: the open history shows the second run.
    b.client
        .find(Locator::Css(
            "#jobs tr[data-job='cleanup'] button:not(.history)",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    runs_until(&srv, "cleanup", succeeded(2)).await;
    assert_eq!(b.until(Duration::from_secs(5), rows, |v| v == 2).await, 2);
    b.screenshot("job-history").await;
    b.client.clone().close().await.unwrap();
    srv.stop().await;
}
