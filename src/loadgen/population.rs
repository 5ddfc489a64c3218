//! The user population a run works on: created once through the operator import
//! endpoint (no hashing on the server), saved to a file, and reused by later runs.

use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Client, LoadgenError, Options};
use crate::domain::tier::UserTier;

/// Users per import request (the server takes at most 200).
const IMPORT_BATCH: usize = 200;

/// One prepared user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PopUser {
    /// Its id on the server.
    pub id: String,
    /// Its email.
    pub email: String,
    /// Its tier.
    pub tier: UserTier,
}

/// The prepared users, all with the same password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Population {
    /// The password of every user.
    pub password: String,
    /// argon2 cost of their hash: `cheap` or `default`.
    pub hash_cost: String,
    /// The users.
    pub users: Vec<PopUser>,
}

/// A logged-in user of the population.
#[derive(Debug, Clone)]
pub struct Session {
    /// Index into `Population::users`.
    pub user: usize,
    /// The bearer token.
    pub token: Arc<str>,
    /// `Bearer <token>`, the `Authorization` header, prepared once.
    pub authorization: reqwest::header::HeaderValue,
}

/// How expensive the population's password hash is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HashCost {
    /// argon2id with 1 MiB and 1 pass: logins cost the engine, not the hash.
    Cheap,
    /// The server's default (19 MiB, 2 passes): logins cost what real ones do.
    Default,
}

impl HashCost {
    fn params(self) -> crate::security::password::HashParams {
        let (memory_kib, iterations) = match self {
            HashCost::Cheap => (1024, 1),
            HashCost::Default => (19_456, 2),
        };
        crate::security::password::HashParams {
            memory_kib,
            iterations,
            parallelism: 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            HashCost::Cheap => "cheap",
            HashCost::Default => "default",
        }
    }
}

/// The password every prepared user gets (passes the default policy).
const PASSWORD: &str = "loadgen correct horse battery staple";

/// Loads the population from `opts.population` if that file exists (checking its first
/// user is on the server), or creates `opts.users` users and saves them there.
pub async fn prepare(opts: &Options, client: &Client) -> Result<Population, LoadgenError> {
    if let Some(path) = &opts.population
        && path.exists()
    {
        let pop = load(path)?;
        if pop.users.len() < opts.users {
            return Err(LoadgenError(format!(
                "{} holds {} users, {} asked for; delete it to prepare a new one",
                path.display(),
                pop.users.len(),
                opts.users
            )));
        }
        if let Some(first) = pop.users.first() {
            let (status, _) = client
                .get_json(&format!("/api/v1/users/{}", first.id), client.admin())
                .await?;
            if status != 200 {
                return Err(LoadgenError(format!(
                    "{}: its users are not on this server (GET user: {status}); delete it",
                    path.display()
                )));
            }
        }
        return Ok(pop);
    }
    let pop = create(opts, client).await?;
    if let Some(path) = &opts.population {
        let text = serde_json::to_vec(&pop).map_err(|e| LoadgenError(e.to_string()))?;
        std::fs::write(path, text)
            .map_err(|e| LoadgenError(format!("writing {}: {e}", path.display())))?;
    }
    Ok(pop)
}

fn load(path: &Path) -> Result<Population, LoadgenError> {
    let text = std::fs::read(path)
        .map_err(|e| LoadgenError(format!("reading {}: {e}", path.display())))?;
    serde_json::from_slice(&text)
        .map_err(|e| LoadgenError(format!("{} is not a population file: {e}", path.display())))
}

async fn create(opts: &Options, client: &Client) -> Result<Population, LoadgenError> {
    let params = opts.hash.params();
    let phc = tokio::task::spawn_blocking(move || {
        use crate::security::password::{Argon2Worker, params as argon2_params};
        let fail = |e: crate::security::password::PoolError| LoadgenError(e.to_string());
        Argon2Worker::new(argon2_params(params).map_err(fail)?)
            .and_then(|mut w| w.hash(PASSWORD))
            .map_err(fail)
    })
    .await
    .map_err(|e| LoadgenError(e.to_string()))??;
    let tiers = if opts.tiers.is_empty() {
        vec![UserTier::Premium]
    } else {
        opts.tiers.clone()
    };
    let run = format!("{:x}", opts.seed ^ rand::random::<u64>());
    let users: Vec<(String, UserTier)> = (0..opts.users)
        .map(|i| {
            (
                format!("lg{run}-{i}@loadgen.example"),
                tiers[i % tiers.len()],
            )
        })
        .collect();
    let batches: Vec<Vec<(String, UserTier)>> =
        users.chunks(IMPORT_BATCH).map(<[_]>::to_vec).collect();
    let total = batches.len();
    let mut done = 0usize;
    let mut out = Vec::with_capacity(opts.users);
    let mut results = futures_util::stream::iter(batches)
        .map(|batch| import(client, batch, &phc))
        .buffered(4);
    while let Some(r) = results.next().await {
        out.extend(r?);
        done += 1;
        if opts.progress && (done.is_multiple_of(50) || done == total) {
            eprint!("\rpreparing users: {} / {}   ", out.len(), opts.users);
        }
    }
    if opts.progress {
        eprintln!();
    }
    Ok(Population {
        password: PASSWORD.to_owned(),
        hash_cost: opts.hash.name().to_owned(),
        users: out,
    })
}

