use super::*;
use crate::domain::activity::ActivityEvent;
use crate::domain::history::ActivityHistory;
use crate::domain::ids::UserId;

/// 2026-11-02, a Monday, as days since 1970-01-01.
const NOV_2: u32 = 20_759;

fn at(day: u32) -> Timestamp {
    Timestamp::from_millis(i64::from(day) * 86_400_000 + 10 * 3_600_000)
}

struct Person {
    tier: UserTier,
    signed_up: u32,
    consented: bool,
    history: ActivityHistory,
}

fn person(signed_up: u32, active: &[u32]) -> Person {
    let mut history = ActivityHistory::default();
    for d in active {
        history.record(&[ActivityEvent::Searched { at: at(*d) }]);
    }
    Person {
        tier: UserTier::Free,
        signed_up,
        consented: true,
        history,
    }
}

fn table(people: &[Person], query: CohortQuery, now: Timestamp) -> CohortTable {
    let mut b = CohortBuilder::new(query, now);
    for p in people {
        b.add(&Member {
            id: UserId::generate(),
            tier: p.tier,
            created_at: at(p.signed_up),
            consented: p.consented,
            history: &p.history,
            taste: None,
            feedback: None,
            usage: &crate::domain::profile::UsageCounters::ZERO,
            refusals: None,
        });
    }
    b.finish()
}

#[test]
fn a_weekly_table_against_hand_counts() {
    // Wednesday 2026-11-25: the current week began on Monday the 23rd.
    let now = at(NOV_2 + 23);
    let mut people = vec![
        // The cohort of 2 November.
        person(NOV_2, &[NOV_2, NOV_2 + 8, NOV_2 + 15]), // weeks 1 and 2
        person(NOV_2 + 3, &[NOV_2 + 9]),                // week 1
        person(NOV_2 + 6, &[]),                         // never came back
        person(NOV_2 + 1, &[NOV_2 + 20, NOV_2 + 22]),   // week 2, and week 3 (running)
        // The cohort of 9 November.
        person(NOV_2 + 7, &[NOV_2 + 14]), // week 1
        person(NOV_2 + 13, &[]),
        // The cohort of 16 November.
        person(NOV_2 + 16, &[NOV_2 + 16, NOV_2 + 23]),
        // Before the table: not counted.
        person(NOV_2 - 40, &[NOV_2 + 8]),
    ];
    // Without the consent to analytics: not counted.
    let mut quiet = person(NOV_2, &[]);
    quiet.consented = false;
    people.push(quiet);
    // A Premium member of the second cohort, active in its week 1.
    let mut premium = person(NOV_2 + 8, &[NOV_2 + 15]);
    premium.tier = UserTier::Premium;
    people.push(premium);

    let q = CohortQuery {
        unit: Unit::Week,
        periods: 4,
        tier: Some(UserTier::Free),
    };
    let t = table(&people, q, now);
    let starts: Vec<_> = t.cohorts.iter().map(|c| day_of(c.start)).collect();
    assert_eq!(starts, [NOV_2, NOV_2 + 7, NOV_2 + 14, NOV_2 + 21]);
    let rows: Vec<_> = t
        .cohorts
        .iter()
        .map(|c| (c.size, c.retention.clone(), c.active.clone()))
        .collect();
    assert_eq!(
        rows,
        [
            (
                4,
                vec![Some(1.0), Some(0.5), Some(0.5), None],
                vec![4, 2, 2, 1]
            ),
            (2, vec![Some(1.0), Some(0.5), None, None], vec![2, 1, 0, 0]),
            (1, vec![Some(1.0), None, None, None], vec![1, 1, 0, 0]),
            (0, vec![None, None, None, None], vec![0, 0, 0, 0]),
        ]
    );
    // Every tier: the Premium member joins the second cohort, active in its week 1.
    let all = table(&people, CohortQuery { tier: None, ..q }, now);
    let second = &all.cohorts[1];
    assert_eq!((second.size, second.retention[1]), (3, Some(2.0 / 3.0)));
}

#[test]
fn a_monthly_table_and_its_calendar() {
    assert_eq!(first_of_month(2026, 11), NOV_2 - 1);
    for (y, m) in [(2024, 2), (2024, 3), (2026, 1), (2026, 12), (1970, 1)] {
        let d = Date::of(day_start(first_of_month(y, m)));
        assert_eq!((d.year, d.month, d.day), (y, m, 1));
    }
    assert_eq!(
        period_start(Unit::Month, first_of_month(2026, 11), 3),
        first_of_month(2027, 2)
    );
    let sep_15 = first_of_month(2026, 9) + 14;
    let sep_30 = first_of_month(2026, 9) + 29;
    let people = [
        person(sep_15, &[first_of_month(2026, 10) + 2, NOV_2]),
        person(sep_30, &[sep_30]),
    ];
    let q = CohortQuery {
        unit: Unit::Month,
        periods: 3,
        tier: None,
    };
    let t = table(&people, q, at(NOV_2 + 23));
    assert_eq!(t.cohorts.len(), 3);
    let sep = &t.cohorts[0];
    assert_eq!(day_of(sep.start), first_of_month(2026, 9));
    assert_eq!(sep.size, 2);
    assert_eq!(sep.retention, [Some(1.0), Some(0.5), None]);
    assert_eq!(sep.active, [2, 1, 1]);
}
