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

/// A time zone: UTC, a fixed offset or an IANA zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    /// Coordinated Universal Time.
    Utc,
    /// A fixed offset from UTC.
    Fixed(FixedOffset),
    /// An IANA zone with its DST rules.
    Tz(Tz),
}

impl Zone {
    /// Parses `UTC`, an IANA name (`Europe/Paris`) or a fixed offset in seconds east of UTC.
    pub fn named(name: &str) -> Result<Self, String> {
        match name {
            "UTC" | "Etc/UTC" | "Z" | "utc" => Ok(Zone::Utc),
            _ => Tz::from_str(name).map(Zone::Tz).map_err(|_| format!("unknown time zone {name:?}")),
        }
    }

    /// A fixed offset in seconds east of UTC.
    pub fn fixed(offset_secs: i32) -> Result<Self, String> {
        FixedOffset::east_opt(offset_secs)
            .map(Zone::Fixed)
            .ok_or_else(|| format!("bad UTC offset {offset_secs}s"))
    }

    /// The zone's name (`UTC`, the IANA name, or `+HH:MM`).
    pub fn name(&self) -> String {
        match self {
            Zone::Utc => "UTC".into(),
            Zone::Fixed(o) => o.to_string(),
            Zone::Tz(tz) => tz.name().into(),
        }
    }

    /// The offset in seconds east of UTC at the UTC instant `utc`.
    pub fn offset_at(&self, utc: NaiveDateTime) -> i32 {
        match self {
            Zone::Utc => 0,
            Zone::Fixed(o) => o.local_minus_utc(),
            Zone::Tz(tz) => tz.offset_from_utc_datetime(&utc).fix().local_minus_utc(),
        }
    }

    fn wall_time(&self, utc: NaiveDateTime) -> NaiveDateTime {
        utc + chrono::Duration::seconds(i64::from(self.offset_at(utc)))
    }

    /// The UTC instants at which the wall clock shows `local`: none (gap), one, or two (overlap).
    fn instants(&self, local: NaiveDateTime) -> LocalResult<NaiveDateTime> {
        match self {
            Zone::Utc => LocalResult::Single(local),
            Zone::Fixed(o) => {
                LocalResult::Single(local - chrono::Duration::seconds(i64::from(o.local_minus_utc())))
            }
            Zone::Tz(tz) => match tz.from_local_datetime(&local) {
                LocalResult::Single(t) => LocalResult::Single(t.naive_utc()),
                LocalResult::Ambiguous(a, b) => {
                    let (a, b) = (a.naive_utc(), b.naive_utc());
                    LocalResult::Ambiguous(a.min(b), a.max(b))
                }
                LocalResult::None => LocalResult::None,
            },
        }
    }

    /// The first UTC instant whose wall time is at or after `local` (which falls in a gap).
    fn end_of_gap(&self, local: NaiveDateTime) -> NaiveDateTime {
        let guess = local - chrono::Duration::seconds(i64::from(self.offset_at(local)));
        let (mut lo, mut hi) = (guess - chrono::Duration::hours(26), guess + chrono::Duration::hours(26));
        // Whole seconds only: a firing instant never has a fraction.
        while (hi - lo).num_seconds() > 1 {
            let mid = lo + chrono::Duration::seconds((hi - lo).num_seconds() / 2);
            if self.wall_time(mid) >= local {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }

    /// Whether the offset changes within the transition window around `utc`.
    fn near_transition(&self, utc: NaiveDateTime) -> bool {
        match self {
            Zone::Tz(_) => {
                let w = chrono::Duration::seconds(TRANSITION_WINDOW_SECS);
                self.offset_at(utc - w) != self.offset_at(utc + w)
                    || self.offset_at(utc - w) != self.offset_at(utc)
            }
            _ => false,
        }
    }
}

/// One day-of-month or day-of-week special.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Days {
    /// Plain values: days of month 1..=31, or weekdays 0..=6 (Sunday = 0).
    mask: u64,
    /// `L` (day of month): the last day.
    last: bool,
    /// `LW`: the last weekday of the month.
    last_weekday: bool,
    /// `nW`: the weekday nearest to day n.
    nearest: Vec<u32>,
    /// `n#k`: the k-th weekday n of the month.
    nth: Vec<(u32, u32)>,
    /// `Ln` / `nL`: the last weekday n of the month.
    last_of: Vec<u32>,
    /// The field was `*` or `?`.
    star: bool,
}

/// A calendar schedule's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    seconds: u64,
    minutes: u64,
    hours: u64,
    months: u64,
    dom: Days,
    dow: Days,
    /// The hour field is a wildcard (`*`, `*/n`, `?`): decides the DST rule.
    hour_wildcard: bool,
}

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

