//! Last.fm's web auth: the user approves the application at
//! `{authorization_url}?api_key=…&cb=…`, Last.fm sends back a token, and
//! `auth.getSession` exchanges it for a session key that does not expire. Every such
//! call is signed with `api_sig`: the MD5 (hex) of the parameters sorted by name, each
//! name followed by its value, with the shared secret appended — `format` and
//! `callback` are not signed.
//!
//! Errors come as `{"error": <code>, "message": …}`, with a 4xx status or none: 4, 14
//! and 15 are a token not (or no longer) good, 9 a session key revoked, 10, 13 and 26
//! the server's own API key or signature refused (invalid, a wrong secret, suspended:
//! the operator's to fix, never the user's link), 17 a history the user keeps private,
//! 11, 16 and 29 an outage or a rate limit.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::tokens::retry_after;
use crate::domain::time::Timestamp;

/// The `api_sig` of a call with `params`, under `secret`.
pub fn api_sig(params: &[(&str, &str)], secret: &str) -> String {
    let mut signed: Vec<&(&str, &str)> = params
        .iter()
        .filter(|(k, _)| *k != "format" && *k != "callback")
        .collect();
    signed.sort_by(|a, b| a.0.cmp(b.0));
    let mut text = String::new();
    for (k, v) in signed {
        text.push_str(k);
        text.push_str(v);
    }
    text.push_str(secret);
    format!("{:x}", md5::compute(text.as_bytes()))
}

/// Where the user approves the application: `base` with `api_key` and the callback.
pub fn authorization_url(base: &url::Url, api_key: &str, callback: &url::Url) -> url::Url {
    let mut url = base.clone();
    url.query_pairs_mut()
        .append_pair("api_key", api_key)
        .append_pair("cb", callback.as_str());
    url
}

/// Why a call to Last.fm did not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LastfmError {
    /// The user's token or session key is not good (error 4, 9, 14, 15).
    #[error("Last.fm refused the credentials (error {code}: {message})")]
    Refused {
        /// Last.fm's error code.
        code: u32,
        /// Its message.
        message: String,
    },
    /// The server's API key is not good, or its signature (error 10, 13, 26).
    #[error("Last.fm refused this server's API key (error {code}: {message})")]
    KeyRefused {
        /// Last.fm's error code.
        code: u32,
        /// Its message.
        message: String,
    },
    /// The user keeps its listening private (error 17).
    #[error("Last.fm does not show this user's listening (error 17: {0})")]
    Private(String),
    /// A rate limit or outage (error 11, 16, 29; 429, 5xx).
    #[error("Last.fm is rate limiting or failing; retry later")]
    Busy {
        /// Its `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Unreachable, or an answer that does not read.
    #[error("Last.fm could not be reached or answered unreadably: {0}")]
    Unreachable(String),
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: u32,
    #[serde(default)]
    message: String,
}

/// A GET of `base` with `params` (plus `format=json`), sorted into the answer or the
/// error it is.
async fn call<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    base: &Url,
    params: &[(&str, &str)],
) -> Result<T, LastfmError> {
    let mut url = base.clone();
    url.query_pairs_mut()
        .extend_pairs(params)
        .append_pair("format", "json");
    // The address carries the session key: never in an error (and so a log).
    let answer = http
        .get(url)
        .send()
        .await
        .map_err(|e| LastfmError::Unreachable(e.without_url().to_string()))?;
    let status = answer.status().as_u16();
    let wait = retry_after(answer.headers());
    if status == 429 || status >= 500 {
        return Err(LastfmError::Busy { retry_after: wait });
    }
    let body = answer
        .bytes()
        .await
        .map_err(|e| LastfmError::Unreachable(e.without_url().to_string()))?;
    if let Ok(e) = serde_json::from_slice::<ErrorAnswer>(&body) {
        return Err(match e.error {
            4 | 9 | 14 | 15 => LastfmError::Refused {
                code: e.error,
                message: e.message,
            },
            10 | 13 | 26 => LastfmError::KeyRefused {
                code: e.error,
                message: e.message,
            },
            17 => LastfmError::Private(e.message),
            11 | 16 | 29 => LastfmError::Busy { retry_after: wait },
            code => LastfmError::Unreachable(format!("error {code}: {}", e.message)),
        });
    }
    if !(200..300).contains(&status) {
        return Err(LastfmError::Unreachable(format!("status {status}")));
    }
    serde_json::from_slice(&body)
        .map_err(|e| LastfmError::Unreachable(format!("unreadable answer: {e}")))
}

