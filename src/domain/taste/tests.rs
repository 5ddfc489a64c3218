use super::*;

fn at(minute: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + minute * 60_000)
}

fn play(id: &str, minute: i64) -> ActivityEvent {
    ActivityEvent::TrackPlayed {
        track_id: id.into(),
        at: at(minute),
        duration_ms: 200_000,
    }
}

fn traits(genres: &[u32], energy: f64, valence: f64) -> Traits<'_> {
    let mut audio = [0u16; 8];
    audio[ENERGY] = (energy * 65_535.0) as u16;
    audio[VALENCE] = (valence * 65_535.0) as u16;
    Traits {
        audio,
        known: (1 << ENERGY) | (1 << VALENCE),
        genres,
    }
}

/// Forty plays of genre `a`, then plays of genre `b` until `b` outweighs `a`: how many
/// it took.
fn plays_to_switch(rate: f64) -> u32 {
    let (a, b) = ([name_key("jazz")], [name_key("metal")]);
    let mut t = Taste::default();
    for i in 0..40 {
        t.learn(&play(&format!("a{i}"), i), Some(traits(&a, 0.2, 0.8)), rate);
    }
    (1..=200)
        .find(|k| {
            t.learn(
                &play(&format!("b{k}"), 100),
                Some(traits(&b, 0.9, 0.2)),
                rate,
            );
            t.genre_weight(b[0]) > t.genre_weight(a[0])
        })
        .unwrap()
}

#[test]
fn a_higher_learning_rate_follows_a_change_of_taste_faster() {
    // The documented rule: after forty plays `a` weighs 1 − (1 − η)^40, and `k` plays of
    // `b` later `b` weighs 1 − (1 − η)^k and `a` (1 − η)^k as much as before. At 0.5 one
    // play ties (not a pass), two pass; at 0.05 (`a` at 0.87) it takes thirteen.
    assert_eq!(plays_to_switch(0.5), 2);
    assert_eq!(plays_to_switch(0.05), 13);
}

#[test]
fn a_skip_weakens_only_the_skipped_genres_and_likes_count_double() {
    let (jazz, soul) = (name_key("jazz"), name_key("soul"));
    let mut t = Taste::default();
    t.learn(&play("a", 0), Some(traits(&[jazz], 0.5, 0.5)), 0.2);
    t.learn(&play("b", 1), Some(traits(&[soul], 0.5, 0.5)), 0.2);
    let (j, s) = (t.genre_weight(jazz), t.genre_weight(soul));
    let skip = ActivityEvent::TrackSkipped {
        track_id: "c".into(),
        at: at(2),
        position_ms: 1_000,
    };
    t.learn(&skip, Some(traits(&[jazz], 0.5, 0.5)), 0.2);
    assert!(t.genre_weight(jazz) < j);
    assert_eq!(t.genre_weight(soul), s);
    let like = ActivityEvent::TrackLiked {
        track_id: "d".into(),
        at: at(3),
    };
    let before = t.genre_weight(jazz);
    t.learn(&like, Some(traits(&[jazz], 0.5, 0.5)), 0.2);
    // A like moves the mix with rate 2η = 0.4.
    let want = before * 0.6 + 0.4;
    assert!((t.genre_weight(jazz) - want).abs() < 1e-4);
}

#[test]
fn heard_tracks_keep_the_liked_ones_and_the_most_recent() {
    let mut t = Taste::default();
    let like = ActivityEvent::TrackLiked {
        track_id: "loved".into(),
        at: at(0),
    };
    t.learn(&like, None, 0.1);
    for i in 0..(HEARD_KEPT as i64 + 10) {
        t.learn(&play(&format!("t{i}"), i), None, 0.1);
    }
    assert_eq!(t.heard.len(), HEARD_KEPT);
    assert!(t.has_heard(TrackKey::of("loved")), "a liked track is kept");
    assert!(t.has_heard(TrackKey::of(&format!("t{}", HEARD_KEPT + 9))));
    assert!(!t.has_heard(TrackKey::of("t0")), "the oldest went");
    // Playing a track again moves it to the end and counts.
    t.learn(&play("loved", 99), None, 0.1);
    let last = t.heard.last().unwrap();
    assert_eq!(
        (last.track, last.plays, last.liked()),
        (TrackKey::of("loved"), 1, true)
    );
    assert_eq!(last.weight(), 4.0);
    // An unknown track teaches no genre.
    assert!(t.genres.is_empty());
}

#[test]
fn the_mood_follows_the_session_and_is_forgotten_after_quiet_hours() {
    let mut t = Taste::default();
    let calm = traits(&[], 0.1, 0.9);
    t.learn(&play("a", 0), Some(calm), 0.1);
    t.learn(&play("b", 3), Some(calm), 0.1);
    assert_eq!(t.mood_at(at(4)), None, "two plays say too little");
    t.learn(&play("c", 6), Some(calm), 0.1);
    let (mood, e, v) = t.mood_at(at(7)).unwrap();
    assert_eq!(mood, Mood::Calm);
    assert!(e < 0.2 && v > 0.8);
    assert_eq!(t.mood_at(at(6 + i64::from(MOOD_TTL_MINUTES) + 1)), None);
    // A session after a quiet gap starts afresh.
    let intense = traits(&[], 0.95, 0.1);
    for m in 300..303 {
        t.learn(&play(&format!("i{m}"), m), Some(intense), 0.1);
    }
    assert_eq!(t.mood_at(at(303)).unwrap().0, Mood::Intense);
    assert_eq!(t.mood.plays, 3);
}

