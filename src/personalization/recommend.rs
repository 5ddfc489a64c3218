//! Scoring one list: candidates from the signals the level allows, each scored by a
//! blend of terms in 0–1, then ranked (or re-ranked by [`super::mitigate`]), with the
//! largest terms of an item's score as its reasons.
//!
//! The terms and their weights in the blend:
//!
//! | term | weight | what it is | level |
//! |---|---|---|---|
//! | popularity | 0.15 | the track's users over the most any track had (the tier's at `off`) | all |
//! | genre | 0.35 | the taste's weight of the track's genres | `basic` |
//! | artist | 0.5 | the share of the tracks the user is for by the track's main artist | `standard` |
//! | collaborative | 1.0 | `Σ_h r_h·sim(h, c)` over the tracks `h` the user is for, scaled to the list's best | `standard` |
//! | sound | 0.25 | closeness of the track's audio features to the taste's average, each weighed by the federated sound model | `advanced` |
//! | embedding | 0.25 | cosine of the track's content embedding to the heard tracks' mean | `advanced` |
//! | context | 0.3 | closeness to what the asked context calls for | `advanced` |
//! | moment | 0.5 | closeness of energy and valence to what the user plays at this part of the day and on this platform | `advanced` |
//! | mood | 0.3 | closeness of energy and valence to the session's mood | `advanced` + `mood_detection_enabled` |
//!
//! `r_h` weighs a heard track by how much the user is for it (its weight, at most 5,
//! over 5) and by how recent it is: `(1 − η)^a` for the `a`-th newest (from 0), `η` the
//! user's learning rate, at least 0.02 — a high rate follows the last few tracks, a low
//! one the whole remembered history.
//!
//! A moment counts once the taste holds at least five plays of it (see
//! [`crate::domain::taste`]); the part of the day is the request's (UTC) hour.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::blend::Blend;
use super::explain::ItemReason;
use super::federated::SoundModel;
use super::index::{Index, POPULAR_CANDIDATES, tier_slot};
use super::model::liked_items;
use crate::domain::activity::Platform;
use crate::domain::settings::PersonalizationLevel;
use crate::domain::taste::{Daypart, ENERGY, Mood, Situation, Taste, VALENCE};
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;

/// Plays of a situation before its sound counts.
pub const MIN_MOMENT_PLAYS: u16 = 5;

/// A hasher for item and name numbers: one multiplication (the map's control bits come
/// from the high bits, which the golden-ratio product fills).
#[derive(Default, Clone, Copy)]
pub(crate) struct NumberHasher(u64);

impl Hasher for NumberHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by numbers.
pub(crate) type NumberMap<V> = HashMap<u32, V, BuildHasherDefault<NumberHasher>>;

/// Candidates kept for ranking per slot asked (the rest cannot make the list).
const POOL_PER_SLOT: usize = 20;

/// The least a heard track counts for, however old.
const RECENCY_FLOOR: f32 = 0.02;

/// The most popular tracks that are candidates for a personal list without mitigation
/// (the user's genres, artists and neighbours bring the rest; a mitigated list
/// re-ranks from [`POPULAR_CANDIDATES`]).
const PERSONAL_POPULAR_CANDIDATES: usize = 80;

/// The most popular tracks of a genre that are candidates for a list without
/// mitigation (with it, all the index ranks).
const GENRE_CANDIDATES: usize = 80;

/// Genres of the taste that bring candidates.
const CANDIDATE_GENRES: usize = 3;

/// What the listener is doing, as the client says (`context=`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// Exercise: high energy, danceable.
    Workout,
    /// Concentration: instrumental, little speech, moderate energy.
    Focus,
    /// Winding down: low energy, acoustic.
    Relax,
    /// A party: danceable, upbeat.
    Party,
    /// On the way: the listener's own average, a little livelier.
    Commute,
}

