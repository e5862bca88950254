//! Times as the API server, Argo CD, audit logs and the journal write them: RFC 3339 in UTC,
//! parsed strictly (jiff; a month 13 or a February 30 is not a time). Also the durations people
//! type (`--since 6h`, `--rollback-within 1h30m`) and the way reports say them.

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

/// Now in milliseconds since the epoch (the watcher's alert-to-proposal clock).
pub fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// Milliseconds of an RFC 3339 time (with fraction and offset, as Alertmanager writes it);
/// None for anything else and for the zero time Alertmanager sends for "not ended".
pub fn parse_ms(s: &str) -> Option<i64> {
    s.parse::<Timestamp>().ok().map(Timestamp::as_millisecond).filter(|ms| *ms > 0)
}

/// Milliseconds to RFC 3339, to the second.
pub fn format_ms(ms: i64) -> String {
    Timestamp::from_millisecond(ms).map(|t| format!("{t:.0}")).unwrap_or_else(|_| ms.to_string())
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

/// Parses a duration as people type it on the command line and in chat: a number of minutes
/// (`45`), or one or more number-unit pairs with the units `s`, `m`, `h`, `d`, `w` (`90s`,
/// `30m`, `6h`, `2d`, `1w`, `1h30m`). Returns whole seconds; None for anything else (a sign,
/// a fraction, an unknown unit, a trailing number, an overflow). Zero is a duration; callers
/// that need a positive one say so.
pub fn parse_duration(text: &str) -> Option<u64> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<u64>().ok()?.checked_mul(60);
    }
    let mut seconds: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().ok()?;
        let mut unit = rest[digits..].chars();
        let per = match unit.next()? {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return None,
        };
        seconds = seconds.checked_add(n.checked_mul(per)?)?;
        rest = unit.as_str();
    }
    Some(seconds)
}

/// A span of time as reports say it: `9 s`, `4 min 12 s`, `1 h 5 min` (negative is `0 s`).
pub fn duration_words(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => {
            if s % 60 == 0 {
                format!("{} min", s / 60)
            } else {
                format!("{} min {} s", s / 60, s % 60)
            }
        }
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
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

    #[test]
    fn durations_as_people_type_them() {
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("30m"), Some(1800));
        assert_eq!(parse_duration("6h"), Some(21_600));
        assert_eq!(parse_duration("2d"), Some(172_800));
        assert_eq!(parse_duration("1w"), Some(604_800));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("1d2h3m4s"), Some(93_784));
        assert_eq!(parse_duration(" 45 "), Some(2700), "a bare number is minutes");
        assert_eq!(parse_duration("0m"), Some(0));
        assert_eq!(parse_duration("0"), Some(0));
        for bad in
            ["", "soon", "5x", "m", "1h30", "-5m", "1.5h", "30 m", "h1", "99999999999999999999m", "30000000000000000w"]
        {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration_words(9), "9 s");
        assert_eq!(duration_words(252), "4 min 12 s");
        assert_eq!(duration_words(300), "5 min");
        assert_eq!(duration_words(3900), "1 h 5 min");
        assert_eq!(duration_words(-3), "0 s");
    }
}
