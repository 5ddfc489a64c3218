//! `/api/v1/admin/users/{lock,unlock,reset-password}`: an operator's bulk account
//! actions, levers of incident response beside the bulk revocation.

use axum::extract::State;

use crate::api::AppState;
use crate::api::extract::{Caller, JsonBody};
use crate::api::problem::{ApiError, Problem};
use crate::domain::hold::AccountAction;
use crate::domain::revocation::SessionSelector;
use crate::engine::{BulkHold, HoldProgress};

type ApiResult<T> = Result<T, ApiError>;

/// Runs `action` over the accounts `selector` names, streaming its progress.
async fn hold(
    s: AppState,
    caller: Caller,
    action: AccountAction,
    selector: SessionSelector,
) -> ApiResult<axum::response::Response> {
    let (by, m) = (caller.principal(), s.manager.clone());
    super::stream::job(
        move |progress| async move {
            m.accounts()
                .hold_matching(&by, action, selector, progress)
                .await
        },
        |r: BulkHold| serde_json::json!({ "accounts": r }),
    )
    .await
}

/// Locks, across every user, the accounts a selector names (operator only): every
/// session of each ends and no login completes until an unlock. The selector is the
/// bulk revocation's (`all`, `tier`, `user_ids`, `event_kind` with `since`; with `cidr`,
/// `created_after` or `created_before`, the accounts with a live session they match),
/// `dry_run` counts without changing. Audited before anything changes. The answer
/// streams as JSON lines: `{done, users, matched, changed}` progress (a change counted
/// there is durable), then `{"accounts": {action, dry_run, started_at, scanned, users,
/// matched, changed, sessions_ended, links_sent, links_unsent, failed, cancelled}}` or
/// `{"error": problem}`. One bulk operation runs at a time (409 for a second);
/// `POST /api/v1/admin/sessions/revoke/cancel` cancels it.
#[utoipa::path(post, path = "/api/v1/admin/users/lock", tag = "admin", request_body = SessionSelector, security(("bearer" = [])),
    responses((status = 200, content_type = "application/x-ndjson", body = HoldProgress,
        description = "progress lines, then the result (BulkHold) under `accounts`"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "a bulk operation is running")))]
pub(crate) async fn lock(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(selector): JsonBody<SessionSelector>,
) -> ApiResult<axum::response::Response> {
    hold(s, caller, AccountAction::Lock, selector).await
}

/// Unlocks the locked accounts a selector names (operator only); as the lock, without
/// session criteria (a locked account has no session). A required new password stays
/// required.
#[utoipa::path(post, path = "/api/v1/admin/users/unlock", tag = "admin", request_body = SessionSelector, security(("bearer" = [])),
    responses((status = 200, content_type = "application/x-ndjson", body = HoldProgress,
        description = "progress lines, then the result (BulkHold) under `accounts`"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "a bulk operation is running")))]
pub(crate) async fn unlock(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(selector): JsonBody<SessionSelector>,
) -> ApiResult<axum::response::Response> {
    hold(s, caller, AccountAction::Unlock, selector).await
}

/// Requires a new password of the accounts a selector names (operator only), as the
/// lock: every session ends, the old password no longer logs in, and each user is
/// emailed a single-use link (`automation.provisioning.invitation_link`, good for
/// `invitation_ttl`) that sets a new one through `POST /api/v1/auth/invitations/accept`.
/// Asked again, a reset sends a new link and voids the old one.
#[utoipa::path(post, path = "/api/v1/admin/users/reset-password", tag = "admin", request_body = SessionSelector, security(("bearer" = [])),
    responses((status = 200, content_type = "application/x-ndjson", body = HoldProgress,
        description = "progress lines, then the result (BulkHold) under `accounts`"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "a bulk operation is running")))]
pub(crate) async fn reset_password(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(selector): JsonBody<SessionSelector>,
) -> ApiResult<axum::response::Response> {
    hold(s, caller, AccountAction::ResetPassword, selector).await
}