impl Activity {
    /// Its name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Workout => "workout",
            Self::Focus => "focus",
            Self::Relax => "relax",
            Self::Party => "party",
            Self::Commute => "commute",
        }
    }

    /// The audio features it calls for: (feature index, target 0–1).
    fn targets(self) -> &'static [(usize, f32)] {
        // Indexes: 0 tempo, 1 energy, 2 valence, 3 danceability, 4 acousticness,
        // 5 instrumentalness, 6 speechiness, 7 loudness.
        match self {
            Self::Workout => &[(1, 0.9), (3, 0.8), (0, 0.5)],
            Self::Focus => &[(5, 0.8), (6, 0.05), (1, 0.4)],
            Self::Relax => &[(1, 0.2), (4, 0.7), (2, 0.6)],
            Self::Party => &[(3, 0.9), (2, 0.8), (1, 0.8)],
            Self::Commute => &[(1, 0.6), (2, 0.6)],
        }
    }
}

/// The request's context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// What the listener is doing.
    pub activity: Option<Activity>,
    /// The part of the day the list is for.
    pub daypart: Option<Daypart>,
    /// The platform the list is for.
    pub platform: Option<Platform>,
}

/// The signals a list may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signals {
    /// The taste's genres.
    pub genres: bool,
    /// The user's heard tracks and the model's neighbours.
    pub collaborative: bool,
    /// The online taste (sound, embedding) and the context.
    pub taste: bool,
    /// The session's mood.
    pub mood: bool,
}

impl Signals {
    /// What a level allows.
    pub fn of(level: PersonalizationLevel, mood_detection: bool) -> Self {
        use PersonalizationLevel::*;
        Self {
            genres: level != Off,
            collaborative: matches!(level, Standard | Advanced),
            taste: level == Advanced,
            mood: level == Advanced && mood_detection,
        }
    }
}

/// One list to make.
#[derive(Clone, Copy, Debug)]
pub struct Ask<'a> {
    /// What is known of the user (`None`: nothing may be used; a non-personal list).
    pub taste: Option<&'a Taste>,
    /// Its tier (the popularity an `off` list follows).
    pub tier: UserTier,
    /// The signals allowed.
    pub signals: Signals,
    /// Items wanted.
    pub limit: usize,
    /// Whether tracks the user played or liked may come back.
    pub include_played: bool,
    /// The context.
    pub context: Context,
    /// Bias mitigation, if on.
    pub mitigation: Option<super::mitigate::Mitigation>,
    /// The user's learning rate: how much more a recent heard track counts than an
    /// older one.
    pub learning_rate: f64,
    /// The sound model's weights of the audio features (the federated rounds' published
    /// version; [`SoundModel::default`] weighs them alike).
    pub sound: SoundModel,
    /// The terms' weights: [`Blend::GLOBAL`], or the user's own model.
    pub blend: Blend,
    /// Whether every track of the taste's genres is a candidate, not only their most
    /// popular (a user's own model ranks them; mitigation does so anyway).
    pub deep: bool,
    /// The time (for the mood).
    pub now: Timestamp,
}

/// A ranked item.
#[derive(Clone, Debug, PartialEq)]
pub struct Scored {
    /// The index's item number.
    pub item: u32,
    /// Its blended score.
    pub score: f32,
    /// The terms of that score, largest first (all of them; the caller keeps what the
    /// user's preferences show).
    pub reasons: Vec<ItemReason>,
}

/// The terms of one candidate's score.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Terms {
    pub popularity: f32,
    pub genre: f32,
    pub artist: f32,
    pub collaborative: f32,
    pub sound: f32,
    pub embedding: f32,
    pub context: f32,
    pub mood: f32,
    pub moment: f32,
    /// The situation whose sound the item is closest to.
    pub(super) moment_of: Option<Situation>,
    /// The heard item that gave the most collaborative score, and its genre that gave
    /// the most genre score.
    pub(super) because: Option<u32>,
    pub(super) genre_of: Option<u32>,
    pub(super) artist_of: Option<u32>,
}