const MONTHS: [&str; 12] =
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECOND: FieldSpec = FieldSpec { name: "second", min: 0, max: 59, names: &[] };
const MINUTE: FieldSpec = FieldSpec { name: "minute", min: 0, max: 59, names: &[] };
const HOUR: FieldSpec = FieldSpec { name: "hour", min: 0, max: 23, names: &[] };
const DOM: FieldSpec = FieldSpec { name: "day-of-month", min: 1, max: 31, names: &[] };
const MONTH: FieldSpec = FieldSpec { name: "month", min: 1, max: 12, names: &MONTHS };
const DOW: FieldSpec = FieldSpec { name: "day-of-week", min: 0, max: 7, names: &WEEKDAYS };

/// Error builder for one field.
struct At<'a> {
    spec: &'a FieldSpec,
    index: usize,
    column: usize,
}

impl At<'_> {
    fn err(&self, offset: usize, message: impl Into<String>) -> CronError {
        CronError {
            field: self.spec.name,
            index: self.index,
            column: self.column + offset,
            message: message.into(),
        }
    }

    fn value(&self, text: &str, offset: usize) -> Result<u32, CronError> {
        let lower = text.to_ascii_lowercase();
        if let Some(i) = self.spec.names.iter().position(|n| *n == lower) {
            let base = if self.spec.names.len() == 12 { 1 } else { 0 };
            return Ok(i as u32 + base);
        }
        let v: u32 =
            text.parse().map_err(|_| self.err(offset, format!("{text:?} is not a number or a name")))?;
        if v < self.spec.min || v > self.spec.max {
            return Err(self.err(offset, format!("{v} is out of range {}-{}", self.spec.min, self.spec.max)));
        }
        Ok(v)
    }
}

fn bit(v: u32) -> u64 {
    1u64 << v
}

/// Parses one plain item (`*`, `n`, `a-b`, with an optional `/step`) into a mask.
fn parse_item(at: &At<'_>, item: &str, offset: usize) -> Result<u64, CronError> {
    let (base, step) = match item.split_once('/') {
        Some((b, s)) => {
            let step: u32 =
                s.parse().map_err(|_| at.err(offset + b.len() + 1, format!("step {s:?} is not a number")))?;
            if step == 0 {
                return Err(at.err(offset + b.len() + 1, "step must be at least 1"));
            }
            (b, Some(step))
        }
        None => (item, None),
    };
    // Weekday 7 (Sunday again) is a value, not the end of the range: `*` and `a/n` stop at 6.
    let top = if at.spec.name == DOW.name { 6 } else { at.spec.max };
    let (lo, hi) = if base == "*" || base == "?" {
        (at.spec.min, top)
    } else if let Some((a, b)) = base.split_once('-') {
        (at.value(a, offset)?, at.value(b, offset + a.len() + 1)?)
    } else {
        let v = at.value(base, offset)?;
        // `a/n` runs from a to the end of the range, as croniter reads it.
        (v, if step.is_some() { top } else { v })
    };
    let step = step.unwrap_or(1);
    let mut mask = 0u64;
    if lo <= hi {
        let mut v = lo;
        while v <= hi {
            mask |= bit(v);
            v += step;
        }
    } else {
        // A wrapping range such as FRI-MON or 22-2.
        let span = at.spec.max - lo + 1 + hi - at.spec.min + 1;
        let mut i = 0;
        while i < span {
            let v = if lo + i <= at.spec.max { lo + i } else { at.spec.min + (i - (at.spec.max - lo + 1)) };
            mask |= bit(v);
            i += step;
        }
    }
    Ok(mask)
}

/// Parses a whole field (a comma list) into a mask.
fn parse_mask(at: &At<'_>, text: &str) -> Result<u64, CronError> {
    let mut mask = 0u64;
    let mut offset = 0;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(at.err(offset, "empty list item"));
        }
        mask |= parse_item(at, item, offset)?;
        offset += item.len() + 1;
    }
    Ok(mask)
}

