//! A seeded catalog and listeners with planted tastes, for tests, benches and demos of
//! the recommender (no real listening data ships with Roster).
//!
//! The catalog has `genres` genres of `artists_per_genre` artists each; a track belongs
//! to one artist (so one genre), has audio features around its genre's centre, and an
//! embedding of its genre's direction, its artist's and some noise. Within a genre,
//! tracks are popular by Zipf's law (the `r`-th most popular has weight `1/(r + 1)`).
//!
//! A listener has a main genre (and for half of them a second one, weighed less) and
//! favourite artists in them. Each of its events picks a track: 40% from a favourite
//! artist, 45% from its genres by their popularity, 15% from the whole catalog by
//! popularity (noise) — or other shares ([`Habits`]). A track outside its genres is skipped six times in ten, one
//! inside them once in twenty; a played track is also liked one time in ten. The last
//! event is a play of a track it had not heard, drawn the same way: the held-out truth
//! of leave-last-out.

use rand::rngs::Xoshiro256PlusPlus as Rng64;
use rand::{RngExt, SeedableRng};

use crate::domain::activity::ActivityEvent;
use crate::domain::catalog::{AudioFeatures, Track};
use crate::domain::ids::UserId;
use crate::domain::tier::UserTier;
use crate::domain::time::Timestamp;

/// What to simulate.
#[derive(Clone, Copy, Debug)]
pub struct TasteSim {
    /// Tracks in the catalog.
    pub tracks: usize,
    /// Genres.
    pub genres: usize,
    /// Artists per genre.
    pub artists_per_genre: usize,
    /// The embedding dimension (0: none).
    pub embedding_dim: usize,
    /// Events per listener, the held-out play included (at least 2).
    pub events: usize,
    /// The seed.
    pub seed: u64,
    /// The last event's time.
    pub now: Timestamp,
}

/// The planted catalog.
#[derive(Clone, Debug)]
pub struct SimCatalog {
    /// Its tracks, as an operator would upload them.
    pub tracks: Vec<Track>,
    /// Each track's genre and artist numbers.
    pub genre: Vec<usize>,
    /// See [`genre`](Self::genre).
    pub artist: Vec<usize>,
    /// Per genre, its tracks from the most popular down.
    by_genre: Vec<Vec<usize>>,
    /// Per artist, its tracks.
    by_artist: Vec<Vec<usize>>,
    /// Cumulative popularity weights per genre, and over the catalog.
    genre_cdf: Vec<Vec<f64>>,
    all: Vec<usize>,
    all_cdf: Vec<f64>,
}

/// How a listener picks its tracks: the share from its favourite artists, the share from
/// its genres by popularity, and the rest from the whole catalog by popularity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Habits {
    /// From its favourite artists.
    pub artists: f64,
    /// From its genres.
    pub genres: f64,
    /// How many favourite artists it keeps (`None`: two to four, as drawn).
    pub favourites: Option<usize>,
    /// How it follows popularity within a genre: the `r`-th most popular track weighs
    /// `(r + 1)^−s` (1: Zipf, as the population; 0: alike; below 0: the less popular the
    /// likelier).
    pub popularity: f64,
}

impl Habits {
    /// The population's: 40% favourite artists, 45% its genres, 15% anything.
    pub const TYPICAL: Self = Self {
        artists: 0.4,
        genres: 0.45,
        favourites: None,
        popularity: 1.0,
    };

    /// Listeners who play only the least popular tracks of their genres (the `r`-th
    /// most popular weighs `(r + 1)²`), against the population who follow popularity:
    /// the taste the own-model tests plant.
    pub const DEEP_CUTS: Self = Self {
        artists: 0.0,
        genres: 1.0,
        favourites: None,
        popularity: -2.0,
    };
}

/// A listener with its planted taste.
#[derive(Clone, Debug)]
pub struct SimListener {
    /// Its id.
    pub id: UserId,
    /// Its tier.
    pub tier: UserTier,
    /// Its genres, weighed (main first).
    pub genres: Vec<(usize, f64)>,
    /// Its favourite artists.
    pub artists: Vec<usize>,
    /// Its events, oldest first, the held-out play last.
    pub events: Vec<ActivityEvent>,
    /// The held-out track (the last event's).
    pub held_out: String,
}

impl SimListener {
    /// The events before the held-out play.
    pub fn history(&self) -> &[ActivityEvent] {
        &self.events[..self.events.len() - 1]
    }
}

