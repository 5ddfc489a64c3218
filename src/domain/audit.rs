//! The audit log's vocabulary: who did what to whom. Plain data; the chained records
//! that carry it are the store's business (`store::audit`).

use serde::{Deserialize, Serialize};

use super::consent::Purpose;
use super::ids::UserId;
use super::job::{Outcome, Trigger};
use super::tier::UserTier;

/// Who did it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditActor {
    /// Whoever holds the operator key.
    Operator,
    /// A user acting on its own account.
    User {
        /// The user.
        id: UserId,
    },
    /// The engine's own work or trusted code embedding it (a scheduled job, a command
    /// run on a stopped store, the library's seed-named calls).
    System {
        /// Which job.
        job: String,
    },
    /// Someone who showed no valid credential (a refused sign-in); the action says
    /// from where.
    Anonymous,
}

/// What was done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuditAction {
    /// A user was moved to another tier.
    TierChanged {
        /// The user.
        user: UserId,
        /// The tier now.
        to: UserTier,
        /// The tier before (absent in records of earlier builds).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<UserTier>,
    },
    /// A user was deleted.
    UserDeleted {
        /// The user.
        user: UserId,
    },
    /// An operator read a user's data.
    UserRead {
        /// The user.
        user: UserId,
        /// What was read (`profile`, `insights`, `sessions`).
        what: String,
    },
    /// Users were created by a bulk import (records of earlier builds; a user created
    /// by an import is now recorded on its own, as [`AuditAction::UserImported`]).
    UsersImported {
        /// How many.
        count: u64,
    },
    /// A user was created by a bulk import, from an existing password hash.
    UserImported {
        /// The user.
        user: UserId,
    },
    /// Activity history was imported for a user (a migration, an integration's sync).
    HistoryImported {
        /// The user.
        user: UserId,
        /// New events counted.
        events: u64,
    },
    /// Catalog tracks were uploaded (new or replacing those of their ids).
    CatalogTracksPut {
        /// Tracks in the upload.
        tracks: u64,
    },
    /// A catalog track was removed.
    CatalogTrackDeleted {
        /// Its id.
        track: String,
    },
    /// A user's data was exported.
    DataExported {
        /// The user.
        user: UserId,
    },
    /// An operator removed a user's authenticator (a support reset).
    MfaReset {
        /// The user.
        user: UserId,
    },
    /// A consent was granted or withdrawn.
    ConsentChanged {
        /// The user.
        user: UserId,
        /// The purpose.
        purpose: Purpose,
        /// Granted (`true`) or withdrawn.
        granted: bool,
    },
    /// An operator recorded a verified parental consent.
    ParentalConsentRecorded {
        /// The user.
        user: UserId,
    },
    /// The master key was rotated: every data key rewrapped.
    MasterKeyRotated {
        /// The retired key's fingerprint.
        from: String,
        /// The new key's fingerprint.
        to: String,
        /// Data keys rewrapped.
        data_keys: u64,
    },
    /// A scheduled job ran (its actor is the job's system principal).
    JobRan {
        /// The job.
        job: String,
        /// Its run's number.
        run: u64,
        /// Why it started.
        trigger: Trigger,
        /// How it ended.
        outcome: Outcome,
    },
    /// An operator asked for a run of a job.
    JobRequested {
        /// The job.
        job: String,
    },
    /// Provisioning changed an existing user to match its identity source.
    UserProvisioned {
        /// The user.
        user: UserId,
        /// The fields changed (`tier`, `display_name`, `language`, `timezone`,
        /// `external_id`).
        changed: Vec<String>,
    },
    /// An invited user set its password through the invitation.
    InvitationAccepted {
        /// The user.
        user: UserId,
    },
    /// An operator ended the sessions a selector names (recorded before any ends).
    SessionsRevokedInBulk {
        /// The selector.
        selector: crate::domain::revocation::SessionSelector,
    },
    /// An operator began an export of the security events of a window (for a SIEM);
    /// recorded before anything is read.
    SecurityEventsExported {
        /// From.
        from: super::time::Timestamp,
        /// To.
        to: super::time::Timestamp,
    },
    /// A backup of the store began (recorded before anything is read, so a download cut
    /// short is on record too).
    BackupStarted,
    /// A backup of the store was written (the record is after the backup's point in
    /// time, so the backup it names does not hold it).
    BackupTaken {
        /// Rows of its scan.
        rows: u64,
        /// Writes made during the scan, replayed by a restore.
        changes: u64,
        /// The file's size.
        bytes: u64,
        /// The audit log's length at its point in time.
        audit_records: u64,
    },
    /// An operator locked, unlocked or required a new password of the accounts a
    /// selector names (recorded before any changes).
    AccountsHeldInBulk {
        /// What was done.
        action: super::hold::AccountAction,
        /// The selector.
        selector: crate::domain::revocation::SessionSelector,
    },
    /// An operator added a network to the runtime deny-list (or replaced its entry).
    NetworkDenied {
        /// The network.
        network: String,
        /// Why.
        reason: String,
        /// When it ends by itself.
        expires_at: Option<super::time::Timestamp>,
    },
    /// An operator removed a network from the runtime deny-list.
    NetworkAllowed {
        /// The network.
        network: String,
    },
    /// An operator saved a custom dashboard (new, or replacing the one of its name).
    DashboardSaved {
        /// Its name.
        name: String,
    },
    /// An operator deleted a custom dashboard.
    DashboardDeleted {
        /// Its name.
        name: String,
    },
    /// An operator created an account (recorded with it).
    UserCreated {
        /// The user.
        user: UserId,
        /// Its tier.
        tier: super::tier::UserTier,
    },
    /// An operator ended a user's session, or (`session` none) every one of them
    /// (recorded before it ends).
    SessionRevoked {
        /// The user.
        user: UserId,
        /// The session.
        session: Option<super::ids::SessionId>,
    },
    /// An operator made a read-only link to a dashboard.
    DashboardShared {
        /// The dashboard.
        name: String,
        /// The link's id.
        share: String,
        /// When it stops working.
        expires_at: super::time::Timestamp,
    },
    /// An operator revoked a read-only link of a dashboard.
    DashboardShareRevoked {
        /// The dashboard.
        name: String,
        /// The link's id.
        share: String,
    },
    /// The operator key opened a console session in a browser.
    ConsoleSignedIn {
        /// The client's address.
        address: String,
    },
    /// A console sign-in showed a wrong operator key.
    ConsoleSignInRefused {
        /// The client's address.
        address: String,
    },
    /// The operator ended its console session.
    ConsoleSignedOut {
        /// The client's address.
        address: String,
    },
}

