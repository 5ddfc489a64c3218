//! `POST /scim/v2/Bulk` (RFC 7644 §3.7): up to `max_bulk_operations` operations on
//! Users in order, each succeeding or failing alone, a later one naming a user an
//! earlier POST created as `bulkId:<id>`; processing stops once `failOnErrors` have
//! failed. Over either limit the whole request is refused with 413.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Caller, ScimError, ScimResult, base_url, read_body, resource, scim_json};
use crate::api::AppState;
use crate::engine::Principal;

const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

pub(super) async fn bulk(
    State(state): State<AppState>,
    Extension(Caller(by)): Extension<Caller>,
    req: Request,
) -> ScimResult {
    let cfg = &state.manager.config().automation.scim;
    let (max_ops, max_bytes) = (cfg.max_bulk_operations, cfg.max_bulk_payload);
    let base = base_url(req.headers());
    let body = read_body(req, max_bytes)
        .await
        .map_err(|e| match e.status {
            StatusCode::PAYLOAD_TOO_LARGE => ScimError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                format!("the size of the bulk request exceeds the maxPayloadSize ({max_bytes})"),
            ),
            _ => e,
        })?;
    let schemas_ok = body["schemas"]
        .as_array()
        .is_some_and(|s| s.iter().any(|v| v == BULK_REQUEST));
    if !schemas_ok {
        return Err(ScimError::bad(
            "invalidSyntax",
            format!("schemas must hold {BULK_REQUEST}"),
        ));
    }
    let ops = body["Operations"]
        .as_array()
        .ok_or_else(|| ScimError::bad("invalidSyntax", "Operations must be an array"))?;
    if ops.len() > max_ops {
        return Err(ScimError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("tooMany"),
            format!(
                "the bulk request holds {} operations; maxOperations is {max_ops}",
                ops.len()
            ),
        ));
    }
    let fail_on = match &body["failOnErrors"] {
        Value::Null => usize::MAX,
        v => v
            .as_u64()
            .filter(|n| *n > 0)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                ScimError::bad("invalidValue", "failOnErrors must be a positive integer")
            })?,
    };
    let mut created: HashMap<String, String> = HashMap::new();
    let mut results = Vec::with_capacity(ops.len());
    let mut errors = 0;
    for op in ops {
        if errors >= fail_on {
            break;
        }
        let result = one(&state, &by, op, &base, &mut created).await;
        if result["status"]
            .as_str()
            .is_none_or(|s| !s.starts_with('2'))
        {
            errors += 1;
        }
        results.push(result);
    }
    let body = json!({"schemas": [BULK_RESPONSE], "Operations": results});
    Ok(scim_json(StatusCode::OK, &body))
}

/// One operation's result object.
async fn one(
    state: &AppState,
    by: &Principal,
    op: &Value,
    base: &str,
    created: &mut HashMap<String, String>,
) -> Value {
    let method = op["method"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let bulk_id = op["bulkId"].as_str().map(str::to_owned);
    let mut out = json!({"method": method});
    if let Some(b) = &bulk_id {
        out["bulkId"] = json!(b);
    }
    let done = run(state, by, op, &method, bulk_id.as_deref(), base, created).await;
    match done {
        Ok((status, location)) => {
            out["status"] = json!(status.as_u16().to_string());
            if let Some(l) = location {
                out["location"] = json!(l);
            }
        }
        Err(e) => {
            out["status"] = json!(e.status.as_u16().to_string());
            out["response"] = e.body();
        }
    }
    out
}

async fn run(
    state: &AppState,
    by: &Principal,
    op: &Value,
    method: &str,
    bulk_id: Option<&str>,
    base: &str,
    created: &mut HashMap<String, String>,
) -> Result<(StatusCode, Option<String>), ScimError> {
    let path = op["path"]
        .as_str()
        .ok_or_else(|| ScimError::bad("invalidSyntax", "each operation needs a path"))?;
    let data = &op["data"];
    if method == "POST" {
        if path != "/Users" {
            return Err(ScimError::bad(
                "invalidPath",
                format!("POST {path}: only /Users"),
            ));
        }
        let Some(bulk_id) = bulk_id else {
            return Err(ScimError::bad("invalidSyntax", "a POST needs a bulkId"));
        };
        let (status, v) = resource::create(state, by, data, base).await?;
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        created.insert(bulk_id.to_owned(), id);
        return Ok((status, v["meta"]["location"].as_str().map(str::to_owned)));
    }
    let Some(id) = path.strip_prefix("/Users/") else {
        return Err(ScimError::bad(
            "invalidPath",
            format!("{method} {path}: only /Users/{{id}}"),
        ));
    };
    let id = match id.strip_prefix("bulkId:") {
        Some(b) => created.get(b).cloned().ok_or_else(|| {
            ScimError::new(
                StatusCode::CONFLICT,
                Some("invalidValue"),
                format!("bulkId:{b} names no user created earlier in this request"),
            )
        })?,
        None => id.to_owned(),
    };
    let location = Some(format!("{base}/Users/{id}"));
    match method {
        "PUT" => {
            resource::replace(state, by, &id, data, base).await?;
            Ok((StatusCode::OK, location))
        }
        "PATCH" => {
            resource::patch(state, by, &id, data, base).await?;
            Ok((StatusCode::OK, location))
        }
        "DELETE" => {
            resource::delete(state, by, &id).await?;
            Ok((StatusCode::NO_CONTENT, None))
        }
        other => Err(ScimError::bad(
            "invalidSyntax",
            format!("method {other:?} is not POST, PUT, PATCH or DELETE"),
        )),
    }
}
