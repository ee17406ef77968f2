//! The cron engine: parsing and evaluating cron specs in a time zone.
//!
//! Syntax (croniter's, plus asynq's descriptors): five fields `minute hour day-of-month month
//! day-of-week`, or six with seconds last; `*`, `?`, lists, ranges (wrapping, like `FRI-MON`),
//! steps, month and weekday names; `L`, `LW` and `nW` in the day of month; `n#k`, `Ln` and `nL` in
//! the day of week; `@yearly @annually @monthly @weekly @daily @midnight @hourly`; `@every <Go
//! duration>` (fired at whole multiples of the interval since the Unix epoch, so that every
//! scheduler replica picks the same instants; asynq counts from its own start); a `CRON_TZ=Zone `
//! or `TZ=Zone ` prefix. When both day fields are restricted a day
//! matches either (Vixie cron's rule).
//!
//! Times are matched on the wall clock of the schedule's zone. Across DST transitions (the rule of
//! cronie): a wall time that does not exist (spring forward) fires once at the first instant after
//! the gap if the hour field is fixed, and is skipped if the hour field is a wildcard (`*`, `*/n`);
//! a wall time that happens twice (fall back) fires at both instants if the hour field is a
//! wildcard, and once, at the first, if it is fixed. So a daily job runs exactly once every day
//! and an every-15-minutes job keeps its rhythm in real time.
//!
//! Nothing here panics on user input: every failure is a [`CronError`] naming the field.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

mod fields;
mod zone;

use fields::*;
pub use zone::Zone;

/// How far the search looks before it decides a spec never fires again.
const MAX_YEARS: i32 = 30;
/// Local-time window examined around an instant near a DST transition (longer than any overlap).
const TRANSITION_WINDOW_SECS: i64 = 3 * 3600;

/// A spec that cannot be parsed, with the field and the position of the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError {
    /// `spec`, `minute`, `hour`, `day-of-month`, `month`, `day-of-week`, `second`, `zone` or `every`.
    pub field: &'static str,
    /// 1-based field number (0 for the spec as a whole).
    pub index: usize,
    /// 1-based character column in the spec where the bad part starts.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.index > 0 {
            write!(f, "{} field (field {}, column {}): {}", self.field, self.index, self.column, self.message)
        } else {
            write!(f, "{} (column {}): {}", self.field, self.column, self.message)
        }
    }
}

impl std::error::Error for CronError {}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Calendar(Box<Fields>),
    /// `@every d`: whole seconds.
    Every(i64),
}

/// A parsed cron spec with its zone.
#[derive(Debug, Clone, PartialEq)]
pub struct CronSchedule {
    spec: String,
    kind: Kind,
    zone: Zone,
}

fn descriptor(name: &str) -> Option<&'static str> {
    Some(match name {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return None,
    })
}

fn spec_err(column: usize, message: impl Into<String>) -> CronError {
    CronError { field: "spec", index: 0, column, message: message.into() }
}

