//! The routes of `/api/v1`, one file per area, merged into one router whose OpenAPI
//! document comes from the same declarations (a route cannot exist undocumented).

mod activity;
pub(super) mod admin;
mod analytics;
mod auth;
mod backup;
mod catalog;
mod custom;
mod dashboards;
mod denylist;
mod federated;
mod forecast;
mod holds;
mod integrations;
mod jobs;
pub(super) mod meta;
mod mfa;
mod privacy;
mod provisioning;
mod recommendations;
mod sessions;
mod stream;
mod users;

use std::net::{IpAddr, Ipv4Addr};

use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::problem::ApiError;

/// The address of a request whose peer is unknown (never in practice: every request
/// comes over a socket).
const UNSPECIFIED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// WebAuthn options, for `navigator.credentials.get()` or `.create()`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct WebauthnOptions {
    /// Pass as is to the browser's WebAuthn call.
    #[schema(value_type = Object)]
    options: Value,
}

impl WebauthnOptions {
    fn of<T: Serialize>(o: &T) -> Result<Json<WebauthnOptions>, ApiError> {
        let options = serde_json::to_value(o).map_err(|e| {
            tracing::error!(error = %e, "webauthn options not serialisable");
            ApiError::Internal
        })?;
        Ok(Json(WebauthnOptions { options }))
    }
}

/// Every `/api/v1` route, documented.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(users::create_user))
        .routes(routes!(users::me))
        .routes(routes!(
            users::get_user,
            users::update_user,
            users::delete_user
        ))
        .routes(routes!(users::insights))
        .routes(routes!(activity::record_activity))
        .routes(routes!(activity::import_history))
        .routes(routes!(analytics::overview))
        .routes(routes!(analytics::live))
        .routes(routes!(analytics::cohorts))
        .routes(routes!(analytics::tiers))
        .routes(routes!(analytics::compliance))
        .routes(routes!(forecast::forecast))
        .routes(routes!(analytics::opportunities))
        .routes(routes!(analytics::usage))
        .routes(routes!(analytics::train))
        .routes(routes!(analytics::churn))
        .routes(routes!(analytics::segments))
        .routes(routes!(catalog::put_tracks))
        .routes(routes!(catalog::track, catalog::delete_track))
        .routes(routes!(catalog::summary))
        .routes(routes!(integrations::providers))
        .routes(routes!(integrations::callback))
        .routes(routes!(integrations::developer_token))
        .routes(routes!(integrations::companion_events))
        .routes(routes!(integrations::links))
        .routes(routes!(integrations::link))
        .routes(routes!(integrations::unlink))
        .routes(routes!(integrations::sync))
        .routes(routes!(recommendations::recommendations))
        .routes(routes!(recommendations::train))
        .routes(routes!(recommendations::report))
        .routes(routes!(custom::train, custom::list))
        .routes(routes!(custom::job))
        .routes(routes!(custom::pin))
        .routes(routes!(custom::delete))
        .routes(routes!(federated::model))
        .routes(routes!(federated::update))
        .routes(routes!(federated::status))
        .routes(routes!(federated::models))
        .routes(routes!(users::export))
        .routes(routes!(users::upgrade))
        .routes(routes!(users::change_password))
        .routes(routes!(users::record_usage))
        .routes(routes!(sessions::list_sessions))
        .routes(routes!(sessions::revoke_other_sessions))
        .routes(routes!(sessions::revoke_session))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::complete_login))
        .routes(routes!(auth::send_login_code))
        .routes(routes!(auth::send_login_sms))
        .routes(routes!(auth::login_webauthn_options))
        .routes(routes!(auth::passkey_start))
        .routes(routes!(auth::passkey_finish))
        .routes(routes!(auth::step_up))
        .routes(routes!(auth::step_up_webauthn_options))
        .routes(routes!(mfa::mfa_status))
        .routes(routes!(mfa::begin_totp, mfa::remove_totp))
        .routes(routes!(mfa::confirm_totp))
        .routes(routes!(mfa::regenerate_recovery_codes))
        .routes(routes!(mfa::begin_sms, mfa::remove_sms))
        .routes(routes!(mfa::confirm_sms))
        .routes(routes!(mfa::begin_passkey_registration))
        .routes(routes!(mfa::finish_passkey_registration))
        .routes(routes!(mfa::remove_passkey))
        .routes(routes!(privacy::get_consents, privacy::put_consents))
        .routes(routes!(privacy::record_parental_consent))
        .routes(routes!(privacy::security_events))
        .routes(routes!(admin::admin_shards))
        .routes(routes!(admin::lookup_user))
        .routes(routes!(dashboards::list))
        .routes(routes!(
            dashboards::get,
            dashboards::put,
            dashboards::delete
        ))
        .routes(routes!(dashboards::report))
        .routes(routes!(dashboards::share))
        .routes(routes!(dashboards::revoke_share))
        .routes(routes!(dashboards::shared))
        .routes(routes!(
            super::console::sign_in,
            super::console::session,
            super::console::sign_out
        ))
        .routes(routes!(admin::import_users))
        .routes(routes!(provisioning::provision))
        .routes(routes!(provisioning::accept_invitation))
        .routes(routes!(admin::audit_log))
        .routes(routes!(admin::verify_audit))
        .routes(routes!(admin::purge_security_events))
        .routes(routes!(admin::master_key))
        .routes(routes!(admin::rotate_master_key))
        .routes(routes!(backup::backup))
        .routes(routes!(backup::export_security_events))
        .routes(routes!(sessions::revoke_matching))
        .routes(routes!(sessions::cancel_revocation))
        .routes(routes!(holds::lock))
        .routes(routes!(denylist::list, denylist::deny, denylist::allow))
        .routes(routes!(holds::unlock))
        .routes(routes!(holds::reset_password))
        .routes(routes!(jobs::jobs))
        .routes(routes!(jobs::runs))
        .routes(routes!(jobs::run))
        .routes(routes!(meta::openapi_json))
        .routes(routes!(super::ws::events_socket))
        .routes(routes!(super::ws::admin_events))
        .routes(routes!(super::ws::admin_live))
}
