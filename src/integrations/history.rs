//! A provider's record of the user's recent listening, read for the sync into the
//! user's history. Runs on the caller's task with the link's access token; the answer
//! is sorted like a token endpoint's: a refused token (link again), a rate limit or
//! outage with its `Retry-After`, or the plays.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::tokens::retry_after;
use crate::domain::integration::HistoryApi;
use crate::domain::time::Timestamp;

/// Pages of recent plays read in one sync at most (Spotify answers 50 a page).
pub const MAX_PAGES: usize = 4;

/// One play as the provider reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Play {
    /// The provider's id of the track.
    pub track_id: String,
    /// Its title.
    pub title: String,
    /// Its artists, first the main one.
    pub artists: Vec<String>,
    /// Its ISRC, when the provider says.
    pub isrc: Option<String>,
    /// Its length (providers report plays, not how long they lasted).
    pub duration_ms: u64,
    /// When it was played.
    pub played_at: Timestamp,
}

/// Why the plays could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// 401: the provider no longer takes the token (revoked at the provider).
    #[error("the provider refused the access token")]
    Unauthorized,
    /// 403: the grant lacks the scope the history needs.
    #[error("the provider refused to show the history: the grant lacks its scope")]
    MissingScope,
    /// 429 or 5xx.
    #[error("the provider answered {status}; retry later")]
    Busy {
        /// Its status.
        status: u16,
        /// Its `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Unreachable, or an answer that does not read.
    #[error("the provider could not be reached or answered unreadably: {0}")]
    Unreachable(String),
}

#[derive(Deserialize)]
struct SpotifyPage {
    #[serde(default)]
    items: Vec<SpotifyItem>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct SpotifyItem {
    track: SpotifyTrack,
    played_at: Timestamp,
}

#[derive(Deserialize)]
struct SpotifyTrack {
    id: Option<String>,
    name: String,
    #[serde(default)]
    duration_ms: u64,
    #[serde(default)]
    artists: Vec<SpotifyArtist>,
    #[serde(default)]
    external_ids: SpotifyIds,
}

#[derive(Deserialize)]
struct SpotifyArtist {
    name: String,
}

#[derive(Default, Deserialize)]
struct SpotifyIds {
    isrc: Option<String>,
}

/// The user's recent plays at the provider whose API is at `base`, newest first.
pub async fn recent_plays(
    http: &reqwest::Client,
    api: HistoryApi,
    base: &Url,
    token: &str,
) -> Result<Vec<Play>, HistoryError> {
    match api {
        HistoryApi::SpotifyRecentlyPlayed => spotify(http, base, token).await,
    }
}

async fn spotify(
    http: &reqwest::Client,
    base: &Url,
    token: &str,
) -> Result<Vec<Play>, HistoryError> {
    let path = format!(
        "{}/me/player/recently-played",
        base.path().trim_end_matches('/')
    );
    let mut url = base.clone();
    url.set_path(&path);
    url.set_query(Some("limit=50"));
    let mut plays = Vec::new();
    for _ in 0..MAX_PAGES {
        let page: SpotifyPage = get_json(http, url.clone(), token).await?;
        plays.extend(page.items.into_iter().filter_map(|i| {
            Some(Play {
                track_id: format!("spotify:{}", i.track.id?),
                title: i.track.name,
                artists: i.track.artists.into_iter().map(|a| a.name).collect(),
                isrc: i.track.external_ids.isrc,
                duration_ms: i.track.duration_ms,
                played_at: i.played_at,
            })
        }));
        // Only a next page at the provider's own address is followed.
        match page.next.as_deref().map(Url::parse) {
            Some(Ok(next)) if next.origin() == base.origin() => url = next,
            _ => break,
        }
    }
    Ok(plays)
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: Url,
    token: &str,
) -> Result<T, HistoryError> {
    let answer = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| HistoryError::Unreachable(e.to_string()))?;
    let status = answer.status().as_u16();
    match status {
        401 => return Err(HistoryError::Unauthorized),
        403 => return Err(HistoryError::MissingScope),
        429 | 500.. => {
            return Err(HistoryError::Busy {
                status,
                retry_after: retry_after(answer.headers()),
            });
        }
        _ if !answer.status().is_success() => {
            return Err(HistoryError::Unreachable(format!("status {status}")));
        }
        _ => {}
    }
    answer
        .json()
        .await
        .map_err(|e| HistoryError::Unreachable(format!("unreadable answer: {e}")))
}
