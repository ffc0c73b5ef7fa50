//! CronJob schedules: the five-field syntax and descriptors the apiserver accepts (the
//! standard parser of robfig/cron, which Kubernetes uses), and the minutes they fire at.
//!
//! Fields are minute, hour, day of month, month and day of week; each a comma list of `*`,
//! `?`, `N`, `N-M`, each optionally `/STEP` (`N/STEP` runs to the field's end), months and
//! weekdays also by name. As in Vixie cron, when both day fields are restricted a day
//! matching either fires; when one is `*` both must match. `@yearly`, `@annually`,
//! `@monthly`, `@weekly`, `@daily`, `@midnight` and `@hourly` stand for their five fields.
//! Not supported: `@every` (a constant delay rather than a calendar schedule).

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// A parsed schedule: the allowed values of each field as bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether the day-of-month or day-of-week field was `*`/`?` (then both must match).
    any_day: bool,
}

struct Field {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    min: 0,
    max: 23,
    names: &[],
};
const DAY: Field = Field {
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const WEEKDAY: Field = Field {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// How far ahead (or back) a search goes before it decides nothing matches (Feb 30th).
const SEARCH_YEARS: i16 = 5;

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        if text.starts_with("TZ") || text.starts_with("CRON_TZ") {
            return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".into());
        }
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(format!("unrecognized descriptor: {other}"));
            }
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: {text}",
                fields.len()
            ));
        }
        let (days, day_star) = parse_field(fields[2], &DAY)?;
        let (weekdays, weekday_star) = parse_field(fields[4], &WEEKDAY)?;
        Ok(Schedule {
            minutes: parse_field(fields[0], &MINUTE)?.0,
            hours: parse_field(fields[1], &HOUR)?.0,
            days,
            months: parse_field(fields[3], &MONTH)?.0,
            weekdays,
            any_day: day_star || weekday_star,
        })
    }

    fn day_matches(&self, date: Date) -> bool {
        let day = bit(self.days, date.day() as u32);
        let weekday = bit(self.weekdays, date.weekday().to_sunday_zero_offset() as u32);
        if self.any_day {
            day && weekday
        } else {
            day || weekday
        }
    }

    /// Whether the schedule fires at this (local) minute.
    pub fn matches(&self, t: DateTime) -> bool {
        bit(self.months, t.month() as u32)
            && self.day_matches(t.date())
            && bit(self.hours, t.hour() as u32)
            && bit(self.minutes, t.minute() as u32)
    }

    /// The first minute strictly after `after` at which the schedule fires, in `tz`.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = tz.to_datetime(after);
        let mut t = minute_start(local).checked_add(1.minute()).ok()?;
        let limit = local.year().saturating_add(SEARCH_YEARS);
        while t.year() <= limit {
            if !bit(self.months, t.month() as u32) {
                t = t
                    .first_of_month()
                    .start_of_day()
                    .checked_add(1.month())
                    .ok()?;
            } else if !self.day_matches(t.date()) {
                t = t.start_of_day().checked_add(1.day()).ok()?;
            } else if !bit(self.hours, t.hour() as u32) {
                t = hour_start(t).checked_add(1.hour()).ok()?;
            } else if !bit(self.minutes, t.minute() as u32) {
                t = t.checked_add(1.minute()).ok()?;
            } else {
                return fired_at(t, tz, after, |x, a| x > a);
            }
        }
        None
    }

    /// The last minute at or before `at` at which the schedule fires, in `tz`.
    pub fn last_at_or_before(&self, at: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = tz.to_datetime(at);
        let mut t = minute_start(local);
        let limit = local.year().saturating_sub(SEARCH_YEARS);
        while t.year() >= limit {
            if !bit(self.months, t.month() as u32) {
                t = t
                    .first_of_month()
                    .start_of_day()
                    .checked_sub(1.minute())
                    .ok()?;
            } else if !self.day_matches(t.date()) {
                t = t.start_of_day().checked_sub(1.minute()).ok()?;
            } else if !bit(self.hours, t.hour() as u32) {
                t = hour_start(t).checked_sub(1.minute()).ok()?;
            } else if !bit(self.minutes, t.minute() as u32) {
                t = t.checked_sub(1.minute()).ok()?;
            } else {
                return fired_at(t, tz, at, |x, a| x <= a);
            }
        }
        None
    }
}

