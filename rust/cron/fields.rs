//! A calendar spec's fields: parsing them (names, ranges, steps and the day specials) and
//! matching days against them.

use super::*;

/// One day-of-month or day-of-week special.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Days {
    /// Plain values: days of month 1..=31, or weekdays 0..=6 (Sunday = 0).
    pub(super) mask: u64,
    /// `L` (day of month): the last day.
    pub(super) last: bool,
    /// `LW`: the last weekday of the month.
    pub(super) last_weekday: bool,
    /// `nW`: the weekday nearest to day n.
    pub(super) nearest: Vec<u32>,
    /// `n#k`: the k-th weekday n of the month.
    pub(super) nth: Vec<(u32, u32)>,
    /// `Ln` / `nL`: the last weekday n of the month.
    pub(super) last_of: Vec<u32>,
    /// The field was `*` or `?`.
    pub(super) star: bool,
}

/// A calendar schedule's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fields {
    pub(super) seconds: u64,
    pub(super) minutes: u64,
    pub(super) hours: u64,
    pub(super) months: u64,
    pub(super) dom: Days,
    pub(super) dow: Days,
    /// The hour field is a wildcard (`*`, `*/n`, `?`): decides the DST rule.
    pub(super) hour_wildcard: bool,
}

pub(super) const MONTHS: [&str; 12] =
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
pub(super) const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

pub(super) struct FieldSpec {
    pub(super) name: &'static str,
    pub(super) min: u32,
    pub(super) max: u32,
    pub(super) names: &'static [&'static str],
}

pub(super) const SECOND: FieldSpec = FieldSpec { name: "second", min: 0, max: 59, names: &[] };
pub(super) const MINUTE: FieldSpec = FieldSpec { name: "minute", min: 0, max: 59, names: &[] };
pub(super) const HOUR: FieldSpec = FieldSpec { name: "hour", min: 0, max: 23, names: &[] };
pub(super) const DOM: FieldSpec = FieldSpec { name: "day-of-month", min: 1, max: 31, names: &[] };
pub(super) const MONTH: FieldSpec = FieldSpec { name: "month", min: 1, max: 12, names: &MONTHS };
pub(super) const DOW: FieldSpec = FieldSpec { name: "day-of-week", min: 0, max: 7, names: &WEEKDAYS };

/// Error builder for one field.
pub(super) struct At<'a> {
    pub(super) spec: &'a FieldSpec,
    pub(super) index: usize,
    pub(super) column: usize,
}

impl At<'_> {
    pub(super) fn err(&self, offset: usize, message: impl Into<String>) -> CronError {
        CronError {
            field: self.spec.name,
            index: self.index,
            column: self.column + offset,
            message: message.into(),
        }
    }

    pub(super) fn value(&self, text: &str, offset: usize) -> Result<u32, CronError> {
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

pub(super) fn bit(v: u32) -> u64 {
    1u64 << v
}

/// Parses one plain item (`*`, `n`, `a-b`, with an optional `/step`) into a mask.
pub(super) fn parse_item(at: &At<'_>, item: &str, offset: usize) -> Result<u64, CronError> {
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
pub(super) fn parse_mask(at: &At<'_>, text: &str) -> Result<u64, CronError> {
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

pub(super) fn parse_dom(at: &At<'_>, text: &str) -> Result<Days, CronError> {
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

pub(super) fn parse_dow(at: &At<'_>, text: &str) -> Result<Days, CronError> {
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

pub(super) fn last_day(y: i32, m: u32) -> u32 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    NaiveDate::from_ymd_opt(ny, nm, 1).and_then(|d| d.pred_opt()).map(|d| d.day()).unwrap_or(28)
}

pub(super) fn weekday(y: i32, m: u32, d: u32) -> u32 {
    NaiveDate::from_ymd_opt(y, m, d).map(|x| x.weekday().num_days_from_sunday()).unwrap_or(0)
}

/// The weekday nearest to day `n` (clamped to the month), not leaving the month.
pub(super) fn nearest_weekday(y: i32, m: u32, n: u32) -> u32 {
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
    pub(super) fn dom_matches(&self, y: i32, m: u32, d: u32) -> bool {
        let last = last_day(y, m);
        self.mask & bit(d) != 0
            || (self.last && d == last)
            || (self.last_weekday && d == nearest_weekday(y, m, last))
    }

    /// Plain weekdays.
    pub(super) fn dow_matches(&self, y: i32, m: u32, d: u32) -> bool {
        self.mask & bit(weekday(y, m, d)) != 0
    }

    /// `n#k`, `Ln` and `nL`.
    pub(super) fn nth_matches(&self, y: i32, m: u32, d: u32) -> bool {
        let w = weekday(y, m, d);
        self.nth.iter().any(|(n, k)| *n == w && (d - 1) / 7 + 1 == *k)
            || self.last_of.iter().any(|n| *n == w && d + 7 > last_day(y, m))
    }
}

impl Fields {
    /// croniter's day rule. `W` (day of month) and `#`/`L` (day of week) are constraints of their
    /// own; when both day fields are restricted, a day matches if it satisfies the day-of-month
    /// side (with any `#`/`L` constraint) or the day-of-week side (with any `W` constraint).
    pub(super) fn day_ok(&self, date: NaiveDate) -> bool {
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
    pub(super) fn next_local(&self, x: NaiveDateTime) -> Option<NaiveDateTime> {
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
    pub(super) fn prev_local(&self, x: NaiveDateTime) -> Option<NaiveDateTime> {
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
pub(super) fn next_bit(mask: u64, v: u32) -> Option<u32> {
    let above = mask.checked_shr(v + 1)?.checked_shl(v + 1)?;
    (above != 0).then(|| above.trailing_zeros())
}

/// The highest set bit below `v`.
pub(super) fn prev_bit(mask: u64, v: u32) -> Option<u32> {
    let below = mask & (bit(v) - 1);
    (below != 0).then(|| 63 - below.leading_zeros())
}

pub(super) fn parse_fields(body: &str, col0: usize) -> Result<Fields, CronError> {
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
