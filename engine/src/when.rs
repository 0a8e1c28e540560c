//! Docker's time arguments (`logs --since/--until`, `events --since/--until`) and the
//! engine's RFC 3339 timestamps, as instants that compare.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// An instant as time since the epoch.
pub type Instant = Duration;

/// Now.
pub fn now() -> Instant {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// A timestamp the engine wrote (`2026-11-27T20:43:16.123456789Z`), or any RFC 3339 UTC
/// one with or without a fraction.
pub fn of_rfc3339(ts: &str) -> Option<Instant> {
    let secs = crate::clock::epoch(ts)?;
    let nanos = ts
        .get(19..)
        .and_then(|rest| rest.strip_prefix('.'))
        .map(|frac| {
            let digits: String = frac
                .chars()
                .take_while(char::is_ascii_digit)
                .take(9)
                .collect();
            format!("{digits:0<9}").parse::<u32>().unwrap_or(0)
        })
        .unwrap_or(0);
    Some(Duration::new(secs, nanos))
}

/// Parses `--since`/`--until` as Docker does: a Go duration before now (`10m`, `1h30m`), a
/// Unix time (`1700000000`, `1700000000.5`), an RFC 3339 time (`2026-12-06T10:00:00Z`, a
/// missing zone read as UTC) or a date (`2026-12-06`).
pub fn parse(s: &str, now: Instant) -> Result<Instant> {
    let bad = || {
        Error::Invalid(format!(
            "invalid time {s:?}: use a duration (10m), a Unix time, or an RFC 3339 time"
        ))
    };
    if let Ok(d) = crate::health::parse_duration(s) {
        return Ok(now.saturating_sub(d));
    }
    if let Some((secs, frac)) = s.split_once('.').or(Some((s, ""))) {
        if !secs.is_empty()
            && secs.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit())
        {
            let secs: u64 = secs.parse().map_err(|_| bad())?;
            let nanos = format!("{:0<9}", &frac[..frac.len().min(9)])
                .parse()
                .unwrap_or(0);
            return Ok(Duration::new(secs, nanos));
        }
    }
    let full = match s.len() {
        10 => format!("{s}T00:00:00Z"),
        19 => format!("{s}Z"),
        _ => s.to_string(),
    };
    of_rfc3339(&full).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_dockers_do() {
        let now = Duration::from_secs(1_000_000);
        assert_eq!(
            parse("10m", now).unwrap(),
            Duration::from_secs(1_000_000 - 600)
        );
        assert_eq!(
            parse("1700000000", now).unwrap(),
            Duration::from_secs(1_700_000_000)
        );
        assert_eq!(
            parse("1700000000.5", now).unwrap(),
            Duration::new(1_700_000_000, 500_000_000)
        );
        assert_eq!(
            parse("1970-01-02", now).unwrap(),
            Duration::from_secs(86_400)
        );
        assert_eq!(
            parse("1970-01-02T00:00:01", now).unwrap(),
            Duration::from_secs(86_401)
        );
        assert_eq!(
            parse("1970-01-02T00:00:01.25Z", now).unwrap(),
            Duration::new(86_401, 250_000_000)
        );
        assert!(parse("yesterday", now).is_err());
        assert_eq!(
            of_rfc3339("2026-11-27T20:43:16.123456789Z")
                .unwrap()
                .subsec_nanos(),
            123_456_789
        );
    }
}
