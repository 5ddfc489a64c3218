//! The track catalog in memory, compact, for scoring: every name (artist, genre, tag)
//! is kept once for the whole catalog and a track holds its numbers; audio features are
//! quantized to 16 bits over their range and the embedding to 8 bits with a scale per
//! track (an error of at most half a step: 1/254 of the track's largest component).
//! The exact track as uploaded stays in the store; `GET` reads it from there.
//!
//! Uploads are serialized (one at a time): the store's write is made durable, then the
//! memory changes, so what is in memory is always what is stored.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::domain::catalog::{AudioFeatures, Track, match_name, quantize_embedding};

/// One name table for artists, genres and tags.
#[derive(Default)]
struct Names {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Names {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.ids.get(name) {
            return i;
        }
        let i = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        let name: Arc<str> = Arc::from(name);
        self.names.push(Arc::clone(&name));
        self.ids.insert(name, i);
        i
    }

    fn all(&mut self, names: &[String]) -> Box<[u32]> {
        names.iter().map(|n| self.intern(n)).collect()
    }
}

/// The name of number `i` in the catalog's name table.
pub(crate) type NameOf<'a> = &'a dyn Fn(u32) -> Arc<str>;

/// A track as held in memory. What only scoring reads (the recommender, issue 18's next
/// step) is read by this module's tests until then.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Entry {
    pub id: Arc<str>,
    pub title: Box<str>,
    pub artists: Box<[u32]>,
    pub genres: Box<[u32]>,
    pub tags: Box<[u32]>,
    pub duration_ms: u32,
    pub release_year: u16,
    /// Which audio features are known (bit i: [`AudioFeatures::fields`]' i-th).
    audio_known: u8,
    audio: [u16; 8],
    /// The embedding, `embedding[i] as f32 * scale`.
    embedding: Box<[i8]>,
    scale: f32,
    /// Its ISRC, for matching plays synced from a provider.
    isrc: Option<[u8; 12]>,
}

impl Entry {
    fn of(t: &Track, names: &mut Names) -> Self {
        let (audio, audio_known) = t.audio.unwrap_or_default().quantized();
        let (embedding, scale) = quantize_embedding(t.embedding.as_deref().unwrap_or(&[]));
        Self {
            id: Arc::from(t.id.as_str()),
            title: t.title.as_str().into(),
            artists: names.all(&t.artists),
            genres: names.all(&t.genres),
            tags: names.all(&t.tags),
            duration_ms: t.duration_ms.unwrap_or(0),
            release_year: t.release_year.unwrap_or(0),
            audio_known,
            audio,
            embedding,
            scale,
            isrc: t.isrc.as_deref().and_then(isrc_key),
        }
    }

    /// The audio features, as far as quantization keeps them.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn audio(&self) -> AudioFeatures {
        AudioFeatures::from_quantized(self.audio, self.audio_known)
    }

    /// The embedding, as far as quantization keeps it (empty: none).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn embedding(&self) -> impl Iterator<Item = f32> + '_ {
        self.embedding.iter().map(|v| f32::from(*v) * self.scale)
    }

    /// Bytes it takes, with what it points to.
    fn bytes(&self) -> usize {
        std::mem::size_of::<Option<Entry>>()
            + self.id.len()
            + 16
            + self.title.len()
            + 4 * (self.artists.len() + self.genres.len() + self.tags.len())
            + self.embedding.len()
    }
}

#[derive(Default)]
struct Inner {
    slots: Vec<Option<Entry>>,
    by_id: HashMap<Arc<str>, u32>,
    free: Vec<u32>,
    names: Names,
    /// Slots by ISRC, and by a hash of the first artist's and the title's
    /// [`match_name`] (checked against the entry on lookup): for matching synced plays.
    by_isrc: HashMap<[u8; 12], u32>,
    by_name: HashMap<u64, u32>,
    hasher: std::hash::RandomState,
}

/// An ISRC as the index keys it (already checked on upload: 12 ASCII characters).
fn isrc_key(isrc: &str) -> Option<[u8; 12]> {
    let c = isrc.trim().to_ascii_uppercase().replace('-', "");
    c.as_bytes().try_into().ok()
}

