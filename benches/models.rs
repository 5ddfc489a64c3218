//! Figures of the models of issue 19 for `BENCHMARKS.md`: one user's own model trained
//! on a listening history of 10,000 events (time, peak memory above the process's), and
//! one federated round of 10,000 participants through the engine's front door (updates
//! taken per second, the time the last update takes to aggregate and publish the full
//! round, memory).
//!
//! ```sh
//! cargo bench --bench models -- --tracks 100000 --events 10000 --participants 10000
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

use roster::UserManager;
use roster::config::{Config, DEFAULT_TOML, parse_toml};
use roster::domain::consent::Purpose;
use roster::domain::ids::{SessionId, UserId};
use roster::domain::profile::ProfilePatch;
use roster::domain::settings::PersonalizationLevel;
use roster::domain::taste::Taste;
use roster::domain::tier::UserTier;
use roster::domain::time::Timestamp;
use roster::engine::{FederatedUpdate, ImportedUser, Principal, UserSession};
use roster::personalization::custom::{Setting, TrainingPlan, train};
use roster::personalization::federated::{SoundModel, sim as fl};
use roster::personalization::sim::{Habits, TasteSim};
use roster::personalization::{Blend, Index, ItemRow, Signals, Trainer};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SYS: Principal = Principal::System("bench");

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().unwrap())
}

fn rss_bytes() -> u64 {
    roster::loadgen::rss_bytes(std::process::id()).unwrap_or(0)
}

/// Runs `f`, sampling this process's resident memory every 10 ms: its result, the
/// time it took and the peak resident memory while it ran.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, Duration, u64) {
    let (stop, peak) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let sampler = {
        let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let t = Instant::now();
    let out = f();
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    (out, took, peak.load(Ordering::Relaxed))
}

const MIB: f64 = 1024.0 * 1024.0;

fn main() {
    let tracks = arg("--tracks", 100_000);
    let listeners = arg("--listeners", 20_000);
    let events = arg("--events", 10_000);
    let participants = arg("--participants", 10_000);
    own_model(tracks, listeners, events);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(federated_round(participants));
}

/// One user's own model: a catalog of `tracks`, the collaborative model trained on
/// `listeners` of the population's habits, then a deep-cuts listener of `events` events.
fn own_model(tracks: usize, listeners: usize, events: usize) {
    let sim = TasteSim {
        tracks,
        genres: 20,
        artists_per_genre: 40,
        embedding_dim: 16,
        events: 60,
        seed: 19,
        now: Timestamp::from_millis(1_780_000_000_000),
    };
    let catalog = sim.catalog();
    let rows = || {
        (catalog.tracks.iter())
            .map(ItemRow::of_track)
            .collect::<Vec<_>>()
    };
    let bare = Arc::new(Index::build(rows(), None));
    let mut trainer = Trainer::new(Arc::clone(&bare));
    for n in 0..listeners {
        let l = sim.listener(&catalog, n);
        let mut t = Taste::default();
        for e in l.history() {
            t.learn(e, e.track_id().and_then(|id| bare.traits_of(id)), 0.1);
        }
        trainer.add(&t, l.tier);
    }
    let model = trainer.train(1, sim.now, 2, &|_| {});
    let index = Index::build(rows(), Some(&model));
    drop(bare);
    let long = TasteSim { events, ..sim };
    let deep = Habits {
        artists: 0.0,
        genres: 1.0,
        favourites: None,
        popularity: -2.0,
    };
    let user = long.listener_with(&catalog, 1_000_000, deep);
    let setting = Setting {
        index: &index,
        signals: Signals::of(PersonalizationLevel::Advanced, false),
        learning_rate: 0.1,
        sound: SoundModel::default(),
        tier: UserTier::Enterprise,
        mitigation: None,
        global: Blend::GLOBAL,
    };
    let plan = TrainingPlan::default();
    let before = rss_bytes();
    let (trained, took, peak) =
        peak_during(|| train(&setting, &user.events, &plan, &mut |_| {}).unwrap());
    let e = trained.evaluation;
    println!(
        "own model: {} events ({} cases learnt from, {} pairs, {} held out) over {tracks} \
         tracks in {:.2} s; peak RSS {:.1} MiB above the {:.0} MiB before; hit rate @{} \
         {:.3} against the global blend's {:.3}, better: {}",
        trained.events,
        trained.trained_cases,
        trained.pairs,
        e.cases,
        took.as_secs_f64(),
        peak.saturating_sub(before) as f64 / MIB,
        before as f64 / MIB,
        e.k,
        e.hit_rate,
        e.global_hit_rate,
        e.better
    );
}

