use std::collections::HashSet;
use std::sync::Arc;

use super::*;
use crate::analytics::churn::Trainer;
use crate::analytics::sim::{SimConfig, SimUser, simulate};
use crate::domain::activity::ActivityEvent;
use crate::domain::history::{ActivityHistory, day_start};
use crate::domain::rate::RateRefusals;
use crate::domain::tier::Limit;

const NOW: Timestamp = Timestamp::from_millis(20_800 * 86_400_000 + 43_200_000);
const TODAY: u32 = 20_800;
const MIB: u64 = 1024 * 1024;

fn policy(tier: UserTier, playlists: Limit, features: &[&str]) -> TierPolicy {
    TierPolicy {
        tier,
        max_playlists: playlists,
        max_storage_bytes: match playlists {
            Limit::Limited(_) => Limit::Limited(100 * MIB),
            Limit::Unlimited => Limit::Unlimited,
        },
        requests_per_hour: Limit::Unlimited,
        features: features.iter().map(|f| (*f).to_owned()).collect(),
        session_idle_timeout: std::time::Duration::from_secs(3600),
        session_absolute_lifetime: std::time::Duration::from_secs(3600),
        zero_trust: false,
    }
}

/// The shape of the shipped tiers: Premium and Enterprise share `api_access`, each paid
/// tier has features of its own.
fn policies() -> [TierPolicy; 4] {
    [
        policy(UserTier::Free, Limit::Limited(10), &["music_analysis"]),
        policy(
            UserTier::Premium,
            Limit::Unlimited,
            &["music_analysis", "ai_composer", "api_access"],
        ),
        policy(
            UserTier::Enterprise,
            Limit::Unlimited,
            &[
                "music_analysis",
                "ai_composer",
                "api_access",
                "team_collaboration",
            ],
        ),
        policy(
            UserTier::Vip,
            Limit::Unlimited,
            &[
                "music_analysis",
                "ai_composer",
                "api_access",
                "team_collaboration",
                "success_manager",
            ],
        ),
    ]
}

fn member<'a>(
    id: UserId,
    tier: UserTier,
    created_at: Timestamp,
    history: &'a ActivityHistory,
    usage: &'a UsageCounters,
) -> Member<'a> {
    Member {
        id,
        tier,
        created_at,
        consented: true,
        history,
        taste: None,
        feedback: None,
        usage,
        refusals: None,
    }
}

/// A simulated user made ready for the analysis: Enterprise and VIP users use their
/// tier's own feature on each active day, Free users own playlists (a tenth of them,
/// "collectors", at 8–10 of their 10).
struct Planted {
    user: SimUser,
    history: ActivityHistory,
    usage: UsageCounters,
    collector: bool,
}

fn plant(user: SimUser) -> Planted {
    let own = match user.tier {
        UserTier::Enterprise => Some("team_collaboration"),
        UserTier::Vip => Some("success_manager"),
        _ => None,
    };
    let mut history = ActivityHistory::default();
    for day in user
        .events
        .chunk_by(|a, b| day_of(a.at()) == day_of(b.at()))
    {
        let mut day = day.to_vec();
        if let Some(feature) = own {
            day.push(ActivityEvent::FeatureUsed {
                at: day[0].at(),
                feature: feature.into(),
            });
        }
        history.record(&day);
    }
    let b = user.id.as_bytes();
    let collector = user.tier == UserTier::Free && b[0].is_multiple_of(10);
    let playlists = if collector {
        8 + u64::from(b[1] % 3)
    } else {
        u64::from(b[1] % 6)
    };
    let usage = UsageCounters {
        playlists,
        storage_bytes: u64::from(b[2] % 50) * MIB,
        ..UsageCounters::ZERO
    };
    Planted {
        user,
        history,
        usage,
        collector,
    }
}

fn planted_population() -> Vec<Planted> {
    simulate(SimConfig {
        users: 3_000,
        seed: 41,
        now: NOW,
        days: 365,
        horizon_days: 14,
        keep_events: true,
    })
    .map(plant)
    .collect()
}