impl Terms {
    /// The score under a blend.
    pub fn total(&self, b: &Blend) -> f32 {
        b.popularity * self.popularity
            + b.genre * self.genre
            + b.artist * self.artist
            + b.collaborative * self.collaborative
            + b.sound * self.sound
            + b.embedding * self.embedding
            + b.context * self.context
            + b.mood * self.mood
            + b.moment * self.moment
    }

    /// The terms in [`super::blend::TERMS`] order.
    pub fn as_array(&self) -> [f32; 9] {
        [
            self.popularity,
            self.genre,
            self.artist,
            self.collaborative,
            self.sound,
            self.embedding,
            self.context,
            self.mood,
            self.moment,
        ]
    }
}

/// What is worked out once per list.
pub(super) struct Profile<'a> {
    pub(super) taste: Option<&'a Taste>,
    /// Collaborative score and its best source, per candidate.
    pub(super) cf: NumberMap<(f32, u32, f32)>,
    /// Share of the tracks the user is for, per main artist, and a track of each.
    pub(super) artists: NumberMap<(f32, u32)>,
    /// The mean unit embedding of the heard tracks the user is for.
    pub(super) centroid: Vec<f32>,
    pub(super) mood: Option<(Mood, f32, f32)>,
    /// The user's sound in the asked situations it played enough in: energy, valence.
    pub(super) moments: Vec<(Situation, f32, f32)>,
}

/// The dot product of two vectors of one length, in eight lanes (so it vectorizes).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let ((ca, ra), (cb, rb)) = (a.as_chunks::<8>(), b.as_chunks::<8>());
    let mut lanes = [0f32; 8];
    for (x, y) in ca.iter().zip(cb) {
        for ((l, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *l += x * y;
        }
    }
    lanes.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
}

/// Makes a list (see the module documentation).
pub fn recommend(index: &Index, ask: &Ask<'_>) -> Vec<Scored> {
    let Some((profile, scored)) = pool(index, ask) else {
        return Vec::new();
    };
    let picked: Vec<(u32, Terms)> = match (&ask.mitigation, ask.taste) {
        (Some(m), _) => super::mitigate::rerank(index, ask, &scored, m),
        // A non-personal list is diversified by artist even without mitigation.
        (None, None) => super::mitigate::spread_artists(index, &scored, ask.limit),
        (None, Some(_)) => scored.into_iter().take(ask.limit).collect(),
    };
    picked
        .into_iter()
        .map(|(item, t)| Scored {
            item,
            score: t.total(&ask.blend),
            reasons: super::explain::reasons(index, ask, &profile, &t),
        })
        .collect()
}