/// A Last.fm session: the user's name and the key that does not expire.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Session {
    /// The user's name at Last.fm.
    pub name: String,
    /// The session key.
    pub key: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Exchanges the `token` Last.fm sent back for a session (`auth.getSession`, signed).
pub async fn get_session(
    http: &reqwest::Client,
    base: &Url,
    api_key: &str,
    secret: &str,
    token: &str,
) -> Result<Session, LastfmError> {
    #[derive(Deserialize)]
    struct Answer {
        session: Session,
    }
    let mut params = vec![
        ("api_key", api_key),
        ("method", "auth.getSession"),
        ("token", token),
    ];
    let sig = api_sig(&params, secret);
    params.push(("api_sig", &sig));
    let a: Answer = call(http, base, &params).await?;
    Ok(a.session)
}

/// One scrobble of `user.getRecentTracks`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scrobble {
    /// Its MusicBrainz recording id, when Last.fm knows it.
    pub mbid: Option<String>,
    /// The title.
    pub title: String,
    /// The artist.
    pub artist: String,
    /// When it was played.
    pub played_at: Timestamp,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

#[derive(Deserialize)]
struct RecentAnswer {
    recenttracks: Recent,
}

#[derive(Deserialize)]
struct Recent {
    track: Option<OneOrMany<RawScrobble>>,
    #[serde(rename = "@attr")]
    attr: Option<PageAttr>,
}

#[derive(Deserialize)]
struct PageAttr {
    #[serde(rename = "totalPages", default)]
    total_pages: String,
}

#[derive(Deserialize)]
struct Text {
    #[serde(rename = "#text", default)]
    text: String,
}

#[derive(Deserialize)]
struct RawScrobble {
    name: String,
    artist: Text,
    #[serde(default)]
    mbid: String,
    /// Absent on the track playing now.
    date: Option<Uts>,
}

#[derive(Deserialize)]
struct Uts {
    uts: String,
}

/// Scrobbles read in one sync at most: 4 pages of 200.
pub const MAX_PAGES: u32 = 4;

/// Who reads a history at Last.fm: the application (its key and secret) for the user
/// (its name and session key). The call is signed with the session key, so a history
/// the user keeps private is read too, and a session the user revoked answers error 9.
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    /// The API key.
    pub api_key: &'a str,
    /// The shared secret.
    pub secret: &'a str,
    /// The user's session key.
    pub session_key: &'a str,
    /// The user's name.
    pub user: &'a str,
}

