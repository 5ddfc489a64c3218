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
        sound: crate::personalization::federated::SoundModel::default(),
        blend: Blend::GLOBAL,
        deep: false,
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
                sound: crate::personalization::federated::SoundModel::default(),
                blend: Blend::GLOBAL,
                deep: false,
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

#[test]
fn the_report_compares_mitigation_on_a_sample_and_counts_click_through_by_kind() {
    use crate::domain::activity::ActivityEvent;
    use crate::domain::feedback::{ListFeedback, ListTag};
    use crate::domain::tier::UserTier;
    let w = world(1_500, 0.1);
    let mut b = ReportBuilder::new(600, 7);
    let (plain, fair) = (
        ListTag::new(PersonalizationLevel::Standard, false),
        ListTag::new(PersonalizationLevel::Standard, true),
    );
    let event = |tag: ListTag, n: u64, clicked: bool| {
        let (at, recommendation_id) = (SIM.now, tag.recommendation_id(n));
        match clicked {
            false => ActivityEvent::RecommendationShown {
                at,
                recommendation_id,
                track_id: None,
            },
            true => ActivityEvent::RecommendationClicked {
                at,
                recommendation_id,
                track_id: None,
            },
        }
    };
    for (n, (l, t)) in w.listeners.iter().enumerate() {
        // Every user saw ten items of each kind; mitigated lists were followed twice as
        // often.
        let mut f = ListFeedback::default();
        let mut events: Vec<ActivityEvent> = (0..10)
            .flat_map(|i| [event(plain, i, false), event(fair, i, false)])
            .collect();
        events.push(event(fair, 0, true));
        if n % 2 == 0 {
            events.push(event(fair, 1, true));
            events.push(event(plain, 1, true));
        }
        f.record(&events);
        b.add(Some(t), l.tier, Some(&f));
    }
    // A user without a taste counts for feedback only, one without consents for nothing;
    // clicks beyond what was shown of a kind do not count.
    let forged = ListTag::new(PersonalizationLevel::Advanced, false);
    let mut f = ListFeedback::default();
    let mut events = vec![event(forged, 0, false), event(forged, 1, false)];
    events.extend((0..5).map(|i| event(forged, i, true)));
    f.record(&events);
    b.add(None, UserTier::Free, Some(&f));
    b.add(None, UserTier::Free, None);
    let r = b.finish(
        &w.index,
        PersonalizationLevel::Standard,
        |_| PersonalizationLevel::Advanced,
        10,
        MITIGATION,
        SIM.now,
    );
    eprintln!("{r:#?}");
    assert_eq!(
        (r.eligible_users, r.sampled, r.feedback_users),
        (1_500, 600, 1_501)
    );
    let (off, on) = (r.exposure.without_mitigation, r.exposure.with_mitigation);
    assert_eq!((off.lists, off.cases, on.cases), (600, 600, 600));
    assert!(
        off.hit_rate > 0.1,
        "the sample's lists find held-out plays: {off:?}"
    );
    assert!(on.head_share < off.head_share - 0.2, "{off:?} → {on:?}");
    assert!(on.coverage > off.coverage && on.gini < off.gini);
    let shown = 1_500 * 10;
    let kinds: Vec<_> = r
        .click_through
        .iter()
        .map(|c| (c.level, c.bias_mitigation, c.shown, c.clicked))
        .collect();
    let standard = Some(PersonalizationLevel::Standard);
    assert_eq!(
        kinds,
        [
            (standard, Some(false), shown, 750),
            (standard, Some(true), shown, 2_250),
            (Some(PersonalizationLevel::Advanced), Some(false), 2, 2),
        ]
    );
    let by_level = &r.click_through_by_level;
    assert_eq!(by_level.len(), 4);
    assert_eq!((by_level[2].shown, by_level[2].clicked), (2 * shown, 3_000));
    assert_eq!(by_level[0].click_through, None, "nothing shown at off");
    let by_m = &r.click_through_by_mitigation;
    assert_eq!((by_m[0].shown, by_m[0].clicked), (shown + 2, 752));
    assert_eq!(by_m[1].click_through, Some(0.15));
}

