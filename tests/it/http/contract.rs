//! The served OpenAPI document against the server: every operation is called as each kind
//! of caller, with an empty JSON body and with a body of the wrong media type, and every
//! answer must be one the document declares — its status, its media type, and the
//! properties its schema requires.

use serde_json::Value;

use super::*;

/// A declared response's schema, with `$ref`s into the components resolved.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// What is wrong with `body` as an instance of `schema` (top level: its type, and the
/// properties it requires).
fn mismatch(doc: &Value, schema: &Value, body: &Value) -> Option<String> {
    let schema = resolve(doc, schema);
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return None, // oneOf and friends: not checked here
    };
    let fits = |t: &str| match t {
        "object" => body.is_object(),
        "array" => body.is_array(),
        "string" => body.is_string(),
        "integer" => body.is_i64() || body.is_u64(),
        "number" => body.is_number(),
        "boolean" => body.is_boolean(),
        "null" => body.is_null(),
        _ => true,
    };
    if !types.iter().any(|t| fits(t)) {
        return Some(format!("expected {types:?}, got {body}"));
    }
    if let (Some(required), Some(obj)) = (schema["required"].as_array(), body.as_object()) {
        for r in required.iter().filter_map(Value::as_str) {
            if !obj.contains_key(r) {
                return Some(format!("required property {r} missing in {body}"));
            }
        }
    }
    None
}

/// Checks one answer against the operation's declared responses; the complaint, if any.
fn check(doc: &Value, op: &Value, status: u16, media: &str, body: &[u8]) -> Option<String> {
    let responses = &op["responses"];
    let declared = responses
        .get(status.to_string())
        .or_else(|| responses.get("default"));
    let Some(declared) = declared else {
        return Some(format!("status {status} is not declared"));
    };
    let Some(content) = declared["content"].as_object() else {
        return None; // declared without a body
    };
    let Some(media_schema) = content.get(media) else {
        let listed: Vec<&String> = content.keys().collect();
        return Some(format!("{status} answered {media}, declared {listed:?}"));
    };
    if media == "application/x-ndjson" {
        let lines = std::str::from_utf8(body).unwrap_or_default().lines();
        for line in lines.filter(|l| !l.is_empty()) {
            if serde_json::from_str::<Value>(line).is_err() {
                return Some(format!("{status} {media}: a line is not JSON: {line}"));
            }
        }
        return None;
    }
    if media.ends_with("json") {
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return Some(format!("{status} {media} is not JSON"));
        };
        if media == "application/problem+json" && value["status"] != status {
            return Some(format!("problem {value} does not carry status {status}"));
        }
        return mismatch(doc, &media_schema["schema"], &value)
            .map(|m| format!("{status} {media}: {m}"));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_is_one_the_openapi_document_declares() {
    let srv = TestServer::start("").await;
    let (s, doc) = srv.call(GET, "/openapi.json", None, None).await;
    assert_eq!(s, 200);
    let root = srv.base.trim_end_matches("/api/v1").to_owned();
    let mut complaints = Vec::new();
    // Parameters are where the server reads them: in the path only if the path names
    // them, and optional unless the server needs them.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap_or_default();
                let in_path = path.contains(&format!("{{{name}}}"));
                if (p["in"] == "path") != in_path {
                    complaints.push(format!("{method} {path}: {name} declared in {}", p["in"]));
                }
                if !in_path && p["required"] == true {
                    complaints.push(format!("{method} {path}: {name} declared required"));
                }
            }
        }
    }
    let mut answers = 0;
    for (n, (path, item)) in doc["paths"].as_object().unwrap().iter().enumerate() {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "put", "post", "delete"].contains(&method.as_str()) {
                continue;
            }
            // A user of its own for each operation: some of them end it (deletion).
            let (id, token) = srv
                .user(&format!("contract{n}-{method}@example.com"), "free")
                .await;
            let url = format!(
                "{root}{}",
                path.replace("{id}", &id)
                    .replace("{sid}", "00000000-0000-0000-0000-000000000000")
                    .replace("{credential}", "AAAA")
            );
            let has_body = op["requestBody"].is_object();
            let callers = [None, Some(token.as_str()), Some(ADMIN_KEY)];
            for caller in callers {
                let mut bodies = vec![has_body.then(|| ("application/json", b"{}".to_vec()))];
                if has_body {
                    bodies.push(Some(("text/plain", b"x".to_vec())));
                }
                for body in bodies {
                    let mut req = srv
                        .http
                        .request(method.to_uppercase().parse().unwrap(), &url);
                    if let Some(t) = caller {
                        req = req.bearer_auth(t);
                    }
                    if let Some((ctype, bytes)) = body.clone() {
                        req = req.header("content-type", ctype).body(bytes);
                    }
                    let resp = req.send().await.unwrap();
                    let status = resp.status().as_u16();
                    let media = resp
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
                        .unwrap_or_default();
                    let bytes = resp.bytes().await.unwrap();
                    answers += 1;
                    if let Some(c) = check(&doc, op, status, &media, &bytes) {
                        let who = match caller {
                            None => "anonymous",
                            Some(t) if t == ADMIN_KEY => "operator",
                            Some(_) => "user",
                        };
                        let sent = body.map_or("no body", |(c, _)| c);
                        complaints.push(format!(
                            "{} {path} as {who} with {sent}: {c}",
                            method.to_uppercase()
                        ));
                    }
                }
            }
        }
    }
    assert!(answers > 150, "{answers} answers checked");
    assert!(complaints.is_empty(), "{}", complaints.join("\n"));
}
