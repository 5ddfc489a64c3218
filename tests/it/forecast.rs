//! The forecast on a planted trend: a population that signs up at a steady 25 users a
//! week (in fixed tier shares) is projected 13 weeks on close to the truth, and the
//! back-test's error is under its bound.

use reqwest::Method;

use roster::domain::history::{day_of, week_start};
use roster::engine::ImportedUser;
use roster::security::password::{Argon2Worker, params};

use crate::support::{ADMIN_KEY, SYS, TestServer};

const WEEKS: i64 = 40;
const PER_WEEK: i64 = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_trend_is_forecast_close_to_the_truth() {
    let srv = TestServer::start("").await;
    let m = &srv.manager;
    let phc = Argon2Worker::new(params(m.config().passwords.params).unwrap())
        .unwrap()
        .hash("correct horse battery staple")
        .unwrap();
    let tiers = ["free"; 8]
        .into_iter()
        .chain(["premium"; 5])
        .chain(["enterprise"; 2])
        .chain(["vip"]);
    let tiers: Vec<&str> = tiers.collect();
    // The 40 whole weeks before this one, calendar weeks from Monday: 25 sign-ups a week,
    // give or take 3 (a fixed pattern), spread over the week's first six days.
    let day_ms = 86_400_000;
    let week_ms = 7 * day_ms;
    let this_monday = i64::from(week_start(day_of(m.now()))) * day_ms;
    let mut users = Vec::new();
    for k in 0..WEEKS {
        let count = PER_WEEK + (k * 5) % 7 - 3;
        let monday = this_monday - (WEEKS - k) * week_ms;
        for i in 0..count {
            let at = monday + 3_600_000 + i * (6 * day_ms / count);
            let n = users.len();
            users.push(ImportedUser {
                email: format!("planted{n}@example.com"),
                password_hash: phc.clone(),
                tier: Some(tiers[n % tiers.len()].parse().unwrap()),
                profile_data: None,
                created_at: Some(roster::domain::time::Timestamp::from_millis(at)),
            });
        }
    }
    let planted = users.len() as f64;
    for chunk in users.chunks(200) {
        for r in m.accounts().import(&SYS, chunk.to_vec()).await.unwrap() {
            r.unwrap();
        }
    }
    let (s, f) = srv
        .call(
            Method::GET,
            "/admin/analytics/forecast?weeks=30&ahead=13",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(s, 200, "{f}");
    let series = |name: &str| {
        f["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no {name} series in {f}"))
            .clone()
    };
    let all = series("users");
    let history = all["history"].as_array().unwrap();
    assert_eq!(history.len(), 29, "the whole weeks of the 30");
    let last = history[28]["value"].as_f64().unwrap();
    assert_eq!(
        last, planted,
        "the last whole week ends with every planted user"
    );
    // 13 weeks on, the planted trend's value: 13 × 25 more.
    let ahead = &all["forecast"].as_array().unwrap()[12];
    let truth = last + 13.0 * PER_WEEK as f64;
    let value = ahead["value"].as_f64().unwrap();
    assert!(
        (value - truth).abs() / truth < 0.03,
        "{value} against {truth}: {ahead}"
    );
    let (low, high) = (
        ahead["low"].as_f64().unwrap(),
        ahead["high"].as_f64().unwrap(),
    );
    assert!(low < truth && truth < high, "{truth} in {ahead}");
    let bt = &all["backtest"];
    assert_eq!(bt["weeks"], 7, "a quarter of the 29 weeks held out: {bt}");
    assert!(
        bt["mape"].as_f64().unwrap() < 0.03,
        "back-test error under 3%: {bt}"
    );
    // The tier mix: Premium is 5 of every 16 sign-ups.
    let premium = series("premium");
    let p = premium["forecast"].as_array().unwrap()[12]["value"]
        .as_f64()
        .unwrap();
    let share = p / value;
    assert!(
        (share - 5.0 / 16.0).abs() < 0.02,
        "Premium's share ahead: {share} {premium}"
    );
    // Nobody consented to analytics: no monthly actives, and no percentage error of 0s.
    let mau = series("mau");
    assert!(
        mau["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["value"] == 0.0),
        "{mau}"
    );
    assert!(mau["backtest"]["mape"].is_null(), "{mau}");

    // Bad input, and a user, are refused.
    for (q, field) in [
        ("weeks=3", "weeks"),
        ("ahead=0", "ahead"),
        ("ahead=27", "ahead"),
        ("weeks=105", "weeks"),
    ] {
        let (s, p) = srv
            .call(
                Method::GET,
                &format!("/admin/analytics/forecast?{q}"),
                Some(ADMIN_KEY),
                None,
            )
            .await;
        assert_eq!((s, p["field"].as_str()), (400, Some(field)), "{q}: {p}");
    }
    let (_, token) = srv.user("curious@example.com", "vip").await;
    let (s, _) = srv
        .call(Method::GET, "/admin/analytics/forecast", Some(&token), None)
        .await;
    assert_eq!(s, 403);
    srv.stop().await;
}
