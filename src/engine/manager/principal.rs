//! Who an engine call acts for, and the access rules every facade applies with it.
//!
//! Every call that acts for someone takes a [`Principal`]; the engine — not the HTTP
//! handler, the CLI or a console — decides from it whether the call may go on, whether
//! it needs a recent authentication, and whom the audit log names. So every client of
//! the front door gets the same rules.

use crate::domain::audit::AuditActor;
use crate::domain::ids::{SessionId, UserId};
use crate::engine::EngineError;

/// Who is acting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// Nobody signed in: sign-up, login and the other public ceremonies.
    Anonymous,
    /// A user, through one of its sessions.
    User(UserSession),
    /// Whoever holds the operator key (the API, the operator console, the CLI through a
    /// server).
    Operator,
    /// The engine's own work, or trusted code embedding the library: a scheduled job, a
    /// CLI command on a stopped store, the seed-named methods of
    /// [`UserManager`](crate::engine::UserManager). Named in the audit log.
    System(&'static str),
}

/// A user acting through a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserSession {
    /// The user.
    pub user: UserId,
    /// The session it acts through.
    pub session: SessionId,
}

/// How a principal may act on one user's account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// The user itself, through this session (sensitive steps need it to be recent).
    Own(SessionId),
    /// The operator or the system, on anyone's account.
    Privileged,
}

impl Access {
    /// The session whose authentication must be recent for a sensitive step; `None`
    /// when the principal is privileged (an operator does not step up).
    pub(crate) fn session(self) -> Option<SessionId> {
        match self {
            Access::Own(s) => Some(s),
            Access::Privileged => None,
        }
    }
}

/// Refusals, in the words clients have always been given.
pub(crate) const TOKEN_REQUIRED: &str = "a bearer token is required";
pub(crate) const OWN_ACCOUNT_ONLY: &str = "a user may only act on its own account";
pub(crate) const SESSION_REQUIRED: &str =
    "this endpoint needs a user session, not the operator key";
pub(crate) const OPERATOR_REQUIRED: &str = "operator credential required";

impl Principal {
    /// The user acting, if a user is.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Principal::User(u) => Some(u.user),
            _ => None,
        }
    }

    /// Whether this is the operator or the system.
    pub fn is_privileged(&self) -> bool {
        matches!(self, Principal::Operator | Principal::System(_))
    }

    /// Whom the audit log names for this principal's actions.
    pub(crate) fn audit_actor(&self) -> Option<AuditActor> {
        match self {
            Principal::Anonymous => None,
            Principal::User(u) => Some(AuditActor::User { id: u.user }),
            Principal::Operator => Some(AuditActor::Operator),
            Principal::System(job) => Some(AuditActor::System {
                job: (*job).to_owned(),
            }),
        }
    }

    /// Whether reading a user's data as this principal is written to the audit log:
    /// an operator's reads are, a user's own and the system's are not.
    pub(crate) fn audits_reads(&self) -> bool {
        matches!(self, Principal::Operator)
    }

    /// Access to the account of `id`: the user itself, or the operator and the system.
    pub(crate) fn on(&self, id: UserId) -> Result<Access, EngineError> {
        match self {
            Principal::Operator | Principal::System(_) => Ok(Access::Privileged),
            Principal::User(u) if u.user == id => Ok(Access::Own(u.session)),
            Principal::User(_) => Err(EngineError::Forbidden(OWN_ACCOUNT_ONLY)),
            Principal::Anonymous => Err(EngineError::Unauthenticated(TOKEN_REQUIRED)),
        }
    }

    /// Access to the account of `id` by the user itself only, through its session
    /// (enrolling factors, a password change: things only the owner can do).
    pub(crate) fn own(&self, id: UserId) -> Result<SessionId, EngineError> {
        match self {
            Principal::User(u) if u.user == id => Ok(u.session),
            Principal::User(_) => Err(EngineError::Forbidden(OWN_ACCOUNT_ONLY)),
            Principal::Operator | Principal::System(_) => {
                Err(EngineError::Forbidden(SESSION_REQUIRED))
            }
            Principal::Anonymous => Err(EngineError::Unauthenticated(TOKEN_REQUIRED)),
        }
    }

    /// The user session acting, for calls about the caller itself (logout, step-up).
    pub(crate) fn session(&self) -> Result<UserSession, EngineError> {
        match self {
            Principal::User(u) => Ok(*u),
            Principal::Operator | Principal::System(_) => {
                Err(EngineError::Forbidden(SESSION_REQUIRED))
            }
            Principal::Anonymous => Err(EngineError::Unauthenticated(TOKEN_REQUIRED)),
        }
    }

    /// Allows the operator and the system only.
    pub(crate) fn privileged(&self) -> Result<(), EngineError> {
        match self {
            Principal::Operator | Principal::System(_) => Ok(()),
            Principal::User(_) => Err(EngineError::Forbidden(OPERATOR_REQUIRED)),
            Principal::Anonymous => Err(EngineError::Unauthenticated(OPERATOR_REQUIRED)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_principal_reaches_exactly_its_accounts() {
        let (me, other) = (UserId::generate(), UserId::generate());
        let session = SessionId::generate();
        let user = Principal::User(UserSession { user: me, session });
        assert_eq!(user.on(me), Ok(Access::Own(session)));
        assert_eq!(
            user.on(other),
            Err(EngineError::Forbidden(OWN_ACCOUNT_ONLY))
        );
        assert_eq!(user.own(me), Ok(session));
        assert!(user.privileged().is_err());
        for p in [Principal::Operator, Principal::System("job")] {
            assert_eq!(p.on(other), Ok(Access::Privileged));
            assert_eq!(p.own(other), Err(EngineError::Forbidden(SESSION_REQUIRED)));
            assert_eq!(p.privileged(), Ok(()));
        }
        let nobody = Principal::Anonymous;
        assert!(matches!(
            nobody.on(me),
            Err(EngineError::Unauthenticated(_))
        ));
        assert!(matches!(
            nobody.privileged(),
            Err(EngineError::Unauthenticated(_))
        ));
        assert!(nobody.audit_actor().is_none());
        assert_eq!(
            Principal::System("purge").audit_actor(),
            Some(AuditActor::System {
                job: "purge".into()
            })
        );
        assert!(Principal::Operator.audits_reads() && !user.audits_reads());
    }
}
