//! The integration hub's plain vocabulary (issue 21): how a provider is linked and what
//! kind of service it is.

use serde::{Deserialize, Serialize};

/// How an account at a provider is linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// OAuth 2.0 authorization code (with PKCE S256 where the provider takes it).
    Oauth2,
    /// Last.fm's web auth: a token exchanged for a session key by a call signed with
    /// `api_sig` (MD5 of the sorted parameters and the shared secret).
    Lastfm,
    /// Apple Music: a developer token the server signs (ES256) and the Music User Token
    /// the client obtains with it.
    AppleMusic,
    /// No web API: a desktop companion pushes sessions and exports with a per-link API
    /// key (Ableton Live, Logic Pro, FL Studio).
    ApiKey,
}

impl AuthMode {
    /// Its name in config and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oauth2 => "oauth2",
            Self::Lastfm => "lastfm",
            Self::AppleMusic => "apple_music",
            Self::ApiKey => "api_key",
        }
    }

    /// Every mode, for error messages.
    pub const ALL: [AuthMode; 4] = [Self::Oauth2, Self::Lastfm, Self::AppleMusic, Self::ApiKey];

    /// The mode named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// Where a provider serves the user's recent listening, for the sync into history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistoryApi {
    /// Spotify's `GET /me/player/recently-played` (the last 50 plays, paged by an
    /// `after` cursor in milliseconds).
    SpotifyRecentlyPlayed,
    /// Last.fm's `user.getRecentTracks` (scrobbles, 200 a page, from a time on).
    LastfmRecentTracks,
}

impl HistoryApi {
    /// Its name in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SpotifyRecentlyPlayed => "spotify_recently_played",
            Self::LastfmRecentTracks => "lastfm_recent_tracks",
        }
    }

    /// Every one, for error messages.
    pub const ALL: [HistoryApi; 2] = [Self::SpotifyRecentlyPlayed, Self::LastfmRecentTracks];

    /// The one named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// What kind of service a provider is (the seed's groups).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Streaming services: their listening history flows into analytics.
    Music,
    /// Social networks and scrobblers.
    Social,
    /// Calendars, chat and notes.
    Productivity,
    /// CRM, office suites and trackers.
    Enterprise,
    /// Music production tools.
    Creative,
    /// An operator's own provider (Enterprise and VIP "custom" integrations).
    Custom,
}

impl Category {
    /// Every category.
    pub const ALL: [Category; 6] = [
        Self::Music,
        Self::Social,
        Self::Productivity,
        Self::Enterprise,
        Self::Creative,
        Self::Custom,
    ];

    /// Its name in config and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Music => "music",
            Self::Social => "social",
            Self::Productivity => "productivity",
            Self::Enterprise => "enterprise",
            Self::Creative => "creative",
            Self::Custom => "custom",
        }
    }

    /// The category named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// Whether `id` is a provider id: 1–32 of `a-z`, `0-9` and `_`, starting with a letter.
pub fn is_provider_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_ids_are_checked() {
        for m in AuthMode::ALL {
            assert_eq!(AuthMode::parse(m.as_str()), Some(m));
        }
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Some(c));
        }
        assert!(is_provider_id("apple_music") && is_provider_id("microsoft365"));
        for bad in ["", "Spotify", "1abc", "a-b", "a.b", &"x".repeat(33)] {
            assert!(!is_provider_id(bad), "{bad:?}");
        }
    }
}