/// A matching local minute as an instant; a minute a DST change skips fires at the instant
/// after the gap, and one it repeats at its first occurrence (`keep` rejects what is out of
/// the searched side).
fn fired_at(
    t: DateTime,
    tz: &TimeZone,
    from: Timestamp,
    keep: fn(Timestamp, Timestamp) -> bool,
) -> Option<Timestamp> {
    let instant = tz.to_ambiguous_timestamp(t).compatible().ok()?;
    keep(instant, from).then_some(instant)
}

fn minute_start(t: DateTime) -> DateTime {
    t.with().second(0).subsec_nanosecond(0).build().unwrap_or(t)
}

fn hour_start(t: DateTime) -> DateTime {
    t.date().to_datetime(Time::constant(t.hour(), 0, 0, 0))
}

fn bit(set: u64, n: u32) -> bool {
    set & (1 << n) != 0
}

/// The allowed values of one field, and whether it was a bare `*`/`?`.
fn parse_field(text: &str, field: &Field) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let mut star = false;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| format!("failed to parse int from {s}"))?;
                if step == 0 {
                    return Err(format!("step of range should be a positive number: {part}"));
                }
                (r, Some(step))
            }
            None => (part, None),
        };
        let (start, end) = if range == "*" || range == "?" {
            // `*/2` restricts the field: only a bare star leaves the day fields open.
            star |= step.is_none_or(|s| s == 1);
            (field.min, field.max)
        } else {
            match range.split_once('-') {
                Some((lo, hi)) => (value(lo, field)?, value(hi, field)?),
                None => {
                    let n = value(range, field)?;
                    (n, if step.is_some() { field.max } else { n })
                }
            }
        };
        if start < field.min || end > field.max {
            return Err(format!(
                "end of range ({end}) above maximum ({}): {part}",
                field.max
            ));
        }
        if start > end {
            return Err(format!(
                "beginning of range ({start}) beyond end of range ({end}): {part}"
            ));
        }
        let step = step.unwrap_or(1);
        for n in (start..=end).step_by(step as usize) {
            bits |= 1 << n;
        }
    }
    Ok((bits, star))
}