/// Precision and recall of `found` against the planted `truth` (`Some(true)` a planted
/// candidate, `Some(false)` a planted non-candidate, `None` left out as ambiguous).
fn precision_recall(
    people: &[Planted],
    truth: impl Fn(&Planted) -> Option<bool>,
    found: &HashSet<UserId>,
) -> (f64, f64, usize) {
    let (mut tp, mut fp, mut fne) = (0u32, 0u32, 0u32);
    for p in people {
        match (truth(p), found.contains(&p.user.id)) {
            (Some(true), true) => tp += 1,
            (Some(true), false) => fne += 1,
            (Some(false), true) => fp += 1,
            _ => {}
        }
    }
    let precision = f64::from(tp) / f64::from((tp + fp).max(1));
    let recall = f64::from(tp) / f64::from((tp + fne).max(1));
    (precision, recall, (tp + fne) as usize)
}

#[test]
fn the_planted_upgrade_and_churn_risk_users_are_named() {
    let people = planted_population();
    let window_start = TODAY - WINDOW_DAYS;
    let members = || {
        people.iter().map(|p| {
            member(
                p.user.id,
                p.user.tier,
                p.user.created_at,
                &p.history,
                &p.usage,
            )
        })
    };
    let mut trainer = Trainer::new(NOW, 14);
    members().for_each(|m| trainer.add(&m));
    let model = trainer.train(1, NOW, |_| {}).unwrap();
    assert!(model.usable);
    let mut a = Analyzer::new(NOW, policies(), Some(Arc::new(model)), 100_000);
    members().for_each(|m| a.add(&m));
    let report = a.finish();
    assert_eq!(report.users, 3_000);
    assert_eq!(report.churn_model_version, Some(1));
    let of = |kinds: &[Kind]| -> HashSet<UserId> {
        report
            .candidates
            .iter()
            .filter(|c| kinds.contains(&c.kind))
            .map(|c| c.user_id)
            .collect()
    };
    let settled = |p: &Planted| day_of(p.user.created_at) <= window_start;
    let lapsed_by = |p: &Planted, day: u32| p.user.lapse_day.is_some_and(|l| l <= day);

    // Upgrade: collectors, and Free users listening most days and not lapsing.
    let upgrade = |p: &Planted| {
        if p.user.tier != UserTier::Free || !settled(p) {
            return None;
        }
        if p.collector || (p.user.p >= 0.75 && !lapsed_by(p, TODAY)) {
            Some(true)
        } else if p.user.p <= 0.4 || lapsed_by(p, window_start) {
            Some(false)
        } else {
            None
        }
    };
    let (precision, recall, planted) = precision_recall(&people, upgrade, &of(&[Kind::Upgrade]));
    assert!(planted >= 100, "{planted} planted upgrade users");
    assert!(
        precision >= 0.9 && recall >= 0.9,
        "upgrade: precision {precision:.3}, recall {recall:.3} of {planted}"
    );

    // Churn risk: paid users whose lapse began at least 10 days ago, or who were never
    // more than light users; against paid users active and not lapsing.
    let risk = |p: &Planted| {
        if p.user.tier == UserTier::Free || !settled(p) {
            return None;
        }
        if lapsed_by(p, TODAY - 10) || p.user.p < 0.06 {
            Some(true)
        } else if !lapsed_by(p, TODAY) && p.user.p >= 0.2 {
            Some(false)
        } else {
            None
        }
    };
    let found = of(&[Kind::Downgrade, Kind::Retention]);
    let (precision, recall, planted) = precision_recall(&people, risk, &found);
    assert!(planted >= 100, "{planted} planted churn-risk users");
    assert!(
        precision >= 0.9 && recall >= 0.9,
        "churn risk: precision {precision:.3}, recall {recall:.3} of {planted}"
    );
    // Retention candidates are paid users in the high band, with the model's reasons.
    let retention: Vec<_> = report
        .candidates
        .iter()
        .filter(|c| c.kind == Kind::Retention)
        .collect();
    assert!(!retention.is_empty());
    for c in &retention {
        assert_ne!(c.tier, UserTier::Free);
        assert!(c.score >= HIGH_RISK);
        assert!(
            c.reasons
                .iter()
                .skip(1)
                .all(|r| r.signal.starts_with("churn:"))
        );
    }
    // Every kind's count is what is listed (the limit is far above), strongest first.
    for k in &report.kinds {
        assert_eq!(k.found, k.listed);
        let scores: Vec<f64> = report
            .candidates
            .iter()
            .filter(|c| c.kind == k.kind)
            .map(|c| c.score)
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{:?}", k.kind);
    }
}