impl AuditAction {
    /// The user the action was about, if one.
    pub fn subject(&self) -> Option<UserId> {
        match self {
            AuditAction::TierChanged { user, .. }
            | AuditAction::UserDeleted { user }
            | AuditAction::UserRead { user, .. }
            | AuditAction::DataExported { user }
            | AuditAction::MfaReset { user }
            | AuditAction::ConsentChanged { user, .. }
            | AuditAction::ParentalConsentRecorded { user }
            | AuditAction::UserImported { user }
            | AuditAction::UserProvisioned { user, .. }
            | AuditAction::InvitationAccepted { user }
            | AuditAction::UserCreated { user, .. }
            | AuditAction::SessionRevoked { user, .. }
            | AuditAction::HistoryImported { user, .. } => Some(*user),
            AuditAction::UsersImported { .. }
            | AuditAction::MasterKeyRotated { .. }
            | AuditAction::CatalogTracksPut { .. }
            | AuditAction::CatalogTrackDeleted { .. }
            | AuditAction::JobRan { .. }
            | AuditAction::JobRequested { .. }
            | AuditAction::BackupTaken { .. }
            | AuditAction::SessionsRevokedInBulk { .. }
            | AuditAction::AccountsHeldInBulk { .. }
            | AuditAction::NetworkDenied { .. }
            | AuditAction::NetworkAllowed { .. }
            | AuditAction::DashboardSaved { .. }
            | AuditAction::DashboardDeleted { .. }
            | AuditAction::DashboardShared { .. }
            | AuditAction::DashboardShareRevoked { .. }
            | AuditAction::ConsoleSignedIn { .. }
            | AuditAction::ConsoleSignInRefused { .. }
            | AuditAction::ConsoleSignedOut { .. }
            | AuditAction::SecurityEventsExported { .. }
            | AuditAction::BackupStarted => None,
        }
    }
}
