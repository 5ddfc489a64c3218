//! The serving index: every catalog track as the recommender reads it, numbered densely,
//! with the trained model's popularity and neighbours mapped onto those numbers. Built
//! whole from the catalog and the model in force, and replaced whole when either
//! changes, so a request scores against one consistent snapshot without a lock.

use std::collections::HashMap;
use std::sync::Arc;

use super::model::ItemModel;
use crate::domain::catalog::{Track, quantize_embedding};
use crate::domain::taste::{TrackKey, Traits, name_key};
use crate::domain::tier::UserTier;

/// How many tracks per genre the index keeps ranked by popularity (the candidates a
/// genre brings).
const PER_GENRE_RANKED: usize = 200;

/// How many tracks per genre the index keeps that the model in force does not know
/// (uploaded after its training first, then those it saw never played): their only way
/// into a list, as no popularity or neighbour brings them.
const FRESH_PER_GENRE: usize = 50;

/// How many tracks per main artist the index keeps ranked by popularity.
const PER_ARTIST_RANKED: usize = 100;

/// How many of the most popular tracks are candidates for every list.
pub(crate) const POPULAR_CANDIDATES: usize = 300;

/// A track as the catalog hands it to [`Index::build`].
#[derive(Clone, Debug)]
pub struct ItemRow {
    /// Its id.
    pub id: Arc<str>,
    /// Its artists' names, main first.
    pub artists: Vec<Arc<str>>,
    /// Its genres.
    pub genres: Vec<Arc<str>>,
    /// Audio features scaled to 0–65,535 over their range.
    pub audio: [u16; 8],
    /// Which are known (bit i: the i-th).
    pub known: u8,
    /// Its content embedding, quantized (`embedding[i] · scale`; empty: none).
    pub embedding: Box<[i8]>,
    /// The embedding's scale.
    pub scale: f32,
}

impl ItemRow {
    /// The row of an uploaded track (quantized as the catalog holds it).
    pub fn of_track(t: &Track) -> Self {
        let (audio, known) = t.audio.unwrap_or_default().quantized();
        let (embedding, scale) = quantize_embedding(t.embedding.as_deref().unwrap_or(&[]));
        let names = |v: &[String]| v.iter().map(|n| Arc::from(n.as_str())).collect();
        Self {
            id: Arc::from(t.id.as_str()),
            artists: names(&t.artists),
            genres: names(&t.genres),
            audio,
            known,
            embedding,
            scale,
        }
    }
}

/// One indexed track.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub id: Arc<str>,
    pub key: TrackKey,
    pub artists: Box<[u32]>,
    pub genres: Box<[u32]>,
    pub audio: [u16; 8],
    pub known: u8,
    /// The embedding scaled to unit length (empty: none).
    pub embedding: Box<[f32]>,
}

impl Item {
    /// What the taste learns from it.
    pub fn traits(&self) -> Traits<'_> {
        Traits {
            audio: self.audio,
            known: self.known,
            genres: &self.genres,
        }
    }
}

/// The serving index (see the module documentation).
#[derive(Default)]
pub struct Index {
    pub(crate) items: Vec<Item>,
    by_key: HashMap<u64, u32>,
    /// Artist and genre words, by [`name_key`].
    names: HashMap<u32, Arc<str>>,
    /// Positive interactions per item in the model's training, overall and by tier.
    pub(crate) plays: Vec<u32>,
    pub(crate) tier_plays: Vec<[u32; 4]>,
    /// Items by popularity, most first (all of them), overall and by tier.
    pub(crate) popular: Vec<u32>,
    pub(crate) tier_popular: [Vec<u32>; 4],
    /// Per item, whether it is among the most popular fifth (the head that exposure
    /// figures speak of).
    pub(crate) head: Vec<bool>,
    /// Per genre, its most popular items.
    pub(crate) by_genre: HashMap<u32, Vec<u32>>,
    /// Per genre, items the model in force does not know (at most [`FRESH_PER_GENRE`];
    /// none without a model, when `by_genre` is all there is).
    pub(crate) fresh_by_genre: HashMap<u32, Vec<u32>>,
    /// Per main artist, its items (most popular first).
    pub(crate) by_artist: HashMap<u32, Vec<u32>>,
    /// Per item, its neighbours by similarity, strongest first.
    pub(crate) neighbours: Vec<Box<[(u32, f32)]>>,
    /// The most positive interactions any item had (for scaling popularity to 0–1).
    pub(crate) top_plays: u32,
    /// The model the index holds (its version), if any.
    pub model_version: Option<u64>,
}

pub(crate) fn tier_slot(t: UserTier) -> usize {
    match t {
        UserTier::Free => 0,
        UserTier::Premium => 1,
        UserTier::Enterprise => 2,
        UserTier::Vip => 3,
    }
}

fn unit(embedding: &[i8], scale: f32) -> Box<[f32]> {
    let v: Vec<f32> = embedding.iter().map(|x| f32::from(*x) * scale).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm.is_normal() {
        v.iter().map(|x| x / norm).collect()
    } else {
        Box::default()
    }
}

