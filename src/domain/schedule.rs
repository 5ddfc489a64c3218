//! When a scheduled job is due: a five-field cron expression read in a time zone.
//!
//! Cron is read as Vixie cron reads it (minute, hour, day of month, month, day of week;
//! a day matches when either day field does), on the wall clock of the configured zone,
//! so `0 2 * * *` in `Europe/Berlin` is two in the morning there, summer and winter.
//! Where the clock jumps, the rule is what an operator expects of cron:
//!
//! - **forward** (a wall-clock hour does not exist): a job set for a fixed time inside
//!   the gap runs once, at the first instant after it (02:30 on the night the clocks
//!   go from 02:00 to 03:00 runs at 03:00);
//! - **back** (an hour happens twice): a job set for a fixed time inside it runs once, at
//!   the first of the two; a job with a wildcard or step in its minute or hour field
//!   (`*/30 * * * *`) keeps its rhythm and runs in both.
//!
//! Time zones come from the IANA database compiled into the binary, so a machine
//! without `tzdata` reads them the same.

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;

use super::time::Timestamp;

/// A cron expression in a time zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
    expression: String,
    zone: TimeZone,
    zone_name: String,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression && self.zone_name == other.zone_name
    }
}

impl Schedule {
    /// Parses `expression` (five fields) in the IANA zone `zone` (`UTC`, `Europe/Berlin`).
    pub fn parse(expression: &str, zone: &str) -> Result<Self, String> {
        let zone_found = TimeZone::get(zone).map_err(|_| {
            format!(
                "unknown time zone {zone:?} (an IANA name such as \"UTC\" or \"Europe/Berlin\")"
            )
        })?;
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| {
                format!("{expression:?} is not a cron expression of five fields (minute hour day-of-month month day-of-week): {e}")
            })?;
        Ok(Self {
            cron,
            expression: expression.trim().to_owned(),
            zone: zone_found,
            zone_name: zone.to_owned(),
        })
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone's name.
    pub fn zone(&self) -> &str {
        &self.zone_name
    }

    /// The first time the schedule is due strictly after `t`; `None` if it never is
    /// again (a date that never comes, such as 30 February).
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let at = jiff::Timestamp::from_millisecond(t.as_millis())
            .ok()?
            .to_zoned(self.zone.clone());
        // croner works in whole seconds: from the start of `t`'s second, exclusive.
        let next = self.cron.find_next_occurrence(&at, false).ok()?;
        Some(Timestamp::from_millis(next.timestamp().as_millisecond()))
    }

    /// The last time the schedule was due at or before `t`.
    pub fn last_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let at = jiff::Timestamp::from_millisecond(t.as_millis())
            .ok()?
            .to_zoned(self.zone.clone());
        let last = self.cron.find_previous_occurrence(&at, true).ok()?;
        Some(Timestamp::from_millis(last.timestamp().as_millisecond()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `y-m-dThh:mm` at a UTC offset in hours, as a timestamp.
    fn at(civil: &str, offset_hours: i64) -> Timestamp {
        let utc: jiff::Timestamp = format!("{civil}:00Z").parse().unwrap();
        Timestamp::from_millis(utc.as_millisecond() - offset_hours * 3_600_000)
    }

    fn walk(s: &Schedule, from: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut out = Vec::new();
        let mut t = from;
        for _ in 0..n {
            t = s.next_after(t).unwrap();
            out.push(t);
        }
        out
    }

    #[test]
    fn the_seeds_schedules_in_utc() {
        let six_hourly = Schedule::parse("0 */6 * * *", "UTC").unwrap();
        assert_eq!(
            walk(&six_hourly, at("2027-01-01T05:59", 0), 3),
            [
                at("2027-01-01T06:00", 0),
                at("2027-01-01T12:00", 0),
                at("2027-01-01T18:00", 0)
            ]
        );
        // Strictly after: due at 06:00 exactly, the next is 12:00.
        assert_eq!(
            six_hourly.next_after(at("2027-01-01T06:00", 0)),
            Some(at("2027-01-01T12:00", 0))
        );
        // Sunday 03:00: 2027-01-03 is a Sunday.
        let weekly = Schedule::parse("0 3 * * 0", "UTC").unwrap();
        assert_eq!(
            walk(&weekly, at("2027-01-01T00:00", 0), 2),
            [at("2027-01-03T03:00", 0), at("2027-01-10T03:00", 0)]
        );
        assert_eq!(
            weekly.last_at_or_before(at("2027-01-09T12:00", 0)),
            Some(at("2027-01-03T03:00", 0))
        );
        assert_eq!(
            weekly.last_at_or_before(at("2027-01-03T03:00", 0)),
            Some(at("2027-01-03T03:00", 0)),
            "at or before: the instant itself"
        );
    }

    #[test]
    fn a_zone_keeps_the_wall_clock_through_summer_and_winter() {
        let daily = Schedule::parse("0 2 * * *", "Europe/Berlin").unwrap();
        // Winter: UTC+1; summer: UTC+2.
        assert_eq!(
            daily.next_after(at("2027-01-14T12:00", 0)),
            Some(at("2027-01-15T02:00", 1))
        );
        assert_eq!(
            daily.next_after(at("2027-07-14T12:00", 0)),
            Some(at("2027-07-15T02:00", 2))
        );
    }

    #[test]
    fn a_time_the_clock_skips_runs_once_right_after_the_jump() {
        // New York, 14 March 2027: 02:00 EST becomes 03:00 EDT; 02:30 does not exist.
        let daily = Schedule::parse("30 2 * * *", "America/New_York").unwrap();
        assert_eq!(
            walk(&daily, at("2027-03-13T12:00", -5), 3),
            [
                // The first instant after the gap: 03:00 EDT.
                at("2027-03-14T03:00", -4),
                at("2027-03-15T02:30", -4),
                at("2027-03-16T02:30", -4),
            ]
        );
    }

    #[test]
    fn a_time_the_clock_repeats_runs_once_and_a_rhythm_keeps_its_beat() {
        // New York, 7 November 2027: 02:00 EDT becomes 01:00 EST; 01:30 happens twice.
        let daily = Schedule::parse("30 1 * * *", "America/New_York").unwrap();
        assert_eq!(
            walk(&daily, at("2027-11-06T12:00", -4), 2),
            [at("2027-11-07T01:30", -4), at("2027-11-08T01:30", -5)],
            "once, at the first 01:30"
        );
        let half_hourly = Schedule::parse("*/30 * * * *", "America/New_York").unwrap();
        assert_eq!(
            walk(&half_hourly, at("2027-11-07T00:45", -4), 5),
            [
                at("2027-11-07T01:00", -4),
                at("2027-11-07T01:30", -4),
                at("2027-11-07T01:00", -5),
                at("2027-11-07T01:30", -5),
                at("2027-11-07T02:00", -5),
            ],
            "every real half hour, both passes through the repeated hour"
        );
    }

    #[test]
    fn bad_expressions_and_zones_say_what_is_wrong() {
        let e = Schedule::parse("0 2 * *", "UTC").unwrap_err();
        assert!(e.contains("five fields"), "{e}");
        let e = Schedule::parse("0 0 2 * * *", "UTC").unwrap_err();
        assert!(e.contains("five fields"), "seconds are not cron's: {e}");
        let e = Schedule::parse("61 * * * *", "UTC").unwrap_err();
        assert!(e.contains("61"), "{e}");
        let e = Schedule::parse("0 2 * * *", "Mars/Olympus").unwrap_err();
        assert!(e.contains("unknown time zone"), "{e}");
    }
}
