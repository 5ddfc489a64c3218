//! The `[automation]` section: the scheduler inside `roster serve` and its jobs (issue 20).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::domain::job::JobKind;
use crate::domain::schedule::Schedule;

/// The scheduler (`[automation]`).
#[derive(Debug, Clone, PartialEq)]
pub struct AutomationConfig {
    /// Whether `roster serve` runs the scheduler at all.
    pub enabled: bool,
    /// The time zone the schedules are read in (an IANA name).
    pub timezone: String,
    /// A run due while the server was down starts once at start-up if it was due at
    /// most this long ago; an older one is skipped (and logged).
    pub catch_up: Duration,
    /// Runs kept in each job's history.
    pub keep_runs: usize,
    /// SCIM provisioning.
    pub scim: ScimConfig,
    /// How often the scheduler looks at the clock when nothing wakes it (it also wakes
    /// at the next due time and when an operator asks for a run).
    pub poll: Duration,
    /// Every job with its schedule, in [`JobKind::ALL`] order.
    pub jobs: Vec<JobConfig>,
    /// Provisioning users from files and identity providers.
    pub provisioning: ProvisioningConfig,
    /// The folder jobs write their reports to (relative to the data directory unless
    /// absolute).
    pub reports: std::path::PathBuf,
    /// The scheduled backups.
    pub backup: BackupConfig,
}

/// The `backup` job's files (`[automation.backup]`).
#[derive(Debug, Clone, PartialEq)]
pub struct BackupConfig {
    /// Where they go (relative to the data directory unless absolute).
    pub folder: std::path::PathBuf,
    /// How many of the newest are kept.
    pub keep: usize,
}

/// Provisioning (`[automation.provisioning]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisioningConfig {
    /// The folder the `provisioning` job takes files from (relative to the data
    /// directory unless absolute); none: the job has nothing to do.
    pub inbox: Option<std::path::PathBuf>,
    /// How long an invitation to set a password is good for.
    pub invitation_ttl: Duration,
    /// The link an invitation email carries, the token appended.
    pub invitation_link: String,
}

/// SCIM 2.0 provisioning (`[automation.scim]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScimConfig {
    /// The identity providers that may push users, by name, each with its bearer
    /// token (`[automation.scim.clients.<name>] token`). With none, only the operator
    /// key reaches `/scim/v2`.
    pub clients: Vec<(String, super::Secret)>,
    /// Most operations one `/Bulk` request may hold.
    pub max_bulk_operations: usize,
    /// Largest `/Bulk` body, in bytes.
    pub max_bulk_payload: usize,
}

/// One job's settings (`[automation.jobs.<name>]`).
#[derive(Debug, Clone, PartialEq)]
pub struct JobConfig {
    /// The job.
    pub kind: JobKind,
    /// When it runs.
    pub schedule: Schedule,
    /// Whether the schedule starts it (an operator may run a disabled job by hand).
    pub enabled: bool,
}

