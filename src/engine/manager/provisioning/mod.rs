//! Provisioning from identity sources (issue 20): rows of a file, or of an identity
//! provider, made into users — created, or brought up to date, never twice — and the
//! invitations of users created without a password.
//!
//! A row names its user by `external_id` (the source's own id, kept as a blind index)
//! or else by email. A user that exists is updated where the row differs (tier, display
//! name, language, time zone); its password is never reset by a row. A new user gets
//! the row's PHC hash (argon2 or bcrypt, replaced at its first login), the row's
//! password (checked by the policy and hashed here), or neither: then an email invites
//! it to set one, good once and for `automation.provisioning.invitation_ttl`.

mod directory;
mod invitations;

pub use directory::{DirectoryPage, MAX_DIRECTORY_PAGE};

use serde::{Deserialize, Serialize};

use super::UserManager;
use super::principal::Principal;
use crate::domain::audit::{AuditAction, AuditActor};
use crate::domain::directory::DirectoryEntry;
use crate::domain::email::Email;
use crate::domain::ids::UserId;
use crate::domain::profile::{ProfilePatch, UserProfile};
use crate::domain::tier::UserTier;
use crate::domain::validation::ValidationError;
use crate::engine::EngineError;
use crate::security::password::NO_PASSWORD;
use crate::store::{Batch, Op};

/// Most rows one provisioning call takes.
pub const MAX_PROVISION_BATCH: usize = 1000;

/// Rows of a batch provisioned at once (most wait on the group commit).
const IN_FLIGHT: usize = 256;

/// Rows of a batch hashing a clear-text password at once: the hash pool is shared
/// with logins, and its queue refuses work beyond its length.
const HASHING_AT_ONCE: usize = 16;

/// How long a new user's invitation waits for room in the email queue.
const INVITE_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Longest external id.
const MAX_EXTERNAL_ID: usize = 256;

/// See [`UserManager::provisioning`].
#[derive(Clone, Copy)]
pub struct Provisioning<'a> {
    pub(super) m: &'a UserManager,
}

/// One user as an identity source has it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvisionRow {
    /// The email (names the user when there is no `external_id`).
    pub email: String,
    /// The tier (default Free for a new user; unchanged for one that exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<UserTier>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Language (BCP 47).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Time zone (IANA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The source's id of the user: names it across runs, whatever its email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// A PHC hash from the source (argon2, or bcrypt `$2a$`/`$2b$`/`$2y$`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// A password in clear (checked by the password policy, hashed here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// What provisioning did with a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProvisionAction {
    /// A new user (in a dry run: would be).
    Created,
    /// An existing user brought up to date.
    Updated,
    /// An existing user already as the row says.
    Unchanged,
}

/// One row's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Provisioned {
    /// The user (none for a user a dry run would create).
    pub user_id: Option<UserId>,
    /// What was done.
    pub action: ProvisionAction,
    /// The fields an update changed (or would change).
    pub changed: Vec<String>,
    /// Whether an invitation to set a password was (or would be) sent.
    pub invited: bool,
}

fn invalid(field: &'static str, why: impl Into<String>) -> EngineError {
    ValidationError::new(field, why.into()).into()
}

fn check_external_id(x: Option<&str>) -> Result<(), EngineError> {
    match x {
        Some(x)
            if x.trim().is_empty()
                || x.len() > MAX_EXTERNAL_ID
                || x.chars().any(char::is_control) =>
        {
            Err(invalid(
                "external_id",
                format!("must be 1 to {MAX_EXTERNAL_ID} bytes of printable text"),
            ))
        }
        _ => Ok(()),
    }
}