#[test]
fn a_taste_stays_a_few_hundred_bytes() {
    let mut t = Taste::default();
    let genres: Vec<u32> = (0..20).map(|g| name_key(&format!("g{g}"))).collect();
    for i in 0..200 {
        let g = &genres[i % 20..i % 20 + 1];
        t.learn(
            &play(&format!("t{i}"), i as i64),
            Some(traits(g, 0.5, 0.5)),
            0.3,
        );
    }
    assert_eq!(t.genres.len(), GENRES_KEPT);
    // Every part of the day, and platforms, leave a moment each.
    let platforms = [
        Platform::Ios,
        Platform::Android,
        Platform::Web,
        Platform::Desktop,
        Platform::Tv,
        Platform::Car,
        Platform::Speaker,
        Platform::Other,
    ];
    for (i, p) in platforms.iter().enumerate() {
        let at = Timestamp::from_millis(i as i64 * 6 * 3_600_000);
        t.learn(&ActivityEvent::AppOpened { at, platform: *p }, None, 0.3);
        for h in 0..4 {
            let at = at.plus(std::time::Duration::from_secs(h * 1_800));
            let e = ActivityEvent::TrackPlayed {
                track_id: format!("m{i}{h}"),
                at,
                duration_ms: 1_000,
            };
            t.learn(&e, Some(traits(&genres[..1], 0.5, 0.5)), 0.3);
        }
    }
    assert_eq!(t.moments.len(), MOMENTS_KEPT, "every situation is kept");
    assert!(t.bytes() <= 450, "{} bytes", t.bytes());
    assert_ne!(TrackKey::of("a"), TrackKey::of("b"));
    assert_eq!(TrackKey::of("a").as_u64() >> 48, 0);
}

#[test]
fn moments_keep_the_sound_of_each_part_of_the_day_and_platform() {
    let day = 1_700_006_400_000; // a midnight, UTC
    let at_hour = |d: i64, h: i64, m: i64| {
        Timestamp::from_millis(day + d * 86_400_000 + h * 3_600_000 + m * 60_000)
    };
    let mut t = Taste::default();
    // The app opened on `platform` at `hour`, and a track of `energy` played.
    let mut session = |d: i64, hour: i64, platform: Platform, energy: f64, valence: f64| {
        let opened = ActivityEvent::AppOpened {
            at: at_hour(d, hour, 0),
            platform,
        };
        t.learn(&opened, None, 0.1);
        let e = ActivityEvent::TrackPlayed {
            track_id: format!("{d}-{hour}"),
            at: at_hour(d, hour, 5),
            duration_ms: 1,
        };
        t.learn(&e, Some(traits(&[], energy, valence)), 0.1);
    };
    for d in 0..5 {
        // Energetic mornings in the car, calm evenings on the phone.
        session(d, 8, Platform::Car, 0.9, 0.7);
        session(d, 20, Platform::Ios, 0.1, 0.6);
    }
    let (me, mv, mp) = t.moment(Situation::Daypart(Daypart::Morning)).unwrap();
    assert!(
        (me - 0.9).abs() < 0.01 && (mv - 0.7).abs() < 0.01 && mp == 5,
        "{me} {mv} {mp}"
    );
    let (ee, _, ep) = t.moment(Situation::Daypart(Daypart::Evening)).unwrap();
    assert!((ee - 0.1).abs() < 0.01 && ep == 5);
    let (ce, _, cp) = t.moment(Situation::Platform(Platform::Car)).unwrap();
    assert!((ce - 0.9).abs() < 0.01 && cp == 5);
    assert!(t.moment(Situation::Daypart(Daypart::Night)).is_none());
    // A late app_opened from a backlog does not replace the session's platform.
    let opened = |d, h, platform| ActivityEvent::AppOpened {
        at: at_hour(d, h, 0),
        platform,
    };
    t.learn(&opened(8, 8, Platform::Car), None, 0.1);
    t.learn(&opened(7, 8, Platform::Tv), None, 0.1);
    assert_eq!(t.platform.map(|p| p.0), Some(Platform::Car));
    // A play three quiet hours after the app was opened is not the platform's.
    t.learn(
        &ActivityEvent::AppOpened {
            at: at_hour(9, 8, 0),
            platform: Platform::Car,
        },
        None,
        0.1,
    );
    let late = ActivityEvent::TrackPlayed {
        track_id: "late".into(),
        at: at_hour(9, 11, 0),
        duration_ms: 1,
    };
    t.learn(&late, Some(traits(&[], 0.0, 0.0)), 0.1);
    assert_eq!(t.moment(Situation::Platform(Platform::Car)).unwrap().2, 5);
    assert_eq!(t.platform, None);
    // Past the running mean, a moment moves at the learning rate.
    let (before, _, _) = t.moment(Situation::Daypart(Daypart::Morning)).unwrap();
    assert!(
        before < 0.9,
        "the late morning play counted for the morning"
    );
    assert_eq!(Daypart::of_hour(0), Daypart::Night);
    assert_eq!(Daypart::of_hour(23), Daypart::Evening);
    assert_eq!(Daypart::of(at_hour(0, 12, 0)), Daypart::Afternoon);
}
