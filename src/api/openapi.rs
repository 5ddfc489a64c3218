//! What every operation of the OpenAPI document has in common, declared once here rather
//! than on each handler, so that a new route cannot forget it: error answers are RFC 9457
//! problem documents (`application/problem+json`), and an operation that takes a JSON
//! body may answer the body's own refusals — malformed (400), too large (413), of another
//! media type (415).

use utoipa::openapi::path::Operation;
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response};

/// The media type of every error answer.
const PROBLEM: &str = "application/problem+json";

/// Applies the common declarations to every operation of `doc`.
pub(super) fn finish(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            finish_operation(op);
        }
    }
}

fn finish_operation(op: &mut Operation) {
    let takes_json = op.request_body.as_ref().is_some_and(|b| match b {
        RefOr::T(b) => b.content.contains_key("application/json"),
        RefOr::Ref(_) => true,
    });
    if takes_json {
        for (status, why) in [
            ("400", "the body is malformed or a field is invalid"),
            ("413", "the body is over the size limit"),
            ("415", "the body is not application/json"),
        ] {
            op.responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| problem(why));
        }
    }
    for (status, response) in op.responses.responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if let (true, RefOr::T(r)) = (is_error, response)
            && let Some(content) = r.content.shift_remove("application/json")
        {
            r.content.insert(PROBLEM.to_owned(), content);
        }
    }
}

/// A problem-document answer, described by `why`.
fn problem(why: &str) -> RefOr<Response> {
    let mut r = Response::new(why);
    let schema = Ref::from_schema_name("Problem");
    r.content
        .insert(PROBLEM.to_owned(), RefOr::T(Content::new(Some(schema))));
    RefOr::T(r)
}
