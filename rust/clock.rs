//! Time as the rest of the core sees it. Components take a [`Clock`] so tests can move time, and
//! Lua scripts always receive time as arguments (they never call `TIME`), as asynq does.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> SystemTime;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct FixedClock {
    nanos: AtomicI64,
}

impl FixedClock {
    /// A clock frozen at `unix_nanos`.
    pub fn new(unix_nanos: i64) -> Self {
        Self { nanos: AtomicI64::new(unix_nanos) }
    }

    /// Moves the clock forward (or back, with a negative value).
    pub fn advance(&self, by_nanos: i64) {
        self.nanos.fetch_add(by_nanos, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        from_unix_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

/// Unix seconds, floored like Go's `time.Time.Unix()`.
pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() > 0 {
                -secs - 1
            } else {
                -secs
            }
        }
    }
}

/// Unix seconds, rounded up: the score of a task due at `t`. asynq's zset scores are whole
/// seconds and a task moves once `score <= now`; a floored score would run it up to a second
/// before its time.
pub fn unix_secs_ceil(t: SystemTime) -> i64 {
    let floor = unix_secs(t);
    if from_unix_secs(floor) < t {
        floor.saturating_add(1)
    } else {
        floor
    }
}

/// Unix nanoseconds like Go's `time.Time.UnixNano()`.
pub fn unix_nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// Unix seconds as a float, the form Python receives.
pub fn unix_f64(t: SystemTime) -> f64 {
    unix_nanos(t) as f64 / 1e9
}

/// The instant `secs` seconds after the epoch.
pub fn from_unix_secs(secs: i64) -> SystemTime {
    from_unix_nanos(secs.saturating_mul(1_000_000_000))
}

/// The instant `nanos` nanoseconds after the epoch.
pub fn from_unix_nanos(nanos: i64) -> SystemTime {
    if nanos >= 0 {
        UNIX_EPOCH + Duration::from_nanos(nanos.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_nanos(nanos.unsigned_abs())
    }
}

/// `YYYY-MM-DD` of `t` in UTC: the suffix of asynq's daily stats keys.
pub fn utc_date(t: SystemTime) -> String {
    let days = unix_secs(t).div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_receives_seconds_as_a_float() {
        assert_eq!(unix_f64(from_unix_nanos(1_500_000_000)), 1.5);
        assert_eq!(unix_f64(from_unix_nanos(-2_250_000_000)), -2.25);
    }

    #[test]
    fn due_scores_round_up() {
        assert_eq!(unix_secs_ceil(from_unix_secs(100)), 100);
        assert_eq!(unix_secs_ceil(from_unix_nanos(100_000_000_001)), 101);
        assert_eq!(unix_secs_ceil(from_unix_nanos(100_999_999_999)), 101);
        assert_eq!(unix_secs_ceil(from_unix_nanos(-1_500_000_000)), -1);
        assert_eq!(unix_secs(from_unix_nanos(100_999_999_999)), 100);
    }

    #[test]
    fn dates_in_utc() {
        let cases = [
            (0, "1970-01-01"),
            (86_399, "1970-01-01"),
            (86_400, "1970-01-02"),
            (951_782_400, "2000-02-29"),
            (1_709_164_800, "2024-02-29"),
            (1_798_675_200, "2026-12-31"),
            (-1, "1969-12-31"),
        ];
        for (secs, want) in cases {
            assert_eq!(utc_date(from_unix_secs(secs)), want, "secs={secs}");
        }
    }

    #[test]
    fn unix_secs_floors_like_go() {
        assert_eq!(unix_secs(from_unix_nanos(1_500_000_000)), 1);
        assert_eq!(unix_secs(from_unix_nanos(-1_500_000_000)), -2);
        assert_eq!(unix_secs(from_unix_nanos(-2_000_000_000)), -2);
    }

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let c = FixedClock::new(10_000_000_000);
        assert_eq!(unix_secs(c.now()), 10);
        c.advance(5_000_000_000);
        assert_eq!(unix_secs(c.now()), 15);
    }
}