/// The candidates a list is picked from, best first under the ask's blend (at most
/// `20 × limit`), with their terms; `None` for no list.
pub(super) fn pool<'a>(index: &Index, ask: &Ask<'a>) -> Option<(Profile<'a>, Vec<(u32, Terms)>)> {
    if index.is_empty() || ask.limit == 0 {
        return None;
    }
    let taste = ask.taste;
    let s = ask.signals;
    let mut profile = Profile {
        taste,
        cf: NumberMap::default(),
        artists: NumberMap::default(),
        centroid: Vec::new(),
        mood: None,
        moments: Vec::new(),
    };
    let mut candidates: Vec<u32> = Vec::with_capacity(1024);
    let popular = match taste {
        // Non-personal: what the tier plays.
        None => &index.tier_popular[tier_slot(ask.tier)],
        Some(_) => &index.popular,
    };
    let popular_n = match (taste, ask.mitigation) {
        (Some(_), None) => PERSONAL_POPULAR_CANDIDATES,
        _ => POPULAR_CANDIDATES,
    };
    candidates.extend(popular.iter().take(popular_n));
    if let Some(t) = taste {
        if s.genres {
            for g in t.genres.iter().take(CANDIDATE_GENRES) {
                if let Some(list) = index.by_genre.get(&g.genre) {
                    // Mitigation and a user's own model need the genre's less popular
                    // tracks to choose from.
                    let n = match (ask.mitigation, ask.deep) {
                        (None, false) => GENRE_CANDIDATES,
                        _ => list.len(),
                    };
                    candidates.extend(list.iter().take(n));
                }
                if let Some(fresh) = index.fresh_by_genre.get(&g.genre) {
                    candidates.extend(fresh);
                }
            }
        }
        if s.collaborative {
            let n = t.heard.len().max(1);
            for (at, heard) in t.heard.iter().enumerate() {
                let Some(h) = index.item_of(heard.track).filter(|_| heard.weight() > 0.0) else {
                    continue;
                };
                let age = (n as i32 - 1 - at as i32).max(0);
                let recency = ((1.0 - ask.learning_rate as f32).powi(age)).max(RECENCY_FLOOR);
                let r = heard.weight().min(5.0) / 5.0 * recency;
                for &(c, sim) in index.neighbours[h as usize].iter() {
                    let e = profile.cf.entry(c).or_insert((0.0, h, 0.0));
                    e.0 += r * sim;
                    if r * sim > e.2 {
                        e.1 = h;
                        e.2 = r * sim;
                    }
                }
            }
            candidates.extend(profile.cf.keys());
            let liked: Vec<u32> = liked_items(index, &t.heard).map(|(i, _)| i).collect();
            for &i in &liked {
                if let Some(a) = index.items[i as usize].artists.first() {
                    let e = profile.artists.entry(*a).or_insert((0.0, i));
                    e.0 += 1.0 / liked.len() as f32;
                }
            }
            for a in profile.artists.keys() {
                if let Some(list) = index.by_artist.get(a) {
                    candidates.extend(list);
                }
            }
        }
        if s.taste {
            let mut sum: Vec<f32> = Vec::new();
            for (h, _) in liked_items(index, &t.heard) {
                let e = &index.items[h as usize].embedding;
                if e.is_empty() {
                    continue;
                }
                if sum.is_empty() {
                    sum = vec![0.0; e.len()];
                }
                if sum.len() == e.len() {
                    sum.iter_mut().zip(e.iter()).for_each(|(a, b)| *a += b);
                }
            }
            let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm.is_normal() {
                profile.centroid = sum.iter().map(|x| x / norm).collect();
            }
        }
        if s.taste {
            let asked = [
                ask.context.daypart.map(Situation::Daypart),
                ask.context.platform.map(Situation::Platform),
            ];
            for situation in asked.into_iter().flatten() {
                if let Some((e, v, plays)) = t.moment(situation)
                    && plays >= MIN_MOMENT_PLAYS
                {
                    profile.moments.push((situation, e as f32, v as f32));
                }
            }
        }
        if s.mood {
            profile.mood = t.mood_at(ask.now).map(|(m, e, v)| (m, e as f32, v as f32));
        }
    }
    candidates.sort_unstable();
    candidates.dedup();
    let best_cf = profile
        .cf
        .values()
        .map(|v| v.0)
        .fold(0f32, f32::max)
        .max(f32::MIN_POSITIVE);
    let excluded = |i: u32| -> bool {
        let Some(t) = taste else { return false };
        let key = index.items[i as usize].key;
        t.heard
            .iter()
            .find(|h| h.track == key)
            .is_some_and(|h| !ask.include_played || h.weight() <= 0.0)
    };
    let mut ranked: Vec<(f32, u32, Terms)> = candidates
        .into_iter()
        .filter(|i| !excluded(*i))
        .map(|i| {
            let t = terms(index, ask, &profile, best_cf, i);
            (t.total(&ask.blend), i, t)
        })
        .collect();
    let order =
        |a: &(f32, u32, Terms), b: &(f32, u32, Terms)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    let pool = (POOL_PER_SLOT * ask.limit).max(1);
    if !profile.centroid.is_empty() {
        // The embedding term, the costliest, adds at most its weight (a cosine of unit
        // vectors, with room for rounding): a candidate further below the pool's edge
        // than that cannot reach the pool, and is not worked out.
        let bound = ask.blend.embedding * 1.001;
        if ranked.len() > pool {
            ranked.select_nth_unstable_by(pool - 1, order);
            let edge = ranked[pool - 1].0;
            ranked.retain(|r| r.0 + bound >= edge);
        }
        for (total, i, t) in &mut ranked {
            let e = &index.items[*i as usize].embedding;
            if e.len() == profile.centroid.len() {
                t.embedding = dot(e, &profile.centroid).max(0.0);
                *total = t.total(&ask.blend);
            }
        }
    }
    if ranked.len() > pool {
        ranked.select_nth_unstable_by(pool - 1, order);
        ranked.truncate(pool);
    }
    ranked.sort_unstable_by(order);
    let scored = ranked.into_iter().map(|(_, i, t)| (i, t)).collect();
    Some((profile, scored))
}