fn parse_dom(at: &At<'_>, text: &str) -> Result<Days, CronError> {
    let mut d = Days { star: text == "*" || text == "?", ..Days::default() };
    let mut offset = 0;
    for item in text.split(',') {
        let upper = item.to_ascii_uppercase();
        if upper == "L" {
            d.last = true;
        } else if upper == "LW" {
            d.last_weekday = true;
        } else if let Some(n) = upper.strip_suffix('W') {
            d.nearest.push(at.value(n, offset)?);
        } else if item.is_empty() {
            return Err(at.err(offset, "empty list item"));
        } else {
            d.mask |= parse_item(at, item, offset)?;
        }
        offset += item.len() + 1;
    }
    Ok(d)
}

fn parse_dow(at: &At<'_>, text: &str) -> Result<Days, CronError> {
    let mut d = Days { star: text == "*" || text == "?", ..Days::default() };
    let mut offset = 0;
    let weekday = |v: u32| v % 7;
    for item in text.split(',') {
        let upper = item.to_ascii_uppercase();
        if let Some((n, k)) = item.split_once('#') {
            let n = weekday(at.value(n, offset)?);
            let k: u32 = k.parse().map_err(|_| at.err(offset, format!("{item:?}: want weekday#1-5")))?;
            if !(1..=5).contains(&k) {
                return Err(at.err(offset, format!("{item:?}: the week must be 1-5")));
            }
            d.nth.push((n, k));
        } else if let Some(n) = upper.strip_prefix('L').filter(|n| !n.is_empty()) {
            d.last_of.push(weekday(at.value(n, offset + 1)?));
        } else if let Some(n) = upper.strip_suffix('L').filter(|n| !n.is_empty()) {
            d.last_of.push(weekday(at.value(n, offset)?));
        } else if item.is_empty() {
            return Err(at.err(offset, "empty list item"));
        } else {
            let mask = parse_item(at, item, offset)?;
            // 7 is Sunday too.
            d.mask |= (mask & 0x7f) | if mask & bit(7) != 0 { 1 } else { 0 };
        }
        offset += item.len() + 1;
    }
    Ok(d)
}

/// Parses a Go duration (`30s`, `1h30m`, `1.5h`, `500ms`).
pub fn parse_go_duration(text: &str) -> Result<f64, String> {
    let units: [(&str, f64); 8] = [
        ("ns", 1e-9),
        ("us", 1e-6),
        ("µs", 1e-6),
        ("μs", 1e-6),
        ("ms", 1e-3),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
    ];
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut rest = s;
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("invalid duration {text:?}"));
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| format!("invalid duration {text:?}"))?;
        rest = &rest[num_len..];
        let Some((unit, scale)) =
            units.iter().filter(|(u, _)| rest.starts_with(u)).max_by_key(|(u, _)| u.len())
        else {
            return Err(format!("missing or unknown unit in duration {text:?}"));
        };
        total += n * scale;
        rest = &rest[unit.len()..];
    }
    Ok(total)
}

/// Formats seconds as Go's `time.Duration.String()` (`1h30m0s`, `500ms`, `0s`).
pub fn go_duration_string(secs: f64) -> String {
    let nanos = (secs * 1e9).round() as i64;
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        let (v, unit) = if n < 1_000 {
            return format!("{sign}{n}ns");
        } else if n < 1_000_000 {
            (n as f64 / 1e3, "µs")
        } else {
            (n as f64 / 1e6, "ms")
        };
        return format!("{sign}{}{unit}", trim_float(v));
    }
    let h = n / 3_600_000_000_000;
    let m = (n / 60_000_000_000) % 60;
    let s = (n % 60_000_000_000) as f64 / 1e9;
    let mut out = String::from(sign);
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", trim_float(s)));
    out
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn last_day(y: i32, m: u32) -> u32 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    NaiveDate::from_ymd_opt(ny, nm, 1).and_then(|d| d.pred_opt()).map(|d| d.day()).unwrap_or(28)
}

fn weekday(y: i32, m: u32, d: u32) -> u32 {
    NaiveDate::from_ymd_opt(y, m, d).map(|x| x.weekday().num_days_from_sunday()).unwrap_or(0)
}

/// The weekday nearest to day `n` (clamped to the month), not leaving the month.
fn nearest_weekday(y: i32, m: u32, n: u32) -> u32 {
    let last = last_day(y, m);
    let n = n.min(last);
    match weekday(y, m, n) {
        6 if n == 1 => 3,
        6 => n - 1,
        0 if n == last => n - 2,
        0 => n + 1,
        _ => n,
    }
}

