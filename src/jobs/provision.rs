//! Provisioning files: CSV or JSONL rows of users, fed in batches to the front door's
//! provisioning (or a server's, through `roster provision-users --server`), with a
//! checkpoint of the rows committed, so a run killed midway resumes where it stopped,
//! and an error file naming each refused row. The rows' meaning is the engine's
//! ([`Provisioning`](crate::engine::Provisioning)); docs/automation.md has the formats.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::engine::{
    EngineError, MAX_PROVISION_BATCH, Principal, ProvisionAction, ProvisionRow, Provisioned,
    UserManager,
};

/// The columns a CSV file may have (a header row names them, in any order; `email` is
/// required).
pub const CSV_COLUMNS: [&str; 8] = [
    "email",
    "tier",
    "display_name",
    "language",
    "timezone",
    "external_id",
    "password_hash",
    "password",
];

/// One row's fate, as the provisioning answered it.
#[derive(Clone, Debug, PartialEq)]
pub enum RowOutcome {
    /// Created, updated or unchanged.
    Done(Provisioned),
    /// Refused, and why.
    Refused(String),
}

/// Where batches go: the front door here, or a server.
pub trait Sink: Send + Sync {
    /// Provisions one batch; one outcome per row, in order. `Err` when the batch as a
    /// whole failed (the server is gone, the store failed): the run stops there.
    fn provision<'a>(
        &'a self,
        rows: Vec<ProvisionRow>,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Vec<RowOutcome>, String>>;
}

/// The front door of an engine opened here, acting as `by`.
pub struct Local<'a> {
    /// The engine.
    pub manager: &'a UserManager,
    /// Who provisions.
    pub by: Principal,
}

impl Sink for Local<'_> {
    fn provision<'a>(
        &'a self,
        rows: Vec<ProvisionRow>,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Vec<RowOutcome>, String>> {
        Box::pin(async move {
            let results = self
                .manager
                .provisioning()
                .provision(&self.by, rows, dry_run)
                .await
                .map_err(|e| e.to_string())?;
            results
                .into_iter()
                .map(|r| match r {
                    Ok(p) => Ok(RowOutcome::Done(p)),
                    Err(e) if row_fault(&e) => Ok(RowOutcome::Refused(e.to_string())),
                    Err(e) => Err(e.to_string()),
                })
                .collect()
        })
    }
}

/// Whether an error is the row's own (it is refused and the run goes on) rather than
/// the engine's (the run stops, to be resumed) — the line a server draws between 4xx
/// and 5xx.
fn row_fault(e: &EngineError) -> bool {
    !matches!(
        e,
        EngineError::Overloaded
            | EngineError::Unavailable
            | EngineError::Corrupt { .. }
            | EngineError::Store(_)
            | EngineError::MasterKey(_)
            | EngineError::WrongShard(_)
            | EngineError::Internal(_)
    )
}

/// How a run goes.
#[derive(Clone, Debug)]
pub struct Options {
    /// Check every row; write and send nothing (no checkpoint either).
    pub dry_run: bool,
    /// Rows per call (1 to [`MAX_PROVISION_BATCH`]).
    pub batch: usize,
    /// Batches sent at once (1 to [`MAX_BATCHES_IN_FLIGHT`]; [`BATCHES_IN_FLIGHT`] is
    /// the default): the server overlaps their rows' work, where one batch's rows take
    /// turns with the store's writer (BENCHMARKS.md, provisioning).
    pub in_flight: usize,
    /// The checkpoint file: read at the start (rows it counts as committed are
    /// skipped), written after every batch, removed when the file is done.
    pub checkpoint: Option<PathBuf>,
    /// The error file (CSV: `row,email,reason`); appended to when resuming.
    pub errors: Option<PathBuf>,
}

