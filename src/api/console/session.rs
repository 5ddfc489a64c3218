//! Console sessions: an operator signs in once with the operator key and the browser
//! holds a random session id in a cookie (`HttpOnly`, `SameSite=Strict`, `Secure`
//! behind TLS) instead of the key. The authentication layer treats a request carrying a
//! live console cookie as the operator's, when it passes two checks against cross-site
//! use: a state-changing method must carry the session's CSRF token in `X-CSRF-Token`,
//! and a request that names its `Origin` must name this server.
//!
//! Sessions live in this process only: a restart signs operators out. The id is kept
//! only as its SHA-256, so a memory dump does not hand out usable cookies.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, header};
use dashmap::DashMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::problem::ApiError;

/// The cookie's name.
pub(crate) const COOKIE: &str = "roster_console";
/// The header a state-changing console call carries its CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// How long a console session lasts after sign-in.
pub(crate) const TTL: Duration = Duration::from_secs(8 * 3600);
/// Console sessions at once; the oldest gives way to a new sign-in.
const MAX_SESSIONS: usize = 256;

/// One signed-in browser.
struct Entry {
    csrf: String,
    expires: Instant,
}

/// The console sessions of this process.
#[derive(Default)]
pub(crate) struct ConsoleSessions {
    by_hash: DashMap<[u8; 32], Entry>,
}

/// A new sign-in: the cookie's value and the CSRF token the page sends back.
pub(crate) struct Issued {
    pub cookie: String,
    pub csrf: String,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    crate::domain::hex::encode(&bytes)
}

fn hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl ConsoleSessions {
    /// Opens a session; the oldest goes when there are [`MAX_SESSIONS`].
    pub(crate) fn issue(&self, now: Instant) -> Issued {
        self.by_hash.retain(|_, e| e.expires > now);
        if self.by_hash.len() >= MAX_SESSIONS {
            let oldest = self
                .by_hash
                .iter()
                .min_by_key(|e| e.expires)
                .map(|e| *e.key());
            if let Some(k) = oldest {
                self.by_hash.remove(&k);
            }
        }
        let (cookie, csrf) = (random_hex(), random_hex());
        let entry = Entry {
            csrf: csrf.clone(),
            expires: now + TTL,
        };
        self.by_hash.insert(hash(&cookie), entry);
        Issued { cookie, csrf }
    }

    /// The CSRF token and remaining time of the live session `cookie` names.
    pub(crate) fn get(&self, cookie: &str, now: Instant) -> Option<(String, Duration)> {
        let e = self.by_hash.get(&hash(cookie))?;
        (e.expires > now).then(|| (e.csrf.clone(), e.expires - now))
    }

    /// Ends the session `cookie` names; whether there was one.
    pub(crate) fn end(&self, cookie: &str) -> bool {
        self.by_hash.remove(&hash(cookie)).is_some()
    }
}

/// The console cookie's value in `headers`, if any.
pub(crate) fn cookie_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
}

/// Whether a request with a live console cookie may act as the operator: a
/// state-changing method carries the session's CSRF token, and an `Origin` it names is
/// this server's (the `Host` it was sent to). The cookie is `SameSite=Strict`, so a
/// browser does not send it cross-site anyway; these hold when a browser would.
pub(crate) fn check_use(headers: &HeaderMap, method: &Method, csrf: &str) -> Result<(), ApiError> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, h)| h);
        if host.is_none() || origin_host != host {
            return Err(ApiError::Forbidden(
                "a console request from another site is refused",
            ));
        }
    }
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let sent = headers
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or(b"");
        if !bool::from(sent.ct_eq(csrf.as_bytes())) {
            return Err(ApiError::Forbidden(
                "a console call that changes something needs the session's X-CSRF-Token",
            ));
        }
    }
    Ok(())
}

/// The `Set-Cookie` value for `value` (empty with `max_age` 0 to clear it).
pub(crate) fn set_cookie(value: &str, max_age: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_session_lives_until_it_expires_or_ends() {
        let s = ConsoleSessions::default();
        let t0 = Instant::now();
        let issued = s.issue(t0);
        assert_ne!(issued.cookie, issued.csrf);
        let (csrf, left) = s.get(&issued.cookie, t0).unwrap();
        assert_eq!((csrf, left), (issued.csrf.clone(), TTL));
        assert!(s.get("not-a-session", t0).is_none());
        assert!(s.get(&issued.cookie, t0 + TTL).is_none(), "expired");
        assert!(s.end(&issued.cookie));
        assert!(s.get(&issued.cookie, t0).is_none());
        // Bounded: the oldest gives way.
        let first = s.issue(t0);
        for i in 1..=MAX_SESSIONS {
            s.issue(t0 + Duration::from_millis(i as u64));
        }
        assert!(s.get(&first.cookie, t0).is_none());
        assert_eq!(s.by_hash.len(), MAX_SESSIONS);
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; roster_console=abc ; b=2")]);
        assert_eq!(cookie_of(&h), Some("abc"));
        assert_eq!(cookie_of(&headers(&[("cookie", "a=1")])), None);
        let set = set_cookie("abc", TTL, true);
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/",
            "Max-Age=28800",
        ] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set_cookie("abc", TTL, false).contains("Secure"));
    }

    #[test]
    fn changes_need_the_csrf_token_and_origins_must_be_this_server() {
        let ok = headers(&[("host", "127.0.0.1:8080"), ("x-csrf-token", "t")]);
        assert!(check_use(&ok, &Method::POST, "t").is_ok());
        let wrong = headers(&[("host", "127.0.0.1:8080"), ("x-csrf-token", "u")]);
        assert!(check_use(&wrong, &Method::DELETE, "t").is_err());
        let none = headers(&[("host", "127.0.0.1:8080")]);
        assert!(check_use(&none, &Method::POST, "t").is_err());
        assert!(
            check_use(&none, &Method::GET, "t").is_ok(),
            "reads need no token"
        );
        let same = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(check_use(&same, &Method::GET, "t").is_ok());
        let cross = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example"),
        ]);
        assert!(check_use(&cross, &Method::GET, "t").is_err());
    }
}