fn terms(index: &Index, ask: &Ask<'_>, p: &Profile<'_>, best_cf: f32, i: u32) -> Terms {
    let item = &index.items[i as usize];
    let mut t = Terms {
        popularity: match p.taste {
            None => {
                let top = index.tier_plays[index.tier_popular[tier_slot(ask.tier)][0] as usize]
                    [tier_slot(ask.tier)];
                if top == 0 {
                    0.0
                } else {
                    index.tier_plays[i as usize][tier_slot(ask.tier)] as f32 / top as f32
                }
            }
            Some(_) => index.popularity(i),
        },
        ..Terms::default()
    };
    let Some(taste) = p.taste else {
        return t;
    };
    let s = ask.signals;
    if s.genres {
        let mut best = 0.0;
        for g in item.genres.iter() {
            let w = taste.genre_weight(*g) as f32;
            t.genre += w;
            if w > best {
                best = w;
                t.genre_of = Some(*g);
            }
        }
        t.genre = t.genre.min(1.0);
    }
    if s.collaborative
        && let Some((score, from, _)) = p.cf.get(&i)
    {
        t.collaborative = score / best_cf;
        t.because = Some(*from);
    }
    if s.collaborative
        && let Some((share, _)) = item.artists.first().and_then(|a| p.artists.get(a))
    {
        t.artist = *share;
        t.artist_of = item.artists.first().copied();
    }
    if s.taste {
        let both = item.known & taste.audio_known;
        if both != 0 {
            t.sound = ask.sound.sound(&item.audio, &taste.audio, both);
        }
        if let Some(a) = ask.context.activity {
            let (mut sum, mut n) = (0.0, 0.0);
            for &(f, target) in a.targets() {
                if item.known & (1 << f) != 0 {
                    sum += 1.0 - (f32::from(item.audio[f]) / 65_535.0 - target).abs();
                    n += 1.0;
                }
            }
            if n > 0.0 {
                t.context = sum / n;
            }
        }
    }
    let both = (1 << ENERGY) | (1 << VALENCE);
    if item.known & both == both {
        let (ie, iv) = (
            f32::from(item.audio[ENERGY]) / 65_535.0,
            f32::from(item.audio[VALENCE]) / 65_535.0,
        );
        let near = |e: f32, v: f32| {
            let (de, dv) = (ie - e, iv - v);
            (1.0 - (de * de + dv * dv).sqrt() / std::f32::consts::SQRT_2).max(0.0)
        };
        if let Some((_, e, v)) = p.mood {
            t.mood = near(e, v);
        }
        let mut best = -1.0;
        for &(situation, e, v) in &p.moments {
            let c = near(e, v);
            t.moment += c / p.moments.len() as f32;
            if c > best {
                best = c;
                t.moment_of = Some(situation);
            }
        }
    }
    t
}
