//! Points in time as administrators write them: for a mount's `at=` and
//! `pagelog-snapshot --at`. Accepted: `@SECONDS` since the epoch; an RFC
//! 3339 timestamp (`2026-12-02T10:00:00Z`, or with an offset); a local date
//! and time (`2026-12-02 10:00`, `2026-12-02T10:00:30`); or a span back
//! from now (`10m`, `-10m`, `1h 30m ago`, `2 days ago`).

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

/// The instant `s` names, in ns since the epoch, `now_ns` being now.
pub fn parse_time(s: &str, now_ns: i64) -> Result<i64, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "'{s}' is not a time: use @SECONDS, 2026-12-02T10:00:00Z, '2026-12-02 10:00' (local), or a span back from now like 10m or '2 hours ago'"
        )
    };
    if let Some(secs) = s.strip_prefix('@') {
        let secs: i64 = secs.parse().map_err(|_| bad())?;
        return secs.checked_mul(1_000_000_000).ok_or_else(bad);
    }
    if let Ok(t) = s.parse::<Timestamp>() {
        return i64::try_from(t.as_nanosecond()).map_err(|_| bad());
    }
    if let Ok(dt) = s.parse::<DateTime>() {
        let z = dt
            .to_zoned_datetime(TimeZone::system())
            .map_err(|_| bad())?;
        return i64::try_from(z.timestamp().as_nanosecond()).map_err(|_| bad());
    }
    let span = s.trim_start_matches('-').trim();
    let span: Span = span.parse().map_err(|_| bad())?;
    let back = span
        .abs()
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|_| bad())?;
    let ns = i64::try_from(back.as_nanos()).map_err(|_| bad())?;
    Ok(now_ns.saturating_sub(ns))
}

/// A length of time, in whole seconds: `3600`, `1h`, `90m`, `2 days`.
pub fn parse_span_secs(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs);
    }
    let span: Span = s
        .parse()
        .map_err(|_| format!("'{s}' is not a length of time (like 3600, 1h, 90m, 2 days)"))?;
    let d = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| format!("'{s}': {e}"))?;
    u64::try_from(d.as_secs()).map_err(|_| format!("'{s}' is negative"))
}

/// `time_ns` as a compact UTC stamp for names: `20261202-101500`.
pub fn stamp(time_ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(time_ns))
        .map(|t| t.strftime("%Y%m%d-%H%M%S").to_string())
        .unwrap_or_else(|_| time_ns.to_string())
}

/// `time_ns` as a UTC time for people: `2026-12-02 10:15:00 UTC`.
pub fn readable(time_ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(time_ns))
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| format!("{time_ns} ns after the epoch"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!(parse_span_secs("3600"), Ok(3600));
        assert_eq!(parse_span_secs("1h"), Ok(3600));
        assert_eq!(parse_span_secs("90m"), Ok(5400));
        assert_eq!(parse_span_secs("2 days"), Ok(172_800));
        assert!(parse_span_secs("soon").is_err());
    }

    const NOW: i64 = 1_800_000_000_000_000_000;

    #[test]
    fn forms() {
        assert_eq!(
            parse_time("@1700000000", NOW),
            Ok(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", NOW),
            Ok(1_700_000_000_000_000_000)
        );
        assert_eq!(parse_time("10m", NOW), Ok(NOW - 600_000_000_000));
        assert_eq!(parse_time("-10m", NOW), Ok(NOW - 600_000_000_000));
        assert_eq!(parse_time("1h 30m ago", NOW), Ok(NOW - 5_400_000_000_000));
        assert_eq!(parse_time("2 days ago", NOW), Ok(NOW - 172_800_000_000_000));
        assert!(parse_time("2026-12-02 10:00", NOW).is_ok());
        let err = parse_time("yesterday-ish", NOW).expect_err("bad");
        assert!(err.contains("is not a time"), "{err}");
    }
}
