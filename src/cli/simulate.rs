//! `roster simulate`: a seeded population with a planted truth, loaded through the import
//! endpoints (or, on a stopped data directory, the same front-door calls): users with
//! their tiers and sign-up dates, their consent to analytics, and their listening
//! history. The truth — each user's daily activity chance, lapse day and the oracle's
//! churn probability — is written to a CSV file, so a trained model can be compared
//! with the best achievable (`docs/analytics.md`).

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use super::remote::Remote;
use super::{CliError, Target};
use crate::analytics::sim::{SimConfig, SimUser, simulate};
use crate::config::Config;
use crate::domain::consent::Purpose;
use crate::domain::time::Timestamp;
use crate::engine::{ImportedUser, Principal, UserManager};

/// Users per import request.
const USERS_PER_REQUEST: usize = 200;

/// Bytes of history per import request (under the server's 32 MiB limit).
const HISTORY_BYTES_PER_REQUEST: usize = 8 << 20;

/// `roster simulate` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct SimulateArgs {
    /// A server, or a data directory.
    #[command(flatten)]
    pub target: Target,
    /// Users to create.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// The seed: the same seed makes the same population.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Sign-ups spread over this many days before today.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// The churn horizon the truth is computed for (match `analytics.churn_horizon_days`).
    #[arg(long, default_value_t = 14)]
    pub horizon_days: u32,
    /// Where to write the truth (CSV).
    #[arg(long, default_value = "simulated-truth.csv")]
    pub truth: PathBuf,
    /// The password every simulated user gets (they can log in with it).
    #[arg(long, default_value = "simulated listener password")]
    pub password: String,
}

/// What a simulation loaded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// Users created.
    pub users: usize,
    /// History events counted.
    pub events: usize,
}

/// The population as of `now` (the engine's or the server's clock), a request's worth
/// of users at a time: a large population is never held whole.
fn population(args: &SimulateArgs, now: Timestamp) -> impl Iterator<Item = Vec<SimUser>> {
    let mut users = simulate(SimConfig {
        users: args.users,
        seed: args.seed,
        now,
        days: args.days,
        horizon_days: args.horizon_days,
        keep_events: true,
    });
    std::iter::from_fn(move || {
        let chunk: Vec<SimUser> = users.by_ref().take(USERS_PER_REQUEST).collect();
        (!chunk.is_empty()).then_some(chunk)
    })
}

fn hash(password: &str, config: &Config) -> Result<String, CliError> {
    let params = crate::security::password::params(config.passwords.params)
        .map_err(|e| CliError::Failed(format!("argon2 parameters: {e}")))?;
    crate::security::password::Argon2Worker::new(params)
        .and_then(|mut w| w.hash(password))
        .map_err(|e| CliError::Failed(format!("hashing the password: {e}")))
}

fn imported(u: &SimUser, i: usize, seed: u64, phc: &str) -> ImportedUser {
    ImportedUser {
        email: format!("sim-{seed}-{i}@simulated.invalid"),
        password_hash: phc.to_owned(),
        tier: Some(u.tier),
        profile_data: None,
        created_at: Some(u.created_at),
    }
}

/// The truth file, written a row per user as they are loaded: into `FILE.partial`,
/// renamed to `FILE` once every user is in, so that a run that fails half-way leaves no
/// truth that looks whole (and none of an earlier run, which this store no longer
/// matches).
struct Truth {
    path: PathBuf,
    partial: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
}

impl Truth {
    fn create(path: &std::path::Path) -> Result<Self, CliError> {
        let failed = |p: &std::path::Path, e: std::io::Error| {
            CliError::Failed(format!("{}: {e}", p.display()))
        };
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failed(path, e)),
            _ => {}
        }
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let mut t = Self {
            path: path.to_owned(),
            file: std::io::BufWriter::new(
                std::fs::File::create(&partial).map_err(|e| failed(&partial, e))?,
            ),
            partial,
        };
        t.line(format_args!(
            "user_id,tier,created_at,daily_chance,lapse_day,churn_probability"
        ))?;
        Ok(t)
    }

    fn line(&mut self, l: std::fmt::Arguments<'_>) -> Result<(), CliError> {
        writeln!(self.file, "{l}")
            .map_err(|e| CliError::Failed(format!("{}: {e}", self.partial.display())))
    }

    fn row(&mut self, id: &str, u: &SimUser) -> Result<(), CliError> {
        let lapse = u.lapse_day.map(|d| d.to_string()).unwrap_or_default();
        let p = u
            .churn_probability
            .map(|p| format!("{p:.6}"))
            .unwrap_or_default();
        self.line(format_args!(
            "{id},{},{},{:.6},{lapse},{p}",
            u.tier, u.created_at, u.p
        ))
    }

    fn finish(mut self) -> Result<(), CliError> {
        let failed = |e: std::io::Error| CliError::Failed(format!("{}: {e}", self.path.display()));
        self.file.flush().map_err(failed)?;
        // On disk before it gets the name that says it is whole.
        self.file.get_ref().sync_all().map_err(failed)?;
        std::fs::rename(&self.partial, &self.path).map_err(failed)
    }
}

fn report(loaded: Loaded, args: &SimulateArgs) {
    println!(
        "simulated {} users (seed {}), {} history events; truth in {}",
        loaded.users,
        args.seed,
        loaded.events,
        args.truth.display()
    );
}

