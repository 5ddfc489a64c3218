use super::*;

const DAY: i64 = DAY_MS;
/// 2026-11-02, a Monday.
const MONDAY: i64 = 20_759 * DAY;

fn at(day: i64, hour: i64) -> Timestamp {
    Timestamp::from_millis(MONDAY + day * DAY + hour * 3_600_000)
}

fn play(day: i64, hour: i64, track: &str, secs: u64) -> ActivityEvent {
    ActivityEvent::TrackPlayed {
        track_id: track.into(),
        at: at(day, hour),
        duration_ms: secs * 1000,
    }
}

#[test]
fn days_and_weeks_are_utc_and_start_on_monday() {
    assert_eq!(day_of(Timestamp::from_millis(MONDAY)), 20_759);
    assert_eq!(week_start(20_759), 20_759);
    assert_eq!(week_start(20_765), 20_759, "the Sunday after");
    assert_eq!(week_start(20_766), 20_766, "the next Monday");
    assert_eq!(week_start(0), 0, "no week before the epoch");
    assert_eq!(day_start(20_759), Timestamp::from_millis(MONDAY));
}

#[test]
fn a_day_counts_every_kind_and_its_distinct_tracks() {
    let mut h = ActivityHistory::default();
    h.record(&[
        play(0, 20, "a", 180),
        play(0, 21, "b", 200),
        play(0, 21, "a", 100),
        ActivityEvent::TrackSkipped {
            track_id: "c".into(),
            at: at(0, 22),
            position_ms: 3000,
        },
        ActivityEvent::Searched { at: at(0, 9) },
        ActivityEvent::FeatureUsed {
            at: at(0, 9),
            feature: "ai_composer".into(),
        },
        ActivityEvent::FeatureUsed {
            at: at(1, 9),
            feature: "ai_composer".into(),
        },
    ]);
    assert_eq!(h.days.len(), 2);
    let d = h.days.to_vec()[0];
    assert_eq!(
        (d.plays, d.skips, d.searches, d.features_used),
        (3, 1, 1, 1)
    );
    assert_eq!(d.listening_secs, 480);
    assert_eq!(d.distinct_tracks(), 3, "a, b and c");
    assert_eq!(d.active_days(), 1);
    assert_eq!(d.kinds_used(), 3, "play, search, feature");
    assert_eq!(h.hours[20], 1);
    assert_eq!(h.hours[21], 2);
    assert_eq!(h.totals.plays, 3);
    assert_eq!(h.totals.listening_ms, 480_000);
    assert_eq!(h.features.len(), 1);
    assert_eq!(h.features[0].count, 2);
    assert_eq!(h.features[0].last_used_at, at(1, 9));
    assert_eq!(h.first_active, Some(at(0, 9)));
    assert_eq!(h.last_active, Some(at(1, 9)));
    let c = h.counters();
    assert_eq!((c.tracks_played, c.tracks_skipped), (3, 1));
    assert!((c.skip_rate() - 0.25).abs() < 1e-9);
}

#[test]
fn old_days_fold_into_weeks_and_nothing_is_lost() {
    let mut h = ActivityHistory::default();
    // Every day for ten weeks, one play.
    for d in 0..70 {
        h.record(&[play(d, 12, "t", 60)]);
    }
    assert_eq!(h.days.len(), DAYS_KEPT as usize);
    assert_eq!(
        h.days.iter().next().map(|b| b.day),
        Some(20_759 + 70 - DAYS_KEPT)
    );
    // 35 days fell out: five whole weeks.
    assert_eq!(h.weeks.len(), 5);
    assert!(h.weeks.iter().all(|w| w.active_days() == 7 && w.plays == 7));
    let all = h.window(0, u32::MAX);
    assert_eq!(all.active_days, 70);
    assert_eq!(u64::from(all.sum.plays), h.totals.plays);
    assert_eq!(h.window(20_759, 20_759 + 7).active_days, 7);
    assert!(h.active_between(20_759, 20_766));
    // At week resolution a window counts only whole weeks: nothing of a week reaching
    // past its end leaks in.
    assert!(!h.active_between(20_759, 20_760));
    assert_eq!(h.window(20_759, 20_765).active_days, 0);
    // Several windows in one pass each count only their own buckets.
    let [all, week, part] = h.windows([(0, u32::MAX), (20_759, 20_766), (20_759, 20_765)]);
    assert_eq!(
        (all.active_days, week.active_days, part.active_days),
        (70, 7, 0)
    );
    assert_eq!(u64::from(all.sum.plays), h.totals.plays);
    assert!(!h.active_between(0, 20_759));
    assert_eq!(h.last_active_day_before(20_759 + 70), Some(20_759 + 69));
    // Only weeks are known there: the last active weekday of the last whole week.
    assert_eq!(h.last_active_day_before(20_759 + 10), Some(20_759 + 6));
    assert_eq!(h.last_active_day_before(20_759 + 3), None);
}

