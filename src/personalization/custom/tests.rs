//! A user's own model against planted tastes: a listener who plays almost only its
//! favourite artists gets a model that beats the global blend on its held-out plays; a
//! listener of the population's habits does not.

use std::sync::Arc;

use super::*;
use crate::domain::settings::PersonalizationLevel;
use crate::personalization::sim::{Habits, SimCatalog, SimListener, TasteSim};
use crate::personalization::{ItemRow, Trainer};

const SIM: TasteSim = TasteSim::OWN_MODELS;

/// The population's index: 300 listeners of the population's habits train the
/// collaborative model.
fn world() -> (SimCatalog, Index) {
    let catalog = SIM.catalog();
    let rows = || {
        catalog
            .tracks
            .iter()
            .map(ItemRow::of_track)
            .collect::<Vec<_>>()
    };
    let bare = Arc::new(Index::build(rows(), None));
    let mut trainer = Trainer::new(Arc::clone(&bare));
    for n in 0..300 {
        let l = SIM.listener(&catalog, n);
        let mut t = Taste::default();
        for e in l.history() {
            t.learn(e, e.track_id().and_then(|id| bare.traits_of(id)), 0.1);
        }
        trainer.add(&t, l.tier);
    }
    let model = trainer.train(1, SIM.now, 2, &|_| {});
    let index = Index::build(rows(), Some(&model));
    (catalog, index)
}

fn long_listener(catalog: &SimCatalog, n: usize, habits: Habits) -> SimListener {
    let long = TasteSim { events: 500, ..SIM };
    long.listener_with(catalog, n, habits)
}

fn setting(index: &Index, global: Blend) -> Setting<'_> {
    Setting {
        index,
        signals: Signals::of(PersonalizationLevel::Advanced, false),
        learning_rate: 0.1,
        sound: SoundModel::default(),
        tier: UserTier::Enterprise,
        mitigation: None,
        global,
    }
}

const DEEP_CUTS: Habits = Habits::DEEP_CUTS;

#[test]
fn listeners_unlike_the_population_get_models_that_beat_its_blend_and_typical_ones_do_not() {
    let (catalog, index) = world();
    let plan = TrainingPlan::default();
    // The global blend, fitted to 20 listeners of the population's habits.
    let population: Vec<SimListener> = (0..20)
        .map(|n| long_listener(&catalog, 2_000 + n, Habits::TYPICAL))
        .collect();
    let histories: Vec<&[ActivityEvent]> = population.iter().map(|l| &l.events[..]).collect();
    let global = fit_population(&setting(&index, Blend::GLOBAL), &histories, &plan);
    let s = setting(&index, global);
    let run = |habits: Habits, from: usize| -> Vec<Trained> {
        (from..from + 5)
            .map(|n| {
                let l = long_listener(&catalog, n, habits);
                let mut seen = Vec::new();
                let t = train(&s, &l.events, &plan, &mut |p| seen.push(p)).unwrap();
                assert!(seen.windows(2).all(|w| w[1] >= w[0]) && seen.last() == Some(&1.0));
                assert!(t.evaluation.cases >= 20, "{:?}", t.evaluation);
                t
            })
            .collect()
    };
    let deep = run(DEEP_CUTS, 1_000);
    let typical = run(Habits::TYPICAL, 1_100);
    for t in deep.iter().chain(&typical) {
        eprintln!("{:?} {:?}", t.blend, t.evaluation);
    }
    // The deep-cuts listeners' models learn to go less by popularity than the
    // population does, and most of them beat its blend, hits and ranks both.
    assert!(deep.iter().all(|t| t.blend.popularity < global.popularity));
    let better = deep.iter().filter(|t| t.evaluation.better).count();
    assert!(better >= 3, "{better} of 5");
    let rate = |ts: &[Trained], own: bool| -> f64 {
        ts.iter()
            .map(|t| {
                if own {
                    t.evaluation.hit_rate
                } else {
                    t.evaluation.global_hit_rate
                }
            })
            .sum::<f64>()
            / ts.len() as f64
    };
    assert!(
        rate(&deep, true) > rate(&deep, false),
        "{} {}",
        rate(&deep, true),
        rate(&deep, false)
    );
    // A typical listener's model seldom passes the test (at most one of five).
    let typical_better = typical.iter().filter(|t| t.evaluation.better).count();
    assert!(typical_better <= 1, "{typical_better} of 5");
}

#[test]
fn too_short_a_history_is_refused_with_what_it_needs() {
    let (catalog, index) = world();
    let short = SIM.listener(&catalog, 5);
    let err = train(
        &setting(&index, Blend::GLOBAL),
        &short.events[..10],
        &TrainingPlan::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.cases < err.needed, "{err:?}");
    assert!(err.to_string().contains("at least"), "{err}");
}

#[test]
fn the_sign_test_is_exact() {
    // 5 of 5: 1/32.
    assert!((sign_test(5, 0) - 1.0 / 32.0).abs() < 1e-12);
    // 0 of anything: certain.
    assert!((sign_test(0, 7) - 1.0).abs() < 1e-12);
    assert_eq!(sign_test(0, 0), 1.0);
    // 8 of 10: (45 + 10 + 1)/1024.
    assert!((sign_test(8, 2) - 56.0 / 1024.0).abs() < 1e-12);
    // Large counts stay finite.
    assert!(sign_test(600, 400) < 1e-9);
}