fn uses(feature: &str, days: impl Iterator<Item = u32>, per_day: usize) -> ActivityHistory {
    let mut h = ActivityHistory::default();
    for d in days {
        let at = Timestamp::from_millis(day_start(d).as_millis() + 3_600_000);
        let mut events = vec![ActivityEvent::Searched { at }];
        events.extend((0..per_day).map(|_| ActivityEvent::FeatureUsed {
            at,
            feature: feature.into(),
        }));
        h.record(&events);
    }
    h
}

#[test]
fn premium_users_who_use_the_product_like_enterprise_users_are_named() {
    let signed_up = day_start(TODAY - 70);
    let daily = || TODAY - 27..=TODAY;
    // Ten Enterprise users use api_access 3 times a day over the last four weeks: 84 uses
    // in the 70.5 days since they signed up, 8.34 a week. A Premium user does the same,
    // another once a day, and twenty others play without it.
    let enterprise = uses("api_access", daily(), 3);
    let heavy = uses("api_access", daily(), 3);
    let light = uses("api_access", daily(), 1);
    let none = uses("music_analysis", daily(), 1);
    let zero = UsageCounters::ZERO;
    let ids: Vec<UserId> = (0..33u8).map(|i| UserId::from_bytes([i; 16])).collect();
    let mut a = Analyzer::new(NOW, policies(), None, 10);
    for id in &ids[..10] {
        a.add(&member(
            *id,
            UserTier::Enterprise,
            signed_up,
            &enterprise,
            &zero,
        ));
    }
    a.add(&member(
        ids[10],
        UserTier::Premium,
        signed_up,
        &heavy,
        &zero,
    ));
    a.add(&member(
        ids[11],
        UserTier::Premium,
        signed_up,
        &light,
        &zero,
    ));
    for id in &ids[12..32] {
        a.add(&member(*id, UserTier::Premium, signed_up, &none, &zero));
    }
    // A Premium user who does not consent is not analysed.
    let mut quiet = member(ids[32], UserTier::Premium, signed_up, &heavy, &zero);
    quiet.consented = false;
    a.add(&quiet);
    let r = a.finish();
    assert_eq!((r.users, r.analysed), (33, 32));
    assert_eq!(r.enterprise_like_features.len(), 1);
    let b = &r.enterprise_like_features[0];
    assert_eq!(b.feature, "api_access");
    assert!(
        (b.enterprise_median_per_week - 84.0 / (70.5 / 7.0)).abs() < 1e-3,
        "{b:?}"
    );
    assert_eq!((b.enterprise_share, b.premium_share), (1.0, 2.0 / 22.0));
    let fit: Vec<_> = r
        .candidates
        .iter()
        .filter(|c| c.kind == Kind::EnterpriseFit)
        .collect();
    assert_eq!(fit.len(), 1);
    assert_eq!(fit[0].user_id, ids[10]);
    assert_eq!(fit[0].suggested_tier, Some(UserTier::Enterprise));
    assert_eq!(fit[0].reasons[0].signal, "feature:api_access");
    // Nobody here is quiet, and the Enterprise users use nothing of their own tier's:
    // each is a downgrade candidate for that alone, listed up to the limit.
    let down = r.kinds.iter().find(|k| k.kind == Kind::Downgrade).unwrap();
    assert_eq!((down.found, down.listed), (10, 10));
    assert!(
        r.candidates
            .iter()
            .filter(|c| c.kind == Kind::Downgrade)
            .all(|c| { c.reasons.len() == 1 && c.reasons[0].signal == "own_features_used" })
    );
}

