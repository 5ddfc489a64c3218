//! `/api/v1/users/{id}/recommendations`: ranked catalog tracks for a user, made as its
//! preferences, consents and tier allow (`docs/personalization.md`).

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use crate::api::AppState;
use crate::api::extract::{Caller, Query, user_id};
use crate::api::problem::{ApiError, Problem};
use crate::domain::settings::PersonalizationLevel;
use crate::engine::{
    Activity, Platform, RecommendationQuery, Recommendations, RecommenderReport,
    RecommenderTrained, ReportQuery,
};

/// `GET /api/v1/users/{id}/recommendations` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecommendationParams {
    /// Items wanted: 1 to the tier's maximum (`personalization.max_items` on tiers with
    /// `advanced_recommendations`, `basic_max_items` on others); default 20 or that
    /// maximum if lower.
    limit: Option<usize>,
    /// What the listener is doing: `workout`, `focus`, `relax`, `party` or `commute`
    /// (used at the `advanced` level).
    context: Option<Activity>,
    /// Whether tracks the user played or liked may come back (default `false`; skipped
    /// tracks never do).
    include_played: Option<bool>,
    /// The UTC hour (0–23) the list is for, default the time of the call: at the
    /// `advanced` level, tracks close to what the user plays at that part of the day.
    hour: Option<u8>,
    /// The platform the list is for (`ios`, `android`, `web`, `desktop`, `tv`, `car`,
    /// `speaker`, `other`): at the `advanced` level, tracks close to what the user plays
    /// there.
    platform: Option<Platform>,
    /// Operators only: add the list's exposure figures (`debug`), and those of the same
    /// list with mitigation the other way.
    debug: Option<bool>,
}

/// Ranked catalog tracks for the user (the user itself or an operator; one request of
/// the tier's rate), each with a recommendation id for the `recommendation_shown` and
/// `recommendation_clicked` events and — with `explanations_enabled` — its reasons.
/// `model` says the level used (the user's `personalization_level` capped by the tier,
/// `off` without the consent to personalisation), the signals and whether bias
/// mitigation re-ranked the list.
#[utoipa::path(get, path = "/api/v1/users/{id}/recommendations", tag = "personalization",
    params(("id" = String, Path, description = "user id (UUID)"), RecommendationParams), security(("bearer" = [])),
    responses((status = 200, body = Recommendations), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn recommendations(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<RecommendationParams>,
) -> Result<Json<Recommendations>, ApiError> {
    let id = user_id(&caller, &id)?;
    let query = RecommendationQuery {
        limit: q.limit,
        context: q.context,
        include_played: q.include_played.unwrap_or(false),
        hour: q.hour,
        platform: q.platform,
        debug: q.debug.unwrap_or(false),
    };
    let p = s.manager.personalization();
    Ok(Json(
        p.recommendations(&caller.principal(), id, query).await?,
    ))
}

/// Trains the recommender's collaborative model on the tastes of the users who consent
/// to personalisation (operator only; one training of any kind at a time, 409 while one
/// runs), stores it as the next version and puts it in force. The answer streams as JSON
/// lines: `{"phase": "reading", "users", "learning_from"}` while the store is read,
/// `{"phase": "training", "share"}` while neighbours are found, then `{"model":
/// {"version", "trained_at", "users", "interactions", "tracks",
/// "tracks_with_neighbours"}}` or `{"error": problem}`.
#[utoipa::path(post, path = "/api/v1/admin/recommendations/train", tag = "personalization", security(("bearer" = [])),
    responses((status = 200, content_type = "application/x-ndjson", body = RecommenderTrained,
        description = "progress lines, then the model's summary under `model`"),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem, description = "a training is running")))]
pub(crate) async fn train(State(s): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let (by, m) = (caller.principal(), s.manager.clone());
    super::stream::job(
        move |progress| async move { m.personalization().train(&by, progress).await },
        |t: RecommenderTrained| json!({ "model": t }),
    )
    .await
}

/// `GET /api/v1/admin/recommendations/report` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportParams {
    /// Users measured, a uniform sample of those who consent to personalisation
    /// (1–100,000, default 2,000).
    sample: Option<usize>,
    /// Items per list measured (1 to `personalization.max_items`, default 10).
    k: Option<usize>,
    /// The level the sample's lists are made at: `off`, `basic`, `standard` (default) or
    /// `advanced`, capped by each user's tier.
    level: Option<PersonalizationLevel>,
}

/// The recommender's report (operator only): on a sample of the consenting users, each
/// list made without and with bias mitigation — catalog coverage, exposure Gini, the
/// share of slots given to the most popular 20% of tracks, intra-list diversity, and
/// leave-newest-out hit rate and NDCG at `k`; and the click-through of the lists served,
/// by level and by mitigation, from the `recommendation_shown` and
/// `recommendation_clicked` events (`docs/personalization.md`, "Reading the report").
#[utoipa::path(get, path = "/api/v1/admin/recommendations/report", tag = "personalization",
    params(ReportParams), security(("bearer" = [])),
    responses((status = 200, body = RecommenderReport), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn report(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<ReportParams>,
) -> Result<Json<RecommenderReport>, ApiError> {
    let query = ReportQuery {
        sample: q.sample,
        k: q.k,
        level: q.level,
    };
    let p = s.manager.personalization();
    Ok(Json(p.report(&caller.principal(), query).await?))
}