impl Days {
    /// Plain day-of-month values, `L` and `LW`.
    fn dom_matches(&self, y: i32, m: u32, d: u32) -> bool {
        let last = last_day(y, m);
        self.mask & bit(d) != 0
            || (self.last && d == last)
            || (self.last_weekday && d == nearest_weekday(y, m, last))
    }

    /// Plain weekdays.
    fn dow_matches(&self, y: i32, m: u32, d: u32) -> bool {
        self.mask & bit(weekday(y, m, d)) != 0
    }

    /// `n#k`, `Ln` and `nL`.
    fn nth_matches(&self, y: i32, m: u32, d: u32) -> bool {
        let w = weekday(y, m, d);
        self.nth.iter().any(|(n, k)| *n == w && (d - 1) / 7 + 1 == *k)
            || self.last_of.iter().any(|n| *n == w && d + 7 > last_day(y, m))
    }
}

impl Fields {
    /// croniter's day rule. `W` (day of month) and `#`/`L` (day of week) are constraints of their
    /// own; when both day fields are restricted, a day matches if it satisfies the day-of-month
    /// side (with any `#`/`L` constraint) or the day-of-week side (with any `W` constraint).
    fn day_ok(&self, date: NaiveDate) -> bool {
        let (y, m, d) = (date.year(), date.month(), date.day());
        let w_side = |star: bool| {
            if !self.dom.nearest.is_empty() {
                self.dom.nearest.iter().any(|n| nearest_weekday(y, m, *n) == d)
            } else {
                star || self.dom.dom_matches(y, m, d)
            }
        };
        let nth_side = |star: bool| {
            if !self.dow.nth.is_empty() || !self.dow.last_of.is_empty() {
                self.dow.nth_matches(y, m, d)
            } else {
                star || self.dow.dow_matches(y, m, d)
            }
        };
        if !self.dom.star && !self.dow.star {
            (w_side(false) && nth_side(true)) || (nth_side(false) && w_side(true))
        } else {
            w_side(self.dom.star) && nth_side(self.dow.star)
        }
    }

    /// The first wall time strictly after `x` matching every field.
    fn next_local(&self, x: NaiveDateTime) -> Option<NaiveDateTime> {
        let limit = x.year() + MAX_YEARS;
        let mut y = x.with_nanosecond(0)? + chrono::Duration::seconds(1);
        while y.year() <= limit {
            let date = y.date();
            if self.months & bit(y.month()) == 0 {
                let (ny, nm) = if y.month() == 12 { (y.year() + 1, 1) } else { (y.year(), y.month() + 1) };
                y = NaiveDate::from_ymd_opt(ny, nm, 1)?.and_hms_opt(0, 0, 0)?;
            } else if !self.day_ok(date) {
                y = date.succ_opt()?.and_hms_opt(0, 0, 0)?;
            } else if self.hours & bit(y.hour()) == 0 {
                y = match next_bit(self.hours, y.hour()) {
                    Some(h) => date.and_hms_opt(h, 0, 0)?,
                    None => date.succ_opt()?.and_hms_opt(0, 0, 0)?,
                };
            } else if self.minutes & bit(y.minute()) == 0 {
                y = match next_bit(self.minutes, y.minute()) {
                    Some(mi) => date.and_hms_opt(y.hour(), mi, 0)?,
                    None => date.and_hms_opt(y.hour(), 0, 0)? + chrono::Duration::hours(1),
                };
            } else if self.seconds & bit(y.second()) == 0 {
                y = match next_bit(self.seconds, y.second()) {
                    Some(s) => y.with_second(s)?,
                    None => y.with_second(0)? + chrono::Duration::minutes(1),
                };
            } else {
                return Some(y);
            }
        }
        None
    }

