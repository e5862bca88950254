//! Times as the API server, Argo CD, audit logs and the journal write them: RFC 3339 in UTC,
//! parsed strictly (jiff; a month 13 or a February 30 is not a time).

use std::time::SystemTime;

use jiff::Timestamp;

/// Now as `2024-05-01T10:00:00Z`, the precision of creationTimestamp and managedFields times.
pub fn now_seconds() -> String {
    format_time(SystemTime::now(), false)
}

/// Now as `2024-05-01T10:00:00.123456Z`, the precision of audit timestamps.
pub fn now_micros() -> String {
    format_time(SystemTime::now(), true)
}

/// Today's date in UTC, `YYYY-MM-DD`.
pub fn today() -> String {
    Timestamp::now().strftime("%Y-%m-%d").to_string()
}

/// `t` in UTC, to the second or to the microsecond.
pub fn format_time(t: SystemTime, micros: bool) -> String {
    let ts = Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH);
    let seconds = ts.strftime("%Y-%m-%dT%H:%M:%S");
    if micros { format!("{seconds}.{:06}Z", ts.subsec_microsecond()) } else { format!("{seconds}Z") }
}

/// Seconds since the epoch of an RFC 3339 time (`Z` or a numeric offset, optional fraction);
/// None for anything else.
pub fn parse_time(s: &str) -> Option<i64> {
    s.parse::<Timestamp>().ok().map(Timestamp::as_second)
}

/// A human age like kubectl prints: `45s`, `12m`, `3h`, `5d`.
pub fn age(created: &str) -> String {
    let Some(t) = parse_time(created) else {
        return "<unknown>".into();
    };
    let s = (Timestamp::now().as_second() - t).max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn times_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(1_714_557_600) + Duration::from_micros(123_456);
        assert_eq!(format_time(t, false), "2024-05-01T10:00:00Z");
        assert_eq!(format_time(t, true), "2024-05-01T10:00:00.123456Z");
        assert_eq!(format_time(UNIX_EPOCH + Duration::from_secs(1_714_557_600), true), "2024-05-01T10:00:00.000000Z");
        assert_eq!(parse_time("2024-05-01T10:00:00Z"), Some(1_714_557_600));
        assert_eq!(parse_time("2024-05-01T12:00:00.5+02:00"), Some(1_714_557_600));
        assert_eq!(parse_time("2024-05-01T10:00:00.123456Z"), Some(1_714_557_600));
        assert_eq!(parse_time("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(parse_time(&now_seconds()).map(|t| (Timestamp::now().as_second() - t).abs() < 5), Some(true));
        assert_eq!(today().len(), 10);
        assert!(now_seconds().starts_with(&today()));
    }

    #[test]
    fn what_is_not_a_time_is_refused() {
        for bad in ["yesterday", "2024-13-01T10:00:00Z", "2023-02-29T00:00:00Z", "2024-05-01T25:00:00Z", "2024-05-01"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        assert_eq!(age("2024-13-01T10:00:00Z"), "<unknown>");
    }
}