/// Loads a simulated population through the engine's front door (a stopped server's
/// data directory, or a bench's engine).
pub async fn load(manager: &UserManager, args: &SimulateArgs) -> Result<Loaded, CliError> {
    let by = Principal::System("simulate");
    let phc = hash(&args.password, manager.config())?;
    let mut truth = Truth::create(&args.truth)?;
    let mut loaded = Loaded::default();
    for (c, chunk) in population(args, manager.now()).enumerate() {
        let users = chunk
            .iter()
            .enumerate()
            .map(|(i, u)| imported(u, c * USERS_PER_REQUEST + i, args.seed, &phc))
            .collect();
        let created = manager.accounts().import(&by, users).await?;
        let mut lines = Vec::new();
        let mut ids = Vec::with_capacity(chunk.len());
        for (p, u) in created.into_iter().zip(&chunk) {
            let p = p?;
            ids.push(p.id);
            for events in u
                .events
                .chunks(crate::domain::activity::MAX_EVENTS_PER_IMPORT)
            {
                lines.push((p.id, events.to_vec()));
            }
            truth.row(&p.id.to_string(), u)?;
        }
        // The consents together: each is a durable write, and the writer groups them.
        let privacy = manager.privacy();
        let granted =
            futures_util::future::join_all(ids.iter().map(|id| {
                privacy.update_consents(&by, *id, vec![(Purpose::Analytics, true)], None)
            }))
            .await;
        for g in granted {
            g?;
        }
        for outcome in manager.analytics().import_history(&by, lines).await? {
            if let crate::engine::ImportOutcome::Imported { accepted, .. } = outcome? {
                loaded.events += accepted;
            }
        }
        loaded.users += chunk.len();
    }
    truth.finish()?;
    Ok(loaded)
}

pub(super) async fn offline(config: Config, args: &SimulateArgs) -> Result<(), CliError> {
    let manager = super::open_local(config).await?;
    let loaded = load(&manager, args).await;
    manager.shutdown().await?;
    report(loaded?, args);
    Ok(())
}

pub(super) async fn through_server(server: &Remote, args: &SimulateArgs) -> Result<(), CliError> {
    // The server's clock decides what "today" is.
    let live: serde_json::Value = server
        .json(reqwest::Method::GET, "/admin/analytics/live")
        .await?;
    let now = serde_json::from_value(live["at"].clone())
        .map_err(|e| CliError::Failed(format!("the server's time: {e}")))?;
    // The server checks a hash against its own parameters; the shipped defaults pass.
    let phc = hash(
        &args.password,
        &Config::load(None, &Default::default()).map_err(|e| CliError::Failed(e.to_string()))?,
    )?;
    let mut truth = Truth::create(&args.truth)?;
    let mut loaded = Loaded::default();
    for (c, chunk) in population(args, now).enumerate() {
        let users: Vec<ImportedUser> = chunk
            .iter()
            .enumerate()
            .map(|(i, u)| imported(u, c * USERS_PER_REQUEST + i, args.seed, &phc))
            .collect();
        let reply: serde_json::Value = server
            .json_with(
                reqwest::Method::POST,
                "/admin/users/import",
                &json!({ "users": users }),
            )
            .await?;
        if let Some(failed) = reply["failed"].as_array().filter(|f| !f.is_empty()) {
            return Err(CliError::Failed(format!(
                "the server refused users: {failed:?}"
            )));
        }
        let mut body = String::new();
        for (created, u) in reply["created"]
            .as_array()
            .into_iter()
            .flatten()
            .zip(&chunk)
        {
            let id = created["id"].as_str().unwrap_or_default().to_owned();
            let path = format!("/users/{id}/consents");
            server
                .json_with::<serde_json::Value>(
                    reqwest::Method::PUT,
                    &path,
                    &json!({"analytics": true}),
                )
                .await?;
            for events in u
                .events
                .chunks(crate::domain::activity::MAX_EVENTS_PER_IMPORT)
            {
                body.push_str(&json!({"user_id": id, "events": events}).to_string());
                body.push('\n');
                if body.len() > HISTORY_BYTES_PER_REQUEST {
                    loaded.events += send_history(server, std::mem::take(&mut body)).await?;
                }
            }
            truth.row(&id, u)?;
        }
        if !body.is_empty() {
            loaded.events += send_history(server, body).await?;
        }
        loaded.users += chunk.len();
        eprintln!("simulate: {} of {} users", loaded.users, args.users);
    }
    truth.finish()?;
    report(loaded, args);
    Ok(())
}

async fn send_history(server: &Remote, body: String) -> Result<usize, CliError> {
    let reply: serde_json::Value = server
        .raw(
            reqwest::Method::POST,
            "/admin/activity/import",
            "application/x-ndjson",
            body,
        )
        .await?;
    if reply["failed"].as_u64().unwrap_or(0) > 0 {
        return Err(CliError::Failed(format!(
            "history refused: {}",
            reply["results"]
        )));
    }
    Ok(reply["events"].as_u64().unwrap_or(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_truth_file_appears_only_once_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("truth.csv");
        let partial = dir.path().join("truth.csv.partial");
        std::fs::write(&path, "an earlier run's truth").unwrap();
        let unfinished = Truth::create(&path).unwrap();
        assert!(
            !path.exists(),
            "an earlier truth no longer matches the store"
        );
        drop(unfinished);
        assert!(
            !path.exists() && partial.exists(),
            "a run that stops leaves only the partial file"
        );

        let mut t = Truth::create(&path).unwrap();
        t.line(format_args!("a,row")).unwrap();
        t.finish().unwrap();
        assert!(!partial.exists());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("user_id,") && text.ends_with("a,row\n"),
            "{text}"
        );
    }
}