impl Index {
    /// The index of `rows` (the catalog) with `model`'s popularity and neighbours for the
    /// tracks it knows (a track uploaded after the training has neither yet).
    pub fn build(rows: Vec<ItemRow>, model: Option<&ItemModel>) -> Self {
        let mut names = HashMap::new();
        let mut keys = |list: &[Arc<str>]| -> Box<[u32]> {
            list.iter()
                .map(|n| {
                    let k = name_key(n);
                    names.entry(k).or_insert_with(|| Arc::clone(n));
                    k
                })
                .collect()
        };
        let items: Vec<Item> = rows
            .into_iter()
            .map(|r| Item {
                key: TrackKey::of(&r.id),
                artists: keys(&r.artists),
                genres: keys(&r.genres),
                audio: r.audio,
                known: r.known,
                embedding: unit(&r.embedding, r.scale),
                id: r.id,
            })
            .collect();
        let by_key: HashMap<u64, u32> = items
            .iter()
            .enumerate()
            .map(|(i, it)| (it.key.as_u64(), i as u32))
            .collect();
        let n = items.len();
        let (mut plays, mut tier_plays) = (vec![0u32; n], vec![[0u32; 4]; n]);
        let mut neighbours: Vec<Box<[(u32, f32)]>> = vec![Box::default(); n];
        // Per item: 0 not in the model's training, 1 in it but never played, 2 played.
        let mut known = vec![0u8; n];
        if let Some(m) = model {
            // The model's item numbers, mapped onto the index's.
            let here: Vec<Option<u32>> = m.tracks.iter().map(|k| by_key.get(k).copied()).collect();
            for (j, slot) in here.iter().enumerate() {
                let Some(i) = slot else { continue };
                let i = *i as usize;
                known[i] = 1 + u8::from(m.plays[j] > 0);
                plays[i] = m.plays[j];
                tier_plays[i] = m.tier_plays[j];
                neighbours[i] = m.neighbours[j]
                    .iter()
                    .filter_map(|(o, s)| here.get(*o as usize).copied().flatten().map(|o| (o, *s)))
                    .collect();
            }
        }
        let ranked = |count: &dyn Fn(usize) -> u32| {
            let mut order: Vec<u32> = (0..n as u32).collect();
            order.sort_by(|a, b| count(*b as usize).cmp(&count(*a as usize)).then(a.cmp(b)));
            order
        };
        let popular = ranked(&|i| plays[i]);
        let tier_popular = [0, 1, 2, 3].map(|t| ranked(&|i| tier_plays[i][t]));
        let mut head = vec![false; n];
        for &i in popular.iter().take(n.div_ceil(5)) {
            head[i as usize] = true;
        }
        let mut by_genre: HashMap<u32, Vec<u32>> = HashMap::new();
        let mut by_artist: HashMap<u32, Vec<u32>> = HashMap::new();
        for &i in &popular {
            if let Some(a) = items[i as usize].artists.first() {
                let list = by_artist.entry(*a).or_default();
                if list.len() < PER_ARTIST_RANKED {
                    list.push(i);
                }
            }
            for g in items[i as usize].genres.iter() {
                let list = by_genre.entry(*g).or_default();
                if list.len() < PER_GENRE_RANKED {
                    list.push(i);
                }
            }
        }
        let mut fresh_by_genre: HashMap<u32, Vec<u32>> = HashMap::new();
        if model.is_some() {
            // Tracks uploaded after the training first, then those it saw never played.
            for pass in [0, 1] {
                for (i, item) in items.iter().enumerate().filter(|(i, _)| known[*i] == pass) {
                    for g in item.genres.iter() {
                        let list = fresh_by_genre.entry(*g).or_default();
                        if list.len() < FRESH_PER_GENRE {
                            list.push(i as u32);
                        }
                    }
                }
            }
        }
        Self {
            top_plays: plays.iter().copied().max().unwrap_or(0),
            items,
            by_key,
            names,
            plays,
            tier_plays,
            popular,
            tier_popular,
            head,
            by_genre,
            fresh_by_genre,
            by_artist,
            neighbours,
            model_version: model.map(|m| m.version),
        }
    }

    /// Tracks indexed.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The item number of a track key, if the catalog has the track.
    pub fn item_of(&self, key: TrackKey) -> Option<u32> {
        self.by_key.get(&key.as_u64()).copied()
    }

    /// The item number of a track id.
    pub fn item_of_id(&self, id: &str) -> Option<u32> {
        self.item_of(TrackKey::of(id))
    }

    /// The traits of a track, by id (what the taste learns from an event on it).
    pub fn traits_of(&self, id: &str) -> Option<Traits<'_>> {
        self.item_of_id(id).map(|i| self.items[i as usize].traits())
    }

    /// The id of item `i`.
    pub fn id(&self, i: u32) -> &Arc<str> {
        &self.items[i as usize].id
    }

    /// The word for an artist or genre key.
    pub(crate) fn name(&self, key: u32) -> Arc<str> {
        self.name_of(key).unwrap_or_else(|| Arc::from("?"))
    }

    /// The word for an artist or genre key, if a catalog track has it.
    pub fn name_of(&self, key: u32) -> Option<Arc<str>> {
        self.names.get(&key).cloned()
    }

    /// Popularity of item `i`, 0–1 (its positive interactions over the most any had).
    pub(crate) fn popularity(&self, i: u32) -> f32 {
        if self.top_plays == 0 {
            0.0
        } else {
            self.plays[i as usize] as f32 / self.top_plays as f32
        }
    }

    /// Bytes it takes, by its own count.
    pub fn bytes(&self) -> usize {
        let items: usize = self
            .items
            .iter()
            .map(|i| {
                std::mem::size_of::<Item>()
                    + 4 * (i.artists.len() + i.genres.len())
                    + 4 * i.embedding.len()
            })
            .sum();
        let neighbours: usize = self.neighbours.iter().map(|n| 16 + 8 * n.len()).sum();
        let genres: usize = self
            .by_genre
            .values()
            .chain(self.fresh_by_genre.values())
            .chain(self.by_artist.values())
            .map(|v| 48 + 4 * v.len())
            .sum();
        items
            + neighbours
            + genres
            + self.by_key.capacity() * 13
            + self.names.capacity() * 21
            + self.items.len() * (4 + 16 + 4 * 5 + 1)
    }
}