fn value(text: &str, field: &Field) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = field.names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + field.min);
    }
    let n: u32 = text
        .parse()
        .map_err(|_| format!("failed to parse int from {text}"))?;
    if n < field.min || n > field.max {
        return Err(format!(
            "value ({n}) out of range [{}, {}]: {text}",
            field.min, field.max
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(schedule: &str, after: &str) -> String {
        Schedule::parse(schedule)
            .unwrap()
            .next_after(ts(after), &TimeZone::UTC)
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn next_firings() {
        let table = [
            ("* * * * *", "2026-01-01T10:00:30Z", "2026-01-01T10:01:00Z"),
            ("* * * * *", "2026-01-01T10:00:00Z", "2026-01-01T10:01:00Z"),
            (
                "*/15 * * * *",
                "2026-01-01T10:01:00Z",
                "2026-01-01T10:15:00Z",
            ),
            ("5 4 * * *", "2026-01-01T10:00:00Z", "2026-01-02T04:05:00Z"),
            ("0 0 1 1 *", "2026-03-01T00:00:00Z", "2027-01-01T00:00:00Z"),
            ("@hourly", "2026-01-01T10:59:59Z", "2026-01-01T11:00:00Z"),
            ("@daily", "2026-01-01T10:00:00Z", "2026-01-02T00:00:00Z"),
            ("@weekly", "2026-01-01T10:00:00Z", "2026-01-04T00:00:00Z"),
            ("@monthly", "2026-01-31T10:00:00Z", "2026-02-01T00:00:00Z"),
            ("@yearly", "2026-06-01T00:00:00Z", "2027-01-01T00:00:00Z"),
            (
                "0 9 * * mon-fri",
                "2026-01-02T10:00:00Z",
                "2026-01-05T09:00:00Z",
            ),
            (
                "30 2 29 feb *",
                "2026-01-01T00:00:00Z",
                "2028-02-29T02:30:00Z",
            ),
            (
                "0 12 31 * *",
                "2026-04-01T00:00:00Z",
                "2026-05-31T12:00:00Z",
            ),
            (
                "10-20/5 3 * JAN,Jul *",
                "2026-02-01T00:00:00Z",
                "2026-07-01T03:10:00Z",
            ),
            // Both day fields restricted: either fires (the 1st, or any Friday).
            ("0 0 1 * 5", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
            // `*/2` on the weekdays restricts it: days OR weekdays.
            (
                "0 0 15 * */2",
                "2026-01-01T00:00:00Z",
                "2026-01-03T00:00:00Z",
            ),
            ("0 0 30 2 *", "2026-01-01T00:00:00Z", ""),
        ];
        for (schedule, after, want) in table {
            assert_eq!(next(schedule, after), want, "{schedule} after {after}");
        }
    }

    #[test]
    fn time_zones() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let s = Schedule::parse("0 9 * * *").unwrap();
        let t = s.next_after(ts("2026-01-01T00:00:00Z"), &berlin).unwrap();
        assert_eq!(t.to_string(), "2026-01-01T08:00:00Z");
    }

    #[test]
    fn refusals() {
        for bad in [
            "* * * *",
            "* * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 7",
            "5-1 * * * *",
            "*/0 * * * *",
            "a * * * *",
            "@every 5m",
            "TZ=UTC * * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    /// A field over values from `base` (0 for minutes, hours and weekdays, 1 for days and
    /// months), kept small so that matches are frequent enough to check minute by minute.
    fn field(base: u32) -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_string()),
            (0u32..6).prop_map(move |n| (n + base).to_string()),
            (0u32..3, 3u32..6).prop_map(move |(a, b)| format!("{}-{}", a + base, b + base)),
            (1u32..4).prop_map(|s| format!("*/{s}")),
            (0u32..3, 4u32..6).prop_map(move |(a, b)| format!("{},{}", a + base, b + base)),
        ]
    }

    fn schedule() -> impl Strategy<Value = String> {
        (field(0), field(0), field(1), field(1), field(0))
            .prop_map(|(mi, h, d, mo, w)| format!("{mi} {h} {d} {mo} {w}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// The next firing matches, comes after the start, and no minute in between matches.
        #[test]
        fn next_is_the_first_match(text in schedule(), start in 0i64..200_000_000) {
            let s = Schedule::parse(&text).unwrap();
            let from = Timestamp::from_second(1_700_000_000 + start).unwrap();
            if let Some(next) = s.next_after(from, &TimeZone::UTC) {
                prop_assert!(next > from);
                prop_assert!(s.matches(TimeZone::UTC.to_datetime(next)));
                let gap = (next.as_second() - from.as_second()) / 60;
                if gap < 3000 {
                    let mut t = Timestamp::from_second(from.as_second() / 60 * 60 + 60).unwrap();
                    while t < next {
                        prop_assert!(!s.matches(TimeZone::UTC.to_datetime(t)), "{} matches before {}", t, next);
                        t = Timestamp::from_second(t.as_second() + 60).unwrap();
                    }
                }
                // Looking back from the next firing finds it; from just before, an earlier one.
                prop_assert_eq!(s.last_at_or_before(next, &TimeZone::UTC), Some(next));
                let before = Timestamp::from_second(next.as_second() - 1).unwrap();
                if let Some(prev) = s.last_at_or_before(before, &TimeZone::UTC) {
                    prop_assert!(prev <= from);
                    prop_assert!(s.matches(TimeZone::UTC.to_datetime(prev)));
                }
            }
        }
    }
}
