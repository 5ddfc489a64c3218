//! The invitations of users created without a password: made with the user, emailed
//! through the notifier, accepted once with a new password, re-issued when one expired
//! or could not be queued.

use serde::{Deserialize, Serialize};

use super::{INVITE_QUEUE_WAIT, Provisioning, invalid};
use crate::domain::audit::{AuditAction, AuditActor};
use crate::domain::hex;
use crate::domain::ids::UserId;
use crate::domain::profile::UserProfile;
use crate::domain::time::Timestamp;
use crate::engine::EngineError;
use crate::engine::manager::principal::Principal;
use crate::engine::user::{BeginLogin, SetPassword};
use crate::security::password::NO_PASSWORD;
use crate::security::token::InvitationToken;
use crate::store::{Batch, Op};

/// An invitation as stored (JSON): the secret's hash, its end, and the credential
/// version it was made for (a password set meanwhile ends it).
#[derive(Serialize, Deserialize)]
struct StoredInvitation {
    secret_hash: String,
    expires_at: Timestamp,
    credential_version: u64,
}

impl Provisioning<'_> {
    /// Drops every invitation past its end, and any whose user is gone (operator or
    /// system; cleanup): returns how many. A user still without a password is invited
    /// again at its next provisioning, as when the invitation merely expired.
    pub async fn purge_invitations(self, by: &Principal) -> Result<usize, EngineError> {
        by.privileged()?;
        let e = &self.m.engine;
        let now = self.m.now();
        let mut batch = Batch::default();
        let mut dropped = 0;
        for (user, record) in e.store.invitations()? {
            let expired = match serde_json::from_slice::<StoredInvitation>(&record) {
                Ok(inv) => inv.expires_at <= now,
                // Unreadable: of no use to anyone.
                Err(_) => true,
            };
            if expired || e.store.route_of(user)?.is_none() {
                batch.push(Op::DropInvitation { user });
                dropped += 1;
            }
        }
        if dropped > 0 {
            let ticket = e.commit.submit(batch, Vec::new(), None);
            crate::engine::durable::settled(e.commit.wait(&ticket).await)?;
        }
        Ok(dropped)
    }

    /// Whether `id` was created without a password, has none yet and no invitation in
    /// force.
    pub(super) async fn needs_invitation(self, id: UserId) -> Result<bool, EngineError> {
        let e = &self.m.engine;
        let ticket = e.call(id, BeginLogin).await?;
        if ticket.password_hash != NO_PASSWORD {
            return Ok(false);
        }
        Ok(match self.stored_invitation(id)? {
            Some(inv) => {
                inv.expires_at <= self.m.now()
                    || inv.credential_version != ticket.credential_version
            }
            None => true,
        })
    }

    /// A new invitation for `id`: its token, the op storing it, its end. A user
    /// created without a password is at credential version 1 until it sets one.
    pub(super) fn invitation(
        self,
        id: UserId,
    ) -> Result<(InvitationToken, Op, Timestamp), EngineError> {
        self.link_for(id, 1)
    }

    /// A link to set a password, good once while `id`'s credential is at
    /// `credential_version`: its token, the op storing it, its end.
    fn link_for(
        self,
        id: UserId,
        credential_version: u64,
    ) -> Result<(InvitationToken, Op, Timestamp), EngineError> {
        let e = &self.m.engine;
        let token = InvitationToken::issue(id);
        let expires_at = self
            .m
            .now()
            .plus(e.config.automation.provisioning.invitation_ttl);
        let stored = StoredInvitation {
            secret_hash: hex::encode(&token.secret_hash()),
            expires_at,
            credential_version,
        };
        let record = serde_json::to_vec(&stored)
            .map_err(|err| EngineError::Internal(format!("invitation: {err}")))?;
        Ok((token, Op::PutInvitation { user: id, record }, expires_at))
    }

    fn stored_invitation(self, id: UserId) -> Result<Option<StoredInvitation>, EngineError> {
        let Some(bytes) = self.m.engine.store.invitation(id)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|err| EngineError::Internal(format!("invitation of {id}: {err}")))
    }

    /// Emails the invitation, waiting for room in the queue. `false` if it could not
    /// be queued: the stored invitation is then dropped, so that the next provisioning
    /// of the user invites it again.
    pub(super) async fn invite(
        self,
        profile: &UserProfile,
        token: &InvitationToken,
        expires_at: Timestamp,
    ) -> Result<bool, EngineError> {
        let e = &self.m.engine;
        let email = self.link_email(
            crate::notify::EmailKind::Invitation,
            profile.email.as_str().to_owned(),
            "You are invited: set your password",
            "An account was created for you. Set your password",
            token,
            expires_at,
        );
        if e.notifier.send_waiting(email, INVITE_QUEUE_WAIT).await {
            return Ok(true);
        }
        tracing::warn!(user = %profile.id, "an invitation could not be queued; the next provisioning of the user sends one");
        let ticket = e.commit.submit(
            Batch::of(Op::DropInvitation { user: profile.id }),
            Vec::new(),
            None,
        );
        crate::engine::durable::settled(e.commit.wait(&ticket).await)?;
        Ok(false)
    }

    /// An email carrying `token`'s link (`automation.provisioning.invitation_link`):
    /// `intro`, then when the link is good until, then the link.
    fn link_email(
        self,
        kind: crate::notify::EmailKind,
        to: String,
        subject: &str,
        intro: &str,
        token: &InvitationToken,
        expires_at: Timestamp,
    ) -> crate::notify::Email {
        let link = &self.m.engine.config.automation.provisioning.invitation_link;
        crate::notify::Email {
            kind,
            at: self.m.now(),
            to,
            subject: subject.into(),
            body: format!(
                "{intro} with this link, good once and until {expires_at}:\n{link}{}",
                token.expose()
            ),
        }
    }

    /// Stores a link for `id` to set the new password an operator required (good once,
    /// for the credential at `credential_version`, replacing any earlier link), then
    /// emails it to `to`. `false` if the email could not be queued: the account then
    /// waits for the reset to be asked again.
    pub(in crate::engine::manager) async fn send_reset(
        self,
        id: UserId,
        credential_version: u64,
        to: String,
    ) -> Result<bool, EngineError> {
        let e = &self.m.engine;
        let (token, op, expires_at) = self.link_for(id, credential_version)?;
        let ticket = e.commit.submit(Batch::of(op), Vec::new(), None);
        crate::engine::durable::settled(e.commit.wait(&ticket).await)?;
        let email = self.link_email(
            crate::notify::EmailKind::PasswordReset,
            to,
            "Set a new password for your account",
            "To protect your account, its sessions were ended and its old password no \
             longer signs in. Set a new password",
            &token,
            expires_at,
        );
        let queued = e.notifier.send_waiting(email, INVITE_QUEUE_WAIT).await;
        if !queued {
            tracing::warn!(user = %id, "a password reset link could not be queued; ask the reset again");
        }
        Ok(queued)
    }

    /// An invited user sets its password with the invitation's token (anyone holding
    /// the token): checked by the password policy, good once and until the invitation
    /// expires. The user's other credentials and sessions end, as at any password set.
    pub async fn accept_invitation(self, token: &str, password: &str) -> Result<(), EngineError> {
        let refused = || {
            invalid(
                "token",
                "is not a valid invitation (used, expired or unknown)",
            )
        };
        let token = InvitationToken::parse(token).map_err(|_| refused())?;
        let id = token.user_id();
        let e = &self.m.engine;
        let Some(stored) = self.stored_invitation(id)? else {
            return Err(refused());
        };
        let hash: [u8; 32] = hex::decode(&stored.secret_hash)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| EngineError::Internal(format!("invitation of {id}: bad hash")))?;
        if !token.matches(&hash) {
            return Err(refused());
        }
        if stored.expires_at <= self.m.now() {
            return Err(invalid(
                "token",
                "the invitation has expired; ask for a new one",
            ));
        }
        // Spent already (a password set since): refused before any hashing.
        if e.call(id, BeginLogin).await?.credential_version != stored.credential_version {
            return Err(refused());
        }
        let profile = self.m.user(id).profile().await?;
        let phc = self
            .m
            .hash_new_password(password, profile.email.clone())
            .await?;
        let set = SetPassword {
            expected_version: stored.credential_version,
            password_hash: phc,
            keep: None,
        };
        let ended = e.call_durable(id, set).await?;
        let batch = Batch::of(Op::DropInvitation { user: id });
        let audit = match ended {
            Some(_) => vec![(
                AuditActor::User { id },
                AuditAction::InvitationAccepted { user: id },
                self.m.now(),
            )],
            None => Vec::new(),
        };
        let ticket = e.commit.submit(batch, audit, None);
        crate::engine::durable::settled(e.commit.wait(&ticket).await)?;
        match ended {
            Some(_) => Ok(()),
            // A password was set another way since: the invitation is spent.
            None => Err(refused()),
        }
    }
}
