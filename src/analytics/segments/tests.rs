use super::*;
use crate::analytics::kmeans::adjusted_rand_index;
use crate::domain::activity::ActivityEvent;
use crate::domain::ids::UserId;
use crate::domain::tier::UserTier;
use rand::rngs::Xoshiro256PlusPlus as Rng64;
use rand::{RngExt, SeedableRng};

const TODAY: u32 = 20_800;

fn now() -> Timestamp {
    Timestamp::from_millis(i64::from(TODAY) * 86_400_000 + 12 * 3_600_000)
}

/// A listener of a planted kind: (hour it plays at, minutes per track, active share,
/// days since it stopped).
fn listener(rng: &mut Rng64, hour: i64, minutes: u64, share: f64, stopped: u32) -> ActivityHistory {
    let mut h = ActivityHistory::default();
    for d in TODAY - 40..=TODAY - stopped {
        if rng.random::<f64>() >= share {
            continue;
        }
        for _ in 0..6 {
            let at = Timestamp::from_millis(
                i64::from(d) * 86_400_000 + (hour + rng.random_range(0..2)) * 3_600_000,
            );
            h.record(&[ActivityEvent::TrackPlayed {
                track_id: format!("t{}", rng.random_range(0..50)),
                at,
                duration_ms: minutes * 60_000,
            }]);
        }
    }
    h
}

#[test]
fn planted_segments_are_found_and_named() {
    let mut rng = Rng64::seed_from_u64(1);
    let kinds = [(20, 8, 0.9, 0), (7, 1, 0.5, 0), (13, 3, 0.8, 30)];
    let (mut people, mut truth) = (Vec::new(), Vec::new());
    for i in 0..600 {
        let (hour, minutes, share, stopped) = kinds[i % 3];
        people.push(listener(&mut rng, hour, minutes, share, stopped));
        truth.push(i % 3);
    }
    let member = |h, consented| Member {
        id: UserId::generate(),
        tier: UserTier::Free,
        created_at: Timestamp::EPOCH,
        consented,
        history: h,
        taste: None,
        feedback: None,
        usage: &crate::domain::profile::UsageCounters::ZERO,
        refusals: None,
    };
    let segment = |with_others: bool| {
        let mut s = Segmenter::new(now());
        for (i, h) in people.iter().enumerate() {
            s.add(&member(h, true));
            // Users without the consent (withdrawn, or minors without a parent's) are
            // read by the scan and left out here: they change nothing.
            if with_others && i % 3 == 0 {
                s.add(&member(&people[(i + 1) % people.len()], false));
            }
        }
        s.train(3, 1).unwrap()
    };
    let model = segment(true);
    assert_eq!(
        model,
        segment(false),
        "the same for a fixed seed, and the same without the users who did not consent"
    );
    assert!(model.fits());
    let found: Vec<usize> = people.iter().map(|h| model.assign(h, now()).id).collect();
    let ari = adjusted_rand_index(&found, &truth);
    assert!(
        ari >= 0.9,
        "adjusted Rand index {ari}: {:?}",
        model.segments
    );
    let name = |kind: usize| model.segments[found[kind]].name.clone();
    assert!(
        name(0).contains("evening") && name(0).contains("heavy"),
        "{}",
        name(0)
    );
    assert!(
        name(1).contains("morning") && name(1).contains("light"),
        "{}",
        name(1)
    );
    assert_eq!(name(2), "lapsing");
    let sizes: u64 = model.segments.iter().map(|s| s.size).sum();
    assert_eq!(sizes, 600);
    // The centroids are in the features' own units: minutes per active day of the
    // evening listeners, six tracks of eight minutes.
    let evening = &model.segments[found[0]];
    assert!(
        (evening.centroid[1] - 48.0).abs() < 1.0,
        "{:?}",
        evening.centroid
    );
}