impl Inner {
    fn name_key(&self, artist: &str, title: &str) -> u64 {
        use std::hash::BuildHasher as _;
        self.hasher
            .hash_one((match_name(artist), match_name(title)))
    }

    fn first_artist(&self, e: &Entry) -> Option<Arc<str>> {
        let i = *e.artists.first()?;
        self.names.names.get(i as usize).cloned()
    }

    /// Indexes the entry in `slot` for matching.
    fn index(&mut self, slot: u32) {
        let Some(e) = self.slots[slot as usize].as_ref() else {
            return;
        };
        if let Some(isrc) = e.isrc {
            self.by_isrc.entry(isrc).or_insert(slot);
        }
        if let Some(artist) = self.first_artist(e) {
            let key = self.name_key(&artist, &e.title);
            self.by_name.entry(key).or_insert(slot);
        }
    }

    /// Takes the entry in `slot` out of the matching indexes.
    fn unindex(&mut self, slot: u32) {
        let Some(e) = self.slots[slot as usize].as_ref() else {
            return;
        };
        if let Some(isrc) = e.isrc
            && self.by_isrc.get(&isrc) == Some(&slot)
        {
            self.by_isrc.remove(&isrc);
        }
        if let Some(artist) = self.first_artist(e) {
            let key = self.name_key(&artist, &e.title);
            if self.by_name.get(&key) == Some(&slot) {
                self.by_name.remove(&key);
            }
        }
    }
}

/// What the catalog holds, for operators.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CatalogSummary {
    /// Tracks.
    pub tracks: usize,
    /// Distinct artists, genres and tags named (kept once each).
    pub names: usize,
    /// The embedding dimension uploads must have (0: none).
    pub embedding_dim: usize,
    /// Memory the catalog takes, by its own count (tracks, names and indexes).
    pub memory_bytes: usize,
}

/// The catalog (see the module documentation).
#[derive(Default)]
pub(crate) struct Catalog {
    inner: RwLock<Inner>,
    /// Held across an upload's store write and memory change.
    pub(crate) writer: tokio::sync::Mutex<()>,
}

impl Catalog {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The catalog the store holds. A record that does not read is left in the store,
    /// logged and not served (an upload of its id replaces it).
    pub(crate) fn load(
        store: &dyn crate::store::Store,
    ) -> Result<Self, crate::engine::EngineError> {
        let catalog = Self::default();
        let mut chunk = Vec::with_capacity(1024);
        for item in store.tracks() {
            let (id, record) = item?;
            match serde_json::from_slice::<Track>(&record) {
                Ok(t) if t.id == id => chunk.push(t),
                Ok(_) => {
                    tracing::error!(track = %id, "a catalog record names another id; not served")
                }
                Err(e) => {
                    tracing::error!(track = %id, error = %e, "an unreadable catalog record; not served")
                }
            }
            if chunk.len() == chunk.capacity() {
                catalog.put(&chunk);
                chunk.clear();
            }
        }
        catalog.put(&chunk);
        Ok(catalog)
    }

    /// Adds or replaces tracks (already checked); returns how many were new.
    pub(crate) fn put(&self, tracks: &[Track]) -> usize {
        let mut g = self.write();
        let inner = &mut *g;
        let mut created = 0;
        for t in tracks {
            let entry = Entry::of(t, &mut inner.names);
            match inner.by_id.get(t.id.as_str()).copied() {
                Some(slot) => {
                    inner.unindex(slot);
                    inner.slots[slot as usize] = Some(entry);
                    inner.index(slot);
                }
                None => {
                    created += 1;
                    let id = Arc::clone(&entry.id);
                    let slot = match inner.free.pop() {
                        Some(slot) => {
                            inner.slots[slot as usize] = Some(entry);
                            slot
                        }
                        None => {
                            inner.slots.push(Some(entry));
                            u32::try_from(inner.slots.len() - 1).unwrap_or(u32::MAX)
                        }
                    };
                    inner.by_id.insert(id, slot);
                    inner.index(slot);
                }
            }
        }
        created
    }