#[test]
fn weeks_beyond_two_years_leave_only_the_totals() {
    let mut h = ActivityHistory::default();
    h.record(&[play(0, 1, "t", 60)]);
    h.record(&[play(7 * i64::from(WEEKS_KEPT) + 40, 1, "t", 60)]);
    assert!(h.weeks.is_empty(), "the first week fell out of the window");
    assert_eq!(h.days.len(), 1);
    assert_eq!(h.totals.plays, 2);
    // An event older than the window counts in the totals only.
    h.record(&[play(1, 1, "t", 60)]);
    assert!(h.weeks.is_empty());
    assert_eq!(h.totals.plays, 3);
}

#[test]
fn the_shape_does_not_depend_on_the_order_of_events() {
    let events: Vec<_> = (0..120)
        .map(|i| play((i * 37) % 90, i % 24, &format!("t{}", i % 13), 30))
        .collect();
    let mut forward = ActivityHistory::default();
    forward.record(&events);
    let mut backward = ActivityHistory::default();
    let mut rev = events.clone();
    rev.reverse();
    backward.record(&rev);
    assert_eq!(forward, backward);
    // An old event landing straight in its week sets its weekday, as a fold does.
    let mut h = ActivityHistory::default();
    h.record(&[play(60, 1, "t", 1), play(2, 1, "t", 1), play(4, 1, "t", 1)]);
    assert_eq!(h.weeks.len(), 1);
    assert_eq!(h.weeks.to_vec()[0].active_days(), 2);
}

#[test]
fn the_hour_profile_halves_rather_than_overflows() {
    let mut h = ActivityHistory {
        hours: [0; 24],
        ..ActivityHistory::default()
    };
    h.hours[3] = u16::MAX;
    h.hours[4] = 10;
    h.record(&[play(0, 3, "t", 1)]);
    assert_eq!(h.hours[3], u16::MAX / 2 + 1);
    assert_eq!(h.hours[4], 5);
}

#[test]
fn counters_of_older_formats_become_totals() {
    let c = ActivityCounters {
        tracks_played: 4,
        tracks_skipped: 1,
        tracks_liked: 2,
        searches: 3,
        listening_ms: 9000,
        last_activity_at: Some(at(0, 0)),
    };
    let h = ActivityHistory::from(c.clone());
    assert_eq!(h.counters(), c);
    assert_eq!(h.first_active, None, "unknown, not the latest");
    assert!(h.days.is_empty());
}

#[test]
fn the_sketch_estimates_distinct_tracks() {
    let mut b = Bucket::default();
    for i in 0..40 {
        b.count(&play(0, 0, &format!("track-{i}"), 1));
    }
    let n = b.distinct_tracks();
    assert!((30..=52).contains(&n), "estimated {n} for 40");
    let mut b = Bucket::default();
    b.count(&play(0, 0, "same", 1));
    b.count(&play(0, 0, "same", 1));
    assert_eq!(b.distinct_tracks(), 1);
}

#[test]
fn dates_and_days_round_trip() {
    assert_eq!(parse_day("1970-01-01"), Some(0));
    assert_eq!(parse_day("2026-11-02"), Some(20_759));
    assert_eq!(format_day(20_759), "2026-11-02");
    for bad in ["1969-12-31", "2026-02-30", "2026-1-2x", "", "tomorrow"] {
        assert_eq!(parse_day(bad), None, "{bad}");
    }
}
