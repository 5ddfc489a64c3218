//! An item's reasons: the largest terms of its score, in words and as data, naming what
//! they rest on (a track the user played or liked, a genre, a mood, a moment).

use std::sync::Arc;

use super::index::Index;
use super::recommend::{Ask, Profile, Terms};
use crate::domain::taste::{Mood, Situation};

/// Most reasons given per item.
const MAX_REASONS: usize = 3;

/// Why an item is on the list: one term of its score.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ItemReason {
    /// Which term: `collaborative`, `artist`, `genre`, `sound`, `embedding`, `context`,
    /// `moment`, `mood`, `popularity`.
    pub signal: &'static str,
    /// Its share of the score (before any re-ranking).
    pub weight: f32,
    /// The reason in words.
    pub text: String,
    /// The track it is because of (for `collaborative`: one the user played or liked).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub because_of: Option<Arc<str>>,
    /// The genre it is because of.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub genre: Option<Arc<str>>,
    /// The mood it matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mood: Option<Mood>,
}

pub(super) fn reasons(index: &Index, ask: &Ask<'_>, p: &Profile<'_>, t: &Terms) -> Vec<ItemReason> {
    let w = &ask.blend;
    // Shares of what counts for the item (a blend may weigh popularity against it).
    let total = (w.as_array().iter().zip(t.as_array()))
        .map(|(w, t)| (w * t).max(0.0))
        .sum::<f32>()
        .max(f32::MIN_POSITIVE);
    let reason = |signal, value: f32, text: String| ItemReason {
        signal,
        weight: value / total,
        text,
        because_of: None,
        genre: None,
        mood: None,
    };
    let mut out = Vec::new();
    if t.collaborative > 0.0
        && let Some(h) = t.because
    {
        let id = Arc::clone(index.id(h));
        let liked_only = p.taste.is_some_and(|taste| {
            taste
                .heard
                .iter()
                .any(|x| x.track == index.items[h as usize].key && x.plays == 0)
        });
        let verb = if liked_only { "liked" } else { "played" };
        out.push(ItemReason {
            because_of: Some(Arc::clone(&id)),
            ..reason(
                "collaborative",
                w.collaborative * t.collaborative,
                format!("because you {verb} {id}"),
            )
        });
    }
    if t.artist > 0.0
        && let Some(a) = t.artist_of
    {
        let name = index.name(a);
        out.push(reason(
            "artist",
            w.artist * t.artist,
            format!("more from {name}, whom you listen to"),
        ));
    }
    if t.genre > 0.0
        && let Some(g) = t.genre_of
    {
        let name = index.name(g);
        out.push(ItemReason {
            genre: Some(Arc::clone(&name)),
            ..reason(
                "genre",
                w.genre * t.genre,
                format!("you often listen to {name}"),
            )
        });
    }
    if t.sound > 0.0 {
        out.push(reason(
            "sound",
            w.sound * t.sound,
            "close to the sound of what you play".into(),
        ));
    }
    if t.embedding > 0.0 {
        out.push(reason(
            "embedding",
            w.embedding * t.embedding,
            "similar in content to tracks you like".into(),
        ));
    }
    if t.context > 0.0
        && let Some(a) = ask.context.activity
    {
        out.push(reason(
            "context",
            w.context * t.context,
            format!("suits {}", a.name()),
        ));
    }
    if t.moment > 0.0
        && let Some(situation) = t.moment_of
    {
        let text = match situation {
            Situation::Daypart(d) => format!("like what you play {}", d.words()),
            Situation::Platform(pl) => format!("like what you play on {}", pl.name()),
        };
        out.push(reason("moment", w.moment * t.moment, text));
    }
    if t.mood > 0.0
        && let Some((m, _, _)) = p.mood
    {
        out.push(ItemReason {
            mood: Some(m),
            ..reason(
                "mood",
                w.mood * t.mood,
                format!("matches the {} mood you are in", m.word()),
            )
        });
    }
    // A blend that goes against popularity gives no popularity reason.
    if t.popularity > 0.0 && w.popularity > 0.0 {
        let text = match p.taste {
            None => format!("popular with {} listeners", ask.tier.as_str()),
            Some(_) => "new to you, popular on the platform".into(),
        };
        out.push(reason("popularity", w.popularity * t.popularity, text));
    }
    out.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    out.truncate(MAX_REASONS);
    out
}