#[test]
fn an_advanced_list_follows_the_users_sound_at_the_hour_and_platform_asked() {
    use crate::domain::activity::Platform;
    use crate::domain::taste::{Daypart, ENERGY, Moment, Situation};
    let w = world(400, 0.1);
    let mut t = w.listeners[0].1.clone();
    let moment = |situation, energy: f64| Moment {
        situation,
        energy: (energy * 65_535.0) as u16,
        valence: 30_000,
        plays: 20,
    };
    t.moments = vec![
        moment(Situation::Daypart(Daypart::Morning), 0.95),
        moment(Situation::Daypart(Daypart::Evening), 0.05),
        moment(Situation::Platform(Platform::Car), 0.95),
    ]
    .into_boxed_slice();
    let list = |level, daypart, platform| {
        let a = Ask {
            context: Context {
                activity: None,
                daypart: Some(daypart),
                platform,
            },
            limit: 20,
            ..ask(&t, level, None)
        };
        recommend(&w.index, &a)
    };
    let energy = |l: &[Scored]| {
        l.iter()
            .map(|s| f64::from(w.index.items[s.item as usize].audio[ENERGY]) / 65_535.0)
            .sum::<f64>()
            / l.len() as f64
    };
    let advanced = PersonalizationLevel::Advanced;
    let morning = list(advanced, Daypart::Morning, None);
    let evening = list(advanced, Daypart::Evening, None);
    eprintln!(
        "energy: morning {} evening {}",
        energy(&morning),
        energy(&evening)
    );
    // (The simulated catalog ties energy to genre, so only so much can move.)
    assert!(energy(&morning) > energy(&evening) + 0.03);
    let moment_reason = |l: &[Scored], text: &str| {
        l.iter()
            .flat_map(|s| &s.reasons)
            .any(|r| r.signal == "moment" && r.text == text)
    };
    assert!(moment_reason(&evening, "like what you play in the evening"));
    // A situation with too few plays, or none learned, leaves the list alone.
    let night = list(advanced, Daypart::Night, None);
    assert!(
        night
            .iter()
            .flat_map(|s| &s.reasons)
            .all(|r| r.signal != "moment")
    );
    // The platform counts beside the hour.
    let evening_in_car = list(advanced, Daypart::Evening, Some(Platform::Car));
    assert!(energy(&evening_in_car) > energy(&evening));
    assert!(moment_reason(&evening_in_car, "like what you play on car"));
    // Below `advanced` the context is not a signal.
    let standard = PersonalizationLevel::Standard;
    assert_eq!(
        list(standard, Daypart::Morning, Some(Platform::Car)),
        list(standard, Daypart::Evening, None)
    );
}

#[test]
fn a_track_uploaded_after_the_training_is_a_candidate_in_its_genre() {
    let w = world(600, 0.1);
    let (l, t) = &w.listeners[0];
    let main = super::sim::TasteSim::genre_name(l.genres[0].0);
    // The model is trained on the catalog as it was, over few listeners: most of the
    // catalog was never played, more of a genre than its list of unknown tracks holds.
    let mut catalog = SIM.catalog();
    let model = {
        let rows = catalog.tracks.iter().map(ItemRow::of_track).collect();
        let mut trainer = Trainer::new(std::sync::Arc::new(Index::build(rows, None)));
        for (l, t) in w.listeners.iter().take(20) {
            trainer.add(t, l.tier);
        }
        trainer.train(1, SIM.now, 2, &|_| {})
    };
    // Then five tracks of the listener's main genre are uploaded.
    for k in 0..5 {
        let mut track = catalog.tracks[0].clone();
        track.id = format!("new-{k}");
        track.genres = vec![main.clone()];
        catalog.tracks.push(track);
    }
    let rows: Vec<ItemRow> = catalog.tracks.iter().map(ItemRow::of_track).collect();
    let index = Index::build(rows, Some(&model));
    let new: Vec<u32> = (0..5)
        .map(|k| index.item_of_id(&format!("new-{k}")).unwrap())
        .collect();
    let all = Ask {
        limit: 3_000,
        ..ask(t, PersonalizationLevel::Basic, None)
    };
    let list: Vec<u32> = recommend(&index, &all).iter().map(|s| s.item).collect();
    assert!(
        new.iter().all(|i| list.contains(i)),
        "the new tracks of the listener's genre are candidates"
    );
    let fresh = &index.fresh_by_genre[&crate::domain::taste::name_key(&main)];
    assert_eq!(
        fresh.len(),
        50,
        "the genre has more unplayed tracks than the list holds"
    );
    assert_eq!(fresh[..5], new[..]);
}
