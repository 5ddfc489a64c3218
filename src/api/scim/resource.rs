//! Users as SCIM resources: rendered from and parsed into the engine's directory
//! types, and PATCH operations (RFC 7644 §3.5.2) applied to the rendered resource,
//! which is then parsed like a replace.
//!
//! Mapping: `userName` is the login email (the only email; `emails` may repeat it),
//! `name.givenName`/`familyName`, `displayName`, `locale` and `preferredLanguage` are
//! the language, `timezone`, `active`, `externalId`, the write-only `password`, and the
//! extension's `tier`. An attribute outside this list is refused, not dropped.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::{ScimError, not_found_user, user_id};
use crate::api::AppState;
use crate::domain::directory::filter::{Filter, ROSTER_SCHEMA, USER_SCHEMA};
use crate::domain::directory::{DirectoryRecord, DirectoryUser};
use crate::engine::Principal;

const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Most operations one PATCH takes.
const MAX_PATCH_OPERATIONS: usize = 100;

/// `r` as a SCIM User under `base`.
pub(super) fn render(r: &DirectoryRecord, base: &str) -> Value {
    let mut v = json!({
        "schemas": [USER_SCHEMA, ROSTER_SCHEMA],
        "id": r.id.to_string(),
        "userName": r.email,
        "displayName": r.display_name,
        "emails": [{"value": r.email, "type": "work", "primary": true}],
        "locale": r.language,
        "preferredLanguage": r.language,
        "timezone": r.timezone,
        "active": r.entry.is_active(),
        ROSTER_SCHEMA: {"tier": r.tier.as_str()},
        "meta": {
            "resourceType": "User",
            "created": r.created_at.to_string(),
            "lastModified": r.updated_at.to_string(),
            "location": format!("{base}/Users/{}", r.id),
            "version": format!("W/\"{}\"", r.updated_at.as_millis()),
        },
    });
    if let Some(x) = &r.entry.external_id {
        v["externalId"] = json!(x);
    }
    let mut name = Map::new();
    for (k, val) in [
        ("givenName", r.entry.given_name.clone()),
        ("familyName", r.entry.family_name.clone()),
        ("formatted", r.entry.formatted_name()),
    ] {
        if let Some(val) = val {
            name.insert(k.to_owned(), json!(val));
        }
    }
    if !name.is_empty() {
        v["name"] = Value::Object(name);
    }
    v
}

fn syntax(detail: impl Into<String>) -> ScimError {
    ScimError::bad("invalidSyntax", detail)
}

fn value_error(detail: impl Into<String>) -> ScimError {
    ScimError::bad("invalidValue", detail)
}

/// A string attribute (`null` is absent).
fn string(name: &str, v: &Value) -> Result<Option<String>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(value_error(format!("{name} must be a string"))),
    }
}

/// A boolean, also as the strings "True"/"False" (Entra ID sends those).
fn boolean(name: &str, v: &Value) -> Result<bool, ScimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(value_error(format!("{name} must be true or false"))),
    }
}

/// The user `body` describes (a create or replace body, or a patched resource).
pub(super) fn parse(body: &Value) -> Result<DirectoryUser, ScimError> {
    let Some(obj) = body.as_object() else {
        return Err(syntax("a User must be a JSON object"));
    };
    let schemas_ok = obj.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("schemas")
            && v.as_array().is_some_and(|s| {
                s.iter().any(|x| {
                    x.as_str()
                        .is_some_and(|x| x.eq_ignore_ascii_case(USER_SCHEMA))
                })
            })
    });
    if !schemas_ok {
        return Err(syntax(format!("schemas must hold {USER_SCHEMA}")));
    }
    let mut u = DirectoryUser::default();
    let mut user_name = None;
    let mut emails = Vec::new();
    let mut language = (None, None);
    for (key, v) in obj {
        match key.to_ascii_lowercase().as_str() {
            "schemas" | "id" | "meta" => {}
            "username" => user_name = string("userName", v)?,
            "externalid" => u.external_id = string("externalId", v)?,
            "displayname" => u.display_name = string("displayName", v)?,
            "locale" => language.0 = string("locale", v)?,
            "preferredlanguage" => language.1 = string("preferredLanguage", v)?,
            "timezone" => u.timezone = string("timezone", v)?,
            "password" => u.password = string("password", v)?,
            "active" => {
                if v.is_null() {
                    return Err(value_error("active must be true or false"));
                }
                u.active = Some(boolean("active", v)?);
            }
            "name" => parse_name(&mut u, v)?,
            "emails" => emails = parse_emails(v)?,
            "groups" => {
                if v.as_array().is_some_and(|g| !g.is_empty()) {
                    return Err(ScimError::bad(
                        "mutability",
                        "groups are not supported (a tier is the extension's tier)",
                    ));
                }
            }
            k if k == ROSTER_SCHEMA.to_ascii_lowercase() => parse_extension(&mut u, v)?,
            _ => {
                return Err(syntax(format!(
                    "attribute {key} is not supported by Roster (see /scim/v2/Schemas)"
                )));
            }
        }
    }
    let Some(user_name) = user_name.filter(|n| !n.trim().is_empty()) else {
        return Err(value_error("userName is required"));
    };
    if let Some(other) = emails.iter().find(|e| !e.eq_ignore_ascii_case(&user_name)) {
        return Err(value_error(format!(
            "emails: Roster keeps one email, the userName; {other} is another"
        )));
    }
    u.email = user_name;
    // `preferredLanguage` wins over `locale`; Okta's `en_US` is BCP 47's `en-US`.
    u.language = language.1.or(language.0).map(|l| l.replace('_', "-"));
    Ok(u)
}