/// What a run did with one file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The file.
    pub file: String,
    /// Data rows read (a header excluded), skipped ones included.
    pub rows: u64,
    /// Rows a checkpoint counted as committed by an earlier run, not sent again.
    pub resumed: u64,
    /// Users created (or that a dry run would create).
    pub created: u64,
    /// Users brought up to date.
    pub updated: u64,
    /// Users already as their row says.
    pub unchanged: u64,
    /// Invitations sent (or that a dry run would send).
    pub invited: u64,
    /// Rows refused (in the error file).
    pub refused: u64,
}

/// The checkpoint: how many rows of which file are committed. The file's size and
/// modification time tell a file changed since (re-exported, reordered) from the one
/// the rows were counted in.
#[derive(Serialize, Deserialize, PartialEq)]
struct Checkpoint {
    file: String,
    size: u64,
    modified_ms: u128,
    rows_done: u64,
}

/// The checkpoint of `path` at `rows_done` rows.
fn checkpoint_of(path: &Path, rows_done: u64) -> Result<Checkpoint, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let modified_ms = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis());
    Ok(Checkpoint {
        file: path.display().to_string(),
        size: meta.len(),
        modified_ms,
        rows_done,
    })
}

/// A row read from a file: its number (from 1, the header not counted) and the row, or
/// why it cannot be read.
type ReadRow = (u64, Option<String>, Result<ProvisionRow, String>);

/// The rows of `path`: CSV when it ends in `.csv`, JSONL (one JSON object a line) when
/// it ends in `.jsonl` or `.ndjson`. A CSV header with an unknown column is an error
/// of the whole file.
pub fn read_rows(path: &Path) -> Result<Box<dyn Iterator<Item = ReadRow> + Send>, String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match ext.as_deref() {
        Some("csv") => csv_rows(file, path),
        Some("jsonl" | "ndjson") => Ok(Box::new(jsonl_rows(file))),
        _ => Err(format!(
            "{}: the file must end in .csv, .jsonl or .ndjson",
            path.display()
        )),
    }
}

fn csv_rows(file: File, path: &Path) -> Result<Box<dyn Iterator<Item = ReadRow> + Send>, String> {
    // Headers trimmed; values below, but for the passwords, whose spaces are theirs.
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::Headers)
        .flexible(false)
        .from_reader(BufReader::new(file));
    let headers = reader
        .headers()
        .map_err(|e| format!("{}: the header row: {e}", path.display()))?
        .clone();
    if let Some(bad) = headers.iter().find(|h| !CSV_COLUMNS.contains(h)) {
        return Err(format!(
            "{}: unknown column {bad:?}; the columns are {}",
            path.display(),
            CSV_COLUMNS.join(", ")
        ));
    }
    if !headers.iter().any(|h| h == "email") {
        return Err(format!("{}: no email column", path.display()));
    }
    let rows = reader.into_records().enumerate().map(move |(i, rec)| {
        let n = i as u64 + 1;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => return (n, None, Err(format!("unreadable CSV: {e}"))),
        };
        let mut fields = serde_json::Map::new();
        for (h, v) in headers.iter().zip(rec.iter()) {
            let v = if h == "password" || h == "password_hash" {
                v
            } else {
                v.trim()
            };
            if !v.is_empty() {
                fields.insert(h.to_owned(), serde_json::Value::String(v.to_owned()));
            }
        }
        let email = fields
            .get("email")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let row = serde_json::from_value::<ProvisionRow>(serde_json::Value::Object(fields))
            .map_err(|e| e.to_string());
        (n, email, row)
    });
    Ok(Box::new(rows))
}

fn jsonl_rows(file: File) -> impl Iterator<Item = ReadRow> + Send {
    BufReader::new(file)
        .lines()
        .enumerate()
        .filter(|(_, l)| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
        .enumerate()
        .map(|(i, (_, line))| {
            let n = i as u64 + 1;
            let line = match line {
                Ok(l) => l,
                Err(e) => return (n, None, Err(format!("unreadable line: {e}"))),
            };
            let value: serde_json::Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(e) => return (n, None, Err(format!("not JSON: {e}"))),
            };
            let email = value["email"].as_str().map(str::to_owned);
            let row = serde_json::from_value::<ProvisionRow>(value).map_err(|e| e.to_string());
            (n, email, row)
        })
}

