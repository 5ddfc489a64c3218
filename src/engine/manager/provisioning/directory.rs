//! Provisioning by an identity provider that pushes users (SCIM): the provider creates,
//! reads, searches, replaces and deactivates users by Roster's id, and keeps its own
//! id and names for them in the user's state ([`DirectoryEntry`]). The rows' rules
//! apply: the same validation, tiers, external-id index, invitations and audit.

use super::{ProvisionRow, Provisioning, check_external_id, invalid};
use crate::domain::audit::AuditAction;
use crate::domain::directory::filter::{Filter, Lookup};
use crate::domain::directory::{DirectoryEntry, DirectoryRecord, DirectoryUser};
use crate::domain::email::Email;
use crate::domain::ids::UserId;
use crate::engine::EngineError;
use crate::engine::manager::principal::Principal;
use crate::engine::shared_profile::SharedProfile;
use crate::engine::user::{BeginLogin, GetDirectory, SetDirectory, SetPassword};

/// Most users one search returns (SCIM `filter.maxResults`).
pub const MAX_DIRECTORY_PAGE: usize = 200;

/// One page of a search.
#[derive(Clone, Debug, PartialEq)]
pub struct DirectoryPage {
    /// Users matching, in all.
    pub total: usize,
    /// The page's users, in id order.
    pub users: Vec<DirectoryRecord>,
}

fn record(profile: &SharedProfile, entry: DirectoryEntry) -> DirectoryRecord {
    DirectoryRecord {
        id: profile.id,
        email: profile.email.as_str().to_owned(),
        display_name: profile.display_name.clone(),
        language: profile.language.clone(),
        timezone: profile.timezone.clone(),
        tier: profile.tier,
        created_at: profile.created_at,
        updated_at: profile.updated_at,
        entry,
    }
}

fn row_of(user: &DirectoryUser) -> ProvisionRow {
    ProvisionRow {
        email: user.email.clone(),
        tier: user.tier,
        display_name: user.display_name.clone(),
        language: user.language.clone(),
        timezone: user.timezone.clone(),
        external_id: user.external_id.clone(),
        password_hash: None,
        password: user.password.clone(),
    }
}

fn check_name(field: &'static str, v: Option<&str>) -> Result<(), EngineError> {
    match v {
        Some(n) if n.chars().count() > 128 || n.chars().any(char::is_control) => Err(invalid(
            field,
            "must be at most 128 characters of printable text",
        )),
        _ => Ok(()),
    }
}