impl Provisioning<'_> {
    /// Provisions `rows` (operator or system; at most [`MAX_PROVISION_BATCH`]): each row
    /// succeeds or fails on its own, results in the order of `rows`. With `dry_run`
    /// every row is checked and nothing is written or sent. A row naming the same user
    /// as an earlier row of the batch is refused (a file's later duplicate).
    pub async fn provision(
        self,
        by: &Principal,
        rows: Vec<ProvisionRow>,
        dry_run: bool,
    ) -> Result<Vec<Result<Provisioned, EngineError>>, EngineError> {
        by.privileged()?;
        if rows.is_empty() || rows.len() > MAX_PROVISION_BATCH {
            return Err(invalid(
                "rows",
                format!("must hold 1 to {MAX_PROVISION_BATCH} rows"),
            ));
        }
        let mut seen = std::collections::HashMap::new();
        let duplicates: Vec<Option<usize>> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                // An email that does not parse is refused for that, not as a duplicate.
                let email = Email::parse_for_lookup(&r.email)
                    .ok()
                    .map(|e| e.normalized());
                let keys = [
                    email.map(|e| format!("e{e}")),
                    r.external_id.as_ref().map(|x| format!("x{x}")),
                ];
                let mut first = None;
                for k in keys.into_iter().flatten() {
                    if let Some(&j) = seen.get(&k) {
                        first = first.or(Some(j));
                    } else {
                        seen.insert(k, i);
                    }
                }
                first
            })
            .collect();
        let actor = by.audit_actor();
        let hashing = tokio::sync::Semaphore::new(HASHING_AT_ONCE);
        let hashing = &hashing;
        let jobs = rows.into_iter().zip(duplicates).map(|(row, dup)| {
            let actor = actor.clone();
            async move {
                if let Some(j) = dup {
                    return Err(invalid(
                        "email",
                        format!("names the same user as row {} of this batch", j + 1),
                    ));
                }
                self.one(row, actor, dry_run, hashing).await
            }
        });
        // A bounded number at once, fewer of them hashing.
        use futures_util::StreamExt as _;
        Ok(futures_util::stream::iter(jobs)
            .buffered(IN_FLIGHT)
            .collect()
            .await)
    }

    /// The user `row` names, if one exists, and whether its external id named it.
    async fn existing(
        self,
        row: &ProvisionRow,
    ) -> Result<Option<(UserProfile, bool)>, EngineError> {
        let e = &self.m.engine;
        if let Some(x) = &row.external_id
            && let Some(id) = e.store.external_user(&e.keys.external_index(x))?
        {
            match self.m.user(id).profile().await {
                Ok(p) => return Ok(Some((p, true))),
                // Deleted since: the index entry is stale, the row a new user.
                Err(EngineError::NotFound) => {}
                Err(err) => return Err(err),
            }
        }
        let email = Email::parse(&row.email).map_err(|e| invalid("email", e.to_string()))?;
        let Some(id) = e
            .store
            .lookup_email(&e.keys.email_index(&email.normalized()))?
        else {
            return Ok(None);
        };
        match self.m.user(id).profile().await {
            Ok(p) => Ok(Some((p, false))),
            Err(EngineError::NotFound) => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn one(
        self,
        row: ProvisionRow,
        actor: Option<AuditActor>,
        dry_run: bool,
        hashing: &tokio::sync::Semaphore,
    ) -> Result<Provisioned, EngineError> {
        check_external_id(row.external_id.as_deref())?;
        if row.password.is_some() && row.password_hash.is_some() {
            return Err(invalid(
                "password",
                "give password or password_hash, not both",
            ));
        }
        match self.existing(&row).await? {
            Some((profile, _)) => self.update(row, profile, actor, dry_run, true).await,
            None => self.create(row, actor, dry_run, hashing, None).await,
        }
    }

    async fn update(
        self,
        row: ProvisionRow,
        profile: UserProfile,
        actor: Option<AuditActor>,
        dry_run: bool,
        invite: bool,
    ) -> Result<Provisioned, EngineError> {
        let id = profile.id;
        let row_email = Email::parse_for_lookup(&row.email).map(|e| e.normalized());
        if row_email.as_deref().ok() != Some(profile.email.normalized().as_str()) {
            return Err(invalid(
                "email",
                format!(
                    "the user with this external_id has another email; provisioning does not change emails (user {id})"
                ),
            ));
        }
        let differs = |new: &Option<String>, old: &str| new.as_deref().is_some_and(|n| n != old);
        let patch = ProfilePatch {
            display_name: row
                .display_name
                .clone()
                .filter(|_| differs(&row.display_name, &profile.display_name)),
            language: row
                .language
                .clone()
                .filter(|_| differs(&row.language, &profile.language)),
            timezone: row
                .timezone
                .clone()
                .filter(|_| differs(&row.timezone, &profile.timezone)),
            ..ProfilePatch::default()
        };
        let mut changed = Vec::new();
        for (field, set) in [
            ("display_name", patch.display_name.is_some()),
            ("language", patch.language.is_some()),
            ("timezone", patch.timezone.is_some()),
        ] {
            if set {
                changed.push(field.to_owned());
            }
        }
        let tier = row.tier.filter(|t| *t != profile.tier);
        if tier.is_some() {
            changed.push("tier".into());
        }
        let e = &self.m.engine;
        let external = match &row.external_id {
            Some(x) => {
                let index = e.keys.external_index(x);
                match e.store.external_of(id)? {
                    Some(known) if known == index => None,
                    // Found by its email while its source knows it by another id: a
                    // recycled address, or two people; never merged silently.
                    Some(_) => {
                        return Err(invalid(
                            "external_id",
                            format!(
                                "the user with this email (user {id}) is known by another external_id"
                            ),
                        ));
                    }
                    None => match e.store.external_user(&index)? {
                        // Another user's: an identity provider naming one user by
                        // another's id would act on the wrong account later.
                        Some(other) if other != id && e.store.route_of(other)?.is_some() => {
                            return Err(EngineError::Conflict(format!(
                                "this external_id names another user ({other})"
                            )));
                        }
                        _ => Some(index),
                    },
                }
            }
            None => None,
        };
        if external.is_some() {
            changed.push("external_id".into());
        }
        // Created without a password and its invitation gone (expired, or never
        // queued): it is invited again, or it could never get in.
        let reinvite = invite && self.needs_invitation(id).await?;
        if reinvite {
            changed.push("invitation".into());
        }
        // A patch the profile refuses is refused in a dry run too.
        let policy = &e.config.tier(profile.tier).policy;
        patch.apply(&profile, policy, self.m.now())?;
        let action = if changed.is_empty() {
            ProvisionAction::Unchanged
        } else {
            ProvisionAction::Updated
        };
        if !dry_run && !changed.is_empty() {
            if !patch.is_empty() {
                self.m.user(id).update(patch).await?;
            }
            if let Some(tier) = tier {
                let audit = actor.clone().map(|a| {
                    let to = tier;
                    (
                        a,
                        AuditAction::TierChanged {
                            user: id,
                            to,
                            from: None,
                        },
                    )
                });
                self.m.user(id).change_tier(tier, audit).await?;
            }
            let mut batch = Batch::default();
            if let Some(index) = external {
                batch.push(Op::PutExternalId { index, user: id });
            }
            let invitation = match reinvite {
                true => Some(self.invitation(id)?),
                false => None,
            };
            if let Some((_, op, _)) = &invitation {
                batch.push(op.clone());
            }
            let audit = actor
                .map(|a| {
                    let action = AuditAction::UserProvisioned {
                        user: id,
                        changed: changed.clone(),
                    };
                    vec![(a, action, self.m.now())]
                })
                .unwrap_or_default();
            let ticket = e.commit.submit(batch, audit, None);
            crate::engine::durable::settled(e.commit.wait(&ticket).await)?;
            if let Some((token, _, expires_at)) = invitation {
                let invited = self.invite(&profile, &token, expires_at).await?;
                return Ok(Provisioned {
                    user_id: Some(id),
                    action,
                    changed,
                    invited,
                });
            }
        }
        Ok(Provisioned {
            user_id: Some(id),
            action,
            changed,
            invited: reinvite,
        })
    }

    async fn create(
        self,
        row: ProvisionRow,
        actor: Option<AuditActor>,
        dry_run: bool,
        hashing: &tokio::sync::Semaphore,
        directory: Option<DirectoryEntry>,
    ) -> Result<Provisioned, EngineError> {
        let tier = row.tier.unwrap_or(UserTier::Free);
        let patch = ProfilePatch {
            display_name: row.display_name.clone(),
            language: row.language.clone(),
            timezone: row.timezone.clone(),
            ..ProfilePatch::default()
        };
        let (email, profile) = self.m.prepare_new(&row.email, tier, &patch)?;
        let e = &self.m.engine;
        // A user created deactivated is invited once it is activated.
        let invited = row.password.is_none()
            && row.password_hash.is_none()
            && directory.as_ref().is_none_or(DirectoryEntry::is_active);
        let phc = match (&row.password_hash, &row.password) {
            (Some(h), _) => {
                crate::security::password::check_stored(h, e.config.passwords.params)
                    .map_err(|why| invalid("password_hash", why))?;
                h.clone()
            }
            (None, Some(p)) if dry_run => {
                e.config.passwords.policy.check(p, &email)?;
                String::new()
            }
            (None, Some(p)) => {
                let _turn = hashing
                    .acquire()
                    .await
                    .map_err(|_| EngineError::Unavailable)?;
                self.m.hash_new_password(p, email.clone()).await?
            }
            (None, None) => NO_PASSWORD.to_owned(),
        };
        if dry_run {
            return Ok(Provisioned {
                user_id: None,
                action: ProvisionAction::Created,
                changed: Vec::new(),
                invited,
            });
        }
        let id = profile.id;
        let mut extra = Vec::new();
        if let Some(x) = &row.external_id {
            extra.push(Op::PutExternalId {
                index: e.keys.external_index(x),
                user: id,
            });
        }
        let invitation = match invited {
            true => Some(self.invitation(id)?),
            false => None,
        };
        if let Some((_, op, _)) = &invitation {
            extra.push(op.clone());
        }
        let audit = actor.map(|a| (a, AuditAction::UserImported { user: id }));
        let profile = self
            .m
            .store_new(&email, profile, phc, audit, extra, directory)
            .await?;
        let invited = match invitation {
            Some((token, _, expires_at)) => self.invite(&profile, &token, expires_at).await?,
            None => false,
        };
        Ok(Provisioned {
            user_id: Some(id),
            action: ProvisionAction::Created,
            changed: Vec::new(),
            invited,
        })
    }
}