    /// The last wall time strictly before `x` matching every field.
    fn prev_local(&self, x: NaiveDateTime) -> Option<NaiveDateTime> {
        let limit = x.year() - MAX_YEARS;
        let trunc = x.with_nanosecond(0)?;
        let mut y = if trunc < x { trunc } else { trunc - chrono::Duration::seconds(1) };
        while y.year() >= limit {
            let date = y.date();
            let day_start = date.and_hms_opt(0, 0, 0)?;
            if self.months & bit(y.month()) == 0 {
                y = NaiveDate::from_ymd_opt(y.year(), y.month(), 1)?.and_hms_opt(0, 0, 0)?
                    - chrono::Duration::seconds(1);
            } else if !self.day_ok(date) {
                y = day_start - chrono::Duration::seconds(1);
            } else if self.hours & bit(y.hour()) == 0 {
                y = match prev_bit(self.hours, y.hour()) {
                    Some(h) => date.and_hms_opt(h, 59, 59)?,
                    None => day_start - chrono::Duration::seconds(1),
                };
            } else if self.minutes & bit(y.minute()) == 0 {
                y = match prev_bit(self.minutes, y.minute()) {
                    Some(mi) => date.and_hms_opt(y.hour(), mi, 59)?,
                    None => date.and_hms_opt(y.hour(), 0, 0)? - chrono::Duration::seconds(1),
                };
            } else if self.seconds & bit(y.second()) == 0 {
                y = match prev_bit(self.seconds, y.second()) {
                    Some(s) => y.with_second(s)?,
                    None => y.with_second(0)? - chrono::Duration::seconds(1),
                };
            } else {
                return Some(y);
            }
        }
        None
    }
}

/// The lowest set bit above `v`.
fn next_bit(mask: u64, v: u32) -> Option<u32> {
    let above = mask.checked_shr(v + 1)?.checked_shl(v + 1)?;
    (above != 0).then(|| above.trailing_zeros())
}

/// The highest set bit below `v`.
fn prev_bit(mask: u64, v: u32) -> Option<u32> {
    let below = mask & (bit(v) - 1);
    (below != 0).then(|| 63 - below.leading_zeros())
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
            let secs = parse_go_duration(d).map_err(|m| CronError {
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

fn parse_fields(body: &str, col0: usize) -> Result<Fields, CronError> {
    let mut parts: Vec<(usize, &str)> = Vec::new();
    let mut pos = 0;
    for piece in body.split(char::is_whitespace) {
        if !piece.is_empty() {
            parts.push((pos, piece));
        }
        pos += piece.len() + 1;
    }
    if parts.len() != 5 && parts.len() != 6 {
        return Err(spec_err(
            col0 + 1,
            format!("expected 5 fields (or 6 with seconds), got {}", parts.len()),
        ));
    }
    let at = |spec: &'static FieldSpec, i: usize| At { spec, index: i + 1, column: col0 + parts[i].0 + 1 };
    let seconds = match parts.get(5) {
        Some((_, s)) => parse_mask(&at(&SECOND, 5), s)?,
        None => 1,
    };
    let hour_text = parts[1].1;
    let (dom_text, dow_text) = (parts[2].1, parts[4].1);
    let mut dom = parse_dom(&at(&DOM, 2), dom_text)?;
    let mut dow = parse_dow(&at(&DOW, 4), dow_text)?;
    // As croniter: a day field listing every value counts as `*` when the other field's text has
    // a `*` in it (so `1-31` with `*/2` is an intersection, and with `1` a union).
    let plain = |d: &Days| {
        d.nearest.is_empty() && d.nth.is_empty() && d.last_of.is_empty() && !d.last && !d.last_weekday
    };
    if plain(&dom) && dom.mask & 0xffff_fffe == 0xffff_fffe && dow_text.contains('*') {
        dom.star = true;
    }
    if plain(&dow) && dow.mask & 0x7f == 0x7f && dom_text.contains('*') {
        dow.star = true;
    }
    Ok(Fields {
        seconds,
        minutes: parse_mask(&at(&MINUTE, 0), parts[0].1)?,
        hours: parse_mask(&at(&HOUR, 1), hour_text)?,
        dom,
        months: parse_mask(&at(&MONTH, 3), parts[3].1)?,
        dow,
        hour_wildcard: hour_text.starts_with('*') || hour_text == "?",
    })
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

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h30m"), Ok(5400.0));
        assert_eq!(parse_go_duration("1.5h"), Ok(5400.0));
        assert_eq!(parse_go_duration("500ms"), Ok(0.5));
        assert!(parse_go_duration("10").is_err());
        for (secs, want) in [
            (5400.0, "1h30m0s"),
            (30.0, "30s"),
            (0.5, "500ms"),
            (0.0, "0s"),
            (3600.0, "1h0m0s"),
            (90.5, "1m30.5s"),
        ] {
            assert_eq!(go_duration_string(secs), want);
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