fn parse_name(u: &mut DirectoryUser, v: &Value) -> Result<(), ScimError> {
    let obj = match v {
        Value::Null => return Ok(()),
        Value::Object(o) => o,
        _ => return Err(value_error("name must be an object")),
    };
    for (k, v) in obj {
        match k.to_ascii_lowercase().as_str() {
            "givenname" => u.given_name = string("name.givenName", v)?,
            "familyname" => u.family_name = string("name.familyName", v)?,
            // Derived from the two.
            "formatted" => {}
            _ => {
                return Err(syntax(format!("name.{k} is not supported by Roster")));
            }
        }
    }
    Ok(())
}

fn parse_emails(v: &Value) -> Result<Vec<String>, ScimError> {
    let list = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        _ => return Err(value_error("emails must be an array")),
    };
    let mut out = Vec::new();
    for e in list {
        let Some(obj) = e.as_object() else {
            return Err(value_error("an email must be an object"));
        };
        for (k, v) in obj {
            match k.to_ascii_lowercase().as_str() {
                "value" => out.extend(string("emails.value", v)?),
                "type" | "primary" | "display" => {}
                _ => return Err(syntax(format!("emails.{k} is not supported by Roster"))),
            }
        }
    }
    Ok(out)
}

fn parse_extension(u: &mut DirectoryUser, v: &Value) -> Result<(), ScimError> {
    let obj = match v {
        Value::Null => return Ok(()),
        Value::Object(o) => o,
        _ => return Err(value_error(format!("{ROSTER_SCHEMA} must be an object"))),
    };
    for (k, v) in obj {
        if !k.eq_ignore_ascii_case("tier") {
            return Err(syntax(format!("{ROSTER_SCHEMA}:{k} is not supported")));
        }
        u.tier = match string("tier", v)? {
            None => None,
            Some(t) => Some(
                t.parse()
                    .map_err(|e: crate::domain::tier::UnknownTier| value_error(e.to_string()))?,
            ),
        };
    }
    Ok(())
}

/// Creates the user `body` describes: 201 and the resource.
pub(super) async fn create(
    state: &AppState,
    by: &Principal,
    body: &Value,
    base: &str,
) -> Result<(StatusCode, Value), ScimError> {
    let user = parse(body)?;
    let r = state
        .manager
        .provisioning()
        .create_directory_user(by, user)
        .await?;
    Ok((StatusCode::CREATED, render(&r, base)))
}

/// Replaces user `id` with what `body` describes.
pub(super) async fn replace(
    state: &AppState,
    by: &Principal,
    id: &str,
    body: &Value,
    base: &str,
) -> Result<Value, ScimError> {
    let uid = user_id(id)?;
    let user = parse(body)?;
    let r = state
        .manager
        .provisioning()
        .replace_directory_user(by, uid, user)
        .await
        .map_err(|e| not_found_user(e, id))?;
    Ok(render(&r, base))
}

/// Deletes user `id`.
pub(super) async fn delete(state: &AppState, by: &Principal, id: &str) -> Result<(), ScimError> {
    let uid = user_id(id)?;
    state
        .manager
        .accounts()
        .delete(by, uid)
        .await
        .map_err(|e| not_found_user(e, id))
}