fn normal(rng: &mut Rng64) -> f64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn cdf(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .map(|w| {
            acc += w;
            acc
        })
        .collect()
}

fn draw(rng: &mut Rng64, cdf: &[f64]) -> usize {
    let x = rng.random::<f64>() * cdf.last().copied().unwrap_or(0.0);
    cdf.partition_point(|c| *c < x)
        .min(cdf.len().saturating_sub(1))
}

impl TasteSim {
    /// The world the own-model tests train in (unit and HTTP): 4,000 tracks of ten
    /// genres, 60 events a listener.
    pub const OWN_MODELS: Self = Self {
        tracks: 4_000,
        genres: 10,
        artists_per_genre: 8,
        embedding_dim: 16,
        events: 60,
        seed: 19,
        now: Timestamp::from_millis(1_780_000_000_000),
    };

    /// The genre's name.
    pub fn genre_name(g: usize) -> String {
        format!("genre-{g}")
    }

    /// The catalog (deterministic for a seed).
    pub fn catalog(&self) -> SimCatalog {
        let mut rng = Rng64::seed_from_u64(self.seed ^ 0xCA7A_1006);
        let g_count = self.genres.max(1);
        let a_count = g_count * self.artists_per_genre.max(1);
        let centre: Vec<[f64; 8]> = (0..g_count)
            .map(|_| std::array::from_fn(|_| rng.random_range(0.1..0.9)))
            .collect();
        let direction = |rng: &mut Rng64| -> Vec<f64> {
            (0..self.embedding_dim).map(|_| normal(rng)).collect()
        };
        let genre_dir: Vec<Vec<f64>> = (0..g_count).map(|_| direction(&mut rng)).collect();
        let artist_dir: Vec<Vec<f64>> = (0..a_count).map(|_| direction(&mut rng)).collect();
        let (mut tracks, mut genre, mut artist) = (Vec::new(), Vec::new(), Vec::new());
        let mut by_genre = vec![Vec::new(); g_count];
        let mut by_artist = vec![Vec::new(); a_count];
        for i in 0..self.tracks {
            let a = i % a_count;
            let g = a / self.artists_per_genre.max(1);
            let c = &centre[g];
            let f = |k: usize, rng: &mut Rng64| -> Option<f32> {
                Some((c[k] + 0.08 * normal(rng)).clamp(0.0, 1.0) as f32)
            };
            let audio = AudioFeatures {
                tempo: Some(
                    (60.0 + 140.0 * c[0] + 8.0 * normal(&mut rng)).clamp(0.0, 300.0) as f32,
                ),
                energy: f(1, &mut rng),
                valence: f(2, &mut rng),
                danceability: f(3, &mut rng),
                acousticness: f(4, &mut rng),
                instrumentalness: f(5, &mut rng),
                speechiness: f(6, &mut rng),
                loudness: Some(
                    (-30.0 + 25.0 * c[7] + 2.0 * normal(&mut rng)).clamp(-60.0, 10.0) as f32,
                ),
            };
            let embedding = (self.embedding_dim > 0).then(|| {
                (0..self.embedding_dim)
                    .map(|k| {
                        (genre_dir[g][k] + 0.6 * artist_dir[a][k] + 0.4 * normal(&mut rng)) as f32
                    })
                    .collect()
            });
            tracks.push(Track {
                id: format!("sim-{i}"),
                title: format!("Simulated track {i}"),
                artists: vec![format!("artist-{a}")],
                genres: vec![Self::genre_name(g)],
                tags: vec![],
                duration_ms: Some(180_000 + (i as u32 % 120) * 1_000),
                release_year: Some(1990 + (i % 35) as u16),
                isrc: None,
                audio: Some(audio),
                embedding,
            });
            genre.push(g);
            artist.push(a);
            by_genre[g].push(i);
            by_artist[a].push(i);
        }
        let zipf = |r: usize| 1.0 / (r as f64 + 1.0);
        let genre_cdf = by_genre
            .iter()
            .map(|l| cdf((0..l.len()).map(zipf)))
            .collect();
        // Over the catalog: each track's weight within its genre.
        let mut rank = vec![0usize; self.tracks];
        for l in &by_genre {
            for (r, &i) in l.iter().enumerate() {
                rank[i] = r;
            }
        }
        let all: Vec<usize> = (0..self.tracks).collect();
        let all_cdf = cdf(all.iter().map(|&i| zipf(rank[i])));
        SimCatalog {
            tracks,
            genre,
            artist,
            by_genre,
            by_artist,
            genre_cdf,
            all,
            all_cdf,
        }
    }