impl Provisioning<'_> {
    /// The user as its identity provider reads it (operator or system).
    pub async fn directory_user(
        self,
        by: &Principal,
        id: UserId,
    ) -> Result<DirectoryRecord, EngineError> {
        by.privileged()?;
        let (profile, entry) = self.m.engine.call(id, GetDirectory).await?;
        Ok(record(&profile, entry))
    }

    /// Creates a user for an identity provider: refused when its email or external id
    /// names a user already ([`EngineError::EmailTaken`], [`EngineError::Conflict`]).
    /// Without a password the user is invited to set one.
    pub async fn create_directory_user(
        self,
        by: &Principal,
        user: DirectoryUser,
    ) -> Result<DirectoryRecord, EngineError> {
        by.privileged()?;
        check_external_id(user.external_id.as_deref())?;
        check_name("name.givenName", user.given_name.as_deref())?;
        check_name("name.familyName", user.family_name.as_deref())?;
        let row = row_of(&user);
        match self.existing(&row).await? {
            Some((_, true)) => {
                return Err(EngineError::Conflict(
                    "a user with this externalId exists".into(),
                ));
            }
            Some((_, false)) => return Err(EngineError::EmailTaken),
            None => {}
        }
        let entry = DirectoryEntry {
            external_id: user.external_id.clone(),
            given_name: user.given_name.clone(),
            family_name: user.family_name.clone(),
            deactivated_at: (!user.active.unwrap_or(true)).then(|| self.m.now()),
        };
        let hashing = tokio::sync::Semaphore::new(1);
        let made = self
            .create(row, by.audit_actor(), false, &hashing, Some(entry))
            .await?;
        let id = made
            .user_id
            .ok_or_else(|| EngineError::Internal("a created user without an id".into()))?;
        self.directory_user(by, id).await
    }

    /// Makes user `id` what its identity provider says (a SCIM replace): the profile's
    /// fields where given, the names and external id as given, active or not. The
    /// email cannot change, nor an external id once set; a password given replaces the
    /// user's and ends its sessions.
    pub async fn replace_directory_user(
        self,
        by: &Principal,
        id: UserId,
        user: DirectoryUser,
    ) -> Result<DirectoryRecord, EngineError> {
        by.privileged()?;
        check_external_id(user.external_id.as_deref())?;
        check_name("name.givenName", user.given_name.as_deref())?;
        check_name("name.familyName", user.family_name.as_deref())?;
        let e = &self.m.engine;
        let (profile, before) = e.call(id, GetDirectory).await?;
        let same_email = Email::parse_for_lookup(&user.email)
            .is_ok_and(|m| m.normalized() == profile.email.normalized());
        if !same_email {
            return Err(invalid(
                "userName",
                "userName cannot change: a Roster account keeps the email it was created with",
            ));
        }
        if let (Some(was), Some(now)) = (&before.external_id, &user.external_id)
            && was != now
        {
            return Err(invalid("externalId", "externalId cannot change once set"));
        }
        let active = user.active.unwrap_or(before.is_active());
        let mut row = row_of(&user);
        row.password = None;
        let profile = profile.into_inner();
        // Everything checked before anything is written: a refused request changes
        // nothing (the writes that follow are separate, each durable).
        if let Some(p) = &user.password {
            e.config.passwords.policy.check(p, &profile.email)?;
        }
        self.update(row.clone(), profile.clone(), None, true, false)
            .await?;
        let entry = DirectoryEntry {
            external_id: user.external_id.or(before.external_id.clone()),
            given_name: user.given_name,
            family_name: user.family_name,
            deactivated_at: None,
        };
        let mut changed = Vec::new();
        if before.is_active() != active {
            changed.push("active".to_owned());
        }
        if (&before.given_name, &before.family_name) != (&entry.given_name, &entry.family_name) {
            changed.push("name".to_owned());
        }
        let audit = by
            .audit_actor()
            .filter(|_| !changed.is_empty())
            .map(|a| (a, AuditAction::UserProvisioned { user: id, changed }));
        // The entry first: a deactivation takes effect before anything else.
        let msg = SetDirectory {
            entry,
            active,
            audit,
        };
        e.call_durable(id, msg).await?;
        // A user without a password is invited once active, unless one is given here.
        let invite = active && user.password.is_none();
        self.update(row, profile, by.audit_actor(), false, invite)
            .await?;
        if let Some(password) = &user.password {
            self.set_password(by, id, password).await?;
        }
        self.directory_user(by, id).await
    }

    async fn set_password(
        self,
        by: &Principal,
        id: UserId,
        password: &str,
    ) -> Result<(), EngineError> {
        let e = &self.m.engine;
        let ticket = e.call(id, BeginLogin).await?;
        let profile = self.m.user(id).profile().await?;
        let phc = self
            .m
            .hash_new_password(password, profile.email.clone())
            .await?;
        let set = SetPassword {
            expected_version: ticket.credential_version,
            password_hash: phc,
            keep: None,
        };
        match e.call_durable(id, set).await? {
            Some(_) => {
                let audit = by.audit_actor().map(|a| {
                    let changed = vec!["password".to_owned()];
                    (
                        a,
                        AuditAction::UserProvisioned { user: id, changed },
                        self.m.now(),
                    )
                });
                let ticket = e
                    .commit
                    .submit(Default::default(), audit.into_iter().collect(), None);
                crate::engine::durable::settled(e.commit.wait(&ticket).await)
            }
            None => Err(EngineError::Conflict(
                "the password changed meanwhile; try again".into(),
            )),
        }
    }

    /// The users `filter` matches (all with none), `count` of them (at most
    /// [`MAX_DIRECTORY_PAGE`]) from the `start`-th (from 0), in id order. An equality
    /// on `id`, `userName` or `externalId` is an index lookup; any other filter reads
    /// every stored record, off the request threads.
    pub async fn search_directory(
        self,
        by: &Principal,
        filter: Option<Filter>,
        start: usize,
        count: usize,
    ) -> Result<DirectoryPage, EngineError> {
        by.privileged()?;
        let count = count.min(MAX_DIRECTORY_PAGE);
        let e = &self.m.engine;
        let lookup = filter.as_ref().and_then(Filter::lookup);
        if let Some(lookup) = lookup {
            let external = match &lookup {
                Lookup::ExternalId(x) => Some(x.clone()),
                _ => None,
            };
            let id = match lookup {
                Lookup::Id(text) => text.parse::<UserId>().ok(),
                Lookup::Email(text) => match Email::parse_for_lookup(&text) {
                    Ok(m) => e.store.lookup_email(&e.keys.email_index(&m.normalized()))?,
                    Err(_) => None,
                },
                Lookup::ExternalId(x) => e.store.external_user(&e.keys.external_index(&x))?,
            };
            let found = match id {
                Some(id) => match self.directory_user(by, id).await {
                    // Found by the HMAC of the external id it was provisioned with from
                    // a file (which keeps no clear copy): that is its external id.
                    Ok(mut r) => {
                        if let (None, Some(x)) = (&r.entry.external_id, &external) {
                            r.entry.external_id = Some(x.clone());
                        }
                        Some(r)
                    }
                    Err(EngineError::NotFound) => None,
                    Err(err) => return Err(err),
                },
                None => None,
            };
            let hits: Vec<_> = found
                .into_iter()
                .filter(|r| filter.as_ref().is_none_or(|f| f.matches(r)))
                .collect();
            let total = hits.len();
            let users = hits.into_iter().skip(start).take(count).collect();
            return Ok(DirectoryPage { total, users });
        }
        // One scan at a time: each reads every record, and a provider paging through
        // the users would otherwise start a scan a page.
        static SCANS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
        let _turn = SCANS
            .acquire()
            .await
            .map_err(|_| EngineError::Unavailable)?;
        let engine = std::sync::Arc::clone(&self.m.engine);
        crate::engine::background::run("roster-directory", move || {
            engine.directory_scan(filter.as_ref(), start, count)
        })
        .await?
    }
}