/// The user's scrobbles since `since` (all Last.fm keeps, newest first, without the
/// track playing now), up to [`MAX_PAGES`] pages.
pub async fn recent_tracks(
    http: &reqwest::Client,
    base: &Url,
    caller: Caller<'_>,
    since: Option<Timestamp>,
) -> Result<Vec<Scrobble>, LastfmError> {
    let from = since.map(|t| t.unix_secs().to_string());
    let mut out = Vec::new();
    for page in 1..=MAX_PAGES {
        let page_s = page.to_string();
        let mut params = vec![
            ("method", "user.getrecenttracks"),
            ("user", caller.user),
            ("api_key", caller.api_key),
            ("sk", caller.session_key),
            ("limit", "200"),
            ("page", page_s.as_str()),
        ];
        if let Some(from) = &from {
            params.push(("from", from));
        }
        let sig = api_sig(&params, caller.secret);
        params.push(("api_sig", &sig));
        let a: RecentAnswer = call(http, base, &params).await?;
        let tracks = match a.recenttracks.track {
            None => Vec::new(),
            Some(OneOrMany::Many(v)) => v,
            Some(OneOrMany::One(t)) => vec![t],
        };
        out.extend(tracks.into_iter().filter_map(|t| {
            let secs: i64 = t.date?.uts.parse().ok()?;
            Some(Scrobble {
                mbid: (!t.mbid.is_empty()).then_some(t.mbid),
                title: t.name,
                artist: t.artist.text,
                played_at: Timestamp::from_millis(secs.checked_mul(1000)?),
            })
        }));
        let pages: u32 = a
            .recenttracks
            .attr
            .and_then(|a| a.total_pages.parse().ok())
            .unwrap_or(1);
        if page >= pages {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_tracks_read_one_or_many_and_skip_the_track_playing_now() {
        let many = r##"{"recenttracks":{"track":[
            {"artist":{"mbid":"","#text":"Cher"},"name":"Believe","mbid":"m-1","date":{"uts":"1700000000","#text":"x"}},
            {"artist":{"#text":"Cher"},"name":"Strong Enough","mbid":"","@attr":{"nowplaying":"true"}}],
            "@attr":{"page":"1","totalPages":"3"}}}"##;
        let a: RecentAnswer = serde_json::from_str(many).unwrap();
        let Some(OneOrMany::Many(v)) = a.recenttracks.track else {
            panic!("a list")
        };
        assert_eq!(v.len(), 2);
        assert!(v[1].date.is_none());
        assert_eq!(a.recenttracks.attr.unwrap().total_pages, "3");
        let one = r##"{"recenttracks":{"track":{"artist":{"#text":"A"},"name":"T","date":{"uts":"1"}}}}"##;
        let a: RecentAnswer = serde_json::from_str(one).unwrap();
        assert!(matches!(a.recenttracks.track, Some(OneOrMany::One(_))));
    }

    /// The example of Last.fm's authentication spec: the parameters of
    /// `auth.getSession` (api_key xxxxxxxx, token yyyyyy) and the secret `ilovecher`
    /// sign as the MD5 of `api_keyxxxxxxxxmethodauth.getSessiontokenyyyyyyilovecher`
    /// (computed apart, with coreutils' `md5sum`).
    #[test]
    fn the_signature_is_the_documented_md5_of_the_sorted_parameters() {
        let expected = "1333ebf6f7dec747486b6ce965cca66b";
        let sorted = [
            ("api_key", "xxxxxxxx"),
            ("method", "auth.getSession"),
            ("token", "yyyyyy"),
        ];
        assert_eq!(api_sig(&sorted, "ilovecher"), expected);
        // Order given does not matter; format and callback are not signed.
        let shuffled = [
            ("token", "yyyyyy"),
            ("format", "json"),
            ("method", "auth.getSession"),
            ("callback", "x"),
            ("api_key", "xxxxxxxx"),
        ];
        assert_eq!(api_sig(&shuffled, "ilovecher"), expected);
        assert_ne!(api_sig(&sorted, "another secret"), expected);
    }

    #[test]
    fn the_authorization_url_carries_the_key_and_the_callback() {
        let base = url::Url::parse("https://www.last.fm/api/auth/").unwrap();
        let cb =
            url::Url::parse("https://roster.example/api/v1/integrations/lastfm/callback?state=a b")
                .unwrap();
        let url = authorization_url(&base, "k1", &cb);
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(a, b)| (a.into(), b.into()))
            .collect();
        assert_eq!(pairs[0], ("api_key".into(), "k1".into()));
        assert_eq!(pairs[1], ("cb".into(), cb.to_string()));
    }
}
