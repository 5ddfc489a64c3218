//! `federated`: devices taking part in a federated round. Every session's user gets the
//! consent to federated learning and turns it on; the published model and the round are
//! read over HTTP, and each device trains its update with the reference device
//! ([`crate::personalization::federated::client::Device`]) on a simulated local history
//! of 120 plays and skips that follow a planted sound model
//! ([`crate::personalization::federated::sim`]), exactly as a device would. What is
//! measured is each device sending its update once (`POST /api/v1/federated/updates`):
//! at most one request per user, so the run ends when every device has sent. The
//! report says how many updates the round holds, or that the last one published it.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::population::failed;
use super::{Client, LoadgenError, Options, measured, population, report};
use crate::personalization::federated::sim::{devices, planted};
use crate::personalization::federated::{LocalPlan, SoundModel};

/// Plays and skips of each device's local history.
const LOCAL_EVENTS: usize = 120;

fn field<T: serde::de::DeserializeOwned>(view: &Value, name: &str) -> Result<T, LoadgenError> {
    serde_json::from_value(view[name].clone())
        .map_err(|e| LoadgenError(format!("the published model's {name}: {e}")))
}

pub(super) async fn run(opts: &Options, client: &Client) -> Result<super::Report, LoadgenError> {
    let pop = population::prepare(opts, client).await?;
    let mut sessions =
        population::log_in(client, &pop, opts.sessions.max(1), None, opts.seed).await?;
    // One device per user: a second update of a user in the round is refused.
    let mut seen = HashSet::new();
    sessions.retain(|s| seen.insert(s.user));
    population::each(sessions.iter(), |s| {
        let id = pop.users[s.user].id.clone();
        async move {
            let path = format!("/api/v1/users/{id}/consents");
            let consent = client
                .request(reqwest::Method::PUT, &path, client.admin())
                .json(&json!({"federated_learning": true}));
            let (status, body) = Client::json(consent).await?;
            if status != 200 {
                return Err(failed("granting the consent", status, &body));
            }
            let path = format!("/api/v1/users/{id}");
            let on = json!({"ai_preferences": {"federated_learning_enabled": true}});
            let turn_on = client
                .request(reqwest::Method::PUT, &path, Some(&s.token))
                .json(&on);
            let (status, body) = Client::json(turn_on).await?;
            if status != 200 {
                return Err(failed("turning federated learning on", status, &body));
            }
            Ok(())
        }
    })
    .await?;
    let first = sessions
        .first()
        .ok_or_else(|| LoadgenError("no session".into()))?;
    let (status, view) = client
        .get_json("/api/v1/federated/model", Some(&first.token))
        .await?;
    if status != 200 {
        return Err(failed("reading the model", status, &view));
    }
    if view["state"] != "open" {
        return Err(LoadgenError(format!("no round is open: {}", view["state"])));
    }
    let round = view["round"]["id"].clone();
    let plan: LocalPlan = field(&view, "plan")?;
    let model: SoundModel = field(&view, "model")?;
    let local = devices(opts.seed, sessions.len(), LOCAL_EVENTS, &planted());
    let sends: Vec<(Arc<str>, Value)> = (sessions.iter().zip(&local))
        .filter_map(|(s, d)| {
            let u = d.update(&model, &plan)?;
            let body = json!({"round": round, "delta": u.delta, "examples": u.examples});
            Some((Arc::clone(&s.token), body))
        })
        .collect();
    let n = sends.len() as u64;
    let sends = Arc::new(sends);
    let mut p = opts.plan();
    p.max_requests = Some(p.max_requests.map_or(n, |m| m.min(n)));
    let c = client.clone();
    let summary = measured(opts, p, "federated", move |i| {
        let (token, body) = &sends[(i % n.max(1)) as usize];
        let r = c
            .request(
                reqwest::Method::POST,
                "/api/v1/federated/updates",
                Some(token),
            )
            .json(body);
        let c = c.clone();
        async move { c.outcome(r).await }
    })
    .await;
    let (_, status) = client
        .get_json("/api/v1/admin/federated", client.admin())
        .await?;
    let extra = json!({
        "devices": n,
        "round": round,
        "round_participants": status["round"]["participants"],
        "published_version": status["published"]["version"],
        "epsilon_spent": status["epsilon_spent"],
    });
    Ok(report(
        opts,
        pop.users.len(),
        sessions.len(),
        summary,
        extra,
    ))
}
