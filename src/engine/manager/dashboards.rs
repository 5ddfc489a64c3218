//! Custom dashboards: operators save, list, open and delete them by name, and make and
//! revoke read-only links to them (audited, durable when the call returns). Each is one
//! record in the store, its links with it, so a dashboard saved is there after a
//! restart and in every backup.

use super::Ops;
use super::principal::Principal;
use crate::domain::audit::AuditAction;
use crate::domain::dashboard::{Dashboard, DashboardDraft, MAX_DASHBOARDS, check_name};
use crate::domain::share::{MAX_SHARES, Share, ShareDraft};
use crate::engine::EngineError;
use crate::engine::durable::settled;
use crate::store::{Batch, Op};

pub(super) fn decode(name: &str, record: &[u8]) -> Result<Dashboard, EngineError> {
    serde_json::from_slice(record)
        .map_err(|err| EngineError::Internal(format!("dashboard {name:?} does not read: {err}")))
}

impl Ops<'_> {
    /// Every saved dashboard, by name (operators and the system).
    pub fn dashboards(self, by: &Principal) -> Result<Vec<Dashboard>, EngineError> {
        by.privileged()?;
        let rows = self.m.engine.store.dashboards()?;
        rows.iter().map(|(name, r)| decode(name, r)).collect()
    }

    /// The dashboard saved as `name` (operators and the system).
    pub fn dashboard(self, by: &Principal, name: &str) -> Result<Dashboard, EngineError> {
        by.privileged()?;
        check_name(name)?;
        let record = self.m.engine.store.dashboard(name)?;
        let record = record.ok_or(EngineError::NotFound)?;
        decode(name, &record)
    }

    /// Saves `draft` as `name`, replacing the dashboard of that name (operators and the
    /// system; audited): the dashboard, and whether it is new. At most
    /// [`MAX_DASHBOARDS`] are kept.
    pub async fn save_dashboard(
        self,
        by: &Principal,
        name: &str,
        draft: DashboardDraft,
    ) -> Result<(Dashboard, bool), EngineError> {
        by.privileged()?;
        check_name(name)?;
        draft.check()?;
        let e = &self.m.engine;
        let _writing = e.dashboard_writes.lock().await;
        let previous = match e.store.dashboard(name)? {
            Some(r) => Some(decode(name, &r)?),
            None => None,
        };
        if previous.is_none() && e.store.dashboards()?.len() >= MAX_DASHBOARDS {
            return Err(EngineError::Conflict(format!(
                "{MAX_DASHBOARDS} dashboards are saved already: delete one first"
            )));
        }
        let dashboard = draft.into_dashboard(name.to_owned(), self.m.now(), previous.as_ref());
        let action = AuditAction::DashboardSaved {
            name: name.to_owned(),
        };
        self.write(by, &dashboard, action).await?;
        Ok((dashboard, previous.is_none()))
    }

    /// Writes `dashboard` with `action` on record, durable when it returns.
    async fn write(
        self,
        by: &Principal,
        dashboard: &Dashboard,
        action: AuditAction,
    ) -> Result<(), EngineError> {
        let e = &self.m.engine;
        let record = serde_json::to_vec(dashboard)
            .map_err(|err| EngineError::Internal(format!("dashboard: {err}")))?;
        let audit = by.audit_actor().map(|a| (a, action, self.m.now()));
        let op = Op::PutDashboard {
            name: dashboard.name.clone(),
            record,
        };
        let ticket = e
            .commit
            .submit(Batch::of(op), audit.into_iter().collect(), None);
        settled(e.commit.wait(&ticket).await)
    }

    /// Makes a read-only link to the dashboard `name` (operators and the system;
    /// audited): the link, and its token — shown this once, only its digest is kept. At
    /// most [`MAX_SHARES`] live links per dashboard; expired ones are dropped here.
    pub async fn share_dashboard(
        self,
        by: &Principal,
        name: &str,
        draft: ShareDraft,
    ) -> Result<(Share, String), EngineError> {
        by.privileged()?;
        check_name(name)?;
        let now = self.m.now();
        let (share, token) = draft.issue(now)?;
        let e = &self.m.engine;
        let _writing = e.dashboard_writes.lock().await;
        let record = e.store.dashboard(name)?.ok_or(EngineError::NotFound)?;
        let mut dashboard = decode(name, &record)?;
        dashboard.shares.retain(|s| s.live(now));
        if dashboard.shares.len() >= MAX_SHARES {
            return Err(EngineError::Conflict(format!(
                "this dashboard has {MAX_SHARES} live links already: revoke one first"
            )));
        }
        dashboard.shares.push(share.clone());
        let action = AuditAction::DashboardShared {
            name: name.to_owned(),
            share: share.id.clone(),
            expires_at: share.expires_at,
        };
        self.write(by, &dashboard, action).await?;
        Ok((share, token))
    }

    /// Revokes the read-only link `id` of the dashboard `name` (operators and the
    /// system; audited): it opens nothing from now on. `NotFound` if there is none.
    pub async fn revoke_share(
        self,
        by: &Principal,
        name: &str,
        id: &str,
    ) -> Result<(), EngineError> {
        by.privileged()?;
        check_name(name)?;
        let e = &self.m.engine;
        let _writing = e.dashboard_writes.lock().await;
        let record = e.store.dashboard(name)?.ok_or(EngineError::NotFound)?;
        let mut dashboard = decode(name, &record)?;
        let before = dashboard.shares.len();
        dashboard.shares.retain(|s| s.id != id);
        if dashboard.shares.len() == before {
            return Err(EngineError::NoSuch("link"));
        }
        let now = self.m.now();
        dashboard.shares.retain(|s| s.live(now));
        let action = AuditAction::DashboardShareRevoked {
            name: name.to_owned(),
            share: id.to_owned(),
        };
        // Every view checks its token against the stored links first, so the link is
        // refused from the commit on, whatever report was computed for it.
        self.write(by, &dashboard, action).await
    }

    /// Deletes the dashboard `name` (operators and the system; audited); `NotFound` if
    /// there is none.
    pub async fn delete_dashboard(self, by: &Principal, name: &str) -> Result<(), EngineError> {
        by.privileged()?;
        check_name(name)?;
        let e = &self.m.engine;
        let _writing = e.dashboard_writes.lock().await;
        if e.store.dashboard(name)?.is_none() {
            return Err(EngineError::NotFound);
        }
        let audit = by.audit_actor().map(|a| {
            let action = AuditAction::DashboardDeleted {
                name: name.to_owned(),
            };
            (a, action, self.m.now())
        });
        let op = Op::DropDashboard {
            name: name.to_owned(),
        };
        let ticket = e
            .commit
            .submit(Batch::of(op), audit.into_iter().collect(), None);
        settled(e.commit.wait(&ticket).await)?;
        // Its links opened nothing from the commit on; what they were last shown goes.
        e.shared_reports.remove(name);
        Ok(())
    }
}
