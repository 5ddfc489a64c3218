//! The recommender against a population with planted tastes (leave-last-out).

use super::sim::{SimListener, TasteSim};
use super::*;
use crate::domain::settings::PersonalizationLevel;
use crate::domain::taste::Taste;
use crate::domain::time::Timestamp;

pub(crate) const SIM: TasteSim = TasteSim {
    tracks: 3_000,
    genres: 15,
    artists_per_genre: 10,
    embedding_dim: 16,
    events: 40,
    seed: 18,
    now: Timestamp::from_millis(1_780_000_000_000),
};

/// The config's default strengths.
pub(crate) const MITIGATION: Mitigation = Mitigation {
    popularity: 10.0,
    diversity: 0.05,
    calibration: 1.0,
};

/// A trained world: the index with the model, and each listener's taste learned from
/// its history (the held-out play left out).
pub(crate) struct World {
    pub index: Index,
    pub listeners: Vec<(SimListener, Taste)>,
}

pub(crate) fn world(users: usize, rate: f64) -> World {
    let catalog = SIM.catalog();
    let rows = || {
        catalog
            .tracks
            .iter()
            .map(ItemRow::of_track)
            .collect::<Vec<_>>()
    };
    let bare = std::sync::Arc::new(Index::build(rows(), None));
    let listeners: Vec<(SimListener, Taste)> = (0..users)
        .map(|n| {
            let l = SIM.listener(&catalog, n);
            let mut t = Taste::default();
            for e in l.history() {
                let traits = e.track_id().and_then(|id| bare.traits_of(id));
                t.learn(e, traits, rate);
            }
            (l, t)
        })
        .collect();
    let mut trainer = Trainer::new(std::sync::Arc::clone(&bare));
    for (l, t) in &listeners {
        trainer.add(t, l.tier);
    }
    let model = trainer.train(1, SIM.now, 2, &|_| {});
    let index = Index::build(rows(), Some(&model));
    World { index, listeners }
}

/// The tests' tastes are learned at 0.1 unless a test says otherwise.
fn taste_rate(_: &Taste) -> f64 {
    0.1
}

fn ask<'a>(
    taste: &'a Taste,
    level: PersonalizationLevel,
    mitigation: Option<Mitigation>,
) -> Ask<'a> {
    Ask {
        taste: Some(taste),
        tier: crate::domain::tier::UserTier::Free,
        signals: Signals::of(level, false),
        limit: 10,
        include_played: false,
        context: Context::default(),
        mitigation,
        learning_rate: taste_rate(taste),
        now: SIM.now,
    }
}

/// The quality of the lists `make` gives each listener.
pub(crate) fn measure(w: &World, make: &dyn Fn(&Taste) -> Vec<u32>) -> Quality {
    let mut e = Exposure::new(&w.index, 10);
    for (l, t) in &w.listeners {
        let held = w.index.item_of_id(&l.held_out).unwrap();
        e.add_case(&w.index, &make(t), held);
    }
    e.report()
}

/// The popularity baseline: the most popular tracks the user has not heard.
pub(crate) fn popular(w: &World, t: &Taste) -> Vec<u32> {
    w.index
        .popular
        .iter()
        .copied()
        .filter(|i| !t.has_heard(w.index.items[*i as usize].key))
        .take(10)
        .collect()
}

pub(crate) fn blended(
    w: &World,
    t: &Taste,
    level: PersonalizationLevel,
    m: Option<Mitigation>,
) -> Vec<u32> {
    recommend(&w.index, &ask(t, level, m))
        .into_iter()
        .map(|s| s.item)
        .collect()
}