/// The shipped configuration on `dir`, with rounds of `participants` (the round is
/// published by the update that fills it).
fn config(dir: &std::path::Path, participants: usize) -> Config {
    let layers = vec![
        parse_toml("default", DEFAULT_TOML).unwrap(),
        parse_toml(
            "bench",
            &format!(
                "[store]\ndata_dir = {:?}\nverify_on_start = false\n[profiles]\ndir = \"\"\n\
                 [engine]\npassivate_after_secs = 86400\n\
                 [personalization.federated]\nmax_participants = {participants}\n\
                 min_participants = {}\n",
                dir.display().to_string(),
                participants.min(100)
            ),
        )
        .unwrap(),
    ];
    Config::from_layers(layers).unwrap()
}

/// A federated round of `participants` simulated devices through the engine.
async fn federated_round(participants: usize) {
    let dir = tempfile::tempdir().unwrap();
    let m = UserManager::open(config(dir.path(), participants)).unwrap();
    let mut ids: Vec<UserId> = Vec::with_capacity(participants);
    for from in (0..participants).step_by(200) {
        let batch = (from..(from + 200).min(participants))
            .map(|i| ImportedUser {
                email: format!("device{i}@example.com"),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGg".into(),
                tier: Some(UserTier::Premium),
                profile_data: None,
                created_at: None,
            })
            .collect();
        for r in m.accounts().import(&SYS, batch).await.unwrap() {
            ids.push(r.unwrap().id);
        }
    }
    futures_util::stream::iter(ids.iter().copied())
        .for_each_concurrent(64, |id| {
            let m = &m;
            async move {
                let on = vec![(Purpose::FederatedLearning, true)];
                m.privacy()
                    .update_consents(&SYS, id, on, None)
                    .await
                    .unwrap();
                let ai = json!({"ai_preferences": {"federated_learning_enabled": true}});
                let patch = ProfilePatch::from_json(ai).unwrap();
                m.update_user_profile(id, patch).await.unwrap();
            }
        })
        .await;
    let published = m.personalization().federated_model(&SYS).unwrap();
    let round = published.round.expect("a round is open").id;
    let truth = fl::planted();
    let devices = fl::devices(7, participants, 120, &truth);
    let plan = fl::default_plan();
    let updates: Vec<(UserId, FederatedUpdate)> = (ids.iter().zip(&devices))
        .filter_map(|(id, d)| {
            let u = d.update(&published.model, &plan)?;
            Some((
                *id,
                FederatedUpdate {
                    round,
                    delta: u.delta.to_vec(),
                    examples: u64::from(u.examples),
                },
            ))
        })
        .collect();
    assert_eq!(updates.len(), participants, "every device has an update");
    let as_user = |user: UserId| {
        Principal::User(UserSession {
            user,
            session: SessionId::generate(),
        })
    };
    let (last, rest) = updates.split_last().unwrap();
    let before = rss_bytes();
    let t = Instant::now();
    futures_util::stream::iter(rest.iter().cloned())
        .for_each_concurrent(64, |(user, u)| {
            let m = &m;
            async move {
                m.personalization()
                    .federated_update(&as_user(user), u)
                    .await
                    .unwrap();
            }
        })
        .await;
    let taken = t.elapsed();
    let held = rss_bytes();
    let t = Instant::now();
    m.personalization()
        .federated_update(&as_user(last.0), last.1.clone())
        .await
        .unwrap();
    let closed = t.elapsed();
    let status = m.personalization().federated_status(&SYS).unwrap();
    assert_eq!(status.published.version, 1, "the full round was published");
    println!(
        "federated round: {} updates taken in {:.2} s ({:.0}/s, 64 at a time, each checked \
         in its user's actor); the round held them in {:.1} MiB above the {:.0} MiB before; \
         the last update aggregated, stored and published the round in {:.1} ms; error to \
         the planted model {:.3} → {:.3}",
        rest.len(),
        taken.as_secs_f64(),
        rest.len() as f64 / taken.as_secs_f64(),
        held.saturating_sub(before) as f64 / MIB,
        before as f64 / MIB,
        closed.as_secs_f64() * 1e3,
        fl::error(&published.model, &truth),
        fl::error(&status.published.model, &truth)
    );
    m.shutdown().await.unwrap();
}