/// Applies the PATCH `body` to user `id`: all its operations or none.
pub(super) async fn patch(
    state: &AppState,
    by: &Principal,
    id: &str,
    body: &Value,
    base: &str,
) -> Result<Value, ScimError> {
    let uid = user_id(id)?;
    let schemas_ok = body["schemas"]
        .as_array()
        .is_some_and(|s| s.iter().any(|v| v == PATCH_SCHEMA));
    if !schemas_ok {
        return Err(syntax(format!("schemas must hold {PATCH_SCHEMA}")));
    }
    let ops = body
        .get("Operations")
        .or_else(|| body.get("operations"))
        .and_then(Value::as_array)
        .ok_or_else(|| syntax("Operations must be an array"))?;
    if ops.is_empty() || ops.len() > MAX_PATCH_OPERATIONS {
        return Err(value_error(format!(
            "Operations must hold 1 to {MAX_PATCH_OPERATIONS} operations"
        )));
    }
    let p = state.manager.provisioning();
    let current = p
        .directory_user(by, uid)
        .await
        .map_err(|e| not_found_user(e, id))?;
    let mut resource = render(&current, base);
    for op in ops {
        apply(&mut resource, op, &current)?;
    }
    let user = parse(&resource)?;
    let r = p
        .replace_directory_user(by, uid, user)
        .await
        .map_err(|e| not_found_user(e, id))?;
    Ok(render(&r, base))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PatchOp {
    Add,
    Replace,
    Remove,
}

/// Attributes a PATCH may not remove (Roster always has them).
const KEPT: [&str; 8] = [
    "username",
    "displayname",
    "emails",
    "locale",
    "preferredlanguage",
    "timezone",
    "active",
    "externalid",
];

fn apply(resource: &mut Value, op: &Value, current: &DirectoryRecord) -> Result<(), ScimError> {
    let field = |k: &str| {
        op.as_object().and_then(|o| {
            o.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v)
        })
    };
    let kind = match field("op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("add") => PatchOp::Add,
        Some("replace") => PatchOp::Replace,
        Some("remove") => PatchOp::Remove,
        _ => return Err(syntax("each operation's op is add, replace or remove")),
    };
    let value = field("value").cloned().unwrap_or(Value::Null);
    if kind != PatchOp::Remove && value.is_null() {
        return Err(value_error("add and replace need a value"));
    }
    let path = match field("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if !p.trim().is_empty() => Some(p.trim().to_owned()),
        Some(_) => {
            return Err(ScimError::bad(
                "invalidPath",
                "path must be a non-empty string",
            ));
        }
    };
    let Some(path) = path else {
        if kind == PatchOp::Remove {
            return Err(ScimError::bad("noTarget", "remove needs a path"));
        }
        let Value::Object(attrs) = value else {
            return Err(value_error(
                "an operation without a path takes an object of attributes",
            ));
        };
        for (k, v) in attrs {
            set(resource, &k, v, kind, current)?;
        }
        return Ok(());
    };
    if kind == PatchOp::Remove {
        return remove(resource, &path, current);
    }
    set(resource, &path, value, kind, current)
}

/// `path` split into its attribute and sub-attribute, its schema URN dropped (the core
/// schema's, or the extension's whole object).
fn split_path(path: &str) -> Result<(String, Option<String>), ScimError> {
    let lower = path.to_ascii_lowercase();
    let core = format!("{}:", USER_SCHEMA.to_ascii_lowercase());
    let ext = ROSTER_SCHEMA.to_ascii_lowercase();
    if lower == ext {
        return Ok((ROSTER_SCHEMA.to_owned(), None));
    }
    if let Some(rest) = lower.strip_prefix(&format!("{ext}:")) {
        return Ok((
            ROSTER_SCHEMA.to_owned(),
            Some(path[path.len() - rest.len()..].to_owned()),
        ));
    }
    let path = if lower.starts_with(&core) {
        &path[core.len()..]
    } else {
        path
    };
    if path.to_ascii_lowercase().starts_with("urn:") {
        return Err(ScimError::bad(
            "invalidPath",
            format!("{path}: unknown schema"),
        ));
    }
    let mut parts = path.splitn(2, '.');
    let attr = parts.next().unwrap_or_default().to_owned();
    Ok((attr, parts.next().map(str::to_owned)))
}