#[test]
fn the_blend_beats_popularity_on_planted_tastes_and_mitigation_spreads_exposure() {
    let w = world(3_000, 0.1);
    let pop = measure(&w, &|t| popular(&w, t));
    let blend = measure(&w, &|t| {
        blended(&w, t, PersonalizationLevel::Advanced, None)
    });
    let fair = measure(&w, &|t| {
        blended(&w, t, PersonalizationLevel::Advanced, Some(MITIGATION))
    });
    eprintln!("popularity {pop:?}\nblend {blend:?}\nmitigated {fair:?}");
    assert!(
        blend.hit_rate >= 1.6 * pop.hit_rate,
        "HR@10 {:.3} vs popularity {:.3}",
        blend.hit_rate,
        pop.hit_rate
    );
    assert!(blend.ndcg > pop.ndcg);
    assert!(
        blend.head_share - fair.head_share >= 0.30,
        "head share {:.3} → {:.3}",
        blend.head_share,
        fair.head_share
    );
    assert!(
        fair.hit_rate >= 0.85 * blend.hit_rate,
        "HR@10 {:.3} → {:.3} with mitigation",
        blend.hit_rate,
        fair.hit_rate
    );
    assert!(fair.coverage > blend.coverage && fair.gini < blend.gini);
}

/// Plays of a listener's own genre, then of another genre's popular tracks one at a
/// time: after how many of those the new genre is in the top 10.
fn events_to_follow(w: &World, rate: f64) -> usize {
    let (l, _) = &w.listeners[0];
    let catalog = SIM.catalog();
    let old = l.genres[0].0;
    let new = (old + 1) % SIM.genres;
    let of = |g: usize| -> Vec<&str> {
        (0..SIM.tracks)
            .filter(|i| catalog.genre[*i] == g)
            .map(|i| catalog.tracks[i].id.as_str())
            .collect()
    };
    let mut t = Taste::default();
    let play = |t: &mut Taste, id: &str| {
        let e = crate::domain::activity::ActivityEvent::TrackPlayed {
            track_id: id.into(),
            at: SIM.now,
            duration_ms: 200_000,
        };
        t.learn(&e, w.index.traits_of(id), rate);
    };
    for id in of(old).iter().take(40) {
        play(&mut t, id);
    }
    let new_genre = crate::domain::taste::name_key(&TasteSim::genre_name(new));
    for (k, id) in of(new).iter().enumerate() {
        play(&mut t, id);
        let list = recommend(
            &w.index,
            &Ask {
                learning_rate: rate,
                ..ask(&t, PersonalizationLevel::Advanced, None)
            },
        );
        if list
            .iter()
            .any(|s| w.index.items[s.item as usize].genres.contains(&new_genre))
        {
            return k + 1;
        }
    }
    usize::MAX
}

#[test]
fn a_higher_learning_rate_brings_a_new_genre_into_the_list_sooner() {
    let w = world(600, 0.1);
    let (fast, slow) = (events_to_follow(&w, 0.5), events_to_follow(&w, 0.05));
    eprintln!("new genre in the top 10 after {fast} plays at 0.5, {slow} at 0.05");
    assert!(fast <= 2, "{fast}");
    assert!((4..usize::MAX).contains(&slow), "{slow}");
}

#[test]
fn a_model_that_does_not_hold_together_is_refused() {
    let w = world(50, 0.1);
    let catalog = SIM.catalog();
    let bare = std::sync::Arc::new(Index::build(
        catalog.tracks.iter().map(ItemRow::of_track).collect(),
        None,
    ));
    let mut trainer = Trainer::new(std::sync::Arc::clone(&bare));
    for (l, t) in &w.listeners {
        trainer.add(t, l.tier);
    }
    let model = trainer.train(7, SIM.now, 1, &|_| {});
    assert_eq!(model.version, 7);
    assert_eq!(model.users, 50);
    assert_eq!(model.check(), Ok(()));
    let mut short = model.clone();
    short.plays.pop();
    assert!(short.check().is_err());
    let mut stray = model.clone();
    stray.neighbours[0] = vec![(u32::MAX, 0.5)];
    assert!(stray.check().unwrap_err().contains("bad neighbour"));
    let mut nan = model;
    nan.neighbours[1] = vec![(0, f32::NAN)];
    assert!(nan.check().is_err());
}
