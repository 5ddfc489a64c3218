//! The audit records of the operator console's sessions: who opened one, from where,
//! who was refused, and when one was ended. A console session stands for the operator
//! key in a browser, so opening one is on record like any use of the key.

use std::net::IpAddr;

use super::Ops;
use crate::domain::audit::{AuditAction, AuditActor};
use crate::engine::EngineError;

/// What happened to a console session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleAudit {
    /// The operator key was shown and a session opened.
    SignedIn,
    /// A sign-in showed a wrong key.
    Refused,
    /// The operator ended its session.
    SignedOut,
}

impl Ops<'_> {
    /// Writes the audit record of `what`, from the client `address`; durable when it
    /// returns, so a sign-in whose record cannot be written can be refused.
    pub async fn audit_console(
        self,
        what: ConsoleAudit,
        address: IpAddr,
    ) -> Result<(), EngineError> {
        let address = address.to_string();
        let (actor, action) = match what {
            ConsoleAudit::SignedIn => (
                AuditActor::Operator,
                AuditAction::ConsoleSignedIn { address },
            ),
            ConsoleAudit::SignedOut => (
                AuditActor::Operator,
                AuditAction::ConsoleSignedOut { address },
            ),
            ConsoleAudit::Refused => (
                AuditActor::Anonymous,
                AuditAction::ConsoleSignInRefused { address },
            ),
        };
        self.m.audit(actor, action).await
    }
}
