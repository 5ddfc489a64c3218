//! Recommender figures for `BENCHMARKS.md`, on the planted-taste simulator: training
//! the collaborative model (time, peak memory), lists per second in-process (one and
//! two threads, with and without mitigation), the quality of those lists against each
//! listener's held-out play, and bytes of taste per listener.
//!
//! ```sh
//! cargo bench --bench recommend -- --tracks 100000 --listeners 1000000
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use roster::domain::settings::PersonalizationLevel;
use roster::domain::taste::Taste;
use roster::domain::time::Timestamp;
use roster::personalization::sim::TasteSim;
use roster::personalization::{
    Ask, Context, Exposure, Index, ItemRow, Mitigation, Signals, Trainer, recommend,
};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().unwrap())
}

/// Resident and peak resident memory, MiB.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (kib("VmRSS:"), kib("VmHWM:"))
}

const MITIGATION: Mitigation = Mitigation {
    popularity: 10.0,
    diversity: 0.05,
    calibration: 1.0,
};

fn main() {
    let tracks = arg("--tracks", 100_000);
    let listeners = arg("--listeners", 200_000);
    let sample = arg("--sample", 20_000).min(listeners);
    let sim = TasteSim {
        tracks,
        genres: (tracks / 330).max(2),
        artists_per_genre: 50,
        embedding_dim: 64,
        events: 40,
        seed: 18,
        now: Timestamp::from_millis(1_780_000_000_000),
    };
    let t = Instant::now();
    let catalog = sim.catalog();
    let rows: Vec<ItemRow> = catalog.tracks.iter().map(ItemRow::of_track).collect();
    let bare = std::sync::Arc::new(Index::build(rows.clone(), None));
    println!(
        "catalog: {tracks} tracks, {} genres, index {:.1} MiB by its count, {:.1} s",
        sim.genres,
        bare.bytes() as f64 / 1_048_576.0,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let mut tastes: Vec<(Taste, roster::UserTier, String)> = Vec::with_capacity(listeners);
    let mut bytes = 0usize;
    for n in 0..listeners {
        let l = sim.listener(&catalog, n);
        let mut taste = Taste::default();
        for e in l.history() {
            taste.learn(e, e.track_id().and_then(|id| bare.traits_of(id)), 0.1);
        }
        bytes += taste.bytes();
        tastes.push((taste, l.tier, l.held_out));
    }
    let (before, _) = rss();
    println!(
        "listeners: {listeners}, taste {:.0} bytes each by its count, simulated in {:.1} s, RSS {before:.0} MiB",
        bytes as f64 / listeners as f64,
        t.elapsed().as_secs_f64()
    );
    // What a live actor holds: its taste boxed (the pointer itself is part of the actor,
    // whose size a test guards), measured by the allocator's pages.
    let boxed: Vec<Box<Taste>> = tastes.iter().map(|(t, _, _)| Box::new(t.clone())).collect();
    let (held, _) = rss();
    println!(
        "tastes boxed as actors hold them: RSS {before:.0} → {held:.0} MiB, {:.0} bytes per user beside the actor's pointer",
        (held - before) * 1_048_576.0 / listeners as f64 - 8.0
    );
    drop(boxed);
    let t = Instant::now();
    let mut trainer = Trainer::new(std::sync::Arc::clone(&bare));
    for (taste, tier, _) in &tastes {
        trainer.add(taste, *tier);
    }
    let model = trainer.train(1, sim.now, 2, &|_| {});
    let (after, peak) = rss();
    println!(
        "training: {} users, {} interactions, {:.1} s, RSS {before:.0} → {after:.0} MiB, peak {peak:.0} MiB",
        model.users,
        model.interactions,
        t.elapsed().as_secs_f64()
    );
    let index = Index::build(rows, Some(&model));
    println!(
        "index with the model: {:.1} MiB by its count",
        index.bytes() as f64 / 1_048_576.0
    );
    for (name, mitigation) in [("plain", None), ("mitigated", Some(MITIGATION))] {
        fn ask(taste: &Taste, mitigation: Option<Mitigation>, now: Timestamp) -> Ask<'_> {
            Ask {
                taste: Some(taste),
                tier: roster::UserTier::Premium,
                signals: Signals::of(PersonalizationLevel::Advanced, true),
                limit: 20,
                include_played: false,
                // As the server asks: the part of the day of the call.
                context: Context {
                    daypart: Some(roster::domain::taste::Daypart::of(now)),
                    ..Context::default()
                },
                mitigation,
                learning_rate: 0.1,
                sound: roster::personalization::federated::SoundModel::default(),
                blend: roster::personalization::Blend::GLOBAL,
                deep: false,
                now,
            }
        }
        let t = Instant::now();
        let mut exposure = Exposure::new(&index, 10);
        for (taste, _, held) in &tastes[..sample] {
            let list: Vec<u32> = recommend(&index, &ask(taste, mitigation, sim.now))
                .iter()
                .map(|s| s.item)
                .collect();
            exposure.add_case(&index, &list, index.item_of_id(held).unwrap());
        }
        let one = sample as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        std::thread::scope(|s| {
            for half in tastes[..sample].chunks(sample.div_ceil(2)) {
                let (index, now) = (&index, sim.now);
                s.spawn(move || {
                    for (taste, _, _) in half {
                        std::hint::black_box(recommend(index, &ask(taste, mitigation, now)));
                    }
                });
            }
        });
        let two = sample as f64 / t.elapsed().as_secs_f64();
        let q = exposure.report();
        println!(
            "{name}: {one:.0} lists/s on one thread, {two:.0} on two (limit 20); \
             HR@10 {:.3}, NDCG@10 {:.3}, coverage {:.3}, Gini {:.3}, head share {:.3}, ILD {:.3}",
            q.hit_rate, q.ndcg, q.coverage, q.gini, q.head_share, q.intra_list_diversity
        );
    }
    // The quality table: each signal alone (with the popularity term every list has),
    // against the popularity baseline, on the same sample.
    let none = Signals {
        genres: false,
        collaborative: false,
        taste: false,
        mood: false,
    };
    let alone = [
        ("popularity only", none),
        (
            "genres alone",
            Signals {
                genres: true,
                ..none
            },
        ),
        (
            "history alone (artist, collaborative)",
            Signals {
                collaborative: true,
                ..none
            },
        ),
        (
            "taste alone (sound, embedding, moment)",
            Signals {
                taste: true,
                ..none
            },
        ),
    ];
    for (name, signals) in alone {
        let mut exposure = Exposure::new(&index, 10);
        for (taste, _, held) in &tastes[..sample] {
            let ask = Ask {
                taste: Some(taste),
                tier: roster::UserTier::Premium,
                signals,
                limit: 10,
                include_played: false,
                context: Context {
                    daypart: Some(roster::domain::taste::Daypart::of(sim.now)),
                    ..Context::default()
                },
                mitigation: None,
                learning_rate: 0.1,
                sound: roster::personalization::federated::SoundModel::default(),
                blend: roster::personalization::Blend::GLOBAL,
                deep: false,
                now: sim.now,
            };
            let list: Vec<u32> = recommend(&index, &ask).iter().map(|s| s.item).collect();
            exposure.add_case(&index, &list, index.item_of_id(held).unwrap());
        }
        let q = exposure.report();
        println!(
            "{name}: HR@10 {:.3}, NDCG@10 {:.3}, coverage {:.3}, Gini {:.3}, head share {:.3}",
            q.hit_rate, q.ndcg, q.coverage, q.gini, q.head_share
        );
    }
}
