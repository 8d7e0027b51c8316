//! Durations as Go programs write them (`15s`, `1m30s`, `250ms`), used by
//! the URL options of the backends whose servers are written in Go.

use std::time::Duration;

use crate::error::{Error, Result};

/// Parses a Go duration string (`"15s"`, `"1m30s"`, `"1.5s"`, `"250ms"`, `"0"`).
pub(crate) fn parse_go_duration(text: &str) -> Result<Duration> {
    let bad = || {
        Error::invalid(format!(
            "not a duration: {text:?} (use e.g. 15s, 500ms, 1m)"
        ))
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    // Too long for a Duration (or not finite): an error, not a panic.
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// A duration in whole seconds, rounded up, and as Go writes it (`"15s"`).
/// For Consul's session TTLs.
#[cfg_attr(not(feature = "consul"), allow(dead_code))]
pub(crate) fn whole_seconds(duration: Duration) -> (Duration, String) {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    (Duration::from_secs(secs), format!("{secs}s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("15s").unwrap(), Duration::from_secs(15));
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("5").is_err());
        assert_eq!(whole_seconds(Duration::from_millis(1500)).1, "2s");
    }

    /// A duration too long for a `Duration` is an invalid argument (it
    /// panicked in `Duration::from_secs_f64`; found by fuzzing).
    #[test]
    fn too_long_is_an_error() {
        for text in ["99999999999999999999999h", "1e3s", "9".repeat(400).as_str()] {
            let error = parse_go_duration(text).unwrap_err();
            assert_eq!(error.kind(), crate::ErrorKind::InvalidArgument, "{text}");
        }
        let longest = format!("{}s", u64::MAX / 2);
        assert!(parse_go_duration(&longest).is_ok());
    }
}
