//! A provider's record of the user's recent listening, read for the sync into the
//! user's history. Runs on the caller's task with the link's access token; the answer
//! is sorted like a token endpoint's: a refused token (link again), a rate limit or
//! outage with its `Retry-After`, or the plays.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::lastfm::{self, LastfmError};
use super::tokens::retry_after;
use crate::domain::catalog::match_name;
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
    /// The user keeps its listening private at the provider.
    #[error("the user keeps its listening private at the provider")]
    Private,
    /// The provider refused the server's own credentials (an API key it suspended):
    /// the operator's to fix, never a reason to mark the user's link.
    #[error("the provider refused this server's credentials: {0}")]
    KeyRefused(String),
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

/// What a history is read with: the link's access token, who the account is at the
/// provider, the provider's API key (Last.fm reads by user name and key), and the last
/// sync.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    /// The access token (Last.fm: the session key).
    pub token: &'a str,
    /// The account's name at the provider.
    pub account: Option<&'a str>,
    /// The provider's API key (the client id).
    pub api_key: Option<&'a str>,
    /// The provider's shared secret (Last.fm signs its calls with it).
    pub secret: Option<&'a str>,
    /// When the link was synced last.
    pub synced_at: Option<Timestamp>,
}

/// How far before the last sync a sync reads again: scrobbles sent late (an offline
/// player) still come in; the plays read twice are duplicates the import drops.
pub const OVERLAP: Duration = Duration::from_secs(86_400);

/// The user's recent plays at the provider whose API is at `base`, newest first.
pub async fn recent_plays(
    http: &reqwest::Client,
    api: HistoryApi,
    base: &Url,
    reader: Reader<'_>,
) -> Result<Vec<Play>, HistoryError> {
    match api {
        HistoryApi::SpotifyRecentlyPlayed => spotify(http, base, reader.token).await,
        HistoryApi::LastfmRecentTracks => lastfm_plays(http, base, reader).await,
    }
}

async fn lastfm_plays(
    http: &reqwest::Client,
    base: &Url,
    reader: Reader<'_>,
) -> Result<Vec<Play>, HistoryError> {
    let (Some(user), Some(api_key), Some(secret)) = (reader.account, reader.api_key, reader.secret)
    else {
        return Err(HistoryError::Unauthorized);
    };
    let caller = lastfm::Caller {
        api_key,
        secret,
        session_key: reader.token,
        user,
    };
    let since = reader
        .synced_at
        .map(|t| Timestamp::from_millis(t.as_millis() - OVERLAP.as_millis() as i64));
    let scrobbles = lastfm::recent_tracks(http, base, caller, since)
        .await
        .map_err(|e| match e {
            // Only a session key refused is the user's grant gone (error 9); the
            // token codes of the web auth cannot come from a signed call.
            LastfmError::Refused { code: 9, .. } => HistoryError::Unauthorized,
            LastfmError::Refused { code, message } => {
                HistoryError::Unreachable(format!("error {code}: {message}"))
            }
            e @ LastfmError::KeyRefused { .. } => HistoryError::KeyRefused(e.to_string()),
            LastfmError::Private(_) => HistoryError::Private,
            LastfmError::Busy { retry_after } => HistoryError::Busy {
                status: 429,
                retry_after,
            },
            LastfmError::Unreachable(m) => HistoryError::Unreachable(m),
        })?;
    Ok(scrobbles
        .into_iter()
        .map(|s| Play {
            track_id: lastfm_track_id(s.mbid.as_deref(), &s.artist, &s.title),
            title: s.title,
            artists: vec![s.artist],
            isrc: None,
            // Last.fm reports no length: a catalog match brings it.
            duration_ms: 0,
            played_at: s.played_at,
        })
        .collect())
}

/// A scrobble's track id: `lastfm:mbid:<recording id>` when Last.fm knows it, else
/// `lastfm:<artist>:<title>` in [`match_name`]'s form (at most 128 characters).
fn lastfm_track_id(mbid: Option<&str>, artist: &str, title: &str) -> String {
    let id = match mbid {
        Some(m) => format!("lastfm:mbid:{m}"),
        None => format!("lastfm:{}:{}", match_name(artist), match_name(title)),
    };
    id.chars().take(128).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrobble_is_named_by_its_recording_or_its_normalised_artist_and_title() {
        assert_eq!(
            lastfm_track_id(Some("0f3e"), "Cher", "Believe"),
            "lastfm:mbid:0f3e"
        );
        assert_eq!(
            lastfm_track_id(None, "The Beatles", "Let It Be - Remastered 2009"),
            "lastfm:thebeatles:letitbe"
        );
        let long = "é".repeat(200);
        assert_eq!(lastfm_track_id(None, &long, "x").chars().count(), 128);
    }
}