    /// Listener `n` (deterministic for a seed and `n`), of the population's habits.
    pub fn listener(&self, catalog: &SimCatalog, n: usize) -> SimListener {
        self.listener_with(catalog, n, Habits::TYPICAL)
    }

    /// Listener `n` picking its tracks by `habits`.
    pub fn listener_with(&self, catalog: &SimCatalog, n: usize, habits: Habits) -> SimListener {
        let mut rng =
            Rng64::seed_from_u64(self.seed ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut id = [0u8; 16];
        rng.fill(&mut id);
        let tier = match rng.random::<f64>() {
            r if r < 0.6 => UserTier::Free,
            r if r < 0.85 => UserTier::Premium,
            r if r < 0.95 => UserTier::Enterprise,
            _ => UserTier::Vip,
        };
        let g_count = catalog.by_genre.len();
        let main = rng.random_range(0..g_count);
        let mut genres = vec![(main, 1.0)];
        if g_count > 1 && rng.random::<f64>() < 0.5 {
            let second = (main + rng.random_range(1..g_count)) % g_count;
            genres[0].1 = 0.7;
            genres.push((second, 0.3));
        }
        let per = self.artists_per_genre.max(1);
        let mut artists: Vec<usize> = (0..rng.random_range(2..=3))
            .map(|_| main * per + rng.random_range(0..per))
            .collect();
        if let Some(&(g, _)) = genres.get(1) {
            artists.push(g * per + rng.random_range(0..per));
        }
        artists.dedup();
        if let Some(n) = habits.favourites {
            artists.truncate(n.max(1));
        }
        let genre_weights = cdf(genres.iter().map(|(_, w)| *w));
        let own_cdf: Vec<Vec<f64>> = if habits.popularity == 1.0 {
            catalog.genre_cdf.clone()
        } else {
            let s = habits.popularity;
            (catalog.by_genre.iter())
                .map(|l| cdf((0..l.len()).map(|r| (r as f64 + 1.0).powf(-s))))
                .collect()
        };
        let pick = |rng: &mut Rng64| -> usize {
            let r = rng.random::<f64>();
            if r < habits.artists {
                let a = artists[rng.random_range(0..artists.len())];
                let list = &catalog.by_artist[a];
                list[rng.random_range(0..list.len())]
            } else if r < habits.artists + habits.genres {
                let g = genres[draw(rng, &genre_weights)].0;
                catalog.by_genre[g][draw(rng, &own_cdf[g])]
            } else {
                catalog.all[draw(rng, &catalog.all_cdf)]
            }
        };
        let events_n = self.events.max(2);
        let start = self.now.as_millis() - events_n as i64 * 240_000;
        let mut events = Vec::with_capacity(events_n + events_n / 8);
        let mut heard = std::collections::HashSet::new();
        for k in 0..events_n - 1 {
            let i = pick(&mut rng);
            let at = Timestamp::from_millis(start + k as i64 * 240_000);
            let track_id = catalog.tracks[i].id.clone();
            heard.insert(i);
            let own = genres.iter().any(|(g, _)| *g == catalog.genre[i]);
            if rng.random::<f64>() < if own { 0.05 } else { 0.6 } {
                events.push(ActivityEvent::TrackSkipped {
                    track_id,
                    at,
                    position_ms: 15_000,
                });
                continue;
            }
            events.push(ActivityEvent::TrackPlayed {
                track_id: track_id.clone(),
                at,
                duration_ms: 200_000,
            });
            if rng.random::<f64>() < 0.1 {
                events.push(ActivityEvent::TrackLiked { track_id, at });
            }
        }
        // The held-out play: a track not heard before, drawn the same way (own genres
        // only, as a play of the noise would mostly be skipped).
        let held = (0..1000)
            .map(|_| pick(&mut rng))
            .find(|i| !heard.contains(i) && genres.iter().any(|(g, _)| *g == catalog.genre[*i]))
            .unwrap_or_else(|| catalog.by_genre[main][0]);
        let held_out = catalog.tracks[held].id.clone();
        events.push(ActivityEvent::TrackPlayed {
            track_id: held_out.clone(),
            at: self.now,
            duration_ms: 200_000,
        });
        SimListener {
            id: UserId::from_bytes(id),
            tier,
            genres,
            artists,
            events,
            held_out,
        }
    }
}
