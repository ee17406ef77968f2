//! Time zones of the cron engine: UTC, a fixed offset, or an IANA zone with its DST rules.

use super::*;

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

    pub(super) fn wall_time(&self, utc: NaiveDateTime) -> NaiveDateTime {
        utc + chrono::Duration::seconds(i64::from(self.offset_at(utc)))
    }

    /// The UTC instants at which the wall clock shows `local`: none (gap), one, or two (overlap).
    pub(super) fn instants(&self, local: NaiveDateTime) -> LocalResult<NaiveDateTime> {
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
    pub(super) fn end_of_gap(&self, local: NaiveDateTime) -> NaiveDateTime {
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
    pub(super) fn near_transition(&self, utc: NaiveDateTime) -> bool {
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