/// The value path `emails[filter]…`: whether the one email matches, and the
/// sub-attribute after it.
fn email_filter(
    path: &str,
    current: &DirectoryRecord,
) -> Result<Option<(bool, Option<String>)>, ScimError> {
    let Some(open) = path.find('[') else {
        return Ok(None);
    };
    let close = path
        .rfind(']')
        .ok_or_else(|| ScimError::bad("invalidPath", format!("{path}: `[` is not closed")))?;
    if !path[..open].eq_ignore_ascii_case("emails") {
        return Err(ScimError::bad(
            "invalidPath",
            format!("{path}: only emails is multi-valued"),
        ));
    }
    let filter = Filter::parse(&path[..=close]).map_err(|e| ScimError::bad("invalidPath", e.0))?;
    let sub = path[close + 1..].strip_prefix('.').map(str::to_owned);
    Ok(Some((filter.matches(current), sub)))
}

fn set(
    resource: &mut Value,
    path: &str,
    value: Value,
    kind: PatchOp,
    current: &DirectoryRecord,
) -> Result<(), ScimError> {
    if let Some((hit, sub)) = email_filter(path, current)? {
        if !hit {
            return Err(ScimError::bad(
                "noTarget",
                format!("{path} matches no email"),
            ));
        }
        let email = match sub.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("value") => value,
            None => value.get("value").cloned().unwrap_or(Value::Null),
            // type, primary, display: Roster's one email is the primary work email.
            Some(_) => return Ok(()),
        };
        resource["emails"] = json!([{ "value": email }]);
        return Ok(());
    }
    let (attr, sub) = split_path(path)?;
    let obj = resource
        .as_object_mut()
        .ok_or_else(|| syntax("not an object"))?;
    let key = obj
        .keys()
        .find(|k| k.eq_ignore_ascii_case(&attr))
        .cloned()
        .unwrap_or(attr);
    match sub {
        Some(sub) => {
            let slot = obj.entry(key.clone()).or_insert_with(|| json!({}));
            let Some(inner) = slot.as_object_mut() else {
                return Err(ScimError::bad(
                    "invalidPath",
                    format!("{key} has no sub-attributes"),
                ));
            };
            let sub_key = inner
                .keys()
                .find(|k| k.eq_ignore_ascii_case(&sub))
                .cloned()
                .unwrap_or(sub);
            inner.insert(sub_key, value);
        }
        None => match (obj.get_mut(&key), value) {
            // A complex value's sub-attributes replace or add to the existing ones.
            (Some(Value::Object(have)), Value::Object(new)) => {
                for (k, v) in new {
                    let k2 = have
                        .keys()
                        .find(|x| x.eq_ignore_ascii_case(&k))
                        .cloned()
                        .unwrap_or(k);
                    have.insert(k2, v);
                }
            }
            // Adding to a multi-valued attribute appends.
            (Some(Value::Array(have)), Value::Array(new)) if kind == PatchOp::Add => {
                have.extend(new)
            }
            (_, v) => {
                obj.insert(key, v);
            }
        },
    }
    Ok(())
}

fn remove(resource: &mut Value, path: &str, current: &DirectoryRecord) -> Result<(), ScimError> {
    if email_filter(path, current)?.is_some() {
        return Err(ScimError::bad("mutability", "the email cannot be removed"));
    }
    let (attr, sub) = split_path(path)?;
    let lower = attr.to_ascii_lowercase();
    if KEPT.contains(&lower.as_str()) {
        return Err(ScimError::bad(
            "mutability",
            format!("{attr} cannot be removed"),
        ));
    }
    let obj = resource
        .as_object_mut()
        .ok_or_else(|| syntax("not an object"))?;
    let key = obj.keys().find(|k| k.eq_ignore_ascii_case(&attr)).cloned();
    match (key, sub) {
        (Some(key), None) if lower == "name" => {
            obj.remove(&key);
        }
        (Some(key), Some(sub)) if lower == "name" => {
            if let Some(inner) = obj.get_mut(&key).and_then(Value::as_object_mut) {
                inner.retain(|k, _| !k.eq_ignore_ascii_case(&sub));
            }
        }
        (_, _) if lower == "name" => {}
        _ => {
            return Err(ScimError::bad(
                "invalidPath",
                format!("{path} cannot be removed"),
            ));
        }
    }
    Ok(())
}
