//! Federated rounds over HTTP: devices read the model, send clipped updates computed by
//! the reference device from planted local data; a non-consenting user, a stale round,
//! a second update and malformed ones are refused; withdrawing the consent drops the
//! user's update; a round short of `min_participants` publishes nothing; a full round is
//! published with its privacy spent, and rounds stop at the budget.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use roster::domain::consent::Purpose;
use roster::personalization::federated::sim::{devices, planted};
use roster::personalization::federated::{LocalPlan, SoundModel};

use crate::recommendations::{consent, listener, ok, prefs};
use crate::support::{ADMIN_KEY, TestServer};

/// min 3, max 4, one hour; a budget of ε = 2 at z = 3 and δ = 1e-6 (one round: ε(1) ≈
/// 1.81, ε(2) ≈ 2.59).
const CONFIG: &str = "[personalization.federated]\nmin_participants = 3\n\
    max_participants = 4\nepsilon_budget = 2.0\n";

async fn participant(srv: &TestServer, email: &str) -> (String, String) {
    let (id, token) = srv.user(email, "premium").await;
    consent(srv, &id, vec![(Purpose::FederatedLearning, true)]).await;
    prefs(srv, &id, json!({"federated_learning_enabled": true})).await;
    (id, token)
}

async fn model(srv: &TestServer, token: &str) -> Value {
    let (s, v) = srv
        .call(Method::GET, "/federated/model", Some(token), None)
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

fn update(round: &Value, delta: &[f32], examples: u32) -> Value {
    json!({"round": round["round"]["id"], "delta": delta, "examples": examples})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_take_consenting_clipped_updates_publish_with_their_privacy_and_stop_at_the_budget()
{
    let srv = crate::recommendations::server_with(CONFIG).await;
    // A listener whose lists weigh the tracks' sound by the published model.
    let (ear, ear_token) = listener(&srv, "ear@example.com", "premium", "advanced").await;
    let before = ok(&srv, &ear, &ear_token, "?limit=8&hour=12").await;
    assert_eq!(before["model"]["sound_version"], 0, "{}", before["model"]);
    let (s, _) = srv.call(Method::GET, "/federated/model", None, None).await;
    assert_eq!(s, 401);
    let (_, outsider) = srv.user("outsider@example.com", "premium").await;
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(participant(&srv, &format!("device{i}@example.com")).await);
    }
    let first = model(&srv, &users[0].1).await;
    assert_eq!(first["state"], "open", "{first}");
    assert_eq!(first["version"], 0);
    assert_eq!(
        first["values"],
        json!([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    );
    let plan: LocalPlan = serde_json::from_value(first["plan"].clone()).unwrap();
    let global: SoundModel = serde_json::from_value(first["model"].clone()).unwrap();
    let local = devices(11, 6, 120, &planted());
    let delta = |i: usize| local[i].update(&global, &plan).unwrap();
    let post = |token: &str, body: Value| {
        let token = token.to_owned();
        let srv = &srv;
        async move {
            srv.call(Method::POST, "/federated/updates", Some(&token), Some(body))
                .await
        }
    };

    // Refused: a user without the preference and consent, the operator (no device), bad
    // shapes.
    let u = delta(0);
    let (s, v) = post(&outsider, update(&first, &u.delta, u.examples)).await;
    assert_eq!(
        (s, v["type"].as_str()),
        (403, Some("https://roster.dev/problems/consent-required")),
        "{v}"
    );
    let (s, _) = post(ADMIN_KEY, update(&first, &u.delta, u.examples)).await;
    assert_eq!(s, 403);
    let (s, v) = post(&users[0].1, update(&first, &[0.1; 3], 10)).await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("delta"), "{v}");
    let (s, v) = post(&users[0].1, update(&first, &u.delta, 0)).await;
    assert_eq!(s, 400, "{v}");
    let stale = json!({"round": 1, "delta": u.delta, "examples": u.examples});
    let (s, v) = post(&users[0].1, stale).await;
    assert_eq!(s, 409, "{v}");

    // A round short of min_participants by its deadline publishes nothing.
    let (s, v) = post(&users[5].1, update(&first, &delta(5).delta, 50)).await;
    assert_eq!(s, 200, "{v}");
    srv.clock.advance(Duration::from_secs(3_601));
    let p = srv.manager.personalization();
    assert_eq!(p.close_due_round().await.unwrap(), None);
    let (s, status) = srv
        .call(Method::GET, "/admin/federated", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(s, 200, "{status}");
    assert_eq!(status["abandoned_since_start"], 1);
    assert_eq!(status["published"]["version"], 0);
    assert_eq!(status["epsilon_spent"], 0.0);
    let second = model(&srv, &users[0].1).await;
    assert_eq!(second["state"], "open");
    assert_ne!(second["round"]["id"], first["round"]["id"]);
    // The first round's id is now stale.
    let (s, _) = post(&users[5].1, update(&first, &delta(5).delta, 50)).await;
    assert_eq!(s, 409);

    // A huge update is clipped; a second from the same user is refused.
    let (s, v) = post(&users[0].1, update(&second, &[1e6; 9], 500)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["clipped"], true);
    assert_eq!(v["weight"], 1.0);
    let (s, _) = post(&users[0].1, update(&second, &delta(0).delta, 10)).await;
    assert_eq!(s, 409);
    // Withdrawing the consent drops the update sent, and no other is taken.
    let (s, _) = post(
        &users[1].1,
        update(&second, &delta(1).delta, delta(1).examples),
    )
    .await;
    assert_eq!(s, 200);
    consent(&srv, &users[1].0, vec![(Purpose::FederatedLearning, false)]).await;
    let (_, status) = srv
        .call(Method::GET, "/admin/federated", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status["round"]["participants"], 1, "{status}");
    // Devices are not told how many others took part.
    let open = model(&srv, &users[0].1).await;
    assert!(open["round"].get("participants").is_none(), "{open}");
    let (s, _) = post(
        &users[1].1,
        update(&second, &delta(1).delta, delta(1).examples),
    )
    .await;
    assert_eq!(s, 403);
    // Three more fill the round (max 4): it is published before the fourth's answer.
    for (i, (_, token)) in users.iter().enumerate().take(5).skip(2) {
        let u = delta(i);
        let (s, v) = post(token, update(&second, &u.delta, u.examples)).await;
        assert_eq!(s, 200, "{v}");
    }
    let (_, status) = srv
        .call(Method::GET, "/admin/federated", Some(ADMIN_KEY), None)
        .await;
    let published = &status["published"];
    assert_eq!(published["version"], 1, "{status}");
    assert_eq!(published["participants"], 4);
    // The huge one at least (an honest update may pass S = 2 too).
    assert!(published["clipped"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(published["rounds"], 1);
    assert_eq!(published["round"], second["round"]["id"]);
    // Divided by the round's capacity (4), not by who came: noise z·S/D = 3·2/4.
    assert_eq!(published["denominator"], 4.0);
    assert_eq!(published["noise_std"], 1.5);
    assert_eq!(status["rounds_published"], 1);
    let eps = status["epsilon_spent"].as_f64().unwrap();
    assert!((eps - 1.808).abs() < 0.01, "{eps}");
    let after = model(&srv, &users[0].1).await;
    assert_eq!(after["version"], 1);
    assert_ne!(after["values"], first["values"]);
    // The listener's lists now weigh the sound by the published version: the same
    // tracks score differently.
    let later = ok(&srv, &ear, &ear_token, "?limit=8&hour=12").await;
    assert_eq!(later["model"]["sound_version"], 1, "{}", later["model"]);
    let scores = |list: &Value| -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = (list["items"].as_array().unwrap().iter())
            .map(|i| {
                (
                    i["track_id"].as_str().unwrap().to_owned(),
                    i["score"].as_f64().unwrap(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let (was, now) = (scores(&before), scores(&later));
    let moved = (was.iter())
        .filter(|(t, s)| now.iter().any(|(u, n)| u == t && (n - s).abs() > 1e-6))
        .count();
    assert!(moved > 0, "{was:?} {now:?}");
    // One more round would pass the budget: rounds stop.
    assert_eq!(after["state"], "stopped", "{after}");
    assert_eq!(status["rounds_left"], 0);
    let why = status["stopped_because"].as_str().unwrap();
    assert!(why.contains("budget"), "{why}");
    let (s, v) = post(&users[5].1, update(&second, &delta(5).delta, 50)).await;
    assert_eq!(s, 409, "{v}");
    // The published version outlives a restart, and with it the privacy spent.
    let dir = srv.stop().await;
    let srv = TestServer::start_in(dir, CONFIG).await;
    let (_, status) = srv
        .call(Method::GET, "/admin/federated", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status["published"]["version"], 1, "{status}");
    assert_eq!(status["state"], "stopped");
    assert_eq!(status["epsilon_spent"].as_f64().unwrap(), eps);
}

/// The next frame of `kind` (passing over the user's events).
async fn frame_of(ws: &mut crate::ws::Ws, kind: &str) -> Value {
    for _ in 0..20 {
        let f = crate::ws::next_json(ws).await;
        if f["type"] == kind || f["type"] == "error" {
            return f;
        }
    }
    panic!("no {kind} frame");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_takes_part_over_its_socket() {
    let srv = TestServer::start(&format!("{CONFIG}[tiers.free]\nrequests_per_hour = 3\n")).await;
    let (_, token) = participant(&srv, "socket@example.com").await;
    let (_, outsider) = srv.user("outsider@example.com", "premium").await;
    let (mut ws, _) = crate::ws::subscribe(&srv, &token).await;
    crate::ws::send(&mut ws, json!({"type": "federated_model", "id": "m"})).await;
    let reply = frame_of(&mut ws, "federated_model").await;
    assert_eq!(reply["id"], "m", "{reply}");
    let view = &reply["model"];
    assert_eq!(view["state"], "open", "{view}");
    let round = view["round"]["id"].clone();
    let plan: LocalPlan = serde_json::from_value(view["plan"].clone()).unwrap();
    let global: SoundModel = serde_json::from_value(view["model"].clone()).unwrap();
    let u = devices(5, 1, 120, &planted())[0]
        .update(&global, &plan)
        .unwrap();
    let body = |delta: &[f32]| {
        json!({"type": "federated_update", "id": "u", "round": round, "delta": delta,
               "examples": u.examples})
    };
    // A malformed update: the field named.
    crate::ws::send(&mut ws, body(&[0.5; 3])).await;
    let bad = frame_of(&mut ws, "federated_update_ack").await;
    assert_eq!(
        (&bad["code"], &bad["field"]),
        (&json!("invalid_update"), &json!("delta")),
        "{bad}"
    );
    crate::ws::send(&mut ws, body(&u.delta)).await;
    let ack = frame_of(&mut ws, "federated_update_ack").await;
    assert_eq!(
        (&ack["type"], &ack["id"], &ack["round"]),
        (&json!("federated_update_ack"), &json!("u"), &round),
        "{ack}"
    );
    // One per user per round.
    crate::ws::send(&mut ws, body(&u.delta)).await;
    let again = frame_of(&mut ws, "federated_update_ack").await;
    assert_eq!(again["code"], "conflict", "{again}");
    // A user who did not turn it on is told so.
    let (mut other, _) = crate::ws::subscribe(&srv, &outsider).await;
    crate::ws::send(&mut other, body(&u.delta)).await;
    let refused = frame_of(&mut other, "federated_update_ack").await;
    assert_eq!(refused["code"], "consent_required", "{refused}");
    let (_, status) = srv
        .call(Method::GET, "/admin/federated", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status["round"]["participants"], 1, "{status}");

    // Each frame is a request, as over HTTP: counted against the tier's rate (the
    // upgrade counted one of the three).
    let (_, free) = srv.user("free@example.com", "free").await;
    let (mut ws, _) = crate::ws::subscribe(&srv, &free).await;
    for i in 0..2 {
        crate::ws::send(
            &mut ws,
            json!({"type": "federated_model", "id": i.to_string()}),
        )
        .await;
        let reply = frame_of(&mut ws, "federated_model").await;
        assert_eq!(reply["type"], "federated_model", "{reply}");
    }
    crate::ws::send(&mut ws, json!({"type": "federated_model", "id": "late"})).await;
    let limited = frame_of(&mut ws, "federated_model").await;
    assert_eq!(
        (&limited["code"], &limited["id"]),
        (&json!("rate_limited"), &json!("late")),
        "{limited}"
    );
    assert!(limited["retry_after_secs"].as_u64().unwrap() > 0);
    crate::ws::send(&mut ws, body(&u.delta)).await;
    let limited = frame_of(&mut ws, "federated_update_ack").await;
    assert_eq!(limited["code"], "rate_limited", "{limited}");
}