impl crate::engine::Engine {
    /// The stored users `filter` matches, as [`Provisioning::search_directory`] pages
    /// them. Blocking: reads the store. Without a filter, records before the page are
    /// counted, not opened.
    fn directory_scan(
        &self,
        filter: Option<&Filter>,
        start: usize,
        count: usize,
    ) -> Result<DirectoryPage, EngineError> {
        let mut total = 0;
        let mut users = Vec::new();
        for item in self.store.scan_users_with_keys(None, None) {
            let (id, wrapped, stored) = item?;
            let wanted = total >= start && users.len() < count;
            if filter.is_none() && !wanted {
                total += 1;
                continue;
            }
            let opened = wrapped
                .ok_or_else(|| "no data key".to_owned())
                .and_then(|w| self.keys.unwrap(id, &w).map_err(|err| err.to_string()))
                .and_then(|key| {
                    crate::engine::state::decode(&stored, &key, id).map_err(|err| err.to_string())
                });
            let state = match opened {
                Ok(s) => s,
                Err(err) => {
                    tracing::error!(user = %id, %err, "a user record could not be read for a directory search");
                    continue;
                }
            };
            let entry = state.directory.as_deref().cloned().unwrap_or_default();
            let r = record(&state.profile, entry);
            if filter.is_none_or(|f| f.matches(&r)) {
                if total >= start && users.len() < count {
                    users.push(r);
                }
                total += 1;
            }
        }
        Ok(DirectoryPage { total, users })
    }
}