    /// Sets the tracks `ids` to what the store holds of them now (after a write whose
    /// outcome is unknown).
    pub(crate) fn reread(&self, store: &dyn crate::store::Store, ids: &[String]) {
        for id in ids {
            match store.track(id) {
                Ok(Some(record)) => match serde_json::from_slice::<Track>(&record) {
                    Ok(t) => {
                        self.put(std::slice::from_ref(&t));
                    }
                    Err(e) => {
                        self.remove(id);
                        tracing::error!(track = %id, error = %e, "an unreadable catalog record; not served");
                    }
                },
                Ok(None) => {
                    self.remove(id);
                }
                Err(e) => {
                    tracing::error!(track = %id, error = %e, "a catalog track could not be read back")
                }
            }
        }
    }

    /// Removes a track; whether it was there.
    pub(crate) fn remove(&self, id: &str) -> bool {
        let mut g = self.write();
        let Some(slot) = g.by_id.remove(id) else {
            return false;
        };
        g.unindex(slot);
        g.slots[slot as usize] = None;
        g.free.push(slot);
        true
    }

    /// Whether a track of this id is in the catalog.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.read().by_id.contains_key(id)
    }

    /// The catalog track a play synced from a provider is of: by ISRC, else by one of
    /// `artists` and the `title` as [`match_name`] compares them.
    pub(crate) fn match_track(
        &self,
        isrc: Option<&str>,
        artists: &[String],
        title: &str,
    ) -> Option<Arc<str>> {
        let g = self.read();
        let id = |slot: &u32| {
            g.slots
                .get(*slot as usize)?
                .as_ref()
                .map(|e| Arc::clone(&e.id))
        };
        if let Some(slot) = isrc.and_then(isrc_key).and_then(|k| g.by_isrc.get(&k)) {
            return id(slot);
        }
        let wanted = match_name(title);
        artists.iter().find_map(|artist| {
            let slot = g.by_name.get(&g.name_key(artist, title))?;
            let e = g.slots.get(*slot as usize)?.as_ref()?;
            let same = match_name(&e.title) == wanted
                && g.first_artist(e)
                    .is_some_and(|a| match_name(&a) == match_name(artist));
            same.then(|| Arc::clone(&e.id))
        })
    }

    /// Runs `f` on the track of `id`, if there is one.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn with<R>(&self, id: &str, f: impl FnOnce(&Entry, NameOf<'_>) -> R) -> Option<R> {
        let g = self.read();
        let slot = *g.by_id.get(id)?;
        let entry = g.slots.get(slot as usize)?.as_ref()?;
        let name = |i: u32| {
            g.names
                .names
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| Arc::from(""))
        };
        Some(f(entry, &name))
    }

    /// Every track as the recommender's index reads it.
    pub(crate) fn rows(&self) -> Vec<crate::personalization::ItemRow> {
        let g = self.read();
        let name = |i: &u32| {
            g.names
                .names
                .get(*i as usize)
                .cloned()
                .unwrap_or_else(|| Arc::from(""))
        };
        g.slots
            .iter()
            .flatten()
            .map(|e| crate::personalization::ItemRow {
                id: Arc::clone(&e.id),
                artists: e.artists.iter().map(name).collect(),
                genres: e.genres.iter().map(name).collect(),
                audio: e.audio,
                known: e.audio_known,
                embedding: e.embedding.clone(),
                scale: e.scale,
            })
            .collect()
    }

    /// What it holds.
    pub(crate) fn summary(&self, embedding_dim: usize) -> CatalogSummary {
        let g = self.read();
        let tracks: usize = g.slots.iter().flatten().map(Entry::bytes).sum();
        let empty = (g.slots.len() - g.by_id.len()) * std::mem::size_of::<Option<Entry>>();
        // A hash map entry: key, value and a control byte, at the map's capacity.
        let index = g.by_id.capacity() * (16 + 4 + 1)
            + g.by_isrc.capacity() * (12 + 4 + 1)
            + g.by_name.capacity() * (8 + 4 + 1);
        let names = g
            .names
            .names
            .iter()
            .map(|n| n.len() + 16 + 16 + 4 + 1)
            .sum::<usize>();
        CatalogSummary {
            tracks: g.by_id.len(),
            names: g.names.names.len(),
            embedding_dim,
            memory_bytes: tracks + empty + index + names + g.free.capacity() * 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(id: &str, genres: &[&str]) -> Track {
        Track {
            id: id.into(),
            title: format!("Title of {id}"),
            artists: vec!["An Artist".into()],
            genres: genres.iter().map(|g| (*g).to_owned()).collect(),
            tags: vec![],
            duration_ms: Some(200_000),
            release_year: Some(2001),
            isrc: None,
            audio: Some(AudioFeatures {
                tempo: Some(123.4),
                energy: Some(0.8),
                loudness: Some(-7.25),
                ..AudioFeatures::default()
            }),
            embedding: Some(vec![0.9, -0.3, 0.0, 0.45]),
        }
    }

    #[test]
    fn tracks_are_added_replaced_and_removed_with_their_names_kept_once() {
        let c = Catalog::default();
        assert_eq!(
            c.put(&[track("a", &["jazz"]), track("b", &["jazz", "soul"])]),
            2
        );
        assert_eq!(
            c.summary(4).names,
            3,
            "one artist and two genres, each once"
        );
        assert_eq!(c.put(&[track("a", &["soul"])]), 0, "a known id is replaced");
        let genres = c.with("a", |e, name| {
            e.genres.iter().map(|g| name(*g)).collect::<Vec<_>>()
        });
        assert_eq!(genres.unwrap(), vec![Arc::<str>::from("soul")]);
        assert!(c.remove("b") && !c.remove("b") && !c.contains("b"));
        assert_eq!(c.put(&[track("c", &[])]), 1);
        let s = c.summary(4);
        assert_eq!(s.tracks, 2);
        assert!(s.memory_bytes > 0);
        assert!(c.contains("a") && c.contains("c"));
        let (d, y) = c.with("c", |e, _| (e.duration_ms, e.release_year)).unwrap();
        assert_eq!((d, y), (200_000, 2001));
    }

    #[test]
    fn quantized_features_stay_within_half_a_step() {
        let c = Catalog::default();
        let t = track("a", &[]);
        c.put(std::slice::from_ref(&t));
        let (audio, embedding) = c
            .with("a", |e, _| (e.audio(), e.embedding().collect::<Vec<_>>()))
            .unwrap();
        let a = t.audio.unwrap();
        assert!((audio.tempo.unwrap() - a.tempo.unwrap()).abs() <= 300.0 / 65_535.0);
        assert!((audio.energy.unwrap() - 0.8).abs() <= 1.0 / 65_535.0);
        assert!((audio.loudness.unwrap() - -7.25).abs() <= 70.0 / 65_535.0);
        assert_eq!(audio.valence, None, "an unknown feature stays unknown");
        let step = 0.9 / 127.0;
        for (got, want) in embedding.iter().zip(t.embedding.unwrap()) {
            assert!((got - want).abs() <= step / 2.0 + 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn synced_plays_match_by_isrc_then_by_artist_and_title_and_stop_on_removal() {
        let c = Catalog::default();
        let mut song = track("song", &[]);
        song.title = "Don't Stop Me Now".into();
        song.artists = vec!["Queen".into()];
        song.isrc = Some("GBUM71029604".into());
        let mut other = track("other", &[]);
        other.title = "Another One".into();
        c.put(&[song.clone(), other]);
        let queen = ["Queen".to_owned()];
        assert_eq!(
            c.match_track(Some("GBUM71029604"), &[], "x").as_deref(),
            Some("song")
        );
        let by_name = c.match_track(
            None,
            &["Someone".into(), "QUEEN".into()],
            "Don't Stop Me Now - 2011 Mix",
        );
        assert_eq!(by_name.as_deref(), Some("song"));
        assert_eq!(c.match_track(None, &queen, "Don't Stop"), None);
        assert_eq!(
            c.match_track(Some("USRC17607839"), &queen, "Bohemian"),
            None
        );
        // A re-upload under a new title moves the index with it; a removal empties it.
        song.title = "Now I'm Here".into();
        c.put(std::slice::from_ref(&song));
        assert_eq!(c.match_track(None, &queen, "Don't Stop Me Now"), None);
        assert_eq!(
            c.match_track(None, &queen, "now i'm here").as_deref(),
            Some("song")
        );
        c.remove("song");
        assert_eq!(
            c.match_track(Some("GBUM71029604"), &queen, "Now I'm Here"),
            None
        );
    }
}
