//! What the SCIM service offers (RFC 7643 §5–7, RFC 7644 §4): the service provider's
//! configuration with its limits, the one resource type, and the schemas of its
//! attributes, so an identity provider's mapping can be checked against them.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::{LIST_SCHEMA, ScimError, ScimResult, base_url, scim_json};
use crate::api::AppState;
use crate::domain::directory::filter::{ROSTER_SCHEMA, USER_SCHEMA};
use crate::engine::MAX_DIRECTORY_PAGE;

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

pub(super) async fn service_provider_config(State(state): State<AppState>) -> ScimResult {
    let cfg = &state.manager.config().automation.scim;
    let body = json!({
        "schemas": [SPC_SCHEMA],
        "patch": {"supported": true},
        "bulk": {
            "supported": true,
            "maxOperations": cfg.max_bulk_operations,
            "maxPayloadSize": cfg.max_bulk_payload,
        },
        "filter": {"supported": true, "maxResults": MAX_DIRECTORY_PAGE},
        "changePassword": {"supported": true},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A token per provisioning client, from [automation.scim.clients.<name>] token",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig"},
    });
    Ok(scim_json(StatusCode::OK, &body))
}

fn user_type(base: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "A Roster account (Groups are not supported; the tier is the extension's)",
        "schema": USER_SCHEMA,
        "schemaExtensions": [{"schema": ROSTER_SCHEMA, "required": false}],
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
    })
}

pub(super) async fn resource_types(headers: HeaderMap) -> ScimResult {
    let body = json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": 1,
        "startIndex": 1,
        "itemsPerPage": 1,
        "Resources": [user_type(&base_url(&headers))],
    });
    Ok(scim_json(StatusCode::OK, &body))
}

pub(super) async fn resource_type(headers: HeaderMap, Path(id): Path<String>) -> ScimResult {
    if id != "User" {
        return Err(ScimError::new(
            StatusCode::NOT_FOUND,
            None,
            format!("no resource type {id}"),
        ));
    }
    Ok(scim_json(StatusCode::OK, &user_type(&base_url(&headers))))
}

/// One attribute of a schema.
fn attribute(name: &str, kind: &str, required: bool, mutability: &str, description: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": false,
        "description": description,
        "required": required,
        "caseExact": matches!(name, "id" | "externalId"),
        "mutability": mutability,
        "returned": if name == "password" { "never" } else { "default" },
        "uniqueness": if name == "userName" { "server" } else { "none" },
    })
}

fn user_schema(base: &str) -> Value {
    let mut name = attribute("name", "complex", false, "readWrite", "The user's name");
    name["subAttributes"] = json!([
        attribute("givenName", "string", false, "readWrite", "Given name"),
        attribute("familyName", "string", false, "readWrite", "Family name"),
        attribute(
            "formatted",
            "string",
            false,
            "readOnly",
            "Given and family name"
        ),
    ]);
    let mut emails = attribute(
        "emails",
        "complex",
        false,
        "readWrite",
        "The login email again (one only)",
    );
    emails["multiValued"] = json!(true);
    emails["subAttributes"] = json!([
        attribute("value", "string", false, "readWrite", "Equal to userName"),
        attribute("type", "string", false, "readOnly", "work"),
        attribute("primary", "boolean", false, "readOnly", "true"),
    ]);
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "A Roster account",
        "attributes": [
            attribute("userName", "string", true, "immutable", "The login email; it cannot change"),
            attribute("externalId", "string", false, "immutable", "The provider's id of the user; set once"),
            name,
            attribute("displayName", "string", false, "readWrite", "Name shown to others"),
            emails,
            attribute("locale", "string", false, "readWrite", "Language (BCP 47)"),
            attribute("preferredLanguage", "string", false, "readWrite", "Language (BCP 47); wins over locale"),
            attribute("timezone", "string", false, "readWrite", "IANA time zone"),
            attribute("active", "boolean", false, "readWrite", "false: no login, every session ended"),
            attribute("password", "string", false, "writeOnly", "Checked by the password policy"),
        ],
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{USER_SCHEMA}")},
    })
}

fn roster_schema(base: &str) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": ROSTER_SCHEMA,
        "name": "RosterUser",
        "description": "What Roster adds to a User",
        "attributes": [attribute("tier", "string", false, "readWrite", "free, premium, enterprise or vip")],
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{ROSTER_SCHEMA}")},
    })
}

pub(super) async fn schemas(headers: HeaderMap) -> ScimResult {
    let base = base_url(&headers);
    let body = json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": 2,
        "startIndex": 1,
        "itemsPerPage": 2,
        "Resources": [user_schema(&base), roster_schema(&base)],
    });
    Ok(scim_json(StatusCode::OK, &body))
}

pub(super) async fn schema(headers: HeaderMap, Path(id): Path<String>) -> ScimResult {
    let base = base_url(&headers);
    let body = if id.eq_ignore_ascii_case(USER_SCHEMA) {
        user_schema(&base)
    } else if id.eq_ignore_ascii_case(ROSTER_SCHEMA) {
        roster_schema(&base)
    } else {
        return Err(ScimError::new(
            StatusCode::NOT_FOUND,
            None,
            format!("no schema {id}"),
        ));
    };
    Ok(scim_json(StatusCode::OK, &body))
}