/// Batches sent at once unless told otherwise ([`Options::in_flight`]).
pub const BATCHES_IN_FLIGHT: usize = 3;

/// The most batches [`Options::in_flight`] may send at once.
pub const MAX_BATCHES_IN_FLIGHT: usize = 16;

/// A batch sent and not yet counted.
struct Sent {
    /// Each sent row's number and email.
    rows: Vec<(u64, Option<String>)>,
    /// Rows refused before sending (unreadable, not a row).
    refused: Vec<(u64, Option<String>, String)>,
    /// The file's last row in the batch: the checkpoint once it and every batch before
    /// it are counted.
    last: u64,
}

type InFlight<'a> =
    futures_util::stream::FuturesOrdered<BoxFuture<'a, (Sent, Result<Vec<RowOutcome>, String>)>>;

/// The users a row names, as the provisioning matches them.
fn names_of(row: &ProvisionRow) -> impl Iterator<Item = String> {
    let email = crate::domain::email::Email::parse(&row.email)
        .map(|e| e.normalized())
        .unwrap_or_else(|_| row.email.trim().to_lowercase());
    std::iter::once(format!("e:{email}")).chain(row.external_id.iter().map(|x| format!("x:{x}")))
}

/// Provisions the rows of `path` through `sink`, `progress` told of each batch's end
/// (rows done so far). See [`Options`] for the checkpoint and the error file. Up to
/// [`Options::in_flight`] batches are sent at once; they are counted, and the checkpoint
/// moves, in file order.
pub async fn provision_file(
    sink: &dyn Sink,
    path: &Path,
    opts: &Options,
    mut progress: impl FnMut(&Summary),
) -> Result<Summary, String> {
    use futures_util::StreamExt as _;
    let batch = opts.batch.clamp(1, MAX_PROVISION_BATCH);
    let in_flight = opts.in_flight.clamp(1, MAX_BATCHES_IN_FLIGHT);
    let name = path.display().to_string();
    let resume_from = match (&opts.checkpoint, opts.dry_run) {
        (Some(cp), false) => read_checkpoint(cp, path)?,
        _ => 0,
    };
    let mut errors = match &opts.errors {
        Some(p) => Some(open_errors(p, resume_from > 0)?),
        None => None,
    };
    let mut summary = Summary {
        file: name.clone(),
        ..Summary::default()
    };
    let mut count = |summary: &mut Summary, (sent, outcomes): (Sent, _)| -> Result<(), String> {
        let last = sent.last;
        tally(sent, outcomes, summary, errors.as_mut())?;
        if let Some(cp) = opts.checkpoint.as_ref().filter(|_| !opts.dry_run) {
            write_checkpoint(cp, path, last)?;
        }
        progress(summary);
        Ok(())
    };
    let mut flight: InFlight<'_> = futures_util::stream::FuturesOrdered::new();
    let mut names_in_flight: std::collections::VecDeque<std::collections::HashSet<String>> =
        std::collections::VecDeque::new();
    let mut pending: Vec<(u64, Option<String>, ProvisionRow)> = Vec::with_capacity(batch);
    let mut refused_here: Vec<(u64, Option<String>, String)> = Vec::new();
    let mut rows = read_rows(path)?.peekable();
    while let Some((n, email, row)) = rows.next() {
        summary.rows = n;
        if n <= resume_from {
            summary.resumed += 1;
            continue;
        }
        match row {
            Ok(r) => pending.push((n, email, r)),
            Err(why) => refused_here.push((n, email, why)),
        }
        let last_row = rows.peek().is_none();
        if pending.len() + refused_here.len() < batch && !last_row {
            continue;
        }
        // The users its rows name: a later batch naming one of them waits for it, so
        // that it updates the user instead of racing it for the email.
        let names: std::collections::HashSet<String> =
            pending.iter().flat_map(|(_, _, r)| names_of(r)).collect();
        let sent = Sent {
            rows: pending.iter().map(|(n, e, _)| (*n, e.clone())).collect(),
            refused: std::mem::take(&mut refused_here),
            last: n,
        };
        // Room in flight, and no batch in flight naming a user this one names.
        while flight.len() >= in_flight
            || names_in_flight
                .iter()
                .any(|other| !other.is_disjoint(&names))
        {
            let Some(done) = flight.next().await else {
                break;
            };
            names_in_flight.pop_front();
            count(&mut summary, done)?;
        }
        let batch_rows: Vec<ProvisionRow> = pending.drain(..).map(|(_, _, r)| r).collect();
        names_in_flight.push_back(names);
        // Handed to the sink now, in file order; it runs while the next batch is read.
        let call = (!batch_rows.is_empty()).then(|| sink.provision(batch_rows, opts.dry_run));
        flight.push_back(Box::pin(async move {
            let outcomes = match call {
                Some(call) => call.await,
                None => Ok(Vec::new()),
            };
            (sent, outcomes)
        }));
    }
    while let Some(done) = flight.next().await {
        count(&mut summary, done)?;
    }
    if let Some(cp) = opts.checkpoint.as_ref().filter(|_| !opts.dry_run) {
        match std::fs::remove_file(cp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", cp.display())),
        }
    }
    progress(&summary);
    Ok(summary)
}

