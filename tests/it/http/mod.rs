//! The REST API against a real server on 127.0.0.1:0, a file per area (and the access
//! matrix through the router alone, without a socket).

mod access;
mod admin;
mod contract;
mod flow;
mod input;
mod limits;
mod meta;

use reqwest::Method;

pub(super) use crate::support::{ADMIN_KEY, PW, SYS, TestServer};

pub(super) const GET: Method = Method::GET;
pub(super) const POST: Method = Method::POST;
pub(super) const PUT: Method = Method::PUT;
pub(super) const DELETE: Method = Method::DELETE;

/// Asserts `body` is a problem document of `status` and `kind`.
pub(super) fn is_problem(body: &serde_json::Value, status: u16, kind: &str) {
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(
        body["type"],
        format!("https://roster.dev/problems/{kind}"),
        "{body}"
    );
    assert!(body["detail"].is_string(), "{body}");
}

/// The value of `series` on a Prometheus page.
pub(super) fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
