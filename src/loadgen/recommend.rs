//! `recommend`: `GET /users/{id}/recommendations?limit=20` as the sessions' users.
//! Before measuring it uploads a planted catalog of `--tracks` tracks
//! (`personalization::sim`, the embedding dimension the server expects), gives every
//! session's user the consents to analytics and personalisation and a simulated
//! listening history (posted as its own activity), and trains the collaborative model;
//! then each request asks for one random session's list.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use super::population::failed;
use super::{Client, LoadgenError, Options, measured, population, report};
use crate::personalization::sim::TasteSim;

/// Tracks per catalog upload (the server takes at most 10,000).
const UPLOAD_BATCH: usize = 5_000;

/// Events of each session user's simulated history (the server takes 100 a call).
const EVENTS: usize = 40;

pub(super) async fn run(opts: &Options, client: &Client) -> Result<super::Report, LoadgenError> {
    let (status, catalog) = client
        .get_json("/api/v1/admin/catalog", client.admin())
        .await?;
    if status != 200 {
        return Err(failed("reading the catalog", status, &catalog));
    }
    let dim = catalog["embedding_dim"].as_u64().unwrap_or(0) as usize;
    let pop = population::prepare(opts, client).await?;
    let sessions = population::log_in(client, &pop, opts.sessions.max(1), None, opts.seed).await?;
    // A live event may not be older than its account: every history is dated now.
    let now = client.server_time().await?;
    let at = Value::String(now.to_string());
    let sim = TasteSim {
        tracks: opts.tracks.max(1),
        genres: (opts.tracks / 330).max(3),
        artists_per_genre: 50,
        embedding_dim: dim,
        events: EVENTS,
        seed: opts.seed,
        now,
    };
    let planted = tokio::task::spawn_blocking(move || sim.catalog())
        .await
        .map_err(|e| LoadgenError(e.to_string()))?;
    for chunk in planted.tracks.chunks(UPLOAD_BATCH) {
        let body = serde_json::to_value(chunk).map_err(|e| LoadgenError(e.to_string()))?;
        let (status, answer) = client
            .post_json("/api/v1/admin/catalog/tracks", client.admin(), &body)
            .await?;
        if status != 200 {
            return Err(failed("uploading the catalog", status, &answer));
        }
    }
    // Each session's user: consents, then its listening, as its own client would send.
    let planted = Arc::new(planted);
    population::each(sessions.iter().enumerate(), |(n, s)| {
        let id = pop.users[s.user].id.clone();
        let (planted, at) = (Arc::clone(&planted), at.clone());
        async move {
            let path = format!("/api/v1/users/{id}/consents");
            let consent = client
                .request(reqwest::Method::PUT, &path, client.admin())
                .json(&json!({"analytics": true, "personalisation": true}));
            let (status, body) = Client::json(consent).await?;
            if status != 200 {
                return Err(failed("granting the consents", status, &body));
            }
            let listener = sim.listener(&planted, n);
            let mut events = serde_json::to_value(listener.history())
                .map_err(|e| LoadgenError(e.to_string()))?;
            for e in events.as_array_mut().into_iter().flatten() {
                e["at"] = at.clone();
            }
            let path = format!("/api/v1/users/{id}/activity");
            let (status, body) = client
                .post_json(&path, Some(&s.token), &json!({ "events": events }))
                .await?;
            if status != 200 {
                return Err(failed("posting the history", status, &body));
            }
            Ok(())
        }
    })
    .await?;
    let train = client.request(
        reqwest::Method::POST,
        "/api/v1/admin/recommendations/train",
        client.admin(),
    );
    let text = train
        .send()
        .await
        .map_err(|e| LoadgenError(format!("training: {e}")))?
        .text()
        .await
        .map_err(|e| LoadgenError(format!("training: {e}")))?;
    let last: Value = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    if last.get("model").is_none() {
        return Err(LoadgenError(format!("training failed: {last}")));
    }
    let sessions = Arc::new(sessions);
    let ids: Arc<Vec<String>> = Arc::new(
        sessions
            .iter()
            .map(|s| pop.users[s.user].id.clone())
            .collect(),
    );
    let (c, seed) = (client.clone(), opts.seed);
    let s2 = Arc::clone(&sessions);
    let summary = measured(opts, opts.plan(), "recommend", move |i| {
        let mut rng = StdRng::seed_from_u64(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let k = rng.random_range(0..s2.len());
        let path = format!("/api/v1/users/{}/recommendations?limit=20", ids[k]);
        let r = c.request(reqwest::Method::GET, &path, Some(&s2[k].token));
        let c = c.clone();
        async move { c.outcome(r).await }
    })
    .await;
    let extra =
        json!({"tracks": planted.tracks.len(), "embedding_dim": dim, "model": last["model"]});
    Ok(report(
        opts,
        pop.users.len(),
        sessions.len(),
        summary,
        extra,
    ))
}
