//! Go's text forms that asynq writes into Redis and its tools parse back: `time.Duration`
//! strings (`1h30m0s`), `time.UnixDate`, and the `Option.String()` forms of enqueue options
//! that a scheduler publishes with its entries.

use std::time::SystemTime;

use crate::clock::unix_secs;
use crate::options::TaskOptions;

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

/// Go's `%q` quoting, as asynq's `Queue(...)` and `Group(...)` strings use it.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The inverse of [`go_quote`] (and of Go's `%q` for the escapes it writes); `None` for text
/// that is not one quoted string.
fn go_unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'x' => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(char::from(u8::from_str_radix(&hex, 16).ok()?));
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The queue named by an option string `Queue("...")`, if it is one.
pub fn parse_queue_option(opt: &str) -> Option<String> {
    go_unquote(opt.strip_prefix("Queue(")?.strip_suffix(')')?)
}

/// Go's `time.UnixDate` layout (`Mon Jan _2 15:04:05 UTC 2006`), in UTC.
pub fn unix_date(t: SystemTime) -> String {
    chrono::DateTime::from_timestamp(unix_secs(t), 0)
        .map(|d| d.format("%a %b %e %H:%M:%S UTC %Y").to_string())
        .unwrap_or_default()
}

/// asynq's `Option.String()` forms of the options a periodic entry sets (what asynq's
/// Inspector parses back), in asynq's order.
pub fn option_strings(o: &TaskOptions) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(n) = o.max_retry {
        out.push(format!("MaxRetry({n})"));
    }
    if let Some(q) = &o.queue {
        out.push(format!("Queue({})", go_quote(q)));
    }
    for (name, d) in [("Timeout", o.timeout), ("Unique", o.unique), ("Retention", o.retention)] {
        if let Some(d) = d {
            out.push(format!("{name}({})", go_duration_string(d.as_secs_f64())));
        }
    }
    if let Some(d) = o.deadline {
        out.push(format!("Deadline({})", unix_date(d)));
    }
    if let Some(g) = &o.group {
        out.push(format!("Group({})", go_quote(g)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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

    #[test]
    fn options_as_asynq_prints_them() {
        let o = TaskOptions {
            max_retry: Some(3),
            queue: Some("q\"x".into()),
            timeout: Some(Duration::from_secs(90)),
            deadline: Some(crate::clock::from_unix_secs(1_700_000_000)),
            group: Some("g".into()),
            ..Default::default()
        };
        assert_eq!(
            option_strings(&o),
            [
                "MaxRetry(3)",
                "Queue(\"q\\\"x\")",
                "Timeout(1m30s)",
                "Deadline(Tue Nov 14 22:13:20 UTC 2023)",
                "Group(\"g\")"
            ]
        );
        assert_eq!(go_quote("a\nb\u{1}"), "\"a\\nb\\x01\"");
        // Outside the BMP too: written as UTF-8, which Go's strconv.Unquote reads (a JSON-style
        // surrogate pair, "\ud83d\ude80", it rejects).
        assert_eq!(go_quote("s9-\u{fc}\u{1f680}"), "\"s9-\u{fc}\u{1f680}\"");
        for q in ["default", "q\"x", "a\\b\n\u{1}", "été", "s9-ü🚀"] {
            assert_eq!(parse_queue_option(&format!("Queue({})", go_quote(q))).as_deref(), Some(q));
        }
        assert_eq!(parse_queue_option("MaxRetry(3)"), None);
        assert_eq!(parse_queue_option("Queue(unquoted)"), None);
    }
}
