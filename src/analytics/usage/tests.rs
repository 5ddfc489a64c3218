use super::*;
use crate::domain::activity::ActivityEvent;
use crate::domain::history::ActivityHistory;
use crate::domain::ids::UserId;
use crate::domain::profile::UsageCounters;
use crate::domain::risk::{RiskAssessment, RiskDecision};
use crate::domain::security_log::SecurityEventKind;

const TODAY: u32 = 20_800;

fn at(day: u32, hour: i64) -> Timestamp {
    Timestamp::from_millis(day_start(day).as_millis() + hour * 3_600_000)
}

fn active(days: &[u32], feature: Option<&str>) -> ActivityHistory {
    let mut h = ActivityHistory::default();
    for d in days {
        let mut events = vec![ActivityEvent::Searched { at: at(*d, 9) }];
        if let Some(f) = feature {
            events.push(ActivityEvent::FeatureUsed {
                at: at(*d, 10),
                feature: f.into(),
            });
        }
        h.record(&events);
    }
    h
}

fn member<'a>(
    tier: UserTier,
    created: u32,
    consented: bool,
    history: &'a ActivityHistory,
) -> Member<'a> {
    Member {
        id: UserId::generate(),
        tier,
        created_at: at(created, 8),
        consented,
        history,
        taste: None,
        feedback: None,
        usage: &UsageCounters::ZERO,
        refusals: None,
    }
}

fn event(kind: SecurityEventKind, day: u32, decision: Option<RiskDecision>) -> SecurityEvent {
    let mut e = SecurityEvent::new(kind, at(day, 12));
    e.risk = decision.map(|decision| RiskAssessment {
        score: 0.5,
        threshold: 0.7,
        signals: Vec::new(),
        decision,
    });
    e
}

#[test]
fn a_period_against_hand_counts() {
    let now = at(TODAY, 18);
    // The last ten days: TODAY − 9 ..= TODAY.
    let mut b = UsageBuilder::new(now, TODAY - 9, TODAY);
    let a = active(&[TODAY - 9, TODAY - 1, TODAY], Some("ai_composer"));
    let c = active(&[TODAY - 1], None);
    let hidden = active(&[TODAY], Some("ai_composer"));
    let old_use = active(&[TODAY - 30], Some("api_access"));
    b.add(&member(UserTier::Free, TODAY - 9, true, &a));
    b.add(&member(UserTier::Premium, TODAY - 1, true, &c));
    b.add(&member(UserTier::Premium, TODAY - 1, false, &hidden));
    b.add(&member(UserTier::Vip, TODAY - 40, true, &old_use));
    b.add_security(&event(
        SecurityEventKind::LoginSucceeded,
        TODAY - 1,
        Some(RiskDecision::Allow),
    ));
    b.add_security(&event(SecurityEventKind::LoginSucceeded, TODAY, None));
    b.add_security(&event(
        SecurityEventKind::LoginDenied,
        TODAY,
        Some(RiskDecision::Deny),
    ));
    // Outside the period: not counted.
    b.add_security(&event(SecurityEventKind::LoginSucceeded, TODAY - 10, None));
    let r = b.finish();
    assert_eq!(r.days.len(), 10);
    assert_eq!((r.from, r.to), (day_start(TODAY - 9), day_start(TODAY)));
    assert_eq!((r.signups, r.logins), (3, 2));
    let first = &r.days[0];
    assert_eq!(first.signups[&UserTier::Free], 1);
    assert_eq!(first.active_users, Some(1));
    let yesterday = &r.days[8];
    assert_eq!(yesterday.signups[&UserTier::Premium], 2);
    // The user without the consent is not counted as active, only as signed up.
    assert_eq!(yesterday.active_users, Some(2));
    assert_eq!(yesterday.security_events["login_succeeded"], 1);
    assert_eq!(yesterday.risk_decisions["allow"], 1);
    let today = &r.days[9];
    assert_eq!(today.active_users, Some(1));
    assert_eq!(today.security_events["login_denied"], 1);
    assert_eq!(today.risk_decisions.get("allow"), None);
    assert_eq!(today.risk_decisions["deny"], 1);
    assert_eq!(r.days[4].active_users, Some(0));
    // ai_composer: one consenting user whose latest use (today) is in the period;
    // api_access: used 30 days ago only.
    assert_eq!(r.features.len(), 2);
    assert_eq!(
        r.features[0],
        FeatureUsage {
            feature: "ai_composer".into(),
            users_in_period: 1,
            users_in_period_by_tier: [(UserTier::Free, 1)].into(),
            users: 1,
            uses: 3,
        }
    );
    assert_eq!(r.features[1].feature, "api_access");
    assert_eq!(r.features[1].users_in_period, 0);
    // Three consenting users scored, into bins of ten.
    assert_eq!(r.engagement.users, 3);
    assert_eq!(r.engagement.bins.len(), 10);
    assert_eq!(r.engagement.bins.iter().map(|b| b.users).sum::<u64>(), 3);
    let scores: Vec<u8> = [&a, &c, &old_use]
        .iter()
        .map(|h| engagement::score(h, now).score)
        .collect();
    let mut sorted = scores.clone();
    sorted.sort_unstable();
    assert_eq!(r.engagement.median, sorted[1]);
    let mean = scores.iter().map(|s| f64::from(*s)).sum::<f64>() / 3.0;
    assert!((r.engagement.mean - mean).abs() < 1e-9);
    for s in scores {
        let bin = r
            .engagement
            .bins
            .iter()
            .find(|b| (b.from..=b.to).contains(&s));
        assert!(bin.is_some_and(|b| b.users >= 1), "{s}");
    }
}

#[test]
fn days_older_than_the_day_window_have_no_exact_figure() {
    let now = at(TODAY, 18);
    let mut b = UsageBuilder::new(now, TODAY - 40, TODAY - 30);
    let h = active(&[TODAY - 38], None);
    b.add(&member(UserTier::Free, TODAY - 60, true, &h));
    let r = b.finish();
    // Days before TODAY − 34 are folded into weeks in every history.
    let exact: Vec<Option<u64>> = r.days.iter().map(|d| d.active_users).collect();
    assert_eq!(exact[..6], [None; 6]);
    assert_eq!(exact[6..], [Some(0); 5]);
    assert_eq!(r.engagement.median, engagement::score(&h, now).score);
}