/// Counts what came back for a batch and writes its refused rows (read errors and the
/// sink's refusals, in row order) to the error file.
fn tally(
    sent: Sent,
    outcomes: Result<Vec<RowOutcome>, String>,
    summary: &mut Summary,
    errors: Option<&mut csv::Writer<File>>,
) -> Result<(), String> {
    let mut refused = sent.refused;
    let outcomes = outcomes?;
    if outcomes.len() != sent.rows.len() {
        return Err(format!(
            "{} results for {} rows",
            outcomes.len(),
            sent.rows.len()
        ));
    }
    for ((n, email), outcome) in sent.rows.into_iter().zip(outcomes) {
        match outcome {
            RowOutcome::Done(p) => {
                match p.action {
                    ProvisionAction::Created => summary.created += 1,
                    ProvisionAction::Updated => summary.updated += 1,
                    ProvisionAction::Unchanged => summary.unchanged += 1,
                }
                summary.invited += u64::from(p.invited);
            }
            RowOutcome::Refused(why) => refused.push((n, email, why)),
        }
    }
    refused.sort_by_key(|(n, _, _)| *n);
    summary.refused += refused.len() as u64;
    if let Some(w) = errors {
        for (n, email, why) in &refused {
            w.write_record([n.to_string().as_str(), email.as_deref().unwrap_or(""), why])
                .map_err(|e| format!("the error file: {e}"))?;
        }
        w.flush().map_err(|e| format!("the error file: {e}"))?;
    }
    Ok(())
}

fn open_errors(path: &Path, append: bool) -> Result<csv::Writer<File>, String> {
    let exists = path.exists();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = csv::Writer::from_writer(file);
    if !(append && exists) {
        w.write_record(["row", "email", "reason"])
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(w)
}

fn read_checkpoint(cp_path: &Path, file: &Path) -> Result<u64, String> {
    let bytes = match std::fs::read(cp_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("{}: {e}", cp_path.display())),
    };
    let cp: Checkpoint = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not a checkpoint: {e}", cp_path.display()))?;
    let now = checkpoint_of(file, cp.rows_done)?;
    if cp != now {
        return Err(format!(
            "{}: the checkpoint is of {} as it was ({} bytes), not of this file; remove the checkpoint to start over",
            cp_path.display(),
            cp.file,
            cp.size
        ));
    }
    Ok(cp.rows_done)
}

/// Writes the checkpoint through a temporary file renamed over it, so a kill leaves the
/// old one or the new one, never half of one.
fn write_checkpoint(path: &Path, file: &Path, rows_done: u64) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let cp = checkpoint_of(file, rows_done)?;
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(&cp).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| format!("{}: {e}", path.display()))
}