impl CronSchedule {
    /// Parses `spec`; `zone` applies unless the spec has a `CRON_TZ=`/`TZ=` prefix.
    pub fn parse(spec: &str, zone: Zone) -> Result<Self, CronError> {
        let trimmed = spec.trim();
        let lead = spec.len() - spec.trim_start().len();
        let (zone, body, body_col) = match trimmed.split_once(char::is_whitespace) {
            Some((first, rest)) if first.starts_with("CRON_TZ=") || first.starts_with("TZ=") => {
                let name = first.split_once('=').map(|(_, n)| n).unwrap_or_default();
                let z = Zone::named(name).map_err(|m| CronError {
                    field: "zone",
                    index: 0,
                    column: lead + 1 + first.len() - name.len(),
                    message: m,
                })?;
                let rest_trim = rest.trim_start();
                (z, rest_trim, lead + first.len() + 1 + (rest.len() - rest_trim.len()))
            }
            _ => (zone, trimmed, lead),
        };
        if body.is_empty() {
            return Err(spec_err(body_col + 1, "empty spec"));
        }
        let kind = if let Some(d) = body.strip_prefix("@every") {
            let secs = crate::goformat::parse_go_duration(d).map_err(|m| CronError {
                field: "every",
                index: 0,
                column: body_col + 8,
                message: m,
            })?;
            if secs <= 0.0 {
                return Err(CronError {
                    field: "every",
                    index: 0,
                    column: body_col + 8,
                    message: "the interval must be positive".into(),
                });
            }
            // As robfig/cron (asynq): whole seconds, at least one.
            Kind::Every((secs.floor() as i64).max(1))
        } else if body.starts_with('@') {
            let expanded = descriptor(&body.to_ascii_lowercase())
                .ok_or_else(|| spec_err(body_col + 1, format!("unknown descriptor {body:?}")))?;
            Kind::Calendar(Box::new(parse_fields(expanded, 0)?))
        } else {
            Kind::Calendar(Box::new(parse_fields(body, body_col)?))
        };
        let s = CronSchedule { spec: spec.to_string(), kind, zone };
        if let Kind::Calendar(f) = &s.kind {
            // Catch specs that can never fire (31 February) now, not at the first search.
            let probe = NaiveDate::from_ymd_opt(2000, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
            if probe.and_then(|p| f.next_local(p)).is_none() {
                return Err(spec_err(body_col + 1, "the spec never matches a real date"));
            }
        }
        Ok(s)
    }

    /// The spec as given.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// The zone the spec is evaluated in.
    pub fn zone(&self) -> Zone {
        self.zone
    }

    /// `@every`'s interval in seconds, if the schedule is one.
    pub fn every(&self) -> Option<i64> {
        match self.kind {
            Kind::Every(s) => Some(s),
            Kind::Calendar(_) => None,
        }
    }

    /// The first firing strictly after the UTC instant `t`.
    pub fn next_after(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let f = match &self.kind {
            Kind::Every(secs) => {
                let s = t.and_utc().timestamp();
                return utc_from_unix((s.div_euclid(*secs) + 1) * secs, 0);
            }
            Kind::Calendar(f) => f,
        };
        let z = self.zone;
        let near = z.near_transition(t);
        let mut cursor = z.wall_time(t);
        if near {
            // Wall times just before t may still fire after t (their second occurrence).
            cursor -= chrono::Duration::seconds(TRANSITION_WINDOW_SECS);
        }
        let mut best: Option<NaiveDateTime> = None;
        loop {
            let c = f.next_local(cursor)?;
            let (earliest, allowed) = self.resolve(f, c);
            if best.is_some_and(|b| earliest >= b) {
                return best;
            }
            for u in allowed.into_iter().flatten() {
                if u > t && best.is_none_or(|b| u < b) {
                    best = Some(u);
                }
            }
            if best.is_some() && !near {
                return best;
            }
            cursor = c;
        }
    }

    /// The last firing strictly before the UTC instant `t`.
    pub fn prev_before(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let f = match &self.kind {
            Kind::Every(secs) => {
                let s = t.and_utc().timestamp();
                let k = if t.nanosecond() == 0 { (s - 1).div_euclid(*secs) } else { s.div_euclid(*secs) };
                return utc_from_unix(k * secs, 0);
            }
            Kind::Calendar(f) => f,
        };
        let z = self.zone;
        let near = z.near_transition(t);
        let mut cursor = z.wall_time(t);
        if near {
            cursor += chrono::Duration::seconds(TRANSITION_WINDOW_SECS);
        }
        let mut best: Option<NaiveDateTime> = None;
        loop {
            let c = f.prev_local(cursor)?;
            let (_, allowed) = self.resolve(f, c);
            let latest = allowed.iter().flatten().max().copied();
            if let (Some(b), Some(l)) = (best, latest) {
                if l <= b {
                    return best;
                }
            }
            for u in allowed.into_iter().flatten() {
                if u < t && best.is_none_or(|b| u > b) {
                    best = Some(u);
                }
            }
            if best.is_some() && !near {
                return best;
            }
            cursor = c;
        }
    }

    /// Whether the schedule fires at the UTC instant `t`.
    pub fn matches(&self, t: NaiveDateTime) -> bool {
        if t.nanosecond() != 0 {
            return false;
        }
        self.next_after(t - chrono::Duration::seconds(1)) == Some(t)
    }

    /// The UTC instants at which wall time `c` fires under the DST rule, and the earliest instant
    /// `c` could map to (for ordering the search).
    fn resolve(&self, f: &Fields, c: NaiveDateTime) -> (NaiveDateTime, [Option<NaiveDateTime>; 2]) {
        match self.zone.instants(c) {
            LocalResult::Single(u) => (u, [Some(u), None]),
            LocalResult::Ambiguous(a, b) => (a, [Some(a), if f.hour_wildcard { Some(b) } else { None }]),
            LocalResult::None => {
                let end = self.zone.end_of_gap(c);
                (end, [if f.hour_wildcard { None } else { Some(end) }, None])
            }
        }
    }
}

/// The UTC instant of `secs` + `nanos` since the epoch.
pub fn utc_from_unix(secs: i64, nanos: u32) -> Option<NaiveDateTime> {
    Utc.timestamp_opt(secs, nanos).single().map(|d| d.naive_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("test timestamp")
    }

    fn next_n(spec: &str, zone: Zone, from: &str, n: usize) -> Vec<String> {
        let s = CronSchedule::parse(spec, zone).expect("valid spec");
        let mut t = utc(from);
        let mut out = Vec::new();
        for _ in 0..n {
            t = s.next_after(t).expect("fires");
            out.push(t.format("%Y-%m-%d %H:%M:%S").to_string());
        }
        out
    }

    #[test]
    fn table_of_specs_in_utc() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("*/15 * * * *", "2026-01-01 00:07:00", &["2026-01-01 00:15:00", "2026-01-01 00:30:00"]),
            ("0 9 * * mon-fri", "2026-01-02 10:00:00", &["2026-01-05 09:00:00", "2026-01-06 09:00:00"]),
            ("0 0 L * *", "2026-01-31 00:00:00", &["2026-02-28 00:00:00", "2026-03-31 00:00:00"]),
            ("0 0 15W * *", "2026-02-01 00:00:00", &["2026-02-16 00:00:00", "2026-03-16 00:00:00"]),
            ("0 0 LW * *", "2026-01-01 00:00:00", &["2026-01-30 00:00:00", "2026-02-27 00:00:00"]),
            ("0 0 * * 5#3", "2026-01-01 00:00:00", &["2026-01-16 00:00:00", "2026-02-20 00:00:00"]),
            ("0 0 * * L5", "2026-01-01 00:00:00", &["2026-01-30 00:00:00", "2026-02-27 00:00:00"]),
            ("0 0 * * 5L", "2026-01-01 00:00:00", &["2026-01-30 00:00:00", "2026-02-27 00:00:00"]),
            (
                "0 0 1,15 * 1",
                "2026-01-01 00:00:00",
                &["2026-01-05 00:00:00", "2026-01-12 00:00:00", "2026-01-15 00:00:00"],
            ),
            (
                "0 22-2 * * *",
                "2026-01-01 00:30:00",
                &["2026-01-01 01:00:00", "2026-01-01 02:00:00", "2026-01-01 22:00:00"],
            ),
            (
                "0 0 * * 5-1",
                "2026-01-01 00:00:00",
                &[
                    "2026-01-02 00:00:00",
                    "2026-01-03 00:00:00",
                    "2026-01-04 00:00:00",
                    "2026-01-05 00:00:00",
                    "2026-01-09 00:00:00",
                ],
            ),
            ("0 0 29 2 *", "2026-01-01 00:00:00", &["2028-02-29 00:00:00"]),
            ("* * * * * 30", "2026-01-01 00:00:00", &["2026-01-01 00:00:30", "2026-01-01 00:01:30"]),
            ("@hourly", "2026-01-01 00:00:00", &["2026-01-01 01:00:00"]),
            ("@weekly", "2026-01-01 00:00:00", &["2026-01-04 00:00:00"]),
            ("@yearly", "2026-01-01 00:00:00", &["2027-01-01 00:00:00"]),
            ("@every 1h30m", "2026-01-01 00:00:10", &["2026-01-01 01:30:00", "2026-01-01 03:00:00"]),
            ("@every 7s", "2026-01-01 00:00:00", &["2026-01-01 00:00:07", "2026-01-01 00:00:14"]),
            ("CRON_TZ=Asia/Tokyo 0 9 * * *", "2026-01-01 00:00:00", &["2026-01-02 00:00:00"]),
            ("TZ=America/New_York 0 9 * * *", "2026-01-01 00:00:00", &["2026-01-01 14:00:00"]),
        ];
        for (spec, from, want) in cases {
            assert_eq!(next_n(spec, Zone::Utc, from, want.len()), *want, "{spec}");
        }
    }

    #[test]
    fn dst_spring_forward_in_new_york() {
        let ny = Zone::named("America/New_York").expect("zone");
        // 02:00 EST → 03:00 EDT on 2026-03-08 (07:00 UTC).
        // Fixed hour: the missing 02:30 fires once, at 03:00 EDT.
        assert_eq!(
            next_n("30 2 * * *", ny, "2026-03-08 05:00:00", 2),
            ["2026-03-08 07:00:00", "2026-03-09 06:30:00"]
        );
        // Wildcard hour: the missing half hours are skipped; the rhythm goes on in real time.
        assert_eq!(
            next_n("*/30 * * * *", ny, "2026-03-08 06:00:00", 3),
            ["2026-03-08 06:30:00", "2026-03-08 07:00:00", "2026-03-08 07:30:00"]
        );
    }

    #[test]
    fn dst_fall_back_in_new_york() {
        let ny = Zone::named("America/New_York").expect("zone");
        // 02:00 EDT → 01:00 EST on 2026-11-01 (06:00 UTC); 01:30 happens at 05:30 and 06:30 UTC.
        // Fixed hour: once, at the first 01:30.
        assert_eq!(
            next_n("30 1 * * *", ny, "2026-11-01 04:00:00", 2),
            ["2026-11-01 05:30:00", "2026-11-02 06:30:00"]
        );
        // Wildcard hour: both.
        assert_eq!(
            next_n("30 * * * *", ny, "2026-11-01 04:00:00", 4),
            ["2026-11-01 04:30:00", "2026-11-01 05:30:00", "2026-11-01 06:30:00", "2026-11-01 07:30:00"]
        );
        // prev_before mirrors next_after.
        let s = CronSchedule::parse("30 * * * *", ny).expect("valid");
        assert_eq!(s.prev_before(utc("2026-11-01 06:40:00")), Some(utc("2026-11-01 06:30:00")));
        assert_eq!(s.prev_before(utc("2026-11-01 06:30:00")), Some(utc("2026-11-01 05:30:00")));
        let fixed = CronSchedule::parse("30 1 * * *", ny).expect("valid");
        assert_eq!(fixed.prev_before(utc("2026-11-01 07:00:00")), Some(utc("2026-11-01 05:30:00")));
    }

    #[test]
    fn firing_at_the_end_of_a_gap_moves_on() {
        // Sydney springs forward at 02:00 → 03:00 on 2033-10-02; 02:xx fires once at 03:00.
        let syd = Zone::named("Australia/Sydney").expect("zone");
        assert_eq!(
            next_n("* 2/6,18 2 6/1 *", syd, "2033-10-01 15:59:00", 2),
            ["2033-10-01 16:00:00", "2033-10-01 21:00:00"]
        );
    }

    #[test]
    fn dst_in_paris() {
        let paris = Zone::named("Europe/Paris").expect("zone");
        // 02:00 CET → 03:00 CEST on 2026-03-29 (01:00 UTC); back on 2026-10-25 (01:00 UTC).
        assert_eq!(
            next_n("15 2 * * *", paris, "2026-03-28 23:00:00", 2),
            ["2026-03-29 01:00:00", "2026-03-30 00:15:00"]
        );
        assert_eq!(
            next_n("15 2 * * *", paris, "2026-10-24 23:00:00", 2),
            ["2026-10-25 00:15:00", "2026-10-26 01:15:00"]
        );
    }

    #[test]
    fn prev_and_matches() {
        let s = CronSchedule::parse("0 9 * * mon-fri", Zone::Utc).expect("valid");
        assert_eq!(s.prev_before(utc("2026-01-05 09:00:00")), Some(utc("2026-01-02 09:00:00")));
        assert_eq!(s.prev_before(utc("2026-01-05 09:00:01")), Some(utc("2026-01-05 09:00:00")));
        assert!(s.matches(utc("2026-01-05 09:00:00")));
        assert!(!s.matches(utc("2026-01-04 09:00:00")));
    }

    #[test]
    fn errors_name_the_field_and_column() {
        let cases: &[(&str, &str, usize, usize)] = &[
            ("61 * * * *", "minute", 1, 1),
            ("* 24 * * *", "hour", 2, 3),
            ("* * 0 * *", "day-of-month", 3, 5),
            ("* * * 13 *", "month", 4, 7),
            ("* * * * 8", "day-of-week", 5, 9),
            ("* * * * * 60", "second", 6, 11),
            ("*/0 * * * *", "minute", 1, 3),
            ("* * * foo *", "month", 4, 7),
            ("1,,2 * * * *", "minute", 1, 3),
            ("* * * *", "spec", 0, 1),
            ("@often", "spec", 0, 1),
            ("@every 10", "every", 0, 8),
            ("CRON_TZ=Mars/Base * * * * *", "zone", 0, 9),
            ("0 0 30 2 *", "spec", 0, 1),
        ];
        for (spec, field, index, column) in cases {
            let e = CronSchedule::parse(spec, Zone::Utc).expect_err(spec);
            assert_eq!((e.field, e.index, e.column), (*field, *index, *column), "{spec}: {e}");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(spec in "[0-9a-zA-Z*/,#?@ LW=_-]{0,40}") {
            let _ = CronSchedule::parse(&spec, Zone::Utc);
        }

        #[test]
        fn next_is_after_and_matches(min in 0u32..60, hour in 0u32..24, secs in 0i64..4_000_000_000) {
            let s = CronSchedule::parse(&format!("{min} {hour} * * *"), Zone::named("Europe/Berlin").expect("zone")).expect("valid");
            let t = utc_from_unix(secs, 0).expect("in range");
            let n = s.next_after(t).expect("fires daily");
            prop_assert!(n > t);
            prop_assert!(n - t <= chrono::Duration::hours(49));
            prop_assert_eq!(s.prev_before(n + chrono::Duration::seconds(1)), Some(n));
        }
    }
}