async fn import(
    client: &Client,
    batch: Vec<(String, UserTier)>,
    phc: &str,
) -> Result<Vec<PopUser>, LoadgenError> {
    // Load-test users log in with a password alone: second factors are a per-login
    // cost this generator does not model (a zero-trust tier still challenges them).
    let body = json!({"users": batch.iter().map(|(email, tier)| json!({
        "email": email, "password_hash": phc, "tier": tier,
        "profile_data": {"security_settings": {"require_mfa": false}},
    })).collect::<Vec<_>>()});
    let (status, reply) = client
        .post_json("/api/v1/admin/users/import", client.admin(), &body)
        .await?;
    if status != 200 {
        return Err(LoadgenError(format!("import refused ({status}): {reply}")));
    }
    if let Some(f) = reply["failed"].as_array().and_then(|f| f.first()) {
        return Err(LoadgenError(format!("import failed for a user: {f}")));
    }
    let created = reply["created"].as_array().cloned().unwrap_or_default();
    created
        .iter()
        .map(|c| {
            let i = c["index"].as_u64().unwrap_or(u64::MAX) as usize;
            let (email, tier) = batch
                .get(i)
                .ok_or_else(|| LoadgenError(format!("import reply names index {i}")))?;
            Ok(PopUser {
                id: c["id"].as_str().unwrap_or_default().to_owned(),
                email: email.clone(),
                tier: *tier,
            })
        })
        .collect()
}

/// Logs in `count` users drawn (seeded) from the population, `per_user` sessions each,
/// optionally only users of `tier`.
pub(crate) async fn log_in(
    client: &Client,
    pop: &Population,
    count: usize,
    tier: Option<UserTier>,
    seed: u64,
) -> Result<Vec<Session>, LoadgenError> {
    let candidates: Vec<usize> = (0..pop.users.len())
        .filter(|&i| tier.is_none_or(|t| pop.users[i].tier == t))
        .collect();
    if candidates.is_empty() {
        return Err(LoadgenError(format!(
            "the population has no {} users",
            tier.map_or("", UserTier::as_str)
        )));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let picks = rand::seq::index::sample(&mut rng, candidates.len(), count.min(candidates.len()));
    let chosen: Vec<usize> = picks.into_iter().map(|k| candidates[k]).collect();
    let mut sessions = Vec::with_capacity(chosen.len());
    let mut results = futures_util::stream::iter(chosen)
        .map(|u| async move {
            let body = json!({"email": pop.users[u].email, "password": pop.password});
            let (status, reply) = client
                .post_json("/api/v1/auth/login", client.admin(), &body)
                .await?;
            match reply["token"].as_str() {
                Some(t) if status == 200 => Ok(Session {
                    user: u,
                    token: Arc::from(t),
                    authorization: reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
                        .map_err(|_| {
                        LoadgenError(format!(
                            "the server sent a token that is not a header value: {t:?}"
                        ))
                    })?,
                }),
                _ if status == 202 => Err(LoadgenError(format!(
                    "the server asks {} users for a second factor ({}); run load tests \
                     against a server with that tier's zero trust off, e.g. \
                     ROSTER_TIERS__{}__ZERO_TRUST=false",
                    pop.users[u].tier,
                    reply["reason"],
                    pop.users[u].tier.as_str().to_uppercase()
                ))),
                _ => Err(LoadgenError(format!(
                    "login of a prepared user: {status} {reply}"
                ))),
            }
        })
        .buffer_unordered(32);
    while let Some(s) = results.next().await {
        sessions.push(s?);
    }
    Ok(sessions)
}

/// Runs `step` on every item, 32 at a time (a set-up step per session user, as its own
/// client would make it); the first failure is the answer.
pub(super) async fn each<I, F, Fut>(items: I, step: F) -> Result<(), LoadgenError>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: std::future::Future<Output = Result<(), LoadgenError>>,
{
    let results: Vec<_> = futures_util::stream::iter(items)
        .map(step)
        .buffer_unordered(32)
        .collect()
        .await;
    results.into_iter().collect()
}

/// A set-up call the server refused: what it was, the status and the body.
pub(super) fn failed(what: &str, status: u16, body: &serde_json::Value) -> LoadgenError {
    LoadgenError(format!("{what}: {status} {body}"))
}