#[test]
fn quotas_engagement_and_quiet_paid_users_give_their_reasons() {
    let old = day_start(TODAY - 100);
    let recent = day_start(TODAY - 5);
    let idle = ActivityHistory::default();
    let busy = uses("music_analysis", TODAY - 19..=TODAY, 0);
    let full = UsageCounters {
        playlists: 9,
        storage_bytes: 85 * MIB,
        ..UsageCounters::ZERO
    };
    let little = UsageCounters {
        playlists: 7,
        storage_bytes: 79 * MIB,
        ..UsageCounters::ZERO
    };
    let ids: Vec<UserId> = (0..7u8).map(|i| UserId::from_bytes([i; 16])).collect();
    let mut a = Analyzer::new(NOW, policies(), None, 2);
    a.add(&member(ids[0], UserTier::Free, old, &idle, &full));
    a.add(&member(ids[1], UserTier::Free, old, &busy, &little));
    a.add(&member(ids[2], UserTier::Free, old, &idle, &little));
    a.add(&member(ids[3], UserTier::Premium, old, &idle, &little));
    // Signed up five days ago: not judged for using little.
    a.add(&member(ids[4], UserTier::Premium, recent, &idle, &little));
    a.add(&member(ids[5], UserTier::Premium, old, &busy, &little));
    a.add(&member(ids[6], UserTier::Free, old, &busy, &full));
    let r = a.finish();
    let up: Vec<_> = r
        .candidates
        .iter()
        .filter(|c| c.kind == Kind::Upgrade)
        .collect();
    // Three found, the two strongest listed: 20 active days / 16 = 1.25 beats
    // 9 playlists of 10 (0.9 / 0.8 = 1.125).
    assert_eq!(r.kinds[0].found, 3);
    assert_eq!(up.len(), 2);
    assert_eq!(up[0].user_id, ids[1]);
    assert!(up.iter().all(|c| c.reasons[0].signal == "active_days"));
    let full_user = up.iter().find(|c| c.user_id == ids[6]).unwrap();
    let signals: Vec<&str> = full_user
        .reasons
        .iter()
        .map(|s| s.signal.as_str())
        .collect();
    assert_eq!(signals, ["active_days", "playlists", "storage"]);
    assert_eq!(full_user.reasons[1].detail, "playlists: 9 of 10 (90%)");
    assert_eq!(
        full_user.reasons[2].detail,
        "storage: 85 MiB of 100 MiB (85%)"
    );
    let down: Vec<_> = r
        .candidates
        .iter()
        .filter(|c| c.kind == Kind::Downgrade)
        .collect();
    assert_eq!(down.len(), 1);
    assert_eq!(down[0].user_id, ids[3]);
    assert_eq!(down[0].suggested_tier, Some(UserTier::Free));
    assert_eq!(down[0].reasons[0].detail, "active on 0 of the last 28 days");
    assert!(r.churn_model_version.is_none());
    assert_eq!(r.kinds[3].found, 0);
}

#[test]
fn a_free_user_refused_for_its_rate_on_several_days_is_an_upgrade_candidate() {
    let old = day_start(TODAY - 100);
    let idle = ActivityHistory::default();
    let usage = UsageCounters::ZERO;
    let refused_on = |days: &[u32]| {
        let mut r = RateRefusals::default();
        for d in days {
            // Twice a day, at noon.
            let noon = Timestamp::from_millis(i64::from(*d) * 86_400_000 + 43_200_000);
            r.record(noon);
            r.record(noon);
        }
        r
    };
    // Four days in the window (and one long before it, which does not count).
    let often = refused_on(&[TODAY - 50, TODAY - 20, TODAY - 9, TODAY - 2, TODAY]);
    let twice = refused_on(&[TODAY - 3, TODAY - 1]);
    let ids: Vec<UserId> = (0..3u8).map(|i| UserId::from_bytes([i; 16])).collect();
    let mut a = Analyzer::new(NOW, policies(), None, 10);
    let with = |id, r| Member {
        refusals: Some(r),
        ..member(id, UserTier::Free, old, &idle, &usage)
    };
    a.add(&with(ids[0], &often));
    a.add(&with(ids[1], &twice));
    // A paid user at its rate is not offered an upgrade for it.
    a.add(&Member {
        refusals: Some(&often),
        ..member(
            ids[2],
            UserTier::Premium,
            day_start(TODAY - 3),
            &idle,
            &usage,
        )
    });
    let r = a.finish();
    let up: Vec<_> = r
        .candidates
        .iter()
        .filter(|c| c.kind == Kind::Upgrade)
        .collect();
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0].user_id, ids[0]);
    let reason = &up[0].reasons[0];
    assert_eq!(reason.signal, "rate_limited_days");
    assert_eq!((reason.value, reason.threshold), (4.0, 3.0));
    assert_eq!(
        reason.detail,
        "refused for the tier's request rate on 4 of the last 28 days (8 requests)"
    );
    assert!((up[0].score - 4.0 / 3.0).abs() < 1e-9);
}
