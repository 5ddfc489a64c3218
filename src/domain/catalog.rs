//! Catalog tracks as operators upload them: what each field may hold, checked before
//! anything is stored. Not personal data: the catalog is the platform's, shared by every
//! user, and stored in clear.

use serde::{Deserialize, Serialize};

use super::validation::{ValidationError, text};

/// Most tracks one upload may carry.
pub const MAX_TRACKS_PER_UPLOAD: usize = 10_000;

/// Longest track id, in bytes.
pub const MAX_TRACK_ID: usize = 128;

/// Longest title, artist, genre or tag, in characters.
const MAX_TEXT: usize = 300;

/// Most artists, genres or tags of one track.
const MAX_NAMES: usize = 32;

/// Largest embedding dimension a configuration may ask for.
pub const MAX_EMBEDDING_DIM: usize = 1024;

/// A track: `id` and `title` required, the rest optional.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Track {
    /// The catalog's id of the track: 1–128 characters of `A–Z a–z 0–9 . _ : -` (for
    /// example `spotify:track:4uLU6hMCjMI75M1A2tKUQC`). An upload with a known id
    /// replaces that track.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its artists, main first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artists: Vec<String>,
    /// Its genres (lower-cased when stored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub genres: Vec<String>,
    /// Free tags (lower-cased when stored): moods, instruments, scenes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Its length in milliseconds (1 ms to 24 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u32>,
    /// The year it came out (1000–9999).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_year: Option<u16>,
    /// Its ISRC: 12 characters, two letters, three letters or digits, seven digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isrc: Option<String>,
    /// Its audio features, any of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioFeatures>,
    /// A content embedding made elsewhere (by an audio or text model), of exactly the
    /// configured dimension (`personalization.embedding_dim`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

/// Audio features in the usual units: shares in [0, 1] but for the tempo (beats per
/// minute, 0–300) and the loudness (dB, −60 to 10).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudioFeatures {
    /// Beats per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tempo: Option<f32>,
    /// Intensity and activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<f32>,
    /// Musical positiveness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valence: Option<f32>,
    /// How suitable for dancing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub danceability: Option<f32>,
    /// Confidence that it is acoustic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acousticness: Option<f32>,
    /// How likely it has no vocals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instrumentalness: Option<f32>,
    /// Presence of spoken words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speechiness: Option<f32>,
    /// Overall loudness, dB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loudness: Option<f32>,
}

impl AudioFeatures {
    /// The features in a fixed order with their names and ranges.
    pub fn fields(&self) -> [(&'static str, Option<f32>, f32, f32); 8] {
        [
            ("tempo", self.tempo, 0.0, 300.0),
            ("energy", self.energy, 0.0, 1.0),
            ("valence", self.valence, 0.0, 1.0),
            ("danceability", self.danceability, 0.0, 1.0),
            ("acousticness", self.acousticness, 0.0, 1.0),
            ("instrumentalness", self.instrumentalness, 0.0, 1.0),
            ("speechiness", self.speechiness, 0.0, 1.0),
            ("loudness", self.loudness, -60.0, 10.0),
        ]
    }

    /// The features from values in the order of [`Self::fields`].
    pub fn from_values(v: [Option<f32>; 8]) -> Self {
        let [t, e, v, d, a, i, s, l] = v;
        Self {
            tempo: t,
            energy: e,
            valence: v,
            danceability: d,
            acousticness: a,
            instrumentalness: i,
            speechiness: s,
            loudness: l,
        }
    }

    /// The features scaled to 0–65,535 over their ranges, and which are known (bit i:
    /// the i-th of [`fields`](Self::fields)): how memory holds them (at most half a step
    /// off).
    pub fn quantized(&self) -> ([u16; 8], u8) {
        let mut audio = [0u16; 8];
        let mut known = 0u8;
        for (i, (_, v, lo, hi)) in self.fields().into_iter().enumerate() {
            if let Some(v) = v {
                known |= 1 << i;
                audio[i] = (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 65_535.0).round() as u16;
            }
        }
        (audio, known)
    }

    /// The features [`quantized`](Self::quantized) gave, as far as it kept them.
    pub fn from_quantized(audio: [u16; 8], known: u8) -> Self {
        let mut out = [None; 8];
        for (i, (_, _, lo, hi)) in Self::default().fields().into_iter().enumerate() {
            if known & (1 << i) != 0 {
                out[i] = Some(lo + f32::from(audio[i]) / 65_535.0 * (hi - lo));
            }
        }
        Self::from_values(out)
    }
}

/// An embedding at 8 bits with one scale, `q[i] as f32 * scale` (at most half a step
/// off: 1/254 of the largest component). A largest component too small to divide by
/// (zero, subnormal) makes all zeros.
pub fn quantize_embedding(e: &[f32]) -> (Box<[i8]>, f32) {
    let largest = e.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = if largest.is_normal() {
        largest / 127.0
    } else {
        1.0
    };
    (e.iter().map(|v| (v / scale).round() as i8).collect(), scale)
}

/// Checks a track id (see [`Track::id`]).
pub fn track_id(field: &str, id: &str) -> Result<(), ValidationError> {
    let ok = (1..=MAX_TRACK_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("must be 1–{MAX_TRACK_ID} characters of A–Z, a–z, 0–9, '.', '_', ':' and '-'"),
        ))
    }
}

