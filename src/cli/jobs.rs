//! `roster cleanup` and `roster run-all`: the scheduler's jobs run now, in order, each
//! reported, a failed one not stopping the next. Through a running server (`--server`)
//! each is asked of its scheduler (`POST /admin/jobs/{name}/run`) and waited for, so it
//! is recorded in the job history like a scheduled run; on a stopped data directory
//! each runs here as its job's system principal.

use std::time::Duration;

use serde_json::Value;

use super::remote::Remote;
use super::{CliError, Target};
use crate::config::Config;
use crate::domain::job::JobKind;

/// `roster cleanup` and `roster run-all` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct JobsArgs {
    /// A server, or a data directory.
    #[command(flatten)]
    pub target: Target,
    /// Also write the runs as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// No progress bar or lines.
    #[arg(long)]
    pub quiet: bool,
}

/// How often a server's job is looked at while it runs.
const POLL: Duration = Duration::from_millis(250);

/// The jobs' progress: on a terminal a bar over them (the job running, the time so
/// far), else a line on standard error as each starts; nothing with `--quiet`.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
}

impl Progress {
    fn new(jobs: usize, quiet: bool) -> Self {
        use std::io::IsTerminal as _;
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = super::bar(
                jobs as u64,
                "[{bar:20}] {pos}/{len} jobs, {elapsed} — {msg}",
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress { bar, quiet }
    }

    /// `job` has begun (`how`: where it runs).
    fn start(&self, job: &str, how: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("{job}: {how}")),
            None if !self.quiet => eprintln!("{job}: {how}"),
            None => {}
        }
    }

    /// `job` still runs after `secs` (said every ten seconds without a bar, whose own
    /// clock shows it).
    fn still(&self, job: &str, secs: u64) {
        if self.bar.is_none() && !self.quiet {
            eprintln!("{job}: still running after {secs} s");
        }
    }

    /// A job ended: said above the bar, which moves on.
    fn ended(&self, ran: &Ran) {
        if let Some(bar) = &self.bar {
            bar.println(format!("{}: {}", ran.job, ran.outcome));
            bar.inc(1);
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// One job's end, as printed and written.
#[derive(serde::Serialize)]
struct Ran {
    job: &'static str,
    outcome: String,
    message: String,
    counts: serde_json::Map<String, Value>,
}

fn finish(ran: &[Ran], args: &JobsArgs) -> Result<(), CliError> {
    for r in ran {
        println!("{}: {} — {}", r.job, r.outcome, r.message);
    }
    if let Some(path) = &args.json {
        let text =
            serde_json::to_string_pretty(ran).map_err(|e| CliError::Failed(e.to_string()))?;
        std::fs::write(path, text)
            .map_err(|e| CliError::Failed(format!("writing {}: {e}", path.display())))?;
    }
    let failed: Vec<&str> = ran
        .iter()
        .filter(|r| r.outcome != "succeeded")
        .map(|r| r.job)
        .collect();
    match failed.as_slice() {
        [] => Ok(()),
        f => Err(CliError::Failed(format!(
            "{} of {} jobs did not succeed: {}",
            f.len(),
            ran.len(),
            f.join(", ")
        ))),
    }
}

/// Runs `kinds` in order on the stopped store of `config`.
pub(super) async fn offline(
    config: Config,
    kinds: &[JobKind],
    args: &JobsArgs,
) -> Result<(), CliError> {
    let manager = super::open_local(config).await?;
    let progress = Progress::new(kinds.len(), args.quiet);
    let mut ran = Vec::new();
    for &kind in kinds {
        progress.start(kind.name(), "running");
        let job = crate::jobs::builtin(kind);
        let by = crate::jobs::principal(kind);
        let r = match job.run(&manager, &by).await {
            Ok(report) => Ran {
                job: kind.name(),
                outcome: "succeeded".into(),
                message: report.summary,
                counts: report
                    .counts
                    .into_iter()
                    .map(|(k, v)| (k, Value::from(v)))
                    .collect(),
            },
            Err(why) => Ran {
                job: kind.name(),
                outcome: "failed".into(),
                message: why,
                counts: serde_json::Map::new(),
            },
        };
        progress.ended(&r);
        ran.push(r);
    }
    progress.finish();
    manager.shutdown().await?;
    finish(&ran, args)
}

/// The job `name` as `GET /admin/jobs` lists it.
async fn status(server: &Remote, name: &str) -> Result<Value, CliError> {
    let view: Value = server.json(reqwest::Method::GET, "/admin/jobs").await?;
    view["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["name"] == name))
        .cloned()
        .ok_or_else(|| CliError::Failed(format!("the server has no job {name}")))
}

/// Asks the server's scheduler for `kind` and waits for that run's end.
async fn remote_one(server: &Remote, kind: JobKind, progress: &Progress) -> Result<Ran, CliError> {
    let name = kind.name();
    let before = status(server, name).await?["last_run"]["run"]
        .as_u64()
        .unwrap_or(0);
    server
        .send(reqwest::Method::POST, &format!("/admin/jobs/{name}/run"))
        .await?;
    let mut waited = Duration::ZERO;
    loop {
        tokio::time::sleep(POLL).await;
        waited += POLL;
        let s = status(server, name).await?;
        let last = &s["last_run"];
        if last["run"].as_u64().unwrap_or(0) > before && s["running"].is_null() {
            return Ok(Ran {
                job: name,
                outcome: last["outcome"].as_str().unwrap_or("unknown").to_owned(),
                message: last["message"].as_str().unwrap_or_default().to_owned(),
                counts: last["counts"].as_object().cloned().unwrap_or_default(),
            });
        }
        if waited.as_secs() > 0 && waited.as_millis().is_multiple_of(10_000) {
            progress.still(name, waited.as_secs());
        }
    }
}

/// Runs `kinds` in order through `server`'s scheduler.
pub(super) async fn through_server(
    server: &Remote,
    kinds: &[JobKind],
    args: &JobsArgs,
) -> Result<(), CliError> {
    let progress = Progress::new(kinds.len(), args.quiet);
    let mut ran = Vec::new();
    for &kind in kinds {
        progress.start(kind.name(), "asked of the server");
        let r = match remote_one(server, kind, &progress).await {
            Ok(r) => r,
            // Refused (already running, no scheduler) or unreachable: reported, and the
            // next job still runs.
            Err(e) => Ran {
                job: kind.name(),
                outcome: "failed".into(),
                message: e.to_string(),
                counts: serde_json::Map::new(),
            },
        };
        progress.ended(&r);
        ran.push(r);
    }
    progress.finish();
    finish(&ran, args)
}