impl AutomationConfig {
    /// The settings of `kind`.
    pub fn job(&self, kind: JobKind) -> Option<&JobConfig> {
        self.jobs.iter().find(|j| j.kind == kind)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAutomation {
    enabled: bool,
    timezone: String,
    catch_up: String,
    keep_runs: usize,
    poll: String,
    reports: String,
    jobs: BTreeMap<String, RawJob>,
    provisioning: RawProvisioning,
    scim: RawScim,
    backup: RawBackup,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackup {
    folder: String,
    keep: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScim {
    #[serde(default)]
    clients: BTreeMap<String, RawScimClient>,
    max_bulk_operations: usize,
    max_bulk_payload: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScimClient {
    token: String,
}

impl RawScim {
    fn validate(&self) -> Result<ScimConfig, ConfigError> {
        let mut clients = Vec::new();
        for (name, c) in &self.clients {
            let key = format!("automation.scim.clients.{name}");
            if name.is_empty()
                || name.len() > 32
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            {
                return Err(ConfigError::new(
                    key,
                    "a client's name is 1 to 32 of a-z, 0-9, _ and -",
                ));
            }
            let token = c.token.trim();
            if token.len() < 32 {
                return Err(ConfigError::new(
                    format!("{key}.token"),
                    "must be at least 32 characters (set it through the environment: ROSTER_AUTOMATION__SCIM__CLIENTS__<NAME>__TOKEN)",
                ));
            }
            if clients
                .iter()
                .any(|(_, t): &(String, super::Secret)| t.expose() == token)
            {
                return Err(ConfigError::new(
                    format!("{key}.token"),
                    "two clients have the same token",
                ));
            }
            clients.push((name.clone(), super::Secret(token.to_owned())));
        }
        if !(1..=1000).contains(&self.max_bulk_operations) {
            return Err(ConfigError::new(
                "automation.scim.max_bulk_operations",
                "must be from 1 to 1000",
            ));
        }
        if !(1024..=(16 << 20)).contains(&self.max_bulk_payload) {
            return Err(ConfigError::new(
                "automation.scim.max_bulk_payload",
                "must be from 1024 to 16777216 bytes",
            ));
        }
        Ok(ScimConfig {
            clients,
            max_bulk_operations: self.max_bulk_operations,
            max_bulk_payload: self.max_bulk_payload,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvisioning {
    inbox: String,
    invitation_ttl: String,
    invitation_link: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    schedule: String,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

pub(super) fn duration(key: &str, v: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(v).map_err(|e| {
        ConfigError::new(
            key,
            format!("{v:?} is not a duration (\"6h\", \"30s\"): {e}"),
        )
    })
}

impl RawAutomation {
    /// The section, checked: every job named is one the server has, every schedule and
    /// the zone parse.
    pub(super) fn validate(&self) -> Result<AutomationConfig, ConfigError> {
        if let Some(unknown) = self.jobs.keys().find(|n| JobKind::from_name(n).is_none()) {
            return Err(ConfigError::new(
                format!("automation.jobs.{unknown}"),
                format!("no such job; the jobs are {}", JobKind::names()),
            ));
        }
        let mut jobs = Vec::new();
        for kind in JobKind::ALL {
            let key = format!("automation.jobs.{}", kind.name());
            let raw = self
                .jobs
                .get(kind.name())
                .ok_or_else(|| ConfigError::new(&key, "missing: every job needs a schedule"))?;
            let schedule = Schedule::parse(&raw.schedule, &self.timezone).map_err(|reason| {
                let at = if reason.starts_with("unknown time zone") {
                    "automation.timezone".to_owned()
                } else {
                    format!("{key}.schedule")
                };
                ConfigError::new(at, reason)
            })?;
            jobs.push(JobConfig {
                kind,
                schedule,
                enabled: raw.enabled,
            });
        }
        let poll = duration("automation.poll", &self.poll)?;
        if poll.is_zero() || poll > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "automation.poll",
                format!("must be more than 0 and at most 1h, got {}", self.poll),
            ));
        }
        if self.keep_runs == 0 {
            return Err(ConfigError::new(
                "automation.keep_runs",
                "must be at least 1",
            ));
        }
        let p = &self.provisioning;
        let invitation_ttl = duration("automation.provisioning.invitation_ttl", &p.invitation_ttl)?;
        if invitation_ttl < Duration::from_secs(60)
            || invitation_ttl > Duration::from_secs(90 * 86_400)
        {
            return Err(ConfigError::new(
                "automation.provisioning.invitation_ttl",
                format!("must be from 1m to 90d, got {}", p.invitation_ttl),
            ));
        }
        if !(p.invitation_link.starts_with("https://") || p.invitation_link.starts_with("http://"))
        {
            return Err(ConfigError::new(
                "automation.provisioning.invitation_link",
                format!("must be an http(s) URL, got {:?}", p.invitation_link),
            ));
        }
        let provisioning = ProvisioningConfig {
            inbox: (!p.inbox.trim().is_empty()).then(|| p.inbox.trim().into()),
            invitation_ttl,
            invitation_link: p.invitation_link.clone(),
        };
        if self.reports.trim().is_empty() {
            return Err(ConfigError::new(
                "automation.reports",
                "must name a folder (relative to the data directory, or absolute)",
            ));
        }
        if self.backup.folder.trim().is_empty() {
            return Err(ConfigError::new(
                "automation.backup.folder",
                "must name a folder (relative to the data directory, or absolute)",
            ));
        }
        if !(1..=1000).contains(&self.backup.keep) {
            return Err(ConfigError::new(
                "automation.backup.keep",
                format!("must be from 1 to 1000, got {}", self.backup.keep),
            ));
        }
        Ok(AutomationConfig {
            backup: BackupConfig {
                folder: self.backup.folder.trim().into(),
                keep: self.backup.keep,
            },
            provisioning,
            reports: self.reports.trim().into(),
            scim: self.scim.validate()?,
            enabled: self.enabled,
            timezone: self.timezone.clone(),
            catch_up: duration("automation.catch_up", &self.catch_up)?,
            keep_runs: self.keep_runs,
            poll,
            jobs,
        })
    }
}