fn names(field: &str, values: &[String], lower: bool) -> Result<Vec<String>, ValidationError> {
    if values.len() > MAX_NAMES {
        return Err(ValidationError::new(
            field,
            format!("at most {MAX_NAMES} entries"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let v = text(&format!("{field}[{i}]"), v, MAX_TEXT)?;
        let v = if lower { v.to_lowercase() } else { v };
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Ok(out)
}

/// A title or artist name as matching compares it: lower case, letters and digits
/// only, without what follows a " - " or an opening bracket ("Song - Remastered 2011",
/// "Song (feat. Someone)" and "song" are one title).
pub fn match_name(name: &str) -> String {
    let cut = name
        .find(" - ")
        .into_iter()
        .chain(name.find(['(', '[']))
        .min()
        .filter(|&at| at > 0)
        .unwrap_or(name.len());
    name[..cut]
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

impl Track {
    /// The track as stored: checked against every rule (`embedding_dim` is the
    /// configured dimension), text trimmed, genres and tags lower-cased, duplicates
    /// dropped. `field` prefixes the names in errors (`[3].title`).
    pub fn checked(&self, embedding_dim: usize, field: &str) -> Result<Track, ValidationError> {
        let f = |name: &str| format!("{field}{name}");
        track_id(&f("id"), &self.id)?;
        let isrc = match &self.isrc {
            None => None,
            Some(code) => {
                let c = code.trim().to_ascii_uppercase();
                let b = c.as_bytes();
                let ok = b.len() == 12
                    && b[..2].iter().all(u8::is_ascii_uppercase)
                    && b[2..5].iter().all(u8::is_ascii_alphanumeric)
                    && b[5..].iter().all(u8::is_ascii_digit);
                if !ok {
                    return Err(ValidationError::new(
                        f("isrc"),
                        "must be an ISRC: 12 characters, such as USRC17607839",
                    ));
                }
                Some(c)
            }
        };
        if self.duration_ms.is_some_and(|d| d == 0 || d > 86_400_000) {
            return Err(ValidationError::new(
                f("duration_ms"),
                "must be between 1 and 86,400,000 (24 hours)",
            ));
        }
        if self
            .release_year
            .is_some_and(|y| !(1000..=9999).contains(&y))
        {
            return Err(ValidationError::new(
                f("release_year"),
                "must be a year between 1000 and 9999",
            ));
        }
        if let Some(a) = &self.audio {
            for (name, value, lo, hi) in a.fields() {
                if value.is_some_and(|v| !(v.is_finite() && (lo..=hi).contains(&v))) {
                    return Err(ValidationError::new(
                        f(&format!("audio.{name}")),
                        format!("must be a number between {lo} and {hi}"),
                    ));
                }
            }
        }
        if let Some(e) = &self.embedding {
            if embedding_dim == 0 {
                return Err(ValidationError::new(
                    f("embedding"),
                    "this server takes no embeddings (personalization.embedding_dim = 0)",
                ));
            }
            if e.len() != embedding_dim {
                return Err(ValidationError::new(
                    f("embedding"),
                    format!("must have {embedding_dim} numbers, not {}", e.len()),
                ));
            }
            if let Some(i) = e.iter().position(|v| !v.is_finite()) {
                return Err(ValidationError::new(
                    f(&format!("embedding[{i}]")),
                    "must be a finite number",
                ));
            }
        }
        Ok(Track {
            id: self.id.clone(),
            title: text(&f("title"), &self.title, MAX_TEXT)?,
            artists: names(&f("artists"), &self.artists, false)?,
            genres: names(&f("genres"), &self.genres, true)?,
            tags: names(&f("tags"), &self.tags, true)?,
            duration_ms: self.duration_ms,
            release_year: self.release_year,
            isrc,
            audio: self.audio,
            embedding: self.embedding.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track() -> Track {
        Track {
            id: "spotify:track:abc_1".into(),
            title: " Blue in Green ".into(),
            artists: vec!["Miles Davis".into()],
            genres: vec!["Jazz".into(), "jazz".into(), "Modal".into()],
            tags: vec![],
            duration_ms: Some(337_000),
            release_year: Some(1959),
            isrc: Some("usrc17607839".into()),
            audio: Some(AudioFeatures {
                tempo: Some(60.0),
                energy: Some(0.1),
                loudness: Some(-18.5),
                ..AudioFeatures::default()
            }),
            embedding: Some(vec![0.5, -0.25, 0.0, 1.0]),
        }
    }

    #[test]
    fn a_good_track_is_stored_tidied() {
        let t = track().checked(4, "").unwrap();
        assert_eq!(t.title, "Blue in Green");
        assert_eq!(
            t.genres,
            ["jazz", "modal"],
            "lower-cased, duplicates dropped"
        );
        assert_eq!(t.isrc.as_deref(), Some("USRC17607839"));
        assert_eq!(t.embedding.as_deref(), Some(&[0.5, -0.25, 0.0, 1.0][..]));
    }

    #[test]
    fn each_broken_rule_names_its_field() {
        type Breaks = fn(&mut Track);
        let broken: [(Breaks, &str); 10] = [
            (|t| t.id = "has space".into(), "[2].id"),
            (|t| t.id = String::new(), "[2].id"),
            (|t| t.title = "  ".into(), "[2].title"),
            (|t| t.embedding = Some(vec![0.0; 3]), "[2].embedding"),
            (
                |t| t.embedding = Some(vec![0.0, f32::NAN, 0.0, 0.0]),
                "[2].embedding[1]",
            ),
            (
                |t| {
                    t.audio = Some(AudioFeatures {
                        energy: Some(f32::NAN),
                        ..Default::default()
                    })
                },
                "[2].audio.energy",
            ),
            (
                |t| {
                    t.audio = Some(AudioFeatures {
                        tempo: Some(-1.0),
                        ..Default::default()
                    })
                },
                "[2].audio.tempo",
            ),
            (|t| t.duration_ms = Some(0), "[2].duration_ms"),
            (|t| t.isrc = Some("US-RC1-76-07839".into()), "[2].isrc"),
            (|t| t.genres = vec!["a".into(); 33], "[2].genres"),
        ];
        for (breaks, field) in broken {
            let mut t = track();
            breaks(&mut t);
            let err = t.checked(4, "[2].").unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
        let err = track().checked(0, "").unwrap_err();
        assert_eq!(
            err.field, "embedding",
            "no dimension configured: no embeddings"
        );
    }

    #[test]
    fn names_match_without_case_punctuation_or_version_suffixes() {
        assert_eq!(
            match_name("Don't Stop Me Now - Remastered 2011"),
            "dontstopmenow"
        );
        assert_eq!(match_name("Don’t stop me now (Live)"), "dontstopmenow");
        assert_eq!(match_name("Beyoncé"), "beyoncé");
        assert_eq!(match_name("(Intro)"), "intro");
        assert_ne!(match_name("Song Two"), match_name("Song"));
    }
}
