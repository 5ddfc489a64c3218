//! Catalog figures for `BENCHMARKS.md`: uploads of simulated tracks through the
//! engine's front door in batches of 10,000 (each durable and audited), the memory the
//! catalog takes in the process (RSS) and by its own count, and how long a restart takes
//! to load it.
//!
//! ```sh
//! cargo bench --bench catalog -- --tracks 100000 --dim 64
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use rand::{RngExt, SeedableRng};
use roster::UserManager;
use roster::config::{Config, DEFAULT_TOML, parse_toml};
use roster::domain::catalog::{AudioFeatures, MAX_TRACKS_PER_UPLOAD, Track};
use roster::engine::Principal;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SYS: Principal = Principal::System("bench");

fn config(dir: &std::path::Path, dim: usize) -> Config {
    let layers = vec![
        parse_toml("default", DEFAULT_TOML).unwrap(),
        parse_toml(
            "bench",
            &format!(
                "[store]\ndata_dir = {:?}\nverify_on_start = false\ncache_mb = 16\n\
                 [profiles]\ndir = \"\"\n[personalization]\nembedding_dim = {dim}\n",
                dir.display().to_string()
            ),
        )
        .unwrap(),
    ];
    Config::from_layers(layers).unwrap()
}

/// A plausible track: a title, one or two of 20,000 artists, two of 300 genres, a few
/// of 500 tags, every audio feature and an embedding.
fn track(i: usize, dim: usize, rng: &mut rand::rngs::StdRng) -> Track {
    let f = |rng: &mut rand::rngs::StdRng| Some(rng.random::<f32>());
    Track {
        id: format!("sim:track:{i:07}"),
        title: format!("Simulated track number {i}"),
        artists: (0..rng.random_range(1..=2))
            .map(|_| format!("Artist {}", rng.random_range(0..20_000)))
            .collect(),
        genres: (0..2)
            .map(|_| format!("genre {}", rng.random_range(0..300)))
            .collect(),
        tags: (0..rng.random_range(0..4))
            .map(|_| format!("tag {}", rng.random_range(0..500)))
            .collect(),
        duration_ms: Some(rng.random_range(60_000..480_000)),
        release_year: Some(rng.random_range(1950..2027)),
        isrc: None,
        audio: Some(AudioFeatures {
            tempo: Some(rng.random_range(60.0..200.0)),
            energy: f(rng),
            valence: f(rng),
            danceability: f(rng),
            acousticness: f(rng),
            instrumentalness: f(rng),
            speechiness: f(rng),
            loudness: Some(rng.random_range(-30.0..0.0)),
        }),
        embedding: (dim > 0).then(|| (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect()),
    }
}

fn rss() -> u64 {
    roster::loadgen::rss_bytes(std::process::id()).unwrap_or(0)
}

/// Opens the store in `dir` in this (fresh) process; prints the RSS it took and what
/// the catalog counts.
fn measure(dir: &std::path::Path, dim: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let before = rss();
        let t = Instant::now();
        let m = UserManager::open(config(dir, dim)).unwrap();
        let load = t.elapsed().as_secs_f64();
        let s = m.personalization().catalog(&SYS).unwrap();
        println!(
            "{} {} {load:.3} {} {}",
            s.tracks,
            rss() - before,
            s.memory_bytes,
            s.names
        );
        m.shutdown().await.unwrap();
    });
}

/// Runs [`measure`] in a fresh process: (tracks, RSS bytes, load seconds, counted
/// bytes, names).
fn measured(dir: &std::path::Path, dim: usize) -> (f64, f64, f64, f64, f64) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--measure",
            &dir.display().to_string(),
            "--dim",
            &dim.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let v: Vec<f64> = text
        .lines()
        .last()
        .unwrap()
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1], v[2], v[3], v[4])
}

fn main() {
    let (mut tracks, mut dim, mut only) = (100_000usize, 64usize, None);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--tracks" => tracks = it.next().and_then(|v| v.parse().ok()).expect("--tracks N"),
            "--dim" => dim = it.next().and_then(|v| v.parse().ok()).expect("--dim D"),
            "--measure" => only = it.next().map(std::path::PathBuf::from),
            _ => {}
        }
    }
    if let Some(dir) = only {
        return measure(&dir, dim);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (dir, empty) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    rt.block_on(async {
        let m = UserManager::open(config(dir.path(), dim)).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let all: Vec<Track> = (0..tracks).map(|i| track(i, dim, &mut rng)).collect();
        let json_bytes: usize = all.iter().map(|t| serde_json::to_vec(t).unwrap().len()).sum();
        let t = Instant::now();
        for chunk in all.chunks(MAX_TRACKS_PER_UPLOAD) {
            m.personalization().put_tracks(&SYS, chunk.to_vec()).await.unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "uploaded {tracks} tracks (embedding dimension {dim}, {:.0} bytes of JSON each) in {secs:.1} s: {:.0} tracks/s",
            json_bytes as f64 / tracks as f64,
            tracks as f64 / secs
        );
        m.shutdown().await.unwrap();
    });
    let (_, base, _, _, _) = measured(empty.path(), dim);
    let (n, full, load, counted, names) = measured(dir.path(), dim);
    println!(
        "a fresh process opening the store loads {n} tracks in {load:.2} s; RSS {:.0} bytes per track above an empty store's; by the catalog's own count {:.0} bytes per track ({names} names)",
        (full - base) / n,
        counted / n,
    );
}
